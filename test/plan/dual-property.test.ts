// Dual-stack properties (design §20) over random clusters in which most nodes have a second
// (IPv6) pod CIDR and internal IP and some lack one or the other: no allowed IP twice on one
// WireGuard interface, every pod CIDR of each family reachable hop by hop where §20.3 says it
// takes part, single-stack plans unchanged by the flag, and re-plans equal to fresh plans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { network, parseCIDR } from '../../plan/addr.js';
import { withLastSeen, type MeshNode, type NodeObject } from '../../plan/node.js';
import { Replanner, type ReplicaView } from '../../plan/replan.js';
import { parseCluster, plan } from '../../plan/plan.js';
import type { PlanJSON } from '../../plan/types.js';
import type { Strategy } from '../../plan/encapsulation.js';
import { Model, scenario } from './sequence.js';
import { deliver } from './walk.js';
import { genAnnotations, genNodeFields, NOW, options } from './fixture.js';

const DUAL = parseCIDR('fd04::/112')!;

/** Node `i`'s second family: a pod CIDR unless i % 5 == 4, an internal IP (from the IPv4 one) unless i % 3 == 2. */
export function dualize(o: NodeObject, i: number): NodeObject {
  const ann = { ...o.metadata!.annotations! };
  const v4 = ann['kilo.squat.ai/internal-ip'];
  if (v4 && i % 3 !== 2) {
    const [, , l, k] = v4.split('/')[0].split('.');
    ann['kilo.squat.ai/dual-stack-internal-ip'] = `fd00:0:${l}::${k}/64`;
  }
  const pod = o.spec!.podCIDR!;
  const pods = i % 5 === 4 ? [pod] : [pod, `fd42:0:0:${i}::/64`];
  return { metadata: { ...o.metadata, annotations: ann }, spec: { podCIDR: pod, podCIDRs: pods } };
}

interface GenNode { loc: number; internal: boolean; leader: boolean; publicEP: boolean; alip: number | null; keepalive: boolean }
const genCluster = fc.record({
  nodes: fc.array(fc.record(genNodeFields), { minLength: 1, maxLength: 10 }),
  granularity: fc.constantFrom('location' as const, 'full' as const, 'cross' as const),
  encapsulate: fc.constantFrom<Strategy>('never', 'always'),
});
type GenCluster = { nodes: GenNode[]; granularity: 'location' | 'full' | 'cross'; encapsulate: Strategy };

function objects(c: GenCluster, dual = true): NodeObject[] {
  return c.nodes.map((g, i) => {
    const o: NodeObject = { metadata: { name: `n${String(i).padStart(2, '0')}`, annotations: genAnnotations(g, i, NOW) }, spec: { podCIDR: `10.42.${i}.0/24` } };
    return dual ? dualize(o, i) : o;
  });
}

function plans(c: GenCluster): Map<string, PlanJSON> {
  const cluster = parseCluster(objects(c), [], 'x');
  const out = new Map<string, PlanJSON>();
  for (const n of cluster.nodes) out.set(n.name, plan(cluster, { ...options(n.name, { granularity: c.granularity, encapsulate: c.encapsulate, local: true }), dualStackSubnet: DUAL }).json);
  return out;
}

/** §20.3, derived from the inputs and the first family's segments: does `name` take part in IPv6? */
function takesPart(p: PlanJSON, name: string, asSource: boolean): boolean {
  const seg = p.segments.find((s) => s.hostnames.includes(name))!;
  const leader = seg.hostnames[seg.leader];
  const node = (x: string) => p.nodes.find((n) => n.name === x)!;
  const n = node(name);
  if (name === leader) return asSource || !!n.dualStack?.subnet;
  return !!n.dualStack?.subnet && !!n.dualStack.internalIP && !!node(leader).dualStack?.internalIP;
}

/** §20.3 in cross: two nodes of one location group reach each other on the underlay, so both need a second-family internal IP. */
function sameGroupReach(p: PlanJSON, from: string, to: string): boolean {
  const group = (x: string) => p.segments.find((s) => s.hostnames.includes(x))!.nodeLocation ?? null;
  if (group(from) === null || group(from) !== group(to)) return true;
  const node = (x: string) => p.nodes.find((n) => n.name === x)!;
  return !!node(from).dualStack?.internalIP && !!node(to).dualStack?.internalIP;
}

test('dual-stack property: every pod CIDR of each family is reachable hop by hop where it takes part', (t) => {
  let checked = 0;
  fc.assert(
    fc.property(genCluster, (c) => {
      const all = plans(c);
      for (const [from] of all) {
        for (const [to, p] of all) {
          if (from === to) continue;
          const n = p.nodes.find((x) => x.name === to)!;
          assert.equal(deliver(all, from, n.subnet!.replace('.0/24', '.7')), to, `IPv4: ${from} → pod of ${to}`);
          if (takesPart(p, from, true) && takesPart(p, to, false) && sameGroupReach(p, from, to)) {
            assert.equal(deliver(all, from, n.dualStack!.subnet!.replace('::/64', '::7')), to, `IPv6: ${from} → pod of ${to}`);
            checked++;
          }
        }
      }
    }),
    { numRuns: 120 },
  );
  t.diagnostic(`${checked} IPv6 pod CIDRs followed hop by hop`);
  assert.ok(checked > 1000, 'not vacuous');
});

