// The fleet planner: plans every node of a cluster snapshot, for the fleet check and benchmarks.
//
//   import { planFleet, fleetPlanOptions, verifyPlannedFleet } from './planner.js';
//   const r = await planFleet(nodes, peers, { threads: 2, ...fleetPlanOptions(['--mesh-granularity', 'location']) });
//   const report = verifyPlannedFleet(r);          // loadtest/fleet/verify.ts
//
// - `nodes`, `peers`: Node and Peer objects as the API serves them (as `kg plan --nodes/--peers`
//   reads them; only the fields kg reads are sent to workers).
// - FleetOptions: `threads`; `plan`: the plan options shared by every node, as `kg plan` builds
//   them from its flags (fleetPlanOptions(argv) does exactly that; `hostname` is set per node);
//   `topologyLabel`; `keepPlans`: hostnames whose whole plan JSON to keep (e.g. real agents, to
//   compare with their kernels); `chunk`: nodes per task.
// - Each thread builds the cluster's mesh once (plan/plan.ts sharedMesh) and plans every node as
//   a view of it (planner-worker.ts); a kept plan equals `kg plan` for its host, and may share
//   frozen objects with other nodes' plans (read it, do not modify it).
// - threads = 1 plans in the calling thread: the single-thread baseline with no pool overhead.
//   threads > 1 runs on a piscina pool of that many workers (loadtest/fleet/planner-worker.ts), kept
//   between calls (closeFleetPools() stops it); the cluster crosses once per call (structured-clone bytes) in shared
//   memory, each worker parses it once, and each task plans whole locations (locationTasks).
// - FleetResult: `index` (node order, readiness, keys, pod CIDRs, ready Peers), one NodeSummary
//   per node in name order (counts, leader, location, and `compiled`: the node's forwarding
//   compiled for the fleet check), `peers`: every ready Peer's configuration (kgctl showconf peer)
//   compiled the same way, and timings: `ms.parse` (parse + index in this thread), `ms.plan`
//   (wall time to plan every node), `ms.verify`, `ms.total`.
// - `verify: true` also runs the fleet check (`result.verify`), over the same threads: each task
//   walks a range of destinations over every node's compiled arrays, held in shared memory.
//   verifyPlannedFleet(result) runs it in the calling thread instead.
import { serialize } from 'node:v8';
import { Piscina } from 'piscina';
import { parseFlags, toConfig, AGENT_FLAGS, PLAN_FLAGS } from '../../main/flags.js';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import { plan, type PlanOptions } from '../../plan/plan.js';
import { peerConf } from '../../plan/wireguard.js';
import { compilePeer, lookups, mergeReports, verifyFleet, type CompiledNode, type FleetIndex, type VerifyReport } from './verify.js';
import { compileNode6, lookups6 } from './verify6.js';
import { fleetContext, planRange, type FleetContext, type FleetInput, type NodeSummary, type PlanTask, type Snapshot, type VerifyTask } from './planner-worker.js';

export type { NodeSummary } from './planner-worker.js';

export interface FleetOptions {
  threads: number;
  plan: Omit<PlanOptions, 'hostname'>;
  topologyLabel?: string;
  keepPlans?: string[];
  chunk?: number;
  /** Also run the fleet check, spread over the same threads (destination ranges). */
  verify?: boolean;
}

export interface FleetResult {
  index: FleetIndex;
  nodes: NodeSummary[];
  peers: CompiledNode[];
  threads: number;
  /** The fleet check, when `verify` was asked for. */
  verify?: VerifyReport;
  /** Its IPv6 half, when `verify` was asked for and the fleet is dual-stack (verify6.ts). */
  verify6?: VerifyReport;
  ms: { parse: number; plan: number; verify: number; total: number };
}

/** Plan options for every node from kg's flags (as `kg plan` reads them), e.g. ['--mesh-granularity', 'full']. */
export function fleetPlanOptions(argv: readonly string[] = [], now = Math.floor(Date.now() / 1000)): { plan: Omit<PlanOptions, 'hostname'>; topologyLabel: string } {
  const { values } = parseFlags(['--hostname', 'fleet', ...argv], [...PLAN_FLAGS, ...AGENT_FLAGS]);
  const cfg = toConfig(values);
  return {
    topologyLabel: cfg.topologyLabel,
    plan: {
      granularity: cfg.meshGranularity, subnet: cfg.subnet, encapsulate: cfg.encapsulate, local: cfg.local, cni: cfg.cni,
      compatibility: cfg.compatibility, iptablesForwardRules: cfg.iptablesForwardRules, serviceCIDRs: cfg.serviceCIDRs,
      interface: cfg.interface, mtu: cfg.mtu, privateInterface: values['private-interface'] as string,
      tunnelInterface: values['tunnel-interface'] as string, now,
      ...(cfg.dualStackSubnet ? { dualStackSubnet: cfg.dualStackSubnet } : {}),
    },
  };
}

