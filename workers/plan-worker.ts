// A piscina planner worker. It keeps a replica of the cluster (parsed records) fed by deltas on a
// BroadcastChannel, and answers plan tasks against a given replica version. The desired dataplane
// state goes back as JSON text: strings cross threads as one copy, where a structured clone of
// 40,000 objects would cost more than the plan itself.
import { getHeapStatistics } from 'node:v8';
import { BroadcastChannel, threadId, workerData } from 'node:worker_threads';
import { DeltaTracker } from '../diff/desired.js';
import { parseIP, type IP } from '../plan/addr.js';
import { formatDiscoveredEndpoints, nodeReady, parseNode, withLastSeen, type MeshNode, type NodeObject, type UDPAddr } from '../plan/node.js';
import type { MeshPeer } from '../plan/peer.js';
import { byPublicKey, plan, readPeer, type Cluster, type PlanResult } from '../plan/plan.js';
import { Replanner, type DesiredPeerOf, type PlanWindows, type ReplicaView } from '../plan/replan.js';
import type { GraphAnswer, GraphTask, PlanAnswer, PlanTask, ReplicaDelta } from '../ipc/planner.js';
import type { DesiredDelta, DesiredState } from '../ipc/dataplane.js';
import { byText } from '../plan/addr.js';
import { clusterDOT, GraphTooLargeError } from '../plan/graph.js';
import { natDiscovery, natTargets } from '../plan/nat.js';
import { DEFAULT_LIMITS, type ClaimLimits } from '../plan/claims.js';
import { collectGarbage, deferSettle, IdleCollector } from './gc.js';

interface Replica {
  v: number;
  stale: boolean;
  topologyLabel: string;
  claims: ClaimLimits;
  nodes: Map<string, MeshNode>;
  nodeWarnings: Map<string, string[]>;
  peers: Map<string, MeshPeer>;
  peerWarnings: Map<string, string>;
  /** The sorted cluster, rebuilt lazily after a change. */
  cluster: Cluster | null;
  /** The Peers' share of the cluster's warnings, rebuilt lazily after a Peer change. */
  peerWarningList: string[] | null;
  /**
   * The node names in order, kept through joins and leaves (null: sort them again), so that the
   * full plan after a change does not sort 10,000 records.
   */
  order: string[] | null;
}

const replica: Replica = {
  v: 0, stale: true, topologyLabel: 'topology.kubernetes.io/region', claims: DEFAULT_LIMITS,
  nodes: new Map(), nodeWarnings: new Map(), peers: new Map(), peerWarnings: new Map(), cluster: null, peerWarningList: null, order: null,
};

/**
 * Incremental re-plans (plan/replan.ts), one per planned hostname (the agent plans its own; a
 * few at most), told of every record the replica replaces.
 */
const replanners = new Map<string, Replanner>();
const MAX_REPLANNERS = 4;

function replanner(hostname: string): Replanner {
  let r = replanners.get(hostname);
  if (!r) {
    if (replanners.size >= MAX_REPLANNERS) replanners.delete(replanners.keys().next().value!);
    replanners.set(hostname, (r = new Replanner()));
  }
  return r;
}

function noteNode(name: string): void {
  const before = replica.nodes.get(name);
  for (const r of replanners.values()) r.noteNode(name, before);
}

function invalidateReplanners(): void {
  for (const r of replanners.values()) r.invalidate();
}

/** Incremental-plan counters of this worker's replanners, summed. */
export function replanStats(): { incremental: number; full: number; fallbacks: Record<string, number> } {
  const out = { incremental: 0, full: 0, fallbacks: {} as Record<string, number> };
  for (const r of replanners.values()) {
    out.incremental += r.stats.incremental;
    out.full += r.stats.full;
    for (const [k, v] of r.stats.fallbacks) out.fallbacks[k] = (out.fallbacks[k] ?? 0) + v;
  }
  return out;
}

const waiters: { v: number; resolve: () => void }[] = [];

/**
 * A full plan (the first, after a snapshot, a fallback; every re-plan in dual stack) allocates
 * tens of MB that an incremental re-plan does not: given back once the burst of plans is over.
 */
const burstGC = new IdleCollector(collectGarbage);
/** No plan since the last snapshot (or since start): the next full plan's collection is urgent. */
let freshReplica = true;

