// The fleet check: a correctly planned fleet passes, and each planted fault fails it with the
// fault's kind (a removed route, an asymmetric peering, a duplicated allowed IP, a loop), and
// the pool plans exactly what one thread plans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { syntheticNodes, syntheticPeers } from '../../bench/synthetic.js';
import { fleetContext, planRange, type FleetContext } from '../../loadtest/fleet/planner-worker.js';
import { closeFleetPools, fleetPlanOptions, planFleet, verifyPlannedFleet } from '../../loadtest/fleet/planner.js';
import fc from 'fast-check';
import { compareKernel, compileNode, compilePeer, decisionsFrom, verifyFleet, parseV4CIDR, LOCAL, NO_PEER, NO_ROUTE, UNCHECKED, UNKNOWN_GW, UNKNOWN_KEY, VIA_WG, type FleetIndex, type IndexLookups, type KernelState, type PlanForCheck, type RouteTable } from '../../loadtest/fleet/verify.js';
import { plan } from '../../plan/plan.js';
import { peerConf } from '../../plan/wireguard.js';
import type { PlanJSON } from '../../plan/types.js';
import { normalizeRoute, normalizeRule } from '../../kernel/ip-format.js';
import { parseSave, quoteArg } from '../../kernel/iptables-save.js';

const NOW = 1_764_160_000;
const shape = { nodes: 40, locations: 4, peers: 3, now: NOW };

/** Every node's plan JSON, so that tests can plant faults before compiling. */
function plans(argv: string[] = []): { ctx: FleetContext; plans: PlanJSON[] } {
  const o = fleetPlanOptions(argv, NOW);
  const ctx = fleetContext({ nodes: syntheticNodes(shape), peers: syntheticPeers(shape), plan: o.plan, topologyLabel: o.topologyLabel, keepPlans: syntheticNodes(shape).map((n) => n.metadata!.name!) });
  const s = planRange(ctx, 0, ctx.index.names.length);
  s.forEach((x, i) => (ctx.index.leader[i] = x.leader));
  return { ctx, plans: s.map((x) => x.plan!) };
}

function verify(ctx: FleetContext, ps: PlanJSON[]) {
  const topo = plan(ctx.cluster, { ...ctx.input.plan, hostname: ps[0].hostname }).topology!;
  const peers = ctx.index.peers.map((p, k) => compilePeer(ctx.index, ctx.lk, k, peerConf(topo, p.name).peers.map((x) => ({ publicKey: x.publicKey, allowedIPs: x.allowedIPs.map((a) => a.s) }))));
  return verifyFleet(ctx.index, ctx.lk, ps.map((p) => compileNode(ctx.index, ctx.lk, p)), peers);
}

const clone = (p: PlanJSON): PlanJSON => structuredClone(p);

test('fleet check: a planned fleet passes, in location, full and cross granularity', () => {
  for (const g of ['location', 'full', 'cross']) {
    const { ctx, plans: ps } = plans(['--mesh-granularity', g]);
    const r = verify(ctx, ps);
    assert.deepEqual(r.failures, {}, r.examples.join('\n'));
    assert.ok(r.ok);
    // 40 destinations × (39 other nodes + 3 Peers).
    assert.equal(r.paths, 40 * 42);
    assert.equal(r.reached, r.paths);
    assert.equal(r.peers, 3);
    assert.ok(r.hops.max >= (g === 'location' ? 3 : 1));
  }
});

test('fleet check: in cross granularity, a WireGuard hop inside a location fails (design §19)', () => {
  const { ctx, plans: ps } = plans(['--mesh-granularity', 'cross']);
  assert.ok(ctx.index.groups, 'the index carries the location groups');
  const a = ps.findIndex((p) => p.nodeLocation);
  const b = ps.findIndex((p, i) => i !== a && p.nodeLocation === ps[a].nodeLocation);
  assert.ok(a >= 0 && b >= 0, 'two nodes of one location');
  // a tunnels to its neighbour b instead of reaching it on the underlay.
  const cidr = ctx.index.podCIDRs[b]!;
  ps[a] = clone(ps[a]);
  ps[a].routes = ps[a].routes.map((r) => (r.dst === cidr ? { ...r, dev: 'kilo0', gw: '10.4.255.254', src: null } : r));
  ps[a].wireguard.peers.push({ publicKey: ctx.index.keys[b], endpoint: null, allowedIPs: [cidr], persistentKeepalive: 0, presharedKey: false });
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.equal(r.failures['wireguard-inside-location'], 1, JSON.stringify(r.failures));
  assert.match(r.examples.join('\n'), new RegExp(`${ps[a].hostname} tunnels to ${ps[b].hostname} of its own location`));
});

