// The fleet planner shares the mesh (plan/topology.ts newMesh) between the plans of every node:
// each node's plan, summary and compiled forwarding must be exactly what planning that node
// alone gives. Random clusters (fast-check) in both granularities, with readiness, leaders,
// allowed-location IPs, Peers, keepalive and discovered endpoints, under several flag sets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import { parseCluster, plan, sharedMesh } from '../../plan/plan.js';
import { newMesh, meshView, newTopology } from '../../plan/topology.js';
import { parseCIDR } from '../../plan/addr.js';
import { closeFleetPools, fleetPlanOptions, planFleet, type FleetResult } from '../../loadtest/fleet/planner.js';
import { compileNode, lookups, type VerifyReport } from '../../loadtest/fleet/verify.js';
import { fleetIndex } from '../../loadtest/fleet/planner-worker.js';
import { genAnnotations, genNodeFields, key, NOW } from '../plan/fixture.js';

interface GenNode { loc: number; internal: boolean; leader: boolean; publicEP: boolean; stale: boolean; alip: number | null; keepalive: boolean; discovered: number | null; noPod: boolean }
interface GenCluster { nodes: GenNode[]; peers: { ips: number[]; endpoint: boolean; keepalive: boolean }[]; argv: string[] }

const genCluster: fc.Arbitrary<GenCluster> = fc.record({
  nodes: fc.array(
    fc.record({
      ...genNodeFields,
      stale: fc.integer({ min: 0, max: 7 }).map((x) => x === 0),
      // A discovered endpoint for another node's key or a Peer's key (some collide).
      discovered: fc.option(fc.integer({ min: 0, max: 13 }), { nil: null }),
      noPod: fc.integer({ min: 0, max: 9 }).map((x) => x === 0),
    }),
    { minLength: 1, maxLength: 12 },
  ),
  peers: fc.array(fc.record({ ips: fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 3 }), endpoint: fc.boolean(), keepalive: fc.boolean() }), { maxLength: 4 }),
  argv: fc.tuple(
    fc.constantFrom('location', 'full', 'cross'),
    fc.constantFrom('never', 'always', 'crosssubnet'),
    fc.boolean(),
    fc.boolean(),
    fc.boolean(),
  ).map(([g, e, local, fwd, cni]) => ['--mesh-granularity', g, '--encapsulate', e, `--local=${local}`, `--iptables-forward-rules=${fwd}`, `--cni=${cni}`]),
});

function objects(c: GenCluster): { nodes: NodeObject[]; peers: PeerObject[] } {
  const nodes = c.nodes.map((g, i) => {
    const ann = genAnnotations(g, i, g.stale ? NOW - 120 : NOW);
    if (g.discovered !== null) {
      const k = g.discovered < 10 ? key(g.discovered + 1) : key(100 + g.discovered - 10);
      ann['kilo.squat.ai/discovered-endpoints'] = JSON.stringify({ [k]: { IP: `203.0.113.${i + 1}`, Port: 40000 + i, Zone: '' } });
    }
    return { metadata: { name: `n${String(i).padStart(2, '0')}`, annotations: ann }, spec: g.noPod ? {} : { podCIDR: `10.42.${i}.0/24` } };
  });
  const peers = c.peers.map((p, j) => ({
    metadata: { name: `p${j}` },
    spec: {
      allowedIPs: p.ips.map((x) => (x === 7 ? '172.16.1.0/24' : `10.5.${x}.0/24`)),
      publicKey: key(100 + j),
      ...(p.endpoint ? { endpoint: { dnsOrIP: { ip: `192.0.2.${j + 1}` }, port: 51820 } } : {}),
      ...(p.keepalive ? { persistentKeepalive: 10 } : {}),
    },
  }));
  return { nodes, peers };
}

test('property: every fleet-planned node equals planning that node alone (plan, summary, compiled forwarding)', async () => {
  await fc.assert(
    fc.asyncProperty(genCluster, async (c) => {
      const { nodes, peers } = objects(c);
      const o = fleetPlanOptions(c.argv, NOW);
      const names = nodes.map((n) => n.metadata!.name!);
      const fleet = await planFleet(nodes, peers, { threads: 1, keepPlans: names, ...o });
      const cluster = parseCluster(nodes, peers, o.topologyLabel);
      const ix = fleetIndex(cluster, o.plan);
      const lk = lookups(ix);
      assert.deepEqual(fleet.nodes.map((s) => s.hostname), names);
      for (const s of fleet.nodes) {
        const alone = plan(cluster, { ...o.plan, hostname: s.hostname }).json;
        // The whole plan JSON, as `kg plan` prints it for that host.
        assert.deepEqual(s.plan, alone);
        assert.deepEqual(
          { leader: s.leader, location: s.location, wireGuardCIDR: s.wireGuardCIDR, routes: s.routes, rules: s.rules, wgPeers: s.wgPeers, cni: s.cni, tunnel: s.tunnel, warnings: s.warnings },
          {
            leader: alone.leader, location: alone.location, wireGuardCIDR: alone.wireGuardCIDR, routes: alone.routes.length, rules: alone.rules.length,
            wgPeers: alone.wireguard.peers.length, cni: alone.cni !== null, tunnel: alone.tunnel?.dev ?? null, warnings: alone.warnings.length,
          },
        );
        assert.equal(s.iptablesRules, alone.iptables.prepend.length + alone.iptables.append.length);
        assert.deepEqual(s.compiled, s.ready ? compileNode(ix, lk, alone) : null);
      }
    }),
    { numRuns: 150 },
  );
});

