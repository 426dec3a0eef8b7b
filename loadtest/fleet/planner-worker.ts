// The fleet planner's worker (loadtest/fleet/planner.ts): plans some nodes of one cluster snapshot
// and compiles each plan for the fleet check (loadtest/fleet/verify.ts). The cluster arrives with
// each task as a handle to shared memory and is parsed once per worker and snapshot.
import { deserialize } from 'node:v8';
import { nodeReady } from '../../plan/node.js';
import { crossLocation } from '../../plan/topology.js';
import type { NodeObject } from '../../plan/node.js';
import { peerReady, type PeerObject } from '../../plan/peer.js';
import { parseCluster, plan, sharedMesh, type Cluster, type PlanOptions, type SharedMesh } from '../../plan/plan.js';
import type { PlanJSON } from '../../plan/types.js';
import { compileNode, lookups, verifyFleet, type CompiledNode, type FleetIndex, type IndexLookups, type PlanForCheck, type RouteTable, type VerifyReport } from './verify.js';
import { ipv6Destination } from './verify6.js';

export interface FleetInput {
  nodes: NodeObject[];
  peers: PeerObject[];
  plan: Omit<PlanOptions, 'hostname'>;
  topologyLabel: string;
  /** Hostnames whose whole plan JSON comes back (e.g. the real agents, for kernel = plan). */
  keepPlans: string[];
}

export interface FleetContext {
  input: FleetInput;
  cluster: Cluster;
  /** What every node's plan shares (ready records, segments, leaders, allocation), built once. */
  mesh: SharedMesh;
  /** Whether plans memoise on the mesh (plan/memo.ts). */
  reuse: boolean;
  index: FleetIndex;
  lk: IndexLookups;
  keep: Set<string>;
  /** Compiled routing tables to compile similar nodes' from by difference (see like()). */
  tables: Map<string, { base: RouteTable | null }>;
}

/** One node's result: what the fleet check needs, plus counts for reports. */
export interface NodeSummary {
  hostname: string;
  ready: boolean;
  leader: boolean;
  location: string;
  wireGuardCIDR: string;
  routes: number;
  rules: number;
  wgPeers: number;
  iptablesRules: number;
  cni: boolean;
  tunnel: string | null;
  warnings: number;
  planMs: number;
  /** Compiled forwarding (null for a node that is not ready: it programs nothing). */
  compiled: CompiledNode | null;
  /** The whole plan, for hostnames in keepPlans. */
  plan?: PlanJSON;
  /** Dual stack (design §20), ready nodes only: what the IPv6 fleet check reads (verify6.ts). */
  ipv6?: IPv6Summary;
}

/** A node's IPv6 half: its pod CIDR when it takes part, its IPv6 internal IP, its IPv6 routes and WireGuard claims. */
export interface IPv6Summary {
  /** Whether the node takes part in the IPv6 half (its plan's `dualStack.active`). */
  active: boolean;
  podCIDR: string | null;
  internalIP: string | null;
  plan: PlanForCheck;
}

/** The IPv6 half of a dual-stack plan, or undefined (single stack, or not ready). */
function ipv6Summary(j: PlanJSON, ready: boolean): IPv6Summary | undefined {
  if (!j.dualStack || !ready) return undefined;
  const v6 = (a: string) => a.includes(':');
  return {
    active: j.dualStack.active, podCIDR: ipv6Destination(j), internalIP: j.dualStack.internalIP,
    plan: {
      hostname: j.hostname, routes: j.routes.filter((r) => v6(r.dst)),
      // Peers (the CRD) claim IPv4 here only (design §20.3): the segments' peers carry the IPv6 half.
      wireguard: { applied: j.wireguard.applied, peers: j.wireguard.peers.map((p) => ({ ...p, allowedIPs: p.allowedIPs.filter(v6) })).filter((p) => p.allowedIPs.length > 0) },
    },
  };
}

/** The fleet's index (node order, readiness, keys, Peers) from a parsed cluster. */
export function fleetIndex(c: Cluster, o: Omit<PlanOptions, 'hostname'>): FleetIndex {
  const peers = c.peers.filter(peerReady);
  return {
    names: c.nodes.map((n) => n.name),
    ready: c.nodes.map((n) => nodeReady(n, o.now)),
    leader: c.nodes.map(() => false),
    keys: c.nodes.map((n) => n.key ?? ''),
    podCIDRs: c.nodes.map((n) => n.subnet?.s ?? null),
    privateIPs: c.nodes.map((n) => n.internalIP?.ip.s ?? null),
    peers: peers.map((p) => ({ name: p.name, publicKey: p.publicKey ?? '', allowedIPs: p.allowedIPs.map((a) => a.s) })),
    kiloIface: o.interface,
    ...(o.granularity === 'cross' ? { groups: crossGroups(c) } : {}),
  };
}

