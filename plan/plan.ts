// The planner: cluster state in, everything kg would program on one node out (`PlanJSON` in plan/types.ts).
// Pure and synchronous, so it runs the same in `kg plan`, in the agent's piscina pool and in
// benchmarks.
import { byText, nextIP, oneAddress, type CIDR, type IP } from './addr.js';
import { stockConflist } from './cni.js';
import { encapsulator, type Encapsulator, type Strategy } from './encapsulation.js';
import { endpointPort, endpointStringOpt, withResolved } from './endpoint.js';
import { iptablesRules } from './iptables.js';
import { nodeJSON, nodeReady, parseNodeInto, type MeshNode, type NodeObject, type UDPAddr } from './node.js';
import { parsePeer, peerJSON, peerName, peerReady, validatePeer, type MeshPeer, type PeerObject } from './peer.js';
import { routes as buildRoutes, type RouteOptions } from './routes.js';
import { crossLocation, meshView, newMesh, newTopology, segmentJSON, segmentKey, type Mesh, type Topology } from './topology.js';
import type { Granularity, IptablesJSON, PlanJSON, SegmentJSON, WireGuardJSON } from './types.js';
import { deviceConf, type WGConf } from './wireguard.js';
import type { WGPeer } from './wg-peer.js';
import { DEFAULT_LIMITS, type ClaimLimits } from './claims.js';
import { dualStackPlan, isDualStack, mergePeers, secondFamilyRoutes } from './dual.js';
import type { RoutesResult } from './routes.js';

export interface PlanOptions {
  hostname: string;
  granularity: Granularity;
  subnet: CIDR;
  encapsulate: Strategy;
  local: boolean;
  cni: boolean;
  compatibility: string;
  iptablesForwardRules: boolean;
  serviceCIDRs: readonly CIDR[];
  interface: string;
  mtu: number | 'auto';
  privateInterface: string;
  tunnelInterface: string;
  /** Unix seconds for readiness. */
  now: number;
  /** `--dual-stack-subnet`: the second family's mesh subnet (design §20); absent or null: single stack. */
  dualStackSubnet?: CIDR | null;
}

export interface Cluster {
  nodes: MeshNode[];
  peers: MeshPeer[];
  warnings: string[];
}

export interface PlanExtras {
  /** DNS endpoint text (`host:port`) → resolved address; the agent resolves, `kg plan` does not. */
  resolved?: ReadonlyMap<string, IP>;
  /** The local private key (base64), for the device configuration; never printed. */
  privateKey?: string | null;
  /** The local node's discovered endpoints as read from its device (design §6.7). */
  localDiscoveredEndpoints?: ReadonlyMap<string, UDPAddr> | null;
  /**
   * false: leave `nodes`, `peers` and `segments` out of the JSON (empty arrays). The agent
   * programs from routes, rules, WireGuard and iptables and needs no description of 5,000 nodes.
   */
  describe?: boolean;
  /**
   * The records are long-lived and will be planned again (the agent's replica): memoise what is
   * derived from them across plans (memo.ts; passed down as `memo`). Off for one-shot plans.
   */
  reuse?: boolean;
  /** The cluster's mesh, shared by the plans of many nodes (sharedMesh; the fleet planner). */
  mesh?: SharedMesh;
}

/** What the plans of every node of one cluster share: the ready records and the mesh (topology.ts). */
export interface SharedMesh {
  cluster: Cluster;
  options: Omit<PlanOptions, 'hostname'>;
  readyNodes: MeshNode[];
  readyPeers: MeshPeer[];
  mesh: Mesh;
}

function checkedMesh(m: SharedMesh, cluster: Cluster, o: PlanOptions): SharedMesh {
  const same = m.cluster === cluster && m.options.now === o.now && m.options.granularity === o.granularity && m.options.subnet.s === o.subnet.s;
  if (!same) throw new Error('plan: the shared mesh was built for another cluster or other options');
  return m;
}