test('dual-stack property: no allowed IP twice on one WireGuard interface, in either family', () => {
  fc.assert(
    fc.property(genCluster, (c) => {
      for (const [name, p] of plans(c)) {
        const seen = new Map<string, string>();
        for (const peer of p.wireguard.peers) {
          for (const a of peer.allowedIPs) {
            const k = network(parseCIDR(a)!).s;
            assert.ok(!seen.has(k), `${name}: ${k} twice`);
            seen.set(k, peer.publicKey);
          }
        }
        // Every IPv6 route and ip6tables rule is of its family; IPv6 routes come after the IPv4 ones.
        const firstV6 = p.routes.findIndex((r) => r.dst.includes(':'));
        if (firstV6 >= 0) assert.ok(p.routes.slice(firstV6).every((r) => r.dst.includes(':') && (r.gw === null || r.gw.includes(':'))));
        for (const x of p.iptables.prepend) assert.equal(x.family === 'ipv6', x.rule.some((a) => /^[0-9a-f:]+:[0-9a-f:]*\/\d+$/.test(a)), x.rule.join(' '));
      }
    }),
    { numRuns: 120 },
  );
});

test('dual-stack property: without second-family pod CIDRs the flag changes nothing', () => {
  fc.assert(
    fc.property(genCluster, (c) => {
      const cluster = parseCluster(objects(c, false), [], 'x');
      for (const n of cluster.nodes) {
        const o = options(n.name, { granularity: c.granularity, encapsulate: c.encapsulate, local: true });
        assert.equal(JSON.stringify(plan(cluster, { ...o, dualStackSubnet: DUAL }).json), JSON.stringify(plan(cluster, o).json));
      }
    }),
    { numRuns: 80 },
  );
});

test('dual-stack property: re-plans equal fresh plans after random sequences of changes (full plans, reason "dual stack")', (t) => {
  const reasons = new Map<string, number>();
  fc.assert(
    fc.property(scenario, (sc) => {
      const model = new Model(sc.nodes);
      const index = (name: string) => Number(name.slice(1, 3)) + 10 * (name.length > 3 ? name.charCodeAt(3) - 96 : 0);
      const dualObjects = () => model.objects().map((o) => dualize(o, index(o.metadata!.name!)));
      const records = new Map<string, MeshNode>();
      const parse = (o: NodeObject) => parseCluster([dualize(o, index(o.metadata!.name!))], [], 'x').nodes[0];
      for (const o of model.objects()) records.set(o.metadata!.name!, parse(o));
      let peers = parseCluster([], model.peerObjects(), 'x').peers;
      const view: ReplicaView = {
        nodes: records,
        cluster: () => ({ nodes: [...records.values()].sort((a, b) => (a.name < b.name ? -1 : 1)), peers, warnings: [] }),
        warnings: () => [],
      };
      const r = new Replanner();
      for (const [i, op] of [{ kind: 'tick', seconds: 0 } as const, ...sc.ops].entries()) {
        const step = model.apply(op);
        for (const n of step.nodes) (r.noteNode(n.metadata!.name!, records.get(n.metadata!.name!)), records.set(n.metadata!.name!, parse(n)));
        for (const n of step.deletes) (r.noteNode(n, records.get(n)), records.delete(n));
        for (const [n, s] of step.lastSeen) (r.noteNode(n, records.get(n)), records.set(n, withLastSeen(records.get(n)!, s)));
        if (step.peers) (peers = parseCluster([], step.peers, 'x').peers, r.invalidate());
        if (!model.specs.has('n00')) continue;
        const o = { ...options('n00', { granularity: sc.granularity, encapsulate: sc.encapsulate, local: true }), now: model.now, dualStackSubnet: DUAL };
        const attempt = (f: () => PlanJSON) => {
          try {
            return JSON.stringify(f());
          } catch (e) {
            return `error: ${(e as Error).message}`;
          }
        };
        const want = attempt(() => plan(parseCluster(dualObjects(), model.peerObjects(), 'x'), o, { describe: false }).json);
        assert.equal(attempt(() => r.plan(view, o, { privateKey: null }).result.json), want, `step ${i} (${JSON.stringify(op)})`);
      }
      for (const [k, v] of r.stats.fallbacks) reasons.set(k, (reasons.get(k) ?? 0) + v);
    }),
    { numRuns: 40 },
  );
  t.diagnostic(`fallback reasons: ${JSON.stringify(Object.fromEntries(reasons))}`);
  assert.ok((reasons.get('dual stack') ?? 0) > 100, 'dual-stack plans are counted under their own reason');
});