/** Cross granularity: each node's location group as a number (-1: none), as topology.ts groups them. */
function crossGroups(c: Cluster): number[] {
  const ids = new Map<string, number>();
  return c.nodes.map((n) => {
    const g = crossLocation(n);
    if (g === null) return -1;
    let id = ids.get(g);
    if (id === undefined) ids.set(g, (id = ids.size));
    return id;
  });
}

export function fleetContext(input: FleetInput): FleetContext {
  const cluster = parseCluster(input.nodes, input.peers, input.topologyLabel);
  const index = fleetIndex(cluster, input.plan);
  // Memoised (plan/memo.ts) on the shared mesh's segments: what a segment yields (its KILO-NAT
  // rules, its routes through one gateway, its WireGuard peer) is built once and shared by the
  // plans of every node, where each plan built its own 10,000 rules and routes. Not in full
  // granularity: there every node leads, its routes carry its own source address, the memo
  // misses on every segment and the plans took twice as long (README, fleet check).
  // Cross likewise: every node leads with its own source address.
  const reuse = input.plan.granularity !== 'full' && input.plan.granularity !== 'cross';
  return { input, cluster, mesh: sharedMesh(cluster, input.plan, { reuse }), reuse, index, lk: lookups(index), keep: new Set(input.keepPlans), tables: new Map() };
}

export function planRange(ctx: FleetContext, from: number, to: number): NodeSummary[] {
  const out: NodeSummary[] = [];
  for (let i = from; i < to && i < ctx.index.names.length; i++) out.push(planOne(ctx, i));
  return out;
}

/** Plans the nodes at these indices (a pool task: whole locations, see locationTasks). */
export function planIndices(ctx: FleetContext, indices: readonly number[]): NodeSummary[] {
  return indices.map((i) => planOne(ctx, i));
}

/** Plans node i and compiles its plan for the fleet check. */
function planOne(ctx: FleetContext, i: number): NodeSummary {
  const o = ctx.input.plan;
  const hostname = ctx.index.names[i];
  const t0 = performance.now();
  const r = plan(ctx.cluster, { ...o, hostname }, { describe: ctx.keep.has(hostname), mesh: ctx.mesh, reuse: ctx.reuse });
  const j = r.json;
  const ready = ctx.index.ready[i];
  return {
    hostname, ready, leader: j.leader, location: j.location, wireGuardCIDR: j.wireGuardCIDR,
    routes: j.routes.length, rules: j.rules.length, wgPeers: j.wireguard.peers.length,
    iptablesRules: j.iptables.prepend.length + j.iptables.append.length, cni: j.cni !== null, tunnel: j.tunnel?.dev ?? null,
    warnings: j.warnings.length,
    compiled: ready ? compileNode(ctx.index, ctx.lk, j, like(ctx, j)) : null,
    planMs: performance.now() - t0,
    ...(ctx.keep.has(hostname) ? { plan: j } : {}),
    ...(j.dualStack && ready ? { ipv6: ipv6Summary(j, ready) } : {}),
  };
}

/**
 * The table a node's routes are compiled from by difference: another non-leader of its location
 * (they route everything through one leader), or in full granularity another node (every node
 * leads, routing every other node's addresses through WireGuard), or in cross granularity another
 * node of its location group. A leader in location
 * granularity routes its own location apart from the others: compiled in full.
 */
function like(ctx: FleetContext, j: PlanJSON): { base: RouteTable | null } | undefined {
  const g = ctx.input.plan.granularity;
  // Cross: the nodes of one location group differ only in their own routes (design §19.3).
  const key = !j.leader ? j.location : g === 'full' ? '' : g === 'cross' ? `cross:${j.nodeLocation ?? j.location}` : null;
  if (key === null) return undefined;
  let t = ctx.tables.get(key);
  if (!t) ctx.tables.set(key, (t = { base: null }));
  return t;
}

/** A cluster snapshot for the pool: FleetInput as structured-clone bytes (node:v8) in shared memory, and its number. */
export interface Snapshot {
  id: number;
  data: Uint8Array;
}

/**
 * Counters one fleet plan's threads share in shared memory (Atomics.add): the next planning group
 * and the next verify range to take. Whichever thread is free takes the next one, with no message
 * and no thread waiting on another's share.
 */