function upsertNode(o: NodeObject): void {
  const r = parseNode(o, replica.topologyLabel, replica.claims);
  if (!r.value.name) return;
  noteNode(r.value.name);
  if (!replica.nodes.has(r.value.name) && replica.order) replica.order.splice(orderIndex(r.value.name), 0, r.value.name);
  replica.nodes.set(r.value.name, r.value);
  if (r.warnings.length) replica.nodeWarnings.set(r.value.name, r.warnings);
  else replica.nodeWarnings.delete(r.value.name);
}

/** Applies one delta; a gap in versions marks the replica stale (it then needs a snapshot). */
export function applyDelta(d: ReplicaDelta): void {
  if (d.reset) {
    // Snapshots are broadcast: a worker that follows the deltas already has this state.
    if (!replica.stale && replica.v >= d.v) return;
    invalidateReplanners();
    freshReplica = true;
    replica.order = null;
    replica.nodes.clear();
    replica.nodeWarnings.clear();
    replica.peers.clear();
    replica.peerWarnings.clear();
    replica.stale = false;
  } else if (d.prev !== replica.v || replica.stale) {
    replica.stale = true;
    return;
  }
  // The pool repeats the label and the claim limits in every delta: only a different value (or
  // any Peer change) makes the replanners start over, else no re-plan would be incremental.
  const labelChanged = d.topologyLabel !== undefined && d.topologyLabel !== replica.topologyLabel;
  const claimsChanged = d.claims !== undefined && JSON.stringify(d.claims) !== JSON.stringify(replica.claims);
  if (labelChanged || claimsChanged || d.peers?.length || d.peerDeletes?.length) {
    invalidateReplanners();
    replica.peerWarningList = null;
  }
  if (d.topologyLabel) replica.topologyLabel = d.topologyLabel;
  if (d.claims) replica.claims = d.claims;
  for (const [name, lastSeen] of d.lastSeen ?? []) {
    const n = replica.nodes.get(name);
    if (n) {
      noteNode(name);
      replica.nodes.set(name, withLastSeen(n, lastSeen));
    }
  }
  for (const o of d.nodes ?? []) upsertNode(o);
  for (const n of d.nodeDeletes ?? []) {
    noteNode(n);
    if (replica.nodes.has(n) && replica.order) replica.order.splice(orderIndex(n), 1);
    replica.nodes.delete(n);
    replica.nodeWarnings.delete(n);
  }
  for (const o of d.peers ?? []) {
    const name = o.metadata?.name ?? '';
    const r = readPeer(o, replica.claims);
    if ('warning' in r) {
      replica.peers.delete(name);
      replica.peerWarnings.set(name, r.warning);
    } else {
      replica.peers.set(name, r.peer);
      replica.peerWarnings.delete(name);
    }
  }
  for (const n of d.peerDeletes ?? []) {
    replica.peers.delete(n);
    replica.peerWarnings.delete(n);
  }
  replica.v = d.v;
  replica.cluster = null;
  for (let i = waiters.length - 1; i >= 0; i--) {
    if (!replica.stale && waiters[i].v <= replica.v) waiters.splice(i, 1)[0].resolve();
  }
}

