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
//   threads > 1 plans in the calling thread and a piscina pool of threads - 1 workers
//   (loadtest/fleet/planner-worker.ts), kept between calls (closeFleetPools() stops it). The
//   cluster crosses first, once per call (structured-clone bytes in shared memory), so each worker
//   parses it while the calling thread parses its own; then every thread takes groups of whole
//   locations (planGroups) from a counter in shared memory until none is left, and likewise the
//   fleet check's destination ranges: one task per worker per phase, no thread idle while another
//   has work queued.
// - FleetResult: `index` (node order, readiness, keys, pod CIDRs, ready Peers), one NodeSummary
//   per node in name order (counts, leader, location, and `compiled`: the node's forwarding
//   compiled for the fleet check), `peers`: every ready Peer's configuration (kgctl showconf peer)
//   compiled the same way, `planned` (nodes per thread), and timings: `ms.parse` (parse + index in
//   this thread), `ms.plan` (wall time to compile the Peers and plan every node), `ms.verify`,
//   `ms.total`.
// - `verify: true` also runs the fleet check (`result.verify`), over the same threads: each range
//   walks its destinations over every node's compiled arrays, held in shared memory.
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
import {
  fleetContext, newCounters, planGroups, planRange, takeGroup, verifyRange, NEXT_RANGE,
  type FleetContext, type FleetInput, type NodeSummary, type PlanShare, type PlanTask, type Snapshot, type VerifyShare, type VerifyTask,
} from './planner-worker.js';

export type { NodeSummary } from './planner-worker.js';

export interface FleetOptions {
  threads: number;
  plan: Omit<PlanOptions, 'hostname'>;
  topologyLabel?: string;
  keepPlans?: string[];
  chunk?: number;
  /** Also run the fleet check, spread over the same threads (destination ranges). */
  verify?: boolean;
  /**
   * threads > 1: whether the calling thread takes a share of the planning and of the check
   * (default true); false leaves it all to the threads - 1 workers (tests, and measuring the share).
   */
  callerShare?: boolean;
}

export interface FleetResult {
  index: FleetIndex;
  nodes: NodeSummary[];
  peers: CompiledNode[];
  threads: number;
  /** Nodes planned by each thread: the calling thread first, then each worker task (threads > 1). */
  planned: number[];
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
  // The workers build their context while this thread builds its own: the snapshot goes first.
  const pool = o.threads > 1 ? startPool(input, o) : null;
  const ctx = fleetContext(input);
  const N = ctx.index.names.length;
  const t1 = performance.now();
  // The Peers' configurations do not depend on the nodes' plans: compiled while the workers start.
  const compiledPeers = compilePeers(ctx, o);
  const planned = [N];
  const summaries = pool ? await planShared(ctx, pool, o, planned) : planRange(ctx, 0, N);
  summaries.forEach((s, i) => (ctx.index.leader[i] = s.leader));
  const t2 = performance.now();
  let report: VerifyReport | undefined;
  if (o.verify) {
    const compiled = summaries.map((s) => s.compiled);
    report = pool ? await verifyShared(ctx, pool, compiled, compiledPeers) : verifyFleet(ctx.index, ctx.lk, compiled, compiledPeers);
  }
  const t3 = performance.now();
  if (report) report.ms = t3 - t2;
  const report6 = o.verify ? verifyPlannedFleet6({ index: ctx.index, nodes: summaries }) : null;
  return { index: ctx.index, nodes: summaries, peers: compiledPeers, threads: o.threads, planned, ...(report ? { verify: report } : {}), ...(report6 ? { verify6: report6 } : {}), ms: { parse: t1 - t0, plan: t2 - t1, verify: t3 - t2, total: performance.now() - t0 } };
}

/** A fleet plan on the pool: the calling thread and `threads - 1` workers, one task each per phase, sharing counters. */
interface Shared {
  snap: Snapshot;
  counters: Int32Array;
  threads: number;
  workers: number;
  callerShare: boolean;
  piscina: Piscina;
  plans: Promise<PlanShare>[];
}

