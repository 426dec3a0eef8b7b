// kgctl's view of the cluster (design §14): pure functions over listed Node and Peer objects, so
// that `graph`, `showconf` and `connect` build exactly the topology Kilo's kgctl builds, and the
// tests can check them without an API server.
import { network, oneAddress, parseCIDR, type CIDR } from '../../plan/addr.js';
import { splitHostPort, type Endpoint } from '../../plan/endpoint.js';
import { nodeReady, parseNode, type MeshNode, type NodeObject } from '../../plan/node.js';
import { peerReady, type MeshPeer, type PeerObject } from '../../plan/peer.js';
import { readPeer } from '../../plan/plan.js';
import { newTopology, type Topology } from '../../plan/topology.js';
import type { Granularity, Route } from '../../plan/types.js';
import type { WGPeer } from '../../plan/wireguard.js';

export const DEFAULT_SUBNET = '10.4.0.0/16';
export type GranularityFlag = Granularity | 'auto';

export class KgctlError extends Error {}

/** Nodes in listing order (order matters: "first node", "last ready node"), Peers by name. */
export interface Listed {
  nodes: MeshNode[];
  peers: MeshPeer[];
  warnings: string[];
}

export function parseListed(nodeObjs: readonly NodeObject[], peerObjs: readonly PeerObject[], topologyLabel: string): Listed {
  const warnings: string[] = [];
  const nodes: MeshNode[] = [];
  for (const o of nodeObjs) {
    const r = parseNode(o, topologyLabel);
    warnings.push(...r.warnings);
    if (r.value.name) nodes.push(r.value);
  }
  const peers: MeshPeer[] = [];
  for (const o of peerObjs) {
    // Invalid Peers are filtered out by the informer, as in kg (design §3.3.5).
    const r = readPeer(o);
    if ('warning' in r) warnings.push(r.warning);
    else peers.push(r.peer);
  }
  peers.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  return { nodes, peers, warnings };
}

/** §14.1 granularity `auto`: the first listed node's `granularity` annotation. */
export function resolveGranularity(flag: GranularityFlag, nodes: readonly MeshNode[]): Granularity {
  if (flag !== 'auto') return flag;
  if (nodes.length === 0) throw new KgctlError('could not get any nodes');
  const g = nodes[0].granularity;
  if (g !== 'location' && g !== 'full' && g !== 'cross') throw new KgctlError('mesh granularity auto is not supported');
  return g;
}

/** §14.1 subnet inference for graph/showconf: the last listed node with a WireGuard IP wins. */
export function inferSubnet(nodes: readonly MeshNode[]): CIDR {
  let s = parseCIDR(DEFAULT_SUBNET)!;
  for (const n of nodes) if (n.wireGuardIP) s = n.wireGuardIP;
  return network(s);
}

/** §14.4 (connect): the first node with a WireGuard IP, or an error. */
export function connectSubnet(nodes: readonly MeshNode[]): CIDR {
  const n = nodes.find((x) => x.wireGuardIP);
  if (!n) throw new KgctlError('did not find a valid Kilo subnet on any node');
  return network(n.wireGuardIP!);
}

export function readyNodes(nodes: readonly MeshNode[], now: number): MeshNode[] {
  return nodes.filter((n) => nodeReady(n, now));
}

export function readyPeers(peers: readonly MeshPeer[]): MeshPeer[] {
  return peers.filter(peerReady);
}

export interface ViewOptions {
  granularity: GranularityFlag;
  now: number;
}

export interface View {
  granularity: Granularity;
  subnet: CIDR;
  nodes: MeshNode[];
  peers: MeshPeer[];
  /** The last ready node in listing order: the "local" node of graph and showconf peer. */
  lastReady: string;
}

export function view(l: Listed, o: ViewOptions, subnet: CIDR = inferSubnet(l.nodes)): View {
  const granularity = resolveGranularity(o.granularity, l.nodes);
  const nodes = readyNodes(l.nodes, o.now);
  if (nodes.length === 0) throw new KgctlError('did not find any valid Kilo nodes in the cluster');
  return { granularity, subnet, nodes, peers: readyPeers(l.peers), lastReady: nodes[nodes.length - 1].name };
}

