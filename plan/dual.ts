// Dual stack (design §20): the second address family as a view of the same topology. The
// segments, leaders, keys and endpoints are the first family's (one WireGuard device, one peer
// per segment); the view swaps in each node's second-family pod CIDR and internal IP and a
// WireGuard IP from the second mesh subnet, and the planner's own route, iptables and WireGuard
// functions run on it. The results are appended to the first family's (dualStackPlan).
import { cidr, hostCIDR, nextIP, type CIDR, type IP } from './addr.js';
import { encapsulator } from './encapsulation.js';
import { iptablesRules } from './iptables.js';
import type { MeshNode } from './node.js';
import { routes as buildRoutes } from './routes.js';
import { newSegmentMemo } from './memo.js';
import { crossLocation, type Segment, type Topology } from './topology.js';
import type { DualStackJSON, Family, IptablesJSON, Route, Rule } from './types.js';
import { deviceConf, type WGConf } from './wireguard.js';
import type { WGPeer } from './wg-peer.js';

export interface DualStackOptions {
  subnet: CIDR;
  kiloIface: string;
  privIface: string;
  local: boolean;
  cni: boolean;
  forwardRules: boolean;
  localNodeLocation: string;
}

export interface DualStackPlan {
  json: DualStackJSON;
  topology: Topology;
  routes: Route[];
  rules: Rule[];
  /** Only rules of the second family, to be appended to the first family's `prepend`. */
  prepend: IptablesJSON['prepend'];
  /** The second family's allowed IPs of each remote segment, in the order deviceConf lists them. */
  device: WGConf | null;
}

const familyOf = (c: CIDR | IP): Family => (('ip' in c ? c.ip.v6 : c.v6) ? 'ipv6' : 'ipv4');

/** The node's second-family values when they are of the subnet's family (null otherwise). */
function second(n: MeshNode, f: Family): { pod: CIDR | null; internal: CIDR | null } {
  return {
    pod: n.subnet2 && familyOf(n.subnet2) === f ? n.subnet2 : null,
    internal: n.internalIP2 && familyOf(n.internalIP2) === f ? n.internalIP2 : null,
  };
}

/** Whether any ready node has a pod CIDR of the second family: otherwise the plan is single-stack. */
export function isDualStack(nodes: readonly MeshNode[], subnet: CIDR | null | undefined): subnet is CIDR {
  if (!subnet) return false;
  const f = familyOf(subnet);
  for (const n of nodes) if (second(n, f).pod) return true;
  return false;
}

// The k-th segment gets the second subnet's (k+1)-th address, as in the first family (design §5.5).
let allocated: { subnet: string; ips: IP[] } = { subnet: '', ips: [] };
function allocation(subnet: CIDR, count: number): readonly IP[] {
  if (allocated.subnet !== subnet.s) allocated = { subnet: subnet.s, ips: [] };
  const a = allocated.ips;
  while (a.length < count) {
    const next = nextIP(a.length ? a[a.length - 1] : subnet.ip, subnet);
    if (!next) break;
    a.push(next);
  }
  return a;
}

/**
 * Segment `s` in the second family (design §20.3). The leader always stays (its key carries the
 * segment's allowed IPs); another member joins only with a second-family pod CIDR and internal IP
 * while the leader has an internal IP of that family too (its gateway inside the location).
 */
function dualSegment(s: Segment, byName: ReadonlyMap<string, MeshNode>, f: Family, wg: IP, warnings: string[], memo: boolean): Segment {
  const leader = second(byName.get(s.hostnames[s.leader])!, f);
  const hostnames: string[] = [];
  const cidrs: (CIDR | null)[] = [];
  const privateIPs: IP[] = [];
  const allowedIPs: CIDR[] = [];
  let leaderAt = 0;
  for (let i = 0; i < s.hostnames.length; i++) {
    const x = second(byName.get(s.hostnames[i])!, f);
    if (i !== s.leader) {
      if (!x.pod) continue; // a single-stack member: nothing of it in this family
      if (!x.internal || !leader.internal) {
        warnings.push(`node ${s.hostnames[i]}: has an ${f} pod CIDR but ${x.internal ? `its leader ${s.hostnames[s.leader]} has` : 'it has'} no ${f} internal IP; its ${f} pods are left out of the mesh`);
        continue;
      }
    } else leaderAt = hostnames.length;
    hostnames.push(s.hostnames[i]);
    cidrs.push(x.pod);
    if (x.pod) allowedIPs.push(x.pod);
    // A lone leader may lack an internal IP; with members it has one (checked above).
    if (x.internal) {
      privateIPs.push(x.internal.ip);
      allowedIPs.push(hostCIDR(x.internal.ip));
    }
  }
  const wg32 = hostCIDR(wg);
  allowedIPs.push(wg32);
  return {
    location: s.location, leader: leaderAt, hostnames, endpoint: s.endpoint, key: s.key, persistentKeepalive: s.persistentKeepalive,
    allowedIPs, allowedLocationIPs: [], cidrs, privateIPs, cniCompatibilityIPs: cidrs.map(() => null),
    wireGuardIP: wg, wireGuard32: wg32, memo: memo ? newSegmentMemo() : null,
  };
}

