// The cluster a `kg bench` run measures: synthetic (bench/synthetic.ts, deterministic) or read
// from files as `kg plan` reads them; the two nodes it plans for (a leader and a non-leader);
// the one-node change used for incremental measurements; and dataplane sizes from the planner.
import { parseCIDR } from '../../plan/addr.js';
import { A, nodeReady, type NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import { parseCluster, plan, type Cluster, type PlanOptions } from '../../plan/plan.js';
import type { PlanJSON } from '../../plan/types.js';
import { readObjects } from '../../main/plan-command.js';
import { FlagError } from '../../main/flags.js';
import { syntheticNodes, syntheticPeers } from '../synthetic.js';
import type { BenchConfig } from './options.js';

/** The clock of synthetic clusters: every node checked in at SYNTHETIC_NOW; plans run a second later. */
export const SYNTHETIC_NOW = 1_764_160_000;

export interface BenchCluster {
  source: 'synthetic' | 'files';
  nodes: NodeObject[];
  peers: PeerObject[];
  now: number;
  locations: number;
  leader: string;
  nonLeader: string | null;
  /** The node whose annotation changes in incremental measurements (never the planned node). */
  changed: string;
}

export function planOptions(cfg: BenchConfig, hostname: string, now: number): PlanOptions {
  return {
    hostname, granularity: cfg.granularity, subnet: parseCIDR('10.4.0.0/16')!, encapsulate: cfg.encapsulate, local: true, cni: true,
    compatibility: '', iptablesForwardRules: false, serviceCIDRs: [], interface: 'kilo0', mtu: 1420, privateInterface: 'eth0',
    tunnelInterface: 'tunl0', now,
  };
}

/** A copy of `o` whose allowed-location-ips differ by `version`: a realistic one-node edit. */
export function changedNode(o: NodeObject, version: number): NodeObject {
  const v = version % 60_000;
  return {
    ...o,
    metadata: { ...o.metadata, annotations: { ...(o.metadata?.annotations ?? {}), [A.allowedLocationIPs]: `10.253.${(v >> 8) & 255}.${v & 255}/32` } },
  };
}

export function loadCluster(cfg: BenchConfig): BenchCluster {
  let nodes: NodeObject[];
  let peers: PeerObject[];
  let now: number;
  if (cfg.nodesFile) {
    nodes = readObjects(cfg.nodesFile, 'nodes') as NodeObject[];
    peers = cfg.peersFile ? (readObjects(cfg.peersFile, 'peers') as PeerObject[]) : [];
    now = cfg.now ?? Math.floor(Date.now() / 1000);
  } else {
    const shape = { nodes: cfg.nodes, locations: cfg.locations, peers: cfg.peers, now: SYNTHETIC_NOW };
    nodes = syntheticNodes(shape);
    peers = syntheticPeers(shape);
    now = cfg.now ?? SYNTHETIC_NOW + 1;
  }
  const parsed = parseCluster(nodes, peers, cfg.topologyLabel);
  if (parsed.nodes.length < 2) throw new FlagError(`kg bench needs at least 2 valid nodes; ${cfg.nodesFile || 'the cluster'} has ${parsed.nodes.length}`);
  const { leader, nonLeader } = pickNodes(cfg, parsed, now);
  // A ready node (a not-ready one is left out of the mesh, so its edit would change nothing).
  const others = parsed.nodes.filter((n) => n.name !== leader && n.name !== nonLeader).reverse();
  const changed = (others.find((n) => nodeReady(n, now)) ?? others[0] ?? parsed.nodes.find((n) => n.name !== leader)!).name;
  const locations = new Set(parsed.nodes.map((n) => n.location)).size;
  return { source: cfg.nodesFile ? 'files' : 'synthetic', nodes, peers, now, locations, leader, nonLeader, changed };
}

/**
 * The first node that leads its location and the first that does not (null in full and cross
 * granularity, where every node is its own segment's leader). Bounded: at most 64 plans.
 */
function pickNodes(cfg: BenchConfig, c: Cluster, now: number): { leader: string; nonLeader: string | null } {
  let leader: string | null = null;
  let nonLeader: string | null = null;
  for (const n of c.nodes.slice(0, 64)) {
    const j = plan(c, planOptions(cfg, n.name, now), { describe: false }).json;
    if (j.leader && leader === null) leader = n.name;
    if (!j.leader && nonLeader === null) nonLeader = n.name;
    if (leader !== null && (nonLeader !== null || cfg.granularity !== 'location')) break;
  }
  if (leader === null) throw new FlagError('no node of the cluster leads its location (are the nodes ready at --now? do they have keys and endpoints?)');
  return { leader, nonLeader };
}

export interface DataplaneSize {
  node: string;
  leader: boolean;
  location: string;
  wireguardPeers: number;
  allowedIPs: number;
  routes: number;
  ipRules: number;
  iptablesRules: number;
}

export function sizeOf(j: PlanJSON): DataplaneSize {
  return {
    node: j.hostname, leader: j.leader, location: j.location,
    wireguardPeers: j.wireguard.peers.length,
    allowedIPs: j.wireguard.peers.reduce((s, p) => s + p.allowedIPs.length, 0),
    routes: j.routes.length,
    ipRules: j.rules.length,
    iptablesRules: j.iptables.prepend.length + j.iptables.append.length,
  };
}

export function dataplaneSizes(cfg: BenchConfig, bc: BenchCluster): { leader: DataplaneSize; nonLeader: DataplaneSize | null } {
  const c = parseCluster(bc.nodes, bc.peers, cfg.topologyLabel);
  const size = (h: string) => sizeOf(plan(c, planOptions(cfg, h, bc.now), { describe: false }).json);
  return { leader: size(bc.leader), nonLeader: bc.nonLeader === null ? null : size(bc.nonLeader) };
}