export function topology(v: View, hostname: string, port: number): Topology {
  const t = newTopology({ nodes: v.nodes, peers: v.peers, granularity: v.granularity, hostname, port, subnet: v.subnet });
  if (!t.ok) throw new KgctlError(`failed to create topology: ${t.error}`);
  return t.value;
}

/** `--allowed-ips`: each a CIDR, masked to its network. */
export function parseAllowedIPs(list: readonly string[]): CIDR[] {
  return list.map((s) => {
    const c = parseCIDR(s.trim());
    if (!c) throw new KgctlError(`allowed-ips must contain only valid CIDRs; got ${JSON.stringify(list)}`);
    return network(c);
  });
}

/** A peer's allowed IPs plus extra ones, de-duplicated by text, first occurrence kept (§14.3.1.5). */
export function withAllowedIPs(p: WGPeer, extra: readonly CIDR[]): WGPeer {
  const seen = new Set<string>();
  const allowedIPs = [...p.allowedIPs, ...extra].filter((c) => (seen.has(c.s) ? false : (seen.add(c.s), true)));
  return { ...p, allowedIPs };
}

/**
 * The Peer object `showconf --as-peer -o json|yaml` prints (§14.3.4). Two of Go's quirks are
 * fixed on purpose (design §16.9/§16.10 recommend it): a DNS endpoint is written as its host name
 * (Go writes the port), and the keepalive in seconds (Go writes nanoseconds); an absent endpoint
 * is left out (Go writes `ip: <nil>`). The result can be applied with kubectl as it is.
 */
export function peerObject(name: string, p: WGPeer): Record<string, unknown> {
  const spec: Record<string, unknown> = { allowedIPs: p.allowedIPs.map((c) => c.s) };
  const ep = endpointSpec(p.endpoint);
  if (ep) spec.endpoint = ep;
  if (p.persistentKeepalive > 0) spec.persistentKeepalive = p.persistentKeepalive;
  if (p.presharedKey) spec.presharedKey = p.presharedKey;
  if (p.publicKey) spec.publicKey = p.publicKey;
  return { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name }, spec };
}

function endpointSpec(e: Endpoint | null): Record<string, unknown> | null {
  if (!e) return null;
  if (e.dns) {
    const hp = splitHostPort(e.dns);
    if (hp) return { dnsOrIP: { dns: hp.host }, port: Number(hp.port) };
  }
  if (e.ip && e.port > 0) return { dnsOrIP: { ip: e.ip.s }, port: e.port };
  return null;
}

/**
 * §7.8 PeerRoutes: what a Peer (kgctl connect) routes into the mesh through its WireGuard link.
 * Destinations are masked to their networks, as kg's own routes are (README, divergence §16.15).
 */
export function peerRoutes(t: Topology, dev: string, self: string, extra: readonly CIDR[]): Route[] {
  const out: Route[] = [];
  const seen = new Set<string>();
  const add = (dst: CIDR, gw: string | null) => {
    const d = network(dst).s;
    if (seen.has(d)) return; // one route per destination: the kernel keys them so
    seen.add(d);
    out.push({ dst: d, gw, dev, src: null, table: null, protocol: 'static', onlink: gw !== null });
  };
  for (const s of t.segments) {
    const gw = s.wireGuardIP.s;
    for (const c of s.cidrs) if (c) add(c, gw);
    for (const ip of s.privateIPs) add(oneAddress(ip), gw);
    for (const c of s.allowedLocationIPs) add(c, gw);
    add(s.wireGuard32, null);
  }
  for (const p of t.peers) {
    if (p.name === self) continue;
    for (const c of p.allowedIPs) add(c, null);
  }
  if (t.segments.length > 0) for (const c of extra) add(c, t.segments[0].wireGuardIP.s);
  return out;
}