/** Sends the snapshot to the workers with their planning task: they take groups as soon as their context is built. */
function startPool(input: FleetInput, o: FleetOptions): Shared {
  const workers = o.threads - 1;
  const piscina = poolOf(workers);
  // The snapshot crosses once, as structured-clone bytes in shared memory: each task holds a handle, and
  // a worker that has not planned this snapshot yet builds its context from it.
  const snap: Snapshot = { id: ++snapshots, data: cloneShared(input) };
  const counters = newCounters();
  const plans = Array.from({ length: workers }, () => piscina.run({ kind: 'plan', snap, counters, threads: o.threads, ...(o.chunk ? { chunk: o.chunk } : {}) } satisfies PlanTask) as Promise<PlanShare>);
  // Awaited in planShared; a rejection before then (this thread threw first) is not unhandled.
  for (const p of plans) p.catch(() => undefined);
  return { snap, counters, threads: o.threads, workers, callerShare: o.callerShare !== false, piscina, plans };
}

/** Yields to the event loop: piscina hands out tasks and takes results in this thread. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

/** The calling thread takes groups like a worker, yielding between them, then gathers the workers' shares. */
async function planShared(ctx: FleetContext, s: Shared, o: FleetOptions, planned: number[]): Promise<NodeSummary[]> {
  const groups = planGroups(ctx, s.threads, o.chunk);
  const summaries = new Array<NodeSummary>(ctx.index.names.length);
  const put = (g: number, part: NodeSummary[]) => groups[g].forEach((i, k) => (summaries[i] = part[k]));
  planned[0] = 0;
  for (let t = s.callerShare ? takeGroup(ctx, groups, s.counters) : null; t; t = takeGroup(ctx, groups, s.counters)) {
    put(t.group, t.summaries);
    planned[0] += t.summaries.length;
    await turn();
  }
  for (const share of await Promise.all(s.plans)) {
    share.groups.forEach((g, k) => put(g, share.summaries[k]));
    planned.push(share.summaries.reduce((a, x) => a + x.length, 0));
  }
  const missing = summaries.findIndex((x) => x === undefined);
  if (missing >= 0) throw new Error(`planFleet: node ${missing} was not planned`);
  return summaries;
}

/** The fleet check on the pool: destination ranges from a shared counter, this thread taking its share too. */
async function verifyShared(ctx: FleetContext, s: Shared, nodes: (CompiledNode | null)[], peers: CompiledNode[]): Promise<VerifyReport> {
  const N = ctx.index.names.length;
  const ranges = Math.max(1, Math.min(N, s.threads * 16));
  const step = Math.ceil(N / ranges);
  const leader = ctx.index.leader;
  // The compiled arrays live in shared memory: each task gets handles, not copies.
  const parts = Array.from({ length: s.workers }, () => s.piscina.run({ kind: 'verify', snap: s.snap, counters: s.counters, ranges, step, leader, nodes, peers } satisfies VerifyTask) as Promise<VerifyShare>);
  for (const p of parts) p.catch(() => undefined);
  const reports = new Array<VerifyReport>(ranges);
  for (let r = s.callerShare ? Atomics.add(s.counters, NEXT_RANGE, 1) : ranges; r < ranges; r = Atomics.add(s.counters, NEXT_RANGE, 1)) {
    reports[r] = verifyRange(ctx, r, step, leader, nodes, peers);
    await turn();
  }
  for (const share of await Promise.all(parts)) share.ranges.forEach((r, k) => (reports[r] = share.reports[k]));
  return mergeReports(reports, 0);
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

/** Structured-clone bytes (as workerData would carry them) in shared memory. */
function cloneShared(x: unknown): Uint8Array {
  const bytes = serialize(x);
  const shared = new Uint8Array(new SharedArrayBuffer(bytes.length));
  shared.set(bytes);
  return shared;
}

/** Every ready Peer's `kgctl showconf peer` configuration, compiled; the segments are the same from every node. */
function compilePeers(ctx: FleetContext, o: FleetOptions): CompiledNode[] {
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