/** Builds once what plan(cluster, o, { mesh }) needs for any hostname of the cluster. */
export function sharedMesh(cluster: Cluster, o: Omit<PlanOptions, 'hostname'>, extras: Pick<PlanExtras, 'resolved' | 'reuse'> = {}): SharedMesh {
  const { readyNodes, readyPeers } = readyRecords(sortedByName(cluster.nodes), sortedByName(cluster.peers), o.now, extras.resolved);
  const mesh = newMesh({ nodes: readyNodes, peers: readyPeers, granularity: o.granularity, subnet: o.subnet, memo: extras.reuse === true });
  return { cluster, options: o, readyNodes, readyPeers, mesh };
}

export interface PlanResult {
  json: PlanJSON;
  readyNodes: number;
  readyPeers: number;
  topology: Topology | null;
  /** The device configuration with secrets, for the dataplane; null on non-leaders. */
  device: WGConf | null;
  /** Some route destination lost host bits, so repeated routes were dropped (routes.ts finish). */
  routesMasked: boolean;
  /** The route options the routes were built with (null when the local node is not ready). */
  routeOptions: RouteOptions | null;
}

/** A Peer object as kg sees it: invalid ones are dropped by the informer (design §3.3.5). */
export function readPeer(o: PeerObject, limits: ClaimLimits = DEFAULT_LIMITS): { peer: MeshPeer } | { warning: string } {
  const err = validatePeer(o, limits);
  return err ? { warning: `peer ${peerName(o)}: invalid, ignored: ${err}` } : { peer: parsePeer(o) };
}

/**
 * kg stores peers by public key (design §11.2.2): two Peers with one key collapse into one, the
 * later name (of name-sorted input) winning, with a warning.
 */
export function byPublicKey(sorted: readonly MeshPeer[]): { peers: MeshPeer[]; warnings: string[] } {
  const byKey = new Map<string, MeshPeer>();
  const warnings: string[] = [];
  for (const p of sorted) {
    const k = p.publicKey ?? `name:${p.name}`;
    const prev = byKey.get(k);
    if (prev) {
      warnings.push(`peer ${p.name}: has the same public key as peer ${prev.name}; only ${p.name} is used`);
      byKey.delete(k);
    }
    byKey.set(k, p);
  }
  return { peers: [...byKey.values()], warnings };
}

/**
 * Parses Node and Peer objects; malformed values become warnings, never exceptions. What one
 * node or Peer may claim is capped by `limits` (claims.ts).
 */
export function parseCluster(nodeObjs: readonly NodeObject[], peerObjs: readonly PeerObject[], topologyLabel: string, limits: ClaimLimits = DEFAULT_LIMITS): Cluster {
  const warnings: string[] = [];
  // Name order (stable for duplicates) keeps warnings independent of the input's order.
  // Records without a wrapper each; the few warnings are kept per record, to be reported in
  // name order below.
  const scratch: string[] = [];
  let nodeWarnings: Map<MeshNode, string[]> | null = null;
  const parsed: MeshNode[] = new Array(nodeObjs.length);
  for (let i = 0; i < nodeObjs.length; i++) {
    const n = (parsed[i] = parseNodeInto(nodeObjs[i], topologyLabel, scratch, limits));
    if (scratch.length) (nodeWarnings ??= new Map()).set(n, scratch.splice(0));
  }
  // API servers list in name order: check that (linear) before paying for a sort.
  let sorted = true;
  for (let i = 1; i < parsed.length && sorted; i++) sorted = byText(parsed[i - 1].name, parsed[i].name) <= 0;
  if (!sorted) parsed.sort((a, b) => byText(a.name, b.name));
  // Name-sorted (stably), so a repeated name is adjacent to its first record: the last one
  // replaces it in place, as a Map keyed by name would, without a 5,000-entry map.
  const nodes: MeshNode[] = [];
  for (const n of parsed) {
    if (!n.name) {
      warnings.push('node without metadata.name ignored');
      continue;
    }
    if (nodes.length > 0 && nodes[nodes.length - 1].name === n.name) {
      warnings.push(`node ${n.name}: listed twice; the last one is used`);
      nodes[nodes.length - 1] = n;
    } else nodes.push(n);
    const w = nodeWarnings?.get(n);
    if (w) for (const x of w) warnings.push(x);
  }
  const ready: MeshPeer[] = [];
  for (const o of [...peerObjs].sort((a, b) => byText(peerName(a), peerName(b)))) {
    const r = readPeer(o, limits);
    if ('warning' in r) warnings.push(r.warning);
    else ready.push(r.peer);
  }
  const peers = byPublicKey(ready);
  warnings.push(...peers.warnings);
  return { nodes, peers: peers.peers, warnings };
}