export const NEXT_GROUP = 0;
export const NEXT_RANGE = 1;
export function newCounters(): Int32Array {
  return new Int32Array(new SharedArrayBuffer(2 * Int32Array.BYTES_PER_ELEMENT));
}

/**
 * Node indices grouped by location, whole locations per group once a group holds `chunk` nodes, so a location's nodes
 * plan in one thread and each thread compiles only its own locations' base tables (compileNode by
 * difference). No group holds more than `most`: only a location larger than that is cut.
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

/**
 * A fleet plan's groups, the same in every thread (a pure function of the parsed cluster): about
 * 50 per thread by default, so the last one taken leaves the other threads little to wait for.
 */
export function planGroups(c: FleetContext, threads: number, chunk?: number): number[][] {
  const size = chunk ?? Math.max(1, Math.ceil(c.index.names.length / (threads * 50)));
  return locationTasks(c.cluster.nodes.map((n) => n.location), size, 2 * size);
}

/** Plans groups taken from the shared counter until none is left: the groups taken, and their summaries. */
export function takeGroup(c: FleetContext, groups: readonly number[][], counters: Int32Array): { group: number; summaries: NodeSummary[] } | null {
  const g = Atomics.add(counters, NEXT_GROUP, 1);
  return g < groups.length ? { group: g, summaries: planIndices(c, groups[g]) } : null;
}

/** Destination ranges of the fleet check, `step` destinations each; range 0 also runs the interface checks. */
export function verifyRange(c: FleetContext, r: number, step: number, leader: boolean[], nodes: readonly (CompiledNode | null)[], peers: readonly CompiledNode[]): VerifyReport {
  const ix = { ...c.index, leader };
  return verifyFleet(ix, c.lk, nodes, peers, { from: r * step, to: (r + 1) * step, interfaceChecks: r === 0 });
}

/** A worker's share of planning: groups from the shared counter of the snapshot's plan (`threads`, `chunk`: see planGroups). */
export interface PlanTask {
  kind: 'plan';
  snap: Snapshot;
  counters: Int32Array;
  threads: number;
  chunk?: number;
}

/** The groups a worker planned (their indices in planGroups) and each group's summaries. */
export interface PlanShare {
  groups: number[];
  summaries: NodeSummary[][];
}

/** A worker's share of the fleet check: ranges of `step` destinations from the shared counter, over every node's compiled arrays. */
export interface VerifyTask {
  kind: 'verify';
  snap: Snapshot;
  counters: Int32Array;
  ranges: number;
  step: number;
  leader: boolean[];
  /** Every node's compiled arrays (shared memory: handles, not copies). */
  nodes: (CompiledNode | null)[];
  peers: CompiledNode[];
}

/** The ranges a worker verified and their reports. */
export interface VerifyShare {
  ranges: number[];
  reports: VerifyReport[];
}

/** The context of the last snapshot this worker planned (a pool's workers outlive one fleet plan). */
let ctx: { id: number; c: FleetContext; groups: Map<string, number[][]> } | null = null;

function contextOf(snap: Snapshot): NonNullable<typeof ctx> {
  if (ctx?.id !== snap.id) ctx = { id: snap.id, c: fleetContext(deserialize(snap.data.slice()) as FleetInput), groups: new Map() };
  return ctx;
}

/** piscina entry: a worker's share of planning a snapshot, or of verifying it. */
export default function run(task: PlanTask | VerifyTask): PlanShare | VerifyShare {
  const w = contextOf(task.snap);
  if (task.kind === 'verify') {
    const out: VerifyShare = { ranges: [], reports: [] };
    for (let r = Atomics.add(task.counters, NEXT_RANGE, 1); r < task.ranges; r = Atomics.add(task.counters, NEXT_RANGE, 1)) {
      out.ranges.push(r);
      out.reports.push(verifyRange(w.c, r, task.step, task.leader, task.nodes, task.peers));
    }
    return out;
  }
  const key = `${task.threads} ${task.chunk}`;
  let groups = w.groups.get(key);
  if (!groups) w.groups.set(key, (groups = planGroups(w.c, task.threads, task.chunk)));
  const out: PlanShare = { groups: [], summaries: [] };
  for (let s = takeGroup(w.c, groups, task.counters); s; s = takeGroup(w.c, groups, task.counters)) {
    out.groups.push(s.group);
    out.summaries.push(s.summaries);
  }
  return out;
}