/**
 * The agent's plans (memo): a first-family segment that is the same object plan after plan (its
 * members' records and its WireGuard IP unchanged, topology.ts) has the same second-family
 * segment, so it is kept with it, and what routes, iptables and WireGuard memoise on it is reused.
 */
const dualMemo = new WeakMap<Segment, { subnet: string; seg: Segment; warnings: string[] }>();
function cachedDualSegment(s: Segment, byName: ReadonlyMap<string, MeshNode>, f: Family, subnet: CIDR, wg: IP, warnings: string[], memo: boolean): Segment {
  const hit = memo ? dualMemo.get(s) : undefined;
  if (hit && hit.subnet === subnet.s) {
    for (const w of hit.warnings) warnings.push(w);
    return hit.seg;
  }
  const own: string[] = [];
  const seg = dualSegment(s, byName, f, wg, own, memo);
  for (const w of own) warnings.push(w);
  if (memo) dualMemo.set(s, { subnet: subnet.s, seg, warnings: own });
  return seg;
}

/**
 * Cross (design §20.3): a node's location group reaches its second-family pods on the underlay
 * through its second-family internal IP; without one only the other locations reach them.
 */
function crossWarnings(groups: ReadonlyMap<string, ReadonlySet<string>>, nodes: readonly MeshNode[], f: Family, warnings: string[]): void {
  for (const n of nodes) {
    const g = crossLocation(n);
    if (g === null || (groups.get(g)?.size ?? 0) < 2) continue;
    const x = second(n, f);
    if (x.pod && !x.internal) warnings.push(`node ${n.name}: has an ${f} pod CIDR but no ${f} internal IP; its ${f} pods are reached only from other locations`);
  }
}

/**
 * The second family's topology, from the first family's `t` and the ready records. null when the
 * second subnet has too few addresses (with a warning); the first family is planned regardless.
 */
export function dualTopology(t: Topology, nodes: readonly MeshNode[], local: MeshNode, subnet: CIDR, warnings: string[], memo = false): { topology: Topology; active: boolean } | null {
  const f = familyOf(subnet);
  const ips = allocation(subnet, t.segments.length);
  if (ips.length < t.segments.length) {
    warnings.push(`--dual-stack-subnet ${subnet.s}: ${t.segments.length} segments but ${ips.length} addresses; the ${f} half is not planned`);
    return null;
  }
  const byName = new Map<string, MeshNode>();
  for (const n of nodes) byName.set(n.name, n);
  const segments = t.segments.map((s, k) => cachedDualSegment(s, byName, f, subnet, ips[k], warnings, memo));
  if (t.crossGroups) crossWarnings(t.crossGroups, nodes, f, warnings);
  const own = segments.find((s) => s.location === t.location);
  const active = !!own && own.hostnames.includes(local.name);
  const mine = second(local, f);
  const topology: Topology = {
    leader: t.leader,
    location: t.location,
    privateIP: mine.internal,
    subnet: active ? mine.pod : null,
    wireGuardCIDR: t.leader && own ? cidr(own.wireGuardIP, subnet.bits) : subnet,
    segments,
    peers: [],
    discoveredEndpoints: t.discoveredEndpoints,
    port: t.port,
    persistentKeepalive: t.persistentKeepalive,
    // Cross (design §20.3): the first family's location groups, so that the group's nodes stay
    // off WireGuard and are routed on the underlay by their second-family internal IPs.
    ...(t.sameLocation !== undefined ? { nodeLocation: t.nodeLocation, sameLocation: t.sameLocation, crossGroups: t.crossGroups } : {}),
  };
  return { topology, active };
}

