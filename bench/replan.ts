// Benchmark: a one-node re-plan in the agent's plan worker (workers/plan-worker.ts, called in
// this thread as bench/capacity/compute.ts does), from the replica's change to the desired-state
// delta the I/O worker gets: the incremental re-plan (plan/replan.ts) against the memoised full
// re-plan it replaces (the same worker asked for a full plan: `incremental: false`), measured in
// the same run, one case after the other, on the same cluster.
//
// Cases (each alternates between two states, so the cluster stays the same size):
// - annotation edits of a remote non-leader: allowed-location IPs, endpoint port, keepalive;
// - a readiness flip of a remote non-leader (in full granularity its segment leaves and joins,
//   which moves the WireGuard IP of every later segment);
// - a leader move in a remote segment (the leader annotation on a non-leader);
// - a whole segment joining and leaving (a node in a location of its own; in full granularity
//   the same as a flip).
// With a dual-stack subnet every size is measured dual-stack too (every node with an IPv6 pod
// CIDR and internal IP): there each re-plan is a memoised full plan (design §20.5).
import { measure } from 'mitata';
import run, { applyDelta, replanStats } from '../workers/plan-worker.js';
import { nextVersion } from './capacity/compute.js';
import { A, type NodeObject } from '../plan/node.js';
import type { PlanOptions } from '../plan/plan.js';
import type { CIDR } from '../plan/addr.js';
import type { PlanAnswer, ReplicaDelta } from '../ipc/planner.js';
import type { Granularity } from '../plan/types.js';
import type { Measurement } from './compare.js';
import { syntheticKey, syntheticName, syntheticNodes, syntheticPeers } from './synthetic.js';

export interface ReplanRow {
  nodes: number;
  granularity: Granularity;
  dualStack: boolean;
  change: string;
  incP50: number;
  incP99: number;
  baseP50: number;
  baseP99: number;
  /** Incremental plans that fell back to a full plan, of those measured. */
  fallbacks: number;
  plans: number;
}

const LOCATIONS = 50;
const PRIVATE_KEY = syntheticKey(0xffff, 7);

type Change = (o: NodeObject, k: number) => ReplicaDelta['nodes'] | { delete: string };

const annotate = (o: NodeObject, extra: Record<string, string>, drop: string[] = []): NodeObject => {
  const annotations = { ...(o.metadata?.annotations ?? {}), ...extra };
  for (const d of drop) delete annotations[d];
  return { ...o, metadata: { ...o.metadata, annotations } };
};

/** The changes measured: each maps (the node's original object, iteration) to the delta's nodes. */
function changes(now: number): [string, Change][] {
  return [
    ['allowed-location IPs edit', (o, k) => [annotate(o, { [A.allowedLocationIPs]: `10.253.${(k >> 8) & 255}.${k & 255}/32` })]],
    ['endpoint edit', (o, k) => [annotate(o, { 'kilo.squat.ai/endpoint': o.metadata!.annotations!['kilo.squat.ai/endpoint'].replace(/:\d+$/, `:${51820 + (k & 1)}`) })]],
    ['keepalive edit', (o, k) => [annotate(o, { 'kilo.squat.ai/persistent-keepalive': String(10 + (k & 1)) })]],
    ['readiness flip', (o, k) => [annotate(o, { 'kilo.squat.ai/last-seen': String(k & 1 ? now - 600 : now) })]],
    ['leader move', (o, k) => [k & 1 ? annotate(o, { 'kilo.squat.ai/leader': '' }) : annotate(o, {}, ['kilo.squat.ai/leader'])]],
  ];
}

function options(hostname: string, granularity: Granularity, now: number, subnet: PlanOptions['subnet'], dualStackSubnet: CIDR | null): PlanOptions {
  return {
    hostname, granularity, subnet, encapsulate: 'always', local: true, cni: true, compatibility: '',
    iptablesForwardRules: false, serviceCIDRs: [], interface: 'kilo0', mtu: 1420, privateInterface: 'eth0', tunnelInterface: 'tunl0', now,
    ...(dualStackSubnet ? { dualStackSubnet } : {}),
  };
}

function ok(a: PlanAnswer): Extract<PlanAnswer, { ok: true }> {
  if (!a.ok) throw new Error(`plan worker failed: ${'error' in a ? a.error : 'needs a snapshot'}`);
  return a;
}