test('fleet check: a removed route is a blackhole', () => {
  const { ctx, plans: ps } = plans();
  // A non-leader loses its route to a pod CIDR in another location.
  const i = ps.findIndex((p) => !p.leader);
  const victim = ps.findIndex((p) => p.location !== ps[i].location);
  const cidr = ctx.index.podCIDRs[victim]!;
  ps[i] = clone(ps[i]);
  const before = ps[i].routes.length;
  ps[i].routes = ps[i].routes.filter((r) => r.dst !== cidr);
  assert.equal(ps[i].routes.length, before - 1);
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.equal(r.failures.blackhole, 1, r.examples.join('\n'));
  assert.match(r.examples.join('\n'), new RegExp(`${ps[i].hostname} has no route for ${cidr.replace(/\./g, '\\.')}`));
});

test('fleet check: an asymmetric peering between leaders fails', () => {
  const { ctx, plans: ps } = plans();
  const leaders = ps.map((p, i) => (p.leader ? i : -1)).filter((i) => i >= 0);
  const [a, b] = leaders;
  // b forgets a: a still sends to b, and b would drop what a sends.
  ps[b] = clone(ps[b]);
  ps[b].wireguard.peers = ps[b].wireguard.peers.filter((p) => p.publicKey !== ctx.index.keys[a]);
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.ok(r.failures['asymmetric-peering'] >= 1, JSON.stringify(r.failures));
  assert.ok(r.failures['source-rejected'] >= 1 || r.failures.blackhole >= 1, JSON.stringify(r.failures));
  assert.match(r.examples.join('\n'), new RegExp(`${ps[a].hostname} peers with ${ps[b].hostname}, but ${ps[b].hostname} does not peer`));
});

test('fleet check: an allowed IP claimed twice on one interface fails', () => {
  const { ctx, plans: ps } = plans();
  const l = ps.findIndex((p) => p.leader);
  ps[l] = clone(ps[l]);
  const [p0, p1] = ps[l].wireguard.peers;
  p1.allowedIPs = [...p1.allowedIPs, p0.allowedIPs[0]];
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.equal(r.failures['duplicate-allowed-ip'], 1, JSON.stringify(r.failures));
});

test('fleet check: a routing loop is found', () => {
  const { ctx, plans: ps } = plans();
  // Two non-leaders of one location send a third location's pods to each other.
  const x = ps.findIndex((p) => !p.leader);
  const y = ps.findIndex((p, i) => i !== x && !p.leader && p.location === ps[x].location);
  const far = ps.findIndex((p) => p.location !== ps[x].location);
  const cidr = ctx.index.podCIDRs[far]!;
  for (const [a, b] of [[x, y], [y, x]]) {
    ps[a] = clone(ps[a]);
    ps[a].routes = ps[a].routes.map((r) => (r.dst === cidr ? { ...r, gw: ctx.index.privateIPs[b] } : r));
  }
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.ok(r.failures.loop >= 2, JSON.stringify(r.failures));
});