/** A fleet check's report without its time; examples sorted (threads walk destination ranges in their own order) when none was cut off. */
function reportOf(r: VerifyReport | undefined) {
  if (!r) return r;
  const { ms: _, hops, examples, ...rest } = r;
  const all = Object.values(r.failures).reduce((a, x) => a + x, 0) === examples.length;
  return { ...rest, hops: { max: hops.max, mean: Math.round(hops.mean * 1e9) }, examples: all ? [...examples].sort() : examples.length };
}

const withoutTimes = (r: FleetResult) => ({ index: r.index, nodes: r.nodes.map(({ planMs: _, ...s }) => s), peers: r.peers, verify: reportOf(r.verify), verify6: reportOf(r.verify6) });

test('property: the pool (the calling thread and a worker taking groups from a shared counter) plans and checks what one thread does', async () => {
  try {
    await fc.assert(
      fc.asyncProperty(genCluster, fc.boolean(), fc.integer({ min: 1, max: 4 }), async (c, callerShare, chunk) => {
        const { nodes, peers } = objects(c);
        const o = fleetPlanOptions(c.argv, NOW);
        const keepPlans = nodes.map((n) => n.metadata!.name!);
        const one = await planFleet(nodes, peers, { threads: 1, keepPlans, verify: true, ...o });
        const pool = await planFleet(nodes, peers, { threads: 2, chunk, callerShare, keepPlans, verify: true, ...o });
        // Plans, summaries and compiled arrays that crossed from the worker, and the check over ranges.
        assert.deepEqual(withoutTimes(pool), withoutTimes(one));
        assert.equal(pool.planned.reduce((a, x) => a + x, 0), nodes.length);
        assert.equal(pool.planned.length, 2);
        if (!callerShare) assert.equal(pool.planned[0], 0, 'the calling thread left every group to the worker');
      }),
      { numRuns: 60 },
    );
  } finally {
    await closeFleetPools();
  }
});

test('property: a shared mesh gives every node the topology newTopology gives it alone', () => {
  fc.assert(
    fc.property(genCluster, (c) => {
      const { nodes, peers } = objects(c);
      const o = fleetPlanOptions(c.argv, NOW);
      const cluster = parseCluster(nodes, peers, o.topologyLabel);
      const shared = sharedMesh(cluster, o.plan);
      for (const n of shared.readyNodes) {
        const input = { nodes: shared.readyNodes, peers: shared.readyPeers, granularity: o.plan.granularity, hostname: n.name, port: 51820, subnet: o.plan.subnet, localDiscoveredEndpoints: n.discoveredEndpoints };
        const alone = newTopology(input);
        const view = meshView(shared.mesh, input);
        assert.ok(alone.ok && view.ok);
        const norm = (t: typeof alone) => (t.ok ? JSON.parse(JSON.stringify({ ...t.value, discoveredEndpoints: [...t.value.discoveredEndpoints] }, (k, v) => (k === 'memo' || k === 'members' || k === 'discovered' || k === 'last' ? undefined : v))) : t);
        assert.deepEqual(norm(view), norm(alone));
        // The per-node part against design §5 directly (newTopology is itself a view now): the
        // local node's discovered endpoints first and winning, then each segment's members' in
        // segment and member order, the first one winning; leadership and the WireGuard CIDR.
        const want = new Map(n.discoveredEndpoints ?? []);
        for (const s of view.value.segments) {
          for (const h of s.hostnames) for (const [k, v] of shared.readyNodes.find((x) => x.name === h)!.discoveredEndpoints ?? []) if (!want.has(k)) want.set(k, v);
        }
        assert.deepEqual([...view.value.discoveredEndpoints], [...want]);
        const own = view.value.segments.find((s) => s.location === view.value.location)!;
        assert.equal(view.value.location, o.plan.granularity !== 'location' || !n.internalIP ? n.nodeKey : n.locationKey);
        assert.equal(view.value.leader, own.hostnames[own.leader] === n.name);
        assert.equal(view.value.wireGuardCIDR.s, view.value.leader ? `${own.wireGuardIP.s}/16` : o.plan.subnet.s);
      }
    }),
    { numRuns: 150 },
  );
});

test('mesh: a missing node and an exhausted subnet fail every view as newTopology fails; a mesh for another cluster is refused', () => {
  const { nodes, peers } = objects({ nodes: [0, 1, 2].map((loc) => ({ loc, internal: true, leader: false, publicEP: true, stale: false, alip: null, keepalive: false, discovered: null, noPod: false })), peers: [], argv: [] });
  const o = fleetPlanOptions(['--mesh-granularity', 'full'], NOW);
  const cluster = parseCluster(nodes, peers, o.topologyLabel);
  const shared = sharedMesh(cluster, o.plan);
  assert.deepEqual(meshView(shared.mesh, { hostname: 'nope', port: 1 }), { ok: false, error: 'node "nope" is not among the ready nodes' });
  // A /31 holds one address for three segments.
  const tiny = { nodes: shared.readyNodes, peers: [], granularity: 'full' as const, subnet: parseCIDR('10.9.0.0/31')! };
  const want = newTopology({ ...tiny, hostname: 'n00', port: 1 });
  assert.equal(want.ok, false);
  assert.deepEqual(meshView(newMesh(tiny), { hostname: 'n00', port: 1 }), want);
  const other = parseCluster(nodes, peers, o.topologyLabel);
  assert.throws(() => plan(other, { ...o.plan, hostname: 'n00' }, { mesh: shared }), /shared mesh was built for another cluster/);
  assert.throws(() => plan(cluster, { ...o.plan, granularity: 'location', hostname: 'n00' }, { mesh: shared }), /shared mesh/);
});