/** Name order; parseCluster already yields it, so usually this is a linear check. */
function sortedByName<T extends { name: string }>(xs: readonly T[]): readonly T[] {
  for (let i = 1; i < xs.length; i++) if (xs[i - 1].name > xs[i].name) return [...xs].sort((a, b) => byText(a.name, b.name));
  return xs;
}

const EMPTY_IPTABLES: IptablesJSON = { chains: [], prepend: [], append: [] };

function wireguardJSON(o: PlanOptions, conf: WGConf | null, publicKey: string, listenPort: number, memo: boolean): WireGuardJSON {
  return {
    applied: conf !== null,
    interface: o.interface,
    listenPort,
    publicKey,
    // `auto` detects the underlay's MTU - 80 on the host; offline the Go fallback applies.
    mtu: o.mtu === 'auto' ? 1420 : o.mtu,
    peers: (conf?.peers ?? []).map((p) => peerJSONOf(p, memo)),
  };
}

// Memoised on the (frozen, reused) WireGuard peer: see deviceConf.
const peerJSONMemo = new WeakMap<WGPeer, WireGuardJSON['peers'][number]>();
export function peerJSONOf(p: WGPeer, memo: boolean): WireGuardJSON['peers'][number] {
  let j = memo ? peerJSONMemo.get(p) : undefined;
  if (j !== undefined) return j;
  j = {
    publicKey: p.publicKey,
    endpoint: endpointStringOpt(p.endpoint) || null,
    allowedIPs: p.allowedIPs.map((a) => a.s),
    persistentKeepalive: p.persistentKeepalive,
    presharedKey: p.presharedKey !== null,
  };
  if (memo && Object.isFrozen(p)) {
    Object.freeze(j.allowedIPs);
    peerJSONMemo.set(p, Object.freeze(j));
  }
  return j;
}

/** §9.7: with --local and encapsulation, the tunnel gets the pod CIDR's first address (/32). */
function tunnelAddress(enc: Encapsulator, local: boolean, subnet: CIDR | null, memo: boolean): { dev: string; address: string } | null {
  if (enc.strategy === 'never' || !local || !subnet || !enc.tunnel) return null;
  // Flannel's Set is a no-op: its device belongs to flannel.
  if (enc.kind !== 'ipip' && enc.kind !== 'cilium') return null;
  const first = nextIP(subnet.ip, subnet);
  return first ? { dev: enc.tunnel, address: oneAddress(first, memo).s } : null;
}

