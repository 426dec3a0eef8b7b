// The fleet planner's worker (loadtest/fleet/planner.ts): plans a range of nodes of one cluster snapshot
// and compiles each plan for the fleet check (loadtest/fleet/verify.ts). The cluster arrives with
// each task as a handle to shared memory and is parsed once per worker and snapshot.
import { deserialize } from 'node:v8';
import { nodeReady } from '../../plan/node.js';
import type { NodeObject } from '../../plan/node.js';
import { peerReady, type PeerObject } from '../../plan/peer.js';
import { parseCluster, plan, sharedMesh, type Cluster, type PlanOptions, type SharedMesh } from '../../plan/plan.js';
import type { PlanJSON } from '../../plan/types.js';
import { compileNode, lookups, verifyFleet, type CompiledNode, type FleetIndex, type IndexLookups, type RouteTable, type VerifyReport } from './verify.js';

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
  };
}

export function fleetContext(input: FleetInput): FleetContext {
  const cluster = parseCluster(input.nodes, input.peers, input.topologyLabel);
  const index = fleetIndex(cluster, input.plan);
  // Memoised (plan/memo.ts) on the shared mesh's segments: what a segment yields (its KILO-NAT
  // rules, its routes through one gateway, its WireGuard peer) is built once and shared by the
  // plans of every node, where each plan built its own 10,000 rules and routes. Not in full
  // granularity: there every node leads, its routes carry its own source address, the memo
  // misses on every segment and the plans took twice as long (README, fleet check).
  const reuse = input.plan.granularity !== 'full';
  return { input, cluster, mesh: sharedMesh(cluster, input.plan, { reuse }), reuse, index, lk: lookups(index), keep: new Set(input.keepPlans), tables: new Map() };
}

export function planRange(ctx: FleetContext, from: number, to: number): NodeSummary[] {
  const out: NodeSummary[] = [];
  const o = ctx.input.plan;
  for (let i = from; i < to && i < ctx.index.names.length; i++) {
    const hostname = ctx.index.names[i];
    const t0 = performance.now();
    const r = plan(ctx.cluster, { ...o, hostname }, { describe: ctx.keep.has(hostname), mesh: ctx.mesh, reuse: ctx.reuse });
    const j = r.json;
    const ready = ctx.index.ready[i];
    out.push({
      hostname, ready, leader: j.leader, location: j.location, wireGuardCIDR: j.wireGuardCIDR,
      routes: j.routes.length, rules: j.rules.length, wgPeers: j.wireguard.peers.length,
      iptablesRules: j.iptables.prepend.length + j.iptables.append.length, cni: j.cni !== null, tunnel: j.tunnel?.dev ?? null,
      warnings: j.warnings.length,
      compiled: ready ? compileNode(ctx.index, ctx.lk, j, like(ctx, j)) : null,
      planMs: performance.now() - t0,
      ...(ctx.keep.has(hostname) ? { plan: j } : {}),
    });
  }
  return out;
}

/**
 * The table a node's routes are compiled from by difference: another non-leader of its location
 * (they route everything through one leader), or in full granularity another node (every node
 * leads, routing every other node's addresses through WireGuard). A leader in location
 * granularity routes its own location apart from the others: compiled in full.
 */
function like(ctx: FleetContext, j: PlanJSON): { base: RouteTable | null } | undefined {
  const key = !j.leader ? j.location : ctx.input.plan.granularity === 'full' ? '' : null;
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

/** Plans nodes [from, to) of the snapshot. */
export interface PlanTask {
  snap: Snapshot;
  from: number;
  to: number;
}

/** The context of the last snapshot this worker planned (a pool's workers outlive one fleet plan). */
let ctx: { id: number; c: FleetContext } | null = null;

function contextOf(snap: Snapshot): FleetContext {
  if (ctx?.id !== snap.id) ctx = { id: snap.id, c: fleetContext(deserialize(snap.data.slice()) as FleetInput) };
  return ctx.c;
}

/** Verifies destinations [from, to) over every node's compiled arrays (shared memory, not copied). */
export interface VerifyTask {
  kind: 'verify';
  snap: Snapshot;
  from: number;
  to: number;
  leader: boolean[];
  nodes: (CompiledNode | null)[];
  peers: CompiledNode[];
}

/** piscina entry: plans a range of nodes of a snapshot, or verifies a range of destinations. */
export default function run(task: PlanTask | VerifyTask): NodeSummary[] | VerifyReport {
  const c = contextOf(task.snap);
  if ('kind' in task) {
    const ix = { ...c.index, leader: task.leader };
    return verifyFleet(ix, c.lk, task.nodes, task.peers, { from: task.from, to: task.to, interfaceChecks: task.from === 0 });
  }
  return planRange(c, task.from, task.to);
}