/** Where `name` is or would be in the name order (binary search). */
function orderIndex(name: string): number {
  const order = replica.order!;
  let lo = 0;
  let hi = order.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (order[mid] < name) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

function cluster(): Cluster {
  if (replica.cluster) return replica.cluster;
  replica.order ??= [...replica.nodes.keys()].sort(byText);
  const nodes = replica.order.map((name) => replica.nodes.get(name)!);
  const warnings: string[] = [];
  // Only nodes with warnings are in the map (usually none): no lookup and no list per node then.
  if (replica.nodeWarnings.size > 0) {
    for (const n of nodes) {
      const w = replica.nodeWarnings.get(n.name);
      if (w) for (const x of w) warnings.push(x);
    }
  }
  const peers = byPublicKey([...replica.peers.values()].sort((a, b) => byText(a.name, b.name)));
  replica.peerWarningList = [...peers.warnings, ...replica.peerWarnings.values()];
  warnings.push(...replica.peerWarningList);
  replica.cluster = { nodes, peers: peers.peers, warnings };
  return replica.cluster;
}

/** cluster().warnings, without sorting every record: only the few nodes with warnings. */
function clusterWarnings(): string[] {
  if (replica.cluster) return [...replica.cluster.warnings];
  if (replica.peerWarningList === null) return [...cluster().warnings];
  const warnings: string[] = [];
  for (const name of [...replica.nodeWarnings.keys()].sort(byText)) for (const x of replica.nodeWarnings.get(name)!) warnings.push(x);
  warnings.push(...replica.peerWarningList);
  return warnings;
}

/** Time spent sorting the replica into a cluster in the current task (a full plan's parse share). */
let clusterMs = 0;
const view: ReplicaView = {
  nodes: replica.nodes,
  cluster: () => {
    const t0 = performance.now();
    const c = cluster();
    clusterMs += performance.now() - t0;
    return c;
  },
  warnings: clusterWarnings,
};

const channel = workerData?.channel ? new BroadcastChannel(workerData.channel as string) : null;
if (channel) {
  channel.onmessage = (ev: unknown) => {
    const d = (ev as { data: ReplicaDelta | { hello: true } }).data;
    if (!('hello' in d)) applyDelta(d);
  };
  // Do not keep the worker alive just for the channel: piscina owns its lifetime.
  (channel as unknown as { unref?: () => void }).unref?.();
  // A new worker asks for the current state; the pool answers with a broadcast snapshot.
  channel.postMessage({ hello: true });
}

/** Waits (bounded) until the replica reaches version `v`. */
function reach(v: number, timeoutMs: number): Promise<boolean> {
  if (!replica.stale && replica.v >= v) return Promise.resolve(true);
  // Deltas and snapshots are broadcast before the tasks that need them; wait for them.
  return new Promise((resolve) => {
    const w = { v, resolve: () => (clearTimeout(t), resolve(true)) };
    const t = setTimeout(() => {
      const i = waiters.indexOf(w);
      if (i >= 0) waiters.splice(i, 1);
      resolve(false);
    }, timeoutMs);
    waiters.push(w);
  });
}

/** The dataplane's desired state: the plan plus the secrets the plan JSON redacts. */
function desiredState(task: PlanTask, r: PlanResult, desiredPeers: DesiredPeerOf[] | null): DesiredState {
  const j = r.json;
  const o = task.options;
  return {
    interface: o.interface,
    wireguard: r.device
      ? {
          privateKey: task.privateKey ?? '',
          listenPort: j.wireguard.listenPort,
          mtu: o.mtu === 'auto' ? 0 : o.mtu,
          address: j.wireGuardCIDR,
          ...(j.dualStack ? { address2: j.dualStack.wireGuardCIDR } : {}),
          // Peers without a preshared key are passed as they are (frozen and reused between
          // plans, so their diff keys are too).
          peers: desiredPeers ?? j.wireguard.peers.map((p, i) => (r.device!.peers[i].presharedKey ? { ...p, presharedKeySecret: r.device!.peers[i].presharedKey! } : p)),
        }
      : null,
    routes: j.routes,
    rules: j.rules,
    iptables: j.iptables,
    tunnel: j.tunnel ? { dev: j.tunnel.dev, address: j.tunnel.address, privIface: task.desired?.tunnelPrivIface ?? null } : null,
    cni: task.desired?.cniPath && r.topology?.subnet ? { path: task.desired.cniPath, podCIDR: r.topology.subnet.s, ...(o.dualStackSubnet ? { podCIDR2: j.dualStack?.active ? j.dualStack.podCIDR : null } : {}) } : null,
  };
}

/**
 * Per node, the last desired state this worker produced, and the plan it came from (the
 * replanner's windows are relative to one plan). Sequence numbers live in a range of this
 * thread's own, so states from two workers can never be mistaken for one another.
 */
const trackers = new Map<string, { t: DeltaTracker; planId: number | null }>();

function desiredAnswer(task: PlanTask, d: DesiredState, p: Planned): { full?: string; delta?: DesiredDelta; noop?: true; seq: number } {
  let e = trackers.get(task.options.hostname);
  if (!e) {
    e = { t: new DeltaTracker(), planId: null };
    e.t.seq = threadId * 1e9;
    trackers.set(task.options.hostname, e);
  }
  const windows = p.windows && e.planId !== null && e.planId === p.prevId ? p.windows : null;
  e.planId = p.id;
  const m = e.t.next(d, task.desired?.baseSeq ?? null, windows);
  return 'full' in m ? { full: JSON.stringify(m.full), seq: m.seq } : m;
}

/** A plan, with what the desired state and the summary take from it. */
interface Planned {
  r: PlanResult;
  desiredPeers: DesiredPeerOf[] | null;
  windows: PlanWindows | null;
  /** The replanner's plan numbers (null for a described plan, planned afresh). */
  id: number | null;
  prevId: number | null;
  natCandidates: number;
  discovered: Map<string, UDPAddr> | undefined;
  replan?: { incremental: true } | { incremental: false; reason: string };
}

function planned(task: PlanTask, resolved: Map<string, IP>): Planned {
  if (!task.describe) {
    const p = replanner(task.options.hostname).plan(view, task.options, { resolved, privateKey: task.privateKey ?? null, observed: task.observed ?? null }, task.incremental === false);
    const replan = p.fullReason === null ? { incremental: true as const } : { incremental: false as const, reason: p.fullReason };
    return { r: p.result, desiredPeers: p.desiredPeers, windows: p.windows, id: p.id, prevId: p.prevId, natCandidates: p.natCandidates, discovered: p.discovered, replan };
  }
  // `kg plan`'s description of every node: a plan of the whole cluster, as before.
  const c = view.cluster();
  const targets = natTargets(c, task.options.now);
  // NAT discovery (design §6.7) for the description's plan.
  const discovered = task.observed ? natDiscovery(task.observed, targets.nodes, targets.peers) : undefined;
  const r = plan(c, task.options, { resolved, privateKey: task.privateKey ?? null, localDiscoveredEndpoints: discovered, describe: true, reuse: true });
  return { r, desiredPeers: null, windows: null, id: null, prevId: null, natCandidates: targets.nodes.size + targets.peers.length, discovered };
}

/** The graph alone, from the replica: no plan, so no routes, rules or peers are built for it. */
function graph(task: GraphTask): GraphAnswer {
  try {
    return { ok: true, dot: clusterDOT(cluster(), task.options, task.maxLength) };
  } catch (e) {
    return { ok: false, error: (e as Error).message, ...(e instanceof GraphTooLargeError ? { tooLarge: true as const } : {}) };
  }
}

export default function run(task: PlanTask): Promise<PlanAnswer>;
export default function run(task: GraphTask): Promise<GraphAnswer>;
export default async function run(task: PlanTask | GraphTask): Promise<PlanAnswer | GraphAnswer> {
  // Deltas are broadcast just before their task, in order: a short wait covers delivery; longer
  // means a gap, and a snapshot is the cure.
  if (!(await reach(task.v, 1_000))) return { ok: false, needSnapshot: true };
  burstGC.busy();
  deferSettle();
  if (task.kind === 'graph') return graph(task);
  const t0 = performance.now();
  clusterMs = 0;
  try {
    const resolved = new Map((task.resolved ?? []).flatMap(([k, v]) => {
      const ip = parseIP(v);
      return ip ? [[k, ip] as const] : [];
    }));
    const local = replica.nodes.get(task.options.hostname);
    if (!local) return { ok: false, error: `node ${JSON.stringify(task.options.hostname)} is not in the cluster` };
    const p = planned(task, resolved);
    if (p.replan?.incremental !== true) burstGC.request(freshReplica);
    freshReplica = false;
    const { r } = p;
    const j = r.json;
    return {
      ok: true,
      summary: {
        hostname: j.hostname, ready: nodeReady(local, task.options.now), leader: j.leader, location: j.location, wireGuardCIDR: j.wireGuardCIDR,
        readyNodes: r.readyNodes, readyPeers: r.readyPeers,
        wgPeers: j.wireguard.peers.length, routes: j.routes.length, rules: j.rules.length,
        iptablesRules: j.iptables.prepend.length + j.iptables.append.length, warnings: j.warnings,
        discoveredEndpoints: p.discovered ? formatDiscoveredEndpoints(p.discovered) : null,
        natCandidates: p.natCandidates,
      },
      ...(task.desired ? desiredAnswer(task, desiredState(task, r, p.desiredPeers), p) : {}),
      plan: task.describe ? JSON.stringify(j) : undefined,
      planMs: performance.now() - t0 - clusterMs,
      parseMs: clusterMs,
      heapBytes: getHeapStatistics().used_heap_size,
      ...(p.replan ? { replan: p.replan } : {}),
    };
  } catch (e) {
    return { ok: false, error: (e as Error).message };
  }
}