/** Only what kg reads from a Node: ~10 KiB kubelet objects become a few hundred bytes per worker. */
function slim(n: NodeObject): NodeObject {
  const dual = Array.isArray(n.spec?.podCIDRs) && n.spec!.podCIDRs!.length > 1 ? { podCIDRs: n.spec!.podCIDRs } : {};
  return { metadata: { name: n.metadata?.name, annotations: n.metadata?.annotations, labels: n.metadata?.labels }, spec: { podCIDR: n.spec?.podCIDR, ...dual } };
}

export async function planFleet(nodes: readonly NodeObject[], peers: readonly PeerObject[], o: FleetOptions): Promise<FleetResult> {
  if (!Number.isInteger(o.threads) || o.threads < 1 || o.threads > 64) throw new Error(`planFleet: threads must be 1..64, got ${o.threads}`);
  const t0 = performance.now();
  const input: FleetInput = {
    nodes: nodes.map(slim), peers: [...peers], plan: o.plan,
    topologyLabel: o.topologyLabel ?? 'topology.kubernetes.io/region', keepPlans: o.keepPlans ?? [],
  };
  const ctx = fleetContext(input);
  const N = ctx.index.names.length;
  const t1 = performance.now();
  let summaries: NodeSummary[];
  let compiledPeers: CompiledNode[] = [];
  let report: VerifyReport | undefined;
  let t2 = 0;
  let t3 = 0;
  if (o.threads === 1) {
    summaries = planRange(ctx, 0, N);
    t2 = performance.now();
    compiledPeers = compilePeers(ctx, summaries, o);
    if (o.verify) report = verifyFleet(ctx.index, ctx.lk, summaries.map((s) => s.compiled), compiledPeers);
    t3 = performance.now();
  } else {
    const pool = poolOf(o.threads);
    // The snapshot crosses once, as structured-clone bytes in shared memory: every task holds a handle, and
    // a worker that has not planned this snapshot yet builds its context from it.
    const snap: Snapshot = { id: ++snapshots, data: cloneShared(input) };
    {
      // Small tasks balance the load; several per worker keep the queue busy.
      const chunk = o.chunk ?? Math.max(1, Math.min(200, Math.ceil(N / (o.threads * 16))));
      const groups = locationTasks(ctx.cluster.nodes.map((n) => n.location), chunk, Math.max(chunk, Math.ceil(N / (o.threads * 2))));
      const done = await Promise.all(groups.map((indices) => pool.run({ snap, indices } satisfies PlanTask) as Promise<NodeSummary[]>));
      summaries = new Array<NodeSummary>(N);
      groups.forEach((indices, g) => indices.forEach((i, k) => (summaries[i] = done[g][k])));
      t2 = performance.now();
      compiledPeers = compilePeers(ctx, summaries, o);
      if (o.verify) {
        // The compiled arrays live in shared memory: each task gets handles, not copies.
        const nodes = summaries.map((s) => s.compiled);
        const leader = ctx.index.leader;
        const step = Math.ceil(N / (o.threads * 4));
        const parts: Promise<VerifyReport>[] = [];
        for (let from = 0; from < N; from += step) parts.push(pool.run({ kind: 'verify', snap, from, to: Math.min(N, from + step), leader, nodes, peers: compiledPeers } satisfies VerifyTask) as Promise<VerifyReport>);
        const t = performance.now();
        report = mergeReports(await Promise.all(parts), 0);
        report.ms = performance.now() - t;
      }
      t3 = performance.now();
    }
  }
  if (report) report.ms = t3 - t2;
  const report6 = o.verify ? verifyPlannedFleet6({ index: ctx.index, nodes: summaries }) : null;
  return { index: ctx.index, nodes: summaries, peers: compiledPeers, threads: o.threads, ...(report ? { verify: report } : {}), ...(report6 ? { verify6: report6 } : {}), ms: { parse: t1 - t0, plan: t2 - t1, verify: t3 - t2, total: performance.now() - t0 } };
}