/** Design §20.3: routes, iptables and WireGuard allowed IPs of the second family for the local node. */
export function dualStackPlan(t: Topology, nodes: readonly MeshNode[], local: MeshNode, o: DualStackOptions, describe: boolean, warnings: string[], memo = false): DualStackPlan | null {
  const d = dualTopology(t, nodes, local, o.subnet, warnings, memo);
  if (!d) return null;
  const { topology, active } = d;
  // IPIP is IPv4-only (design §20.3): inside a location the second family is routed plainly.
  const enc = encapsulator({ compatibility: '', strategy: 'never', hasPrivateIP: true, tunnelInterface: '' });
  let routes: Route[] = [];
  let rules: Rule[] = [];
  let prepend: IptablesJSON['prepend'] = [];
  if (active) {
    const r = buildRoutes(topology, { kiloIface: o.kiloIface, privIface: o.privIface, local: o.local, enc, memo });
    routes = r.routes;
    rules = r.rules;
    prepend = iptablesRules(topology, { cni: o.cni, forwardRules: o.forwardRules, serviceCIDRs: [], enc, local: o.local, localNodeLocation: o.localNodeLocation, memo }).prepend;
  } else warnings.push(`node ${local.name}: takes no part in the ${familyOf(o.subnet)} half of the mesh`);
  const device = t.leader ? deviceConf(topology, null, t.port, memo) : null;
  return { json: dualJSON(o, topology, local, active, describe), topology, routes, rules, prepend, device };
}

function dualJSON(o: DualStackOptions, d: Topology, local: MeshNode, active: boolean, describe: boolean): DualStackJSON {
  const f = familyOf(o.subnet);
  const mine = second(local, f);
  return {
    family: f,
    subnet: o.subnet.s,
    wireGuardCIDR: d.wireGuardCIDR.s,
    podCIDR: mine.pod?.s ?? null,
    internalIP: mine.internal?.s ?? null,
    active,
    segments: describe
      ? d.segments.map((s) => ({
          location: s.location, hostnames: s.hostnames, allowedIPs: s.allowedIPs.map((c) => c.s), cidrs: s.cidrs.map((c) => c?.s ?? null),
          privateIPs: s.privateIPs.map((ip) => ip.s), wireGuardIP: s.wireGuardIP.s,
        }))
      : [],
  };
}

/**
 * Design §20.3: the first family's routes to second-family destinations (a Peer's or an
 * allowed-location IP of the second family) carry the first family's `src` or gateway, which the
 * kernel rejects for that destination. With the second family planned, the source is the local
 * node's second-family internal IP (none without one) and the gateway the same node's
 * second-family internal IP; a route whose gateway has none is left out, with a warning.
 */
export function secondFamilyRoutes(routes: readonly Route[], nodes: readonly MeshNode[], local: MeshNode, subnet: CIDR, warnings: string[]): readonly Route[] {
  const f = familyOf(subnet);
  const v6 = f === 'ipv6';
  const mixed = (r: Route) => r.dst.includes(':') === v6 && ((r.src !== null && r.src.includes(':') !== v6) || (r.gw !== null && r.gw.includes(':') !== v6));
  if (!routes.some(mixed)) return routes;
  const byInternal = new Map<string, MeshNode>();
  for (const n of nodes) if (n.internalIP) byInternal.set(n.internalIP.ip.s, n);
  const src = second(local, f).internal?.ip.s ?? null;
  const out: Route[] = [];
  for (const r of routes) {
    if (!mixed(r)) {
      out.push(r);
      continue;
    }
    const via = r.gw !== null && r.gw.includes(':') !== v6 ? byInternal.get(r.gw) : undefined;
    const gw = via ? second(via, f).internal?.ip.s ?? null : r.gw;
    if (r.gw !== null && (gw === null || gw.includes(':') !== v6)) {
      warnings.push(`route to ${r.dst}: its gateway ${r.gw} has no ${f} internal IP; left out`);
      continue;
    }
    out.push({ ...r, gw, src: r.src !== null && r.src.includes(':') !== v6 ? src : r.src });
  }
  return out;
}

/**
 * The first family's device peers with the second family's allowed IPs appended, matched by
 * public key: the second family's segments are the first family's, and it has no Peer resources
 * of its own (a Peer's allowed IPs of both families are already the first family's). By key, not
 * position, so a peer list of the view that differs from the first family's (as cross's location
 * groups once made it) cannot hand one segment's addresses to another or drop them unseen.
 */
export function mergePeers(first: readonly WGPeer[], second: readonly WGPeer[]): WGPeer[] {
  const byKey = new Map<string, WGPeer>();
  for (const q of second) if (q.allowedIPs.length && !byKey.has(q.publicKey)) byKey.set(q.publicKey, q);
  return first.map((p) => {
    const q = byKey.get(p.publicKey);
    if (!q) return p;
    byKey.delete(p.publicKey); // once: a Peer resource reusing a node's key gets nothing of it
    return { ...p, allowedIPs: [...p.allowedIPs, ...q.allowedIPs] };
  });
}