test('fleet planner: the pool plans what one thread plans', async () => {
  const o = fleetPlanOptions([], NOW);
  const one = await planFleet(syntheticNodes(shape), syntheticPeers(shape), { threads: 1, ...o });
  for (const callerShare of [true, false]) {
    const pool = await planFleet(syntheticNodes(shape), syntheticPeers(shape), { threads: 2, chunk: 7, verify: true, callerShare, ...o });
    assert.equal(pool.nodes.length, 40);
    assert.deepEqual(pool.nodes.map(({ planMs: _, ...s }) => s), one.nodes.map(({ planMs: _, ...s }) => s));
    assert.deepEqual(pool.planned.length, 2);
    assert.equal(pool.planned[0] + pool.planned[1], 40);
    if (!callerShare) assert.equal(pool.planned[1], 40, 'the worker planned every node');
    // The check spread over the threads (destination ranges) says what one thread says.
    const single = verifyPlannedFleet(pool);
    assert.ok(single.ok);
    const { ms: _a, hops: h1, ...parallel } = pool.verify!;
    const { ms: _b, hops: h2, ...inThread } = single;
    assert.deepEqual(parallel, inThread);
    assert.equal(h1.max, h2.max);
    assert.ok(Math.abs(h1.mean - h2.mean) < 1e-9);
  }
  await assert.rejects(planFleet([], [], { threads: 0, ...o }), /threads must be 1\.\.64/);
});

test('fleet planner: the kept pool plans each new snapshot, not the one its workers planned before', async () => {
  const o = fleetPlanOptions([], NOW);
  const other = { nodes: 25, locations: 3, peers: 2, now: NOW };
  const first = await planFleet(syntheticNodes(shape), syntheticPeers(shape), { threads: 2, chunk: 5, verify: true, ...o });
  const second = await planFleet(syntheticNodes(other), syntheticPeers(other), { threads: 2, chunk: 5, verify: true, ...o });
  const alone = await planFleet(syntheticNodes(other), syntheticPeers(other), { threads: 1, ...o });
  assert.equal(first.nodes.length, 40);
  assert.equal(second.nodes.length, 25);
  assert.deepEqual(second.nodes.map(({ planMs: _, ...s }) => s), alone.nodes.map(({ planMs: _, ...s }) => s));
  assert.ok(second.verify!.ok);
  assert.equal(second.verify!.readyNodes, alone.index.ready.filter(Boolean).length);
  await closeFleetPools();
});

test('compareKernel: equal state gives no differences; a missing route, an extra peer and a lost rule are named', () => {
  const { plans: ps } = plans();
  const p = ps.find((x) => x.leader)!;
  const save = (rules: string[]) => `*filter\n:FORWARD ACCEPT [0:0]\n${p.iptables.chains.filter((c) => c.table === 'filter').map((c) => `:${c.chain} - [0:0]`).join('\n')}\n${rules.join('\n')}\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n${p.iptables.chains.filter((c) => c.table === 'nat').map((c) => `:${c.chain} - [0:0]`).join('\n')}\n${p.iptables.prepend.concat(p.iptables.append).filter((r) => r.table === 'nat' && r.family === 'ipv4').map((r) => `-A ${r.chain} ${r.rule.map(quoteArg).join(' ')}`).join('\n')}\nCOMMIT\n`;
  const filterRules = p.iptables.prepend.concat(p.iptables.append).filter((r) => r.table === 'filter' && r.family === 'ipv4').map((r) => `-A ${r.chain} ${r.rule.map(quoteArg).join(' ')}`);
  const kernel = (): KernelState => ({
    routes: p.routes.map(normalizeRoute),
    rules: p.rules.map(normalizeRule),
    wireguard: { privateKeyHex: null, listenPort: 51820, peers: new Map(p.wireguard.peers.map((w) => [w.publicKey, { publicKey: w.publicKey, endpoint: w.endpoint, allowedIPs: w.allowedIPs, persistentKeepalive: w.persistentKeepalive, presharedKeyHex: '0'.repeat(64), lastHandshake: 0, rxBytes: 0, txBytes: 0 }])) },
    iptables: { ipv4: parseSave(save(filterRules)) },
  });
  assert.deepEqual(compareKernel(p, kernel()), []);
  const k = kernel();
  k.routes = k.routes.slice(1);
  k.wireguard!.peers.set('extra', { ...k.wireguard!.peers.values().next().value!, publicKey: 'extra' });
  const diffs = compareKernel(p, k);
  assert.ok(diffs.some((d) => d.startsWith(`route ${p.routes[0].dst}`) && d.endsWith('missing')), diffs.join('\n'));
  assert.ok(diffs.includes('WireGuard peer extra not in the plan'), diffs.join('\n'));
  if (filterRules.length > 0) {
    const k2 = kernel();
    k2.iptables.ipv4 = parseSave(save(filterRules.slice(1)));
    assert.ok(compareKernel(p, k2).some((d) => d.startsWith('iptables ipv4 filter')));
  }
});