/** The ready nodes and Peers, their DNS endpoints resolved when the caller resolved them. */
function readyRecords(nodes: readonly MeshNode[], peers: readonly MeshPeer[], now: number, resolved: PlanExtras['resolved']): { readyNodes: MeshNode[]; readyPeers: MeshPeer[] } {
  const resolve = <T extends { endpoint: MeshNode['endpoint'] }>(x: T): T => {
    const e = x.endpoint;
    if (!e || !e.dns || e.ip || !resolved) return x;
    const ip = resolved.get(e.dns);
    return ip ? { ...x, endpoint: withResolved(e, ip) } : x;
  };
  // Resolution only when there are resolved names (the agent); no copy of 5,000 records otherwise.
  const readyNodes = nodes.filter((n) => nodeReady(n, now));
  const readyPeers = peers.filter(peerReady);
  if (resolved?.size) {
    for (let i = 0; i < readyNodes.length; i++) readyNodes[i] = resolve(readyNodes[i]);
    for (let i = 0; i < readyPeers.length; i++) readyPeers[i] = resolve(readyPeers[i]);
  }
  return { readyNodes, readyPeers };
}

/** kg computes nothing while its own node is not ready (design §11.5 step 4). */
function notReadyJSON(base: Pick<PlanJSON, 'format' | 'hostname' | 'granularity' | 'nodes' | 'peers'>, local: MeshNode, o: PlanOptions, wireguard: WireGuardJSON, warnings: string[]): PlanJSON {
  warnings.push(`node ${local.name}: not ready; kg would leave the dataplane as it is`);
  return {
    ...base,
    location: segmentKey(local, o.granularity),
    leader: false,
    wireGuardCIDR: o.subnet.s,
    segments: [],
    routes: [],
    rules: [],
    wireguard,
    iptables: EMPTY_IPTABLES,
    cni: null,
    tunnel: null,
    warnings,
  };
}

/** The segments as `kg plan` prints them; in cross granularity with their location group (design §19.1). */
function segmentsJSON(topo: Topology, readyNodes: readonly MeshNode[]): SegmentJSON[] {
  const out = topo.segments.map(segmentJSON);
  if (topo.sameLocation === undefined) return out;
  // Cross: the k-th segment is the k-th ready node (node keys sort as the names); a map only
  // when that does not hold (a spread copy and a 5,000-entry map per plan cost ~15 ms).
  let byKey: Map<string, MeshNode> | null = null;
  for (let k = 0; k < out.length; k++) {
    let n: MeshNode | undefined = readyNodes[k];
    if (n?.nodeKey !== out[k].location) n = (byKey ??= new Map(readyNodes.map((x) => [x.nodeKey, x]))).get(out[k].location);
    out[k].nodeLocation = n ? crossLocation(n) : null;
  }
  return out;
}

/** The local node's topology: a view of the shared mesh when there is one, else built here. */
function localTopology(o: PlanOptions, extras: PlanExtras, shared: SharedMesh | undefined, local: MeshNode, readyNodes: MeshNode[], readyPeers: MeshPeer[], port: number): Topology {
  const localDiscoveredEndpoints = extras.localDiscoveredEndpoints ?? local.discoveredEndpoints;
  const t = shared
    ? meshView(shared.mesh, { hostname: o.hostname, port, localDiscoveredEndpoints })
    : newTopology({ nodes: readyNodes, peers: readyPeers, granularity: o.granularity, hostname: o.hostname, port, subnet: o.subnet, localDiscoveredEndpoints, memo: extras.reuse === true });
  if (!t.ok) throw new Error(`failed to create topology: ${t.error}`);
  return t.value;
}

/** Design §20: the first family's routes, rules, iptables and device with the second family's appended. */
function withDualStack(o: PlanOptions, topo: Topology, readyNodes: readonly MeshNode[], local: MeshNode, describe: boolean, warnings: string[], r: RoutesResult, iptables: IptablesJSON, device: WGConf | null, memo: boolean) {
  const d = dualStackPlan(topo, readyNodes, local, {
    subnet: o.dualStackSubnet!, kiloIface: o.interface, privIface: o.privateInterface, local: o.local, cni: o.cni, forwardRules: o.iptablesForwardRules, localNodeLocation: local.location,
  }, describe, warnings, memo);
  if (!d) return null;
  return {
    json: d.json,
    routes: d.routes.length ? [...secondFamilyRoutes(r.routes, readyNodes, local, o.dualStackSubnet!, warnings), ...d.routes] : r.routes,
    rules: d.rules.length ? [...r.rules, ...d.rules] : r.rules,
    iptables: d.prepend.length ? { ...iptables, prepend: [...iptables.prepend, ...d.prepend] } : iptables,
    device: device && d.device ? { ...device, peers: mergePeers(device.peers, d.device.peers) } : device,
    podCIDR: d.json.active ? d.json.podCIDR : null,
  };
}