/** One size and granularity: every case, incremental and then the memoised full re-plan. */
async function measureSize(n: number, granularity: Granularity, budgetMs: number, subnet: PlanOptions['subnet'], now: number, dualStackSubnet: CIDR | null): Promise<ReplanRow[]> {
  const nodes = syntheticNodes({ nodes: n, locations: LOCATIONS, peers: 0, now, dualStack: dualStackSubnet !== null });
  const peers = syntheticPeers({ nodes: n, locations: LOCATIONS, peers: 100, now });
  // A remote non-leader in the middle of the name order (node i is in location i % 50, and
  // nodes 0…49 lead), so that a segment leaving or joining moves half the allocation.
  const target = nodes[Math.floor(n / 2) + 1];
  // A node in a location of its own, sorting into the middle too (node keys and location keys).
  const loner: NodeObject = {
    metadata: {
      name: `${syntheticName(Math.floor(n / 2))}-loner`,
      labels: { ...target.metadata!.labels, 'topology.kubernetes.io/region': 'location-024a' },
      annotations: { ...target.metadata!.annotations, 'kilo.squat.ai/key': syntheticKey(n + 1), 'kilo.squat.ai/internal-ip': '172.31.255.1/12' },
    },
    spec: dualStackSubnet ? { podCIDR: '10.254.1.0/24', podCIDRs: ['10.254.1.0/24', 'fd45:ffff::/64'] } : { podCIDR: '10.254.1.0/24' },
  };
  let v = nextVersion();
  applyDelta({ v, prev: 0, reset: true, nodes, peers, topologyLabel: 'topology.kubernetes.io/region' });
  const o = options(syntheticName(0), granularity, now + 1, subnet, dualStackSubnet);
  let seq = ok(await run({ kind: 'plan', v, options: o, privateKey: PRIVATE_KEY, desired: { cniPath: null, tunnelPrivIface: 'eth0', baseSeq: null } })).seq!;
  const rows: ReplanRow[] = [];
  const cases: [string, Change][] = [...changes(now), ['segment join/leave', (_o, k) => (k & 1 ? [loner] : { delete: loner.metadata!.name! })]];
  for (const [name, change] of cases) {
    const timing = async (incremental: boolean) => {
      let k = 0;
      const step = async () => {
        const c = change(target, ++k);
        const prev = v;
        v = nextVersion();
        applyDelta('delete' in c! ? { v, prev, nodeDeletes: [c.delete] } : { v, prev, nodes: c });
        const a = ok(await run({ kind: 'plan', v, options: o, privateKey: PRIVATE_KEY, desired: { cniPath: null, tunnelPrivIface: 'eth0', baseSeq: seq }, incremental }));
        seq = a.seq!;
      };
      // Warm up, and end on an even step (the original state) so both variants see the same cluster.
      for (let i = 0; i < 4; i++) await step();
      const before = replanStats();
      const s = await measure(step, { min_cpu_time: budgetMs * 1e6, max_samples: 2000, min_samples: 6 });
      if (k & 1) await step();
      const after = replanStats();
      return { s, fallbacks: after.full - before.full, plans: after.full + after.incremental - before.full - before.incremental };
    };
    const inc = await timing(true);
    const base = await timing(false);
    rows.push({
      nodes: n, granularity, dualStack: dualStackSubnet !== null, change: name, incP50: inc.s.p50 / 1e6, incP99: inc.s.p99 / 1e6, baseP50: base.s.p50 / 1e6, baseP99: base.s.p99 / 1e6,
      fallbacks: inc.fallbacks, plans: inc.plans,
    });
    process.stderr.write(`replan ${n} ${granularity}${dualStackSubnet ? ' dual stack' : ''} ${name}: ${(inc.s.p50 / 1e6).toFixed(3)} ms vs ${(base.s.p50 / 1e6).toFixed(3)} ms\n`);
  }
  return rows;
}

/** Every size and granularity, single stack, then dual stack when `dualStackSubnet` is given. */
export async function measureReplans(sizes: readonly number[], budgetMs: number, subnet: PlanOptions['subnet'], now: number, dualStackSubnet: CIDR | null = null): Promise<{ rows: ReplanRow[]; measurements: Measurement[] }> {
  const rows: ReplanRow[] = [];
  for (const n of sizes) {
    for (const dual of dualStackSubnet ? [null, dualStackSubnet] : [null]) {
      for (const g of ['location', 'full'] as Granularity[]) rows.push(...await measureSize(n, g, budgetMs, subnet, now, dual));
    }
  }
  const f = (x: number) => x.toFixed(3);
  console.log('\nOne-node re-plan in the plan worker (replica change → desired-state delta), incremental vs the memoised full re-plan, same run:\n');
  console.log('| nodes | granularity | change | incremental p50 / p99 ms | memoised full re-plan p50 / p99 ms | full ÷ incremental (p50) | incremental plans that fell back |');
  console.log('|---:|---|---|---:|---:|---:|---:|');
  for (const r of rows) {
    console.log(`| ${r.nodes} | ${r.granularity}${r.dualStack ? ', dual stack' : ''} | ${r.change} | ${f(r.incP50)} / ${f(r.incP99)} | ${f(r.baseP50)} / ${f(r.baseP99)} | ${(r.baseP50 / r.incP50).toFixed(1)} | ${r.fallbacks} of ${r.plans} |`);
  }
  const measurements = rows.flatMap((r): Measurement[] => {
    const key = `${r.change}/${r.nodes} nodes/${LOCATIONS} loc/${r.granularity}${r.dualStack ? '/dual-stack' : ''}`;
    return [
      { name: `replan/incremental/${key}`, unit: 'ms', p50: r.incP50, p99: r.incP99 },
      { name: `replan/memoised-full/${key}`, unit: 'ms', p50: r.baseP50, p99: r.baseP99 },
    ];
  });
  return { rows, measurements };
}