/** The prefix-table compile the fleet check used before coverOf: a reference for the arrays. */
class Lpm<T> {
  private readonly byLen = new Map<number, Map<number, T>>();
  private lens: number[] = [];
  add(net: number, bits: number, v: T): void {
    let m = this.byLen.get(bits);
    if (!m) {
      this.byLen.set(bits, (m = new Map()));
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    const k = bits === 0 ? 0 : (net & (0xffffffff << (32 - bits))) >>> 0;
    if (!m.has(k)) m.set(k, v);
  }
  lookup(a: number): T | undefined {
    for (const bits of this.lens) {
      const v = this.byLen.get(bits)!.get(bits === 0 ? 0 : (a & (0xffffffff << (32 - bits))) >>> 0);
      if (v !== undefined) return v;
    }
    return undefined;
  }
}

function referenceCompile(ix: FleetIndex, lk: IndexLookups, p: PlanForCheck): { next: number[]; wgOwner: number[]; duplicates: string[] } {
  const me = lk.byName.get(p.hostname)!;
  const routes = new Lpm<{ dev: string; gw: string | null }>();
  for (const r of p.routes) {
    if (r.table !== null && r.table !== 254) continue;
    const c = parseV4CIDR(r.dst);
    if (c) routes.add(c[0], c[1], { dev: r.dev, gw: r.gw });
  }
  const wg = new Lpm<number>();
  const seen = new Map<string, string>();
  const duplicates: string[] = [];
  for (const w of p.wireguard.applied ? p.wireguard.peers : []) {
    const owner = lk.byKey.get(w.publicKey) ?? UNKNOWN_KEY;
    for (const a of w.allowedIPs) {
      const c = parseV4CIDR(a);
      const key = c ? `${c[0]}/${c[1]}` : a.toLowerCase();
      const prev = seen.get(key);
      if (prev !== undefined) duplicates.push(`${p.hostname}: allowed IP ${a} claimed by ${prev} and ${w.publicKey}`);
      else seen.set(key, w.publicKey);
      if (c) wg.add(c[0], c[1], owner);
    }
  }
  const next: number[] = [];
  const wgOwner: number[] = [];
  for (let j = 0; j < lk.addr.length; j++) {
    wgOwner.push(lk.addr[j] < 0 ? NO_PEER : (wg.lookup(lk.addr[j]) ?? NO_PEER));
    if (lk.addr[j] < 0) next.push(UNCHECKED);
    else if (j === me) next.push(LOCAL);
    else {
      const r = routes.lookup(lk.addr[j]);
      next.push(!r ? NO_ROUTE : r.dev === ix.kiloIface ? VIA_WG : r.gw !== null ? (lk.byPrivateIP.get(r.gw) ?? UNKNOWN_GW) : UNKNOWN_GW);
    }
  }
  return { next, wgOwner, duplicates };
}

test('compileNode: the same arrays as a longest-prefix table, for any routes and allowed IPs (overlaps, repeats, host bits, other tables, IPv6, bad text)', () => {
  const { ctx, plans: ps } = plans();
  const N = ctx.index.names.length;
  // Texts around the fleet's destinations: pod CIDRs and their parts, supernets, private IPs, junk.
  const text = fc.oneof(
    fc.integer({ min: 0, max: N - 1 }).map((i) => ctx.index.podCIDRs[i]!),
    fc.tuple(fc.integer({ min: 0, max: N - 1 }), fc.integer({ min: 8, max: 32 })).map(([i, b]) => `${ctx.index.podCIDRs[i]!.split('/')[0].replace(/\.0$/, '.1')}/${b}`),
    fc.integer({ min: 0, max: N - 1 }).map((i) => `${ctx.index.privateIPs[i] ?? '10.0.0.1'}/32`),
    // The same prefixes written otherwise: a leading zero, a host bit, no length.
    fc.integer({ min: 0, max: N - 1 }).map((i) => ctx.index.podCIDRs[i]!.replace(/^(\d+)\./, '0$1.')),
    fc.integer({ min: 0, max: N - 1 }).map((i) => ctx.index.podCIDRs[i]!.replace(/\.0\//, '.7/')),
    fc.integer({ min: 0, max: N - 1 }).map((i) => ctx.index.privateIPs[i] ?? '10.0.0.1'),
    fc.constantFrom('0.0.0.0/0', '10.0.0.0/8', 'fd00::/64', '10.1.2.3', '10.1.2.0/33', 'x/24', '10.1.2.0/+8', '10.1.2.0/ 8'),
  );
  const gw = fc.option(fc.integer({ min: 0, max: N }).map((i) => ctx.index.privateIPs[i] ?? '192.0.2.1'), { nil: null });
  const route = fc.record({ dst: text, gw, dev: fc.constantFrom('kilo0', 'eth0', ''), table: fc.constantFrom(null, 254, 1107) });
  const peer = fc.record({ k: fc.integer({ min: 0, max: N + 3 }), allowedIPs: fc.array(text, { maxLength: 4 }) });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: N - 1 }), fc.array(route, { maxLength: 40 }), fc.array(peer, { maxLength: 6 }), fc.boolean(), (i, rs, wps, applied) => {
      const p: PlanForCheck = {
        hostname: ps[i].hostname,
        routes: rs.map((r) => ({ ...r, src: null, protocol: 'static', onlink: true })),
        wireguard: { applied, peers: wps.map((w) => ({ publicKey: w.k < N ? ctx.index.keys[w.k] : `k${w.k}`, endpoint: null, allowedIPs: w.allowedIPs, persistentKeepalive: 0, presharedKey: false })) },
      };
      const got = compileNode(ctx.index, ctx.lk, p);
      const want = referenceCompile(ctx.index, ctx.lk, p);
      assert.deepEqual([...got.next], want.next);
      assert.deepEqual([...got.wgOwner], want.wgOwner);
      assert.deepEqual(got.duplicates, want.duplicates);
    }),
    { numRuns: 300 },
  );
  // By difference from another node's table (the fleet planner's non-leaders of one location):
  // a few or many routes taken out, put in or moved, for the same or another node.
  const edit = fc.record({ at: fc.nat(), kind: fc.constantFrom('out', 'in', 'move'), r: route });
  fc.assert(
    fc.property(fc.integer({ min: 0, max: N - 1 }), fc.integer({ min: 0, max: N - 1 }), fc.array(route, { minLength: 1, maxLength: 40 }), fc.array(edit, { maxLength: 24 }), (a, b, rs, edits) => {
      const mk = (i: number, routes: typeof rs): PlanForCheck => ({
        hostname: ps[i].hostname, routes: routes.map((r) => ({ ...r, src: null, protocol: 'static', onlink: true })), wireguard: { applied: false, peers: [] },
      });
      const like = { base: null as RouteTable | null };
      compileNode(ctx.index, ctx.lk, mk(a, rs), like);
      assert.ok(like.base);
      const qs = [...rs];
      for (const e of edits) {
        const k = e.at % (qs.length + 1);
        if (e.kind === 'out') qs.splice(k, 1);
        else if (e.kind === 'in') qs.splice(k, 0, e.r);
        else qs.splice(k, 0, ...qs.splice(0, 1));
      }
      const p = mk(b, qs);
      assert.deepEqual([...compileNode(ctx.index, ctx.lk, p, like).next], referenceCompile(ctx.index, ctx.lk, p).next);
    }),
    { numRuns: 1000 },
  );
  // The planner's own case, from real plans: every non-leader of a location from the first one's table.
  const like = { base: null as RouteTable | null };
  const loc = ps.filter((p) => !p.leader && p.location === ps.find((x) => !x.leader)!.location);
  assert.ok(loc.length >= 3);
  for (const p of loc) assert.deepEqual([...compileNode(ctx.index, ctx.lk, p, like).next], referenceCompile(ctx.index, ctx.lk, p).next);
  assert.ok(decisionsFrom(ctx.lk, ctx.index, like.base!, loc[1].routes, ctx.lk.byName.get(loc[1].hostname)!), 'a non-leader is compiled from another by difference');
});