/**
 * One pool per size, kept between fleet plans: a fresh worker pays its isolate's warm-up (JIT, heap
 * growth) on every plan, where the one-thread baseline runs in a warm calling thread. Idle workers
 * do not keep the process alive (piscina unrefs them) and leave after a minute.
 */
const pools = new Map<number, Piscina>();
let snapshots = 0;

function poolOf(threads: number): Piscina {
  let p = pools.get(threads);
  if (!p) pools.set(threads, (p = new Piscina({ filename: new URL('./planner-worker.js', import.meta.url).href, minThreads: 0, maxThreads: threads, idleTimeout: 60_000 })));
  return p;
}

/** Stops the kept pools' workers (tests, or a caller that wants its threads back now). */
export async function closeFleetPools(): Promise<void> {
  const ps = [...pools.values()];
  pools.clear();
  await Promise.all(ps.map((p) => p.destroy()));
}

/**
 * The pool's tasks (`locations`: each node's): node indices grouped by location, whole locations per task once a task holds
 * `chunk` nodes, so a location's nodes plan in one worker and each worker compiles only its own
 * locations' base tables (compileNode by difference). No task holds more than `most`: only a
 * location larger than that is cut.
 */
export function locationTasks(locations: readonly string[], chunk: number, most: number): number[][] {
  const byLocation = new Map<string, number[]>();
  locations.forEach((loc, i) => {
    const l = byLocation.get(loc);
    if (l) l.push(i);
    else byLocation.set(loc, [i]);
  });
  const tasks: number[][] = [[]];
  for (const members of byLocation.values()) {
    const cur = tasks[tasks.length - 1].length;
    if (cur >= chunk || (cur > 0 && cur + members.length > most)) tasks.push([]);
    for (const i of members) {
      if (tasks[tasks.length - 1].length >= most) tasks.push([]);
      tasks[tasks.length - 1].push(i);
    }
  }
  return tasks.filter((t) => t.length > 0);
}

/** Structured-clone bytes (as workerData would carry them) in shared memory. */
function cloneShared(x: unknown): Uint8Array {
  const bytes = serialize(x);
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  return shared;
}

/** Every ready Peer's `kgctl showconf peer` configuration, compiled; the segments are the same from every node. */
function compilePeers(ctx: FleetContext, summaries: readonly NodeSummary[], o: FleetOptions): CompiledNode[] {
  summaries.forEach((s, i) => (ctx.index.leader[i] = s.leader));
  const first = ctx.index.ready.indexOf(true);
  if (first < 0 || ctx.index.peers.length === 0) return [];
  const topo = plan(ctx.cluster, { ...o.plan, hostname: ctx.index.names[first] }, { describe: false, mesh: ctx.mesh, reuse: ctx.reuse }).topology;
  return ctx.index.peers.map((p, k) => {
    const conf = topo ? peerConf(topo, p.name).peers.map((x) => ({ publicKey: x.publicKey, allowedIPs: x.allowedIPs.map((a) => a.s) })) : [];
    return compilePeer(ctx.index, ctx.lk, k, conf);
  });
}

/**
 * The fleet check's IPv6 half (verify6.ts) on a planned dual-stack fleet, in the calling thread;
 * null when no node planned an IPv6 half.
 */
export function verifyPlannedFleet6(r: Pick<FleetResult, 'index' | 'nodes'>): VerifyReport | null {
  if (!r.nodes.some((n) => n.ipv6)) return null;
  // The walk's sources and destinations are the nodes taking part; the ready others are unchecked.
  const active = r.nodes.map((n) => n.ipv6?.active === true);
  const index = { ...r.index, ready: r.index.ready.map((x, i) => x && active[i]) };
  const l = lookups6(index, r.nodes.map((n) => n.ipv6?.podCIDR ?? null), r.nodes.map((n) => n.ipv6?.internalIP ?? null));
  const report = verifyFleet(l.ix, l.lk, r.nodes.map((n) => (n.ipv6?.active ? compileNode6(l, n.ipv6.plan) : null)), []);
  report.unchecked += r.index.ready.filter((x, i) => x && !active[i]).length;
  return report;
}

/** Runs the fleet check (loadtest/fleet/verify.ts) on a planned fleet. */
export function verifyPlannedFleet(r: FleetResult): VerifyReport {
  const lk = lookups(r.index);
  return verifyFleet(r.index, lk, r.nodes.map((n) => n.compiled), r.peers);
}