export function plan(cluster: Cluster, o: PlanOptions, extras: PlanExtras = {}): PlanResult {
  const memo = extras.reuse === true;
  const warnings = [...cluster.warnings];
  const nodes = sortedByName(cluster.nodes);
  const peers = sortedByName(cluster.peers);
  const local = nodes.find((n) => n.name === o.hostname);
  if (!local) throw new Error(`node ${JSON.stringify(o.hostname)} is not in the list of nodes`);

  const shared = extras.mesh && checkedMesh(extras.mesh, cluster, o);
  const { readyNodes, readyPeers } = shared ?? readyRecords(nodes, peers, o.now, extras.resolved);

  const describe = extras.describe !== false;
  const base = {
    format: 1 as const,
    hostname: o.hostname,
    granularity: o.granularity,
    nodes: describe ? nodes.map((n) => nodeJSON(n, o.now)) : [],
    peers: describe ? peers.map(peerJSON) : [],
  };
  const counts = { readyNodes: readyNodes.length, readyPeers: readyPeers.length };
  const listenPort = endpointPort(local.endpoint);
  const publicKey = local.key ?? '';

  if (!nodeReady(local, o.now)) {
    return { json: notReadyJSON(base, local, o, wireguardJSON(o, null, publicKey, listenPort, memo), warnings), topology: null, device: null, routesMasked: false, routeOptions: null, ...counts };
  }

  const topo = localTopology(o, extras, shared, local, readyNodes, readyPeers, listenPort);

  const enc = encapsulator({
    compatibility: o.compatibility,
    strategy: o.encapsulate,
    hasPrivateIP: local.internalIP !== null,
    tunnelInterface: o.tunnelInterface,
  });
  const routeOptions: RouteOptions = { kiloIface: o.interface, privIface: o.privateInterface, local: o.local, enc, memo };
  const r = buildRoutes(topo, routeOptions);
  const iptables = iptablesRules(topo, {
    cni: o.cni,
    forwardRules: o.iptablesForwardRules,
    serviceCIDRs: o.serviceCIDRs,
    enc,
    local: o.local,
    localNodeLocation: local.location,
    memo,
  });
  let device = topo.leader ? deviceConf(topo, extras.privateKey ?? null, listenPort, memo) : null;
  const dual = isDualStack(readyNodes, o.dualStackSubnet) ? withDualStack(o, topo, readyNodes, local, describe, warnings, r, iptables, device, memo) : null;
  if (dual) device = dual.device;

  return {
    json: {
      ...base,
      location: topo.location,
      leader: topo.leader,
      wireGuardCIDR: topo.wireGuardCIDR.s,
      segments: describe ? segmentsJSON(topo, readyNodes) : [],
      routes: dual?.routes ?? r.routes,
      rules: dual?.rules ?? r.rules,
      wireguard: wireguardJSON(o, device, publicKey, listenPort, memo),
      iptables: dual?.iptables ?? iptables,
      cni: o.cni && local.subnet ? stockConflist(local.subnet.s, dual?.podCIDR) : null,
      tunnel: tunnelAddress(enc, o.local, local.subnet, memo),
      warnings,
      ...(topo.sameLocation !== undefined ? { nodeLocation: topo.nodeLocation ?? null } : {}),
      ...(dual ? { dualStack: dual.json } : {}),
    },
    topology: topo,
    device,
    routesMasked: r.masked,
    routeOptions,
    ...counts,
  };
}
