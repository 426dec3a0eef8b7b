// The topology algorithm (design §5). Every node runs this same pure function on the same inputs
// and must reach the same segments, leaders and WireGuard IPs: it is reproduced step by step,
// quirks included.
import { byText, cidr, hostCIDR, isPublic, nextIP, oneAddress, type CIDR, type IP } from './addr.js';
import { endpointJSON, newEndpoint, type Endpoint } from './endpoint.js';
import { NO_TEXT, type MeshNode, type UDPAddr } from './node.js';
import { newSegmentMemo, type SegmentMemo } from './memo.js';
import type { MeshPeer } from './peer.js';
import { filterAllowedLocationIPs } from './location-ips.js';
import type { Granularity, SegmentJSON } from './types.js';

export interface Segment {
  /** The segment key: `location:<name>` or `node:<hostname>`. */
  readonly location: string;
  readonly leader: number;
  readonly hostnames: string[];
  readonly endpoint: Endpoint | null;
  readonly key: string;
  readonly persistentKeepalive: number;
  readonly allowedIPs: CIDR[];
  /** Reassigned (never mutated) by the allowed-location-IP filter; may be shared with the records. */
  allowedLocationIPs: readonly CIDR[];
  readonly cidrs: (CIDR | null)[];
  readonly privateIPs: readonly IP[];
  readonly cniCompatibilityIPs: readonly (CIDR | null)[];
  wireGuardIP: IP;
  /** wireGuardIP as a one-address CIDR: the same object plan after plan (see allocation). */
  wireGuard32: CIDR;
  /** Derived data kept across plans (memo.ts); null in one-shot plans. */
  readonly memo: SegmentMemo | null;
}

export interface Topology {
  readonly leader: boolean;
  readonly location: string;
  readonly privateIP: CIDR | null;
  readonly subnet: CIDR | null;
  readonly wireGuardCIDR: CIDR;
  readonly segments: Segment[];
  readonly peers: MeshPeer[];
  readonly discoveredEndpoints: Map<string, UDPAddr>;
  readonly port: number;
  readonly persistentKeepalive: number;
  /**
   * Cross granularity only (design §19): the local node's location group (`location:<name>`;
   * null for a node without an internal IP, which groups with no one) and the segment keys of
   * its members, the local node's included. Absent or null in the other granularities.
   */
  readonly nodeLocation?: string | null;
  readonly sameLocation?: ReadonlySet<string> | null;
  /** Cross granularity only: every location group's segment keys (for the graph). */
  readonly crossGroups?: ReadonlyMap<string, ReadonlySet<string>>;
}

export interface TopologyInput {
  /** Ready nodes only; must include `hostname`. */
  nodes: readonly MeshNode[];
  /** Ready peers only. */
  peers: readonly MeshPeer[];
  granularity: Granularity;
  hostname: string;
  port: number;
  /** Mesh subnet, a network CIDR (`--subnet`). */
  subnet: CIDR;
  /** The local node's discovered endpoints (from its WireGuard device in the agent). */
  localDiscoveredEndpoints?: ReadonlyMap<string, UDPAddr> | null;
  /** Reuse segments and their derived data across plans of the same records (memo.ts). */
  memo?: boolean;
}

export type Result<T> = { ok: true; value: T } | { ok: false; error: string };

/** The segment key of a node (design §5.1; cross as full, design §19.1). */
export function segmentKey(n: MeshNode, granularity: Granularity): string {
  return granularity === 'full' || granularity === 'cross' || !n.internalIP ? n.nodeKey : n.locationKey;
}

/**
 * Cross granularity (design §19.1): the location group of a node, whose members reach each other
 * on the underlay and are no WireGuard peers of each other. A node without an internal IP is in
 * none (as it gets its own segment in location granularity, design §16.5).
 */
export function crossLocation(n: MeshNode): string | null {
  return n.internalIP ? n.locationKey : null;
}

/** Whether `s` is reached without WireGuard from the local node: its own segment, or in cross its location group's. */
export function isLocalSegment(t: Topology, s: Segment): boolean {
  return s.location === t.location || (t.sameLocation != null && t.sameLocation.has(s.location));
}

/** findLeader over name-sorted members (design §5.3). */
export function findLeader(members: readonly MeshNode[]): number {
  let leader = -1;
  let pub = -1;
  for (let i = 0; i < members.length; i++) {
    const n = members[i];
    const ip = n.endpoint?.ip ?? null;
    if (n.leader) {
      if (isPublic(ip)) return i;
      if (leader < 0) leader = i;
    }
    if (pub < 0 && ip && isPublic(ip)) pub = i;
  }
  if (leader >= 0) return leader;
  if (pub >= 0) return pub;
  return 0;
}

/** Peer allowed-IP de-duplication, in name order (design §5.6). */
export function deduplicatePeerIPs(peers: readonly MeshPeer[]): MeshPeer[] {
  const seen = new Set<string>();
  return peers.map((p) => {
    const allowedIPs: CIDR[] = [];
    for (const a of p.allowedIPs) {
      if (seen.has(a.s)) continue;
      seen.add(a.s);
      allowedIPs.push(a);
    }
    return { ...p, allowedIPs };
  });
}

/** updateEndpoint (design §5.7): a NAT-discovered endpoint replaces a keepalive peer's endpoint. */
export function updateEndpoint(
  discovered: ReadonlyMap<string, UDPAddr>,
  endpoint: Endpoint | null,
  key: string | null,
  keepalive: number,
): Endpoint | null {
  if (!keepalive || !key) return endpoint;
  const d = discovered.get(key);
  return d ? newEndpoint(d.ip, d.port) : endpoint;
}

/**
 * A segment before IP allocation: a pure function of its (name-sorted) member records. It is
 * memoised on its first member, so that a re-plan after a one-node change rebuilds one segment,
 * not 5,000; and the last allocated Segment is kept with it, so that a segment whose members and
 * WireGuard IP did not move is the very same object (what is derived from it is reused too).
 * Its allowedIPs lack the WireGuard IP (allocation appends it); its allowedLocationIPs are sorted
 * and de-duplicated but not yet filtered. It has every field of a Segment (the WireGuard ones
 * null until allocation), so that a one-shot plan can complete the base into the segment (see
 * newTopology).
 */
export interface SegmentBase extends Omit<Segment, 'wireGuardIP' | 'wireGuard32' | 'allowedIPs'> {
  allowedIPs: CIDR[];
  wireGuardIP: IP | null;
  wireGuard32: CIDR | null;
  /** The members, for the memo's check; empty in one-shot full-granularity plans (unused there). */
  members: readonly MeshNode[];
  /** The members' discovered endpoints, in member order (most nodes have none). */
  readonly discovered: readonly (readonly [string, UDPAddr])[];
  last: { ip: IP; seg: Segment } | null;
}

const baseMemo = new WeakMap<MeshNode, SegmentBase>();

function sameMembers(a: readonly MeshNode[], b: readonly MeshNode[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function segmentBase(location: string, members: readonly MeshNode[], memo: boolean): SegmentBase {
  const cached = memo ? baseMemo.get(members[0]) : undefined;
  if (cached && cached.location === location && sameMembers(cached.members, members)) return cached;
  const base = members.length === 1 ? loneBase(location, members[0], members, memo) : groupBase(location, members, memo);
  if (memo) {
    base.members = [...members];
    baseMemo.set(members[0], base);
  }
  return base;
}

const NO_DISCOVERED: readonly (readonly [string, UDPAddr])[] = Object.freeze([]);
const NO_MEMBERS: readonly MeshNode[] = Object.freeze([]);
// A lone segment's lists when its node has no private IP / no CNI compatibility IP (most have none).
const NO_IPS: readonly IP[] = Object.freeze([]);
const NO_CNI_IP: readonly (CIDR | null)[] = Object.freeze([null]);

/**
 * A one-node segment (every segment in full granularity): the same fields as groupBase builds,
 * in arrays of their exact size, sharing what can be shared with the record (in full granularity
 * these are the planner's largest allocation).
 */
function loneBase(location: string, m: MeshNode, members: readonly MeshNode[], memo: boolean): SegmentBase {
  const own = m.internalIP ? m.internal32 ?? oneAddress(m.internalIP.ip, memo) : null;
  const allowedIPs: CIDR[] = m.subnet ? (own ? [m.subnet, own] : [m.subnet]) : own ? [own] : [];
  // One node's allowed-location IPs, de-duplicated and sorted as groupBase does; a list of zero
  // or one is already both, and is shared (segments reassign the list, never mutate it).
  let allowedLocationIPs: readonly CIDR[] = m.allowedLocationIPs;
  if (allowedLocationIPs.length > 1) {
    const seen = new Set<string>();
    allowedLocationIPs = allowedLocationIPs.filter((a) => !seen.has(a.s) && !!seen.add(a.s)).sort((a, b) => byText(a.s, b.s));
  }
  return {
    location, members, leader: 0, hostnames: [m.name], endpoint: m.endpoint, key: m.key ?? '', persistentKeepalive: m.persistentKeepalive,
    allowedIPs, allowedLocationIPs, cidrs: [m.subnet], privateIPs: m.internalIP ? [m.internalIP.ip] : NO_IPS,
    cniCompatibilityIPs: m.cniCompatibilityIP ? [m.cniCompatibilityIP] : NO_CNI_IP, wireGuardIP: null, wireGuard32: null, memo: null,
    discovered: m.discoveredEndpoints?.size ? [...m.discoveredEndpoints] : NO_DISCOVERED, last: null,
  };
}

function groupBase(location: string, members: readonly MeshNode[], memo: boolean): SegmentBase {
  const leader = findLeader(members);
  const allowedIPs: CIDR[] = [];
  let alipSeen: Set<string> | null = null; // most segments have no allowed-location IPs
  const allowedLocationIPs: CIDR[] = [];
  const privateIPs: IP[] = [];
  const cidrs: (CIDR | null)[] = [];
  const cniCompatibilityIPs: (CIDR | null)[] = [];
  const hostnames: string[] = [];
  const discovered: [string, UDPAddr][] = [];
  for (const m of members) {
    if (m.discoveredEndpoints) for (const e of m.discoveredEndpoints) discovered.push(e);
    if (m.subnet) allowedIPs.push(m.subnet);
    if (m.internalIP) {
      allowedIPs.push(m.internal32 ?? oneAddress(m.internalIP.ip, memo));
      privateIPs.push(m.internalIP.ip);
    }
    for (const a of m.allowedLocationIPs) {
      alipSeen ??= new Set();
      if (alipSeen.has(a.s)) continue;
      alipSeen.add(a.s);
      allowedLocationIPs.push(a);
    }
    cniCompatibilityIPs.push(m.cniCompatibilityIP);
    cidrs.push(m.subnet);
    hostnames.push(m.name);
  }
  if (allowedLocationIPs.length > 1) allowedLocationIPs.sort((a, b) => byText(a.s, b.s));
  const l = members[leader];
  return {
    location, members, leader, hostnames, endpoint: l.endpoint, key: l.key ?? '', persistentKeepalive: l.persistentKeepalive,
    allowedIPs, allowedLocationIPs, cidrs, privateIPs, cniCompatibilityIPs, wireGuardIP: null, wireGuard32: null, memo: null, discovered, last: null,
  };
}

// The k-th segment always gets the subnet's (k+1)-th address: the same IP objects, and their
// one-address CIDRs, are handed out plan after plan, so that what is derived from them downstream
// is reused (see oneAddress), and a one-shot plan does not build 10,000 of each twice.
let allocated: { subnet: string; ips: IP[]; ones: CIDR[]; exhausted: boolean } = { subnet: '', ips: [], ones: [], exhausted: false };

function allocation(subnet: CIDR, count: number): { readonly ips: readonly (IP | undefined)[]; readonly ones: readonly CIDR[] } {
  if (allocated.subnet !== subnet.s) allocated = { subnet: subnet.s, ips: [], ones: [], exhausted: false };
  const a = allocated;
  while (a.ips.length < count && !a.exhausted) {
    const next = nextIP(a.ips.length ? a.ips[a.ips.length - 1] : subnet.ip, subnet);
    if (next) {
      a.ips.push(next);
      a.ones.push(hostCIDR(next));
    } else a.exhausted = true;
  }
  return a;
}

/** Base `b` with its WireGuard IP: the segment of the last plan when nothing moved (memo only). */
function segmentWithIP(b: SegmentBase, ip: IP, one: CIDR, memo: boolean): Segment {
  const filtered = b.allowedLocationIPs.length > 0;
  if (!filtered && b.last && b.last.ip === ip) return b.last.seg; // only ever set with memoisation on
  if (!memo) {
    // A one-shot plan keeps no base: the base becomes the segment, one object instead of two
    // per segment. Later bases keep their allowed IPs without a WireGuard IP until their turn,
    // which is what the allowed-location-IP filter reads (as Kilo's loop does).
    b.allowedIPs = withLast(b.allowedIPs, one);
    b.wireGuardIP = ip;
    b.wireGuard32 = one;
    return b as Segment;
  }
  const seg: Segment = {
    location: b.location, leader: b.leader, hostnames: b.hostnames, endpoint: b.endpoint, key: b.key, persistentKeepalive: b.persistentKeepalive,
    allowedIPs: withLast(b.allowedIPs, one), allowedLocationIPs: b.allowedLocationIPs,
    cidrs: b.cidrs, privateIPs: b.privateIPs, cniCompatibilityIPs: b.cniCompatibilityIPs, wireGuardIP: ip, wireGuard32: one,
    memo: newSegmentMemo(),
  };
  // Segments with allowed-location IPs depend on the others (the filter): never reused.
  if (!filtered) b.last = { ip, seg };
  return seg;
}

/**
 * For incremental re-plans (replan.ts): the memoised base of a segment of (name-sorted, ready)
 * `members`, and base `b` as the k-th segment of subnet `subnet`'s allocation (null when the
 * subnet has no k-th address). The same functions newTopology builds its segments with.
 */
export function memoSegmentBase(location: string, members: readonly MeshNode[]): SegmentBase {
  return segmentBase(location, members, true);
}

export function allocatedSegment(b: SegmentBase, k: number, subnet: CIDR): Segment | null {
  const { ips, ones } = allocation(subnet, k + 1);
  const ip = ips[k];
  return ip ? segmentWithIP(b, ip, ones[k], true) : null;
}

/** The subnet's WireGuard IPs, at least the first `count` (fewer when it runs out; maybe more). */
export function allocatedIPs(subnet: CIDR, count: number): readonly IP[] {
  return allocation(subnet, count).ips as readonly IP[];
}

/** `xs` and then `x`, in an array of exactly that size (one grown by push would have room for 17). */
function withLast<T>(xs: readonly T[], x: T): T[] {
  const out: T[] = new Array(xs.length + 1);
  for (let i = 0; i < xs.length; i++) out[i] = xs[i];
  out[xs.length] = x;
  return out;
}

/** The records, one per name (the last one wins, as in Kilo's map), in the given order otherwise. */
function uniqueByName(nodes: readonly MeshNode[]): readonly MeshNode[] {
  // The planner passes name-sorted records (parseCluster, the agent's replica): a linear check
  // then proves the names unique, without a 5,000-entry map on every plan.
  let sorted = true;
  for (let i = 1; i < nodes.length && sorted; i++) sorted = nodes[i - 1].name < nodes[i].name;
  if (sorted) return nodes;
  const byName = new Map<string, MeshNode>();
  for (const n of nodes) byName.set(n.name, n);
  return [...byName.values()];
}

function sortedByLocation(bases: SegmentBase[]): SegmentBase[] {
  for (let i = 1; i < bases.length; i++) {
    if (bases[i - 1].location > bases[i].location) return bases.sort((a, b) => byText(a.location, b.location));
  }
  return bases;
}

/** The segment bases in location order. */
function segmentBases(nodes: readonly MeshNode[], granularity: Granularity, memo: boolean): SegmentBase[] {
  const bases: SegmentBase[] = [];
  const push = (base: SegmentBase) => bases.push(base);
  const add = (location: string, members: MeshNode[]) => {
    if (members.length > 1) members.sort((a, b) => byText(a.name, b.name));
    push(segmentBase(location, members, memo));
  };
  if (granularity === 'full' || granularity === 'cross') {
    // Every node is its own segment (segmentKey is its node key): no grouping needed, and
    // without memoisation no members list either.
    if (memo) for (const n of nodes) add(n.nodeKey, [n]);
    else for (const n of nodes) push(loneBase(n.nodeKey, n, NO_MEMBERS, false));
  } else {
    const groups = new Map<string, MeshNode[]>();
    for (const n of nodes) {
      const k = segmentKey(n, granularity);
      let g = groups.get(k);
      if (!g) groups.set(k, (g = []));
      g.push(n);
    }
    for (const [location, members] of groups) add(location, members);
  }
  // Node keys sort as the names do, so in full granularity this is a linear check.
  return sortedByLocation(bases);
}

/**
 * The hostname-independent part of a topology (design §5): segments, leaders, WireGuard IPs, the
 * allowed-location-IP filter and de-duplicated Peers are the same from every node. The fleet
 * planner (loadtest/fleet) computes it once and takes one view per node; newTopology is one view.
 */
export interface Mesh {
  readonly granularity: Granularity;
  readonly subnet: CIDR;
  /** The ready records, one per name. */
  readonly nodes: readonly MeshNode[];
  readonly segments: Segment[];
  readonly peers: MeshPeer[];
  /** The segments' discovered endpoints, first occurrence in segment order winning. */
  readonly discovered: Map<string, UDPAddr>;
  /** Set when the allocation ran out of addresses: every view fails with it. */
  readonly error: string | null;
  /** Segment index by location, built by the second view (one plan needs no map). */
  bySegment: Map<string, number> | null;
  views: number;
  /** Cross granularity: the segment keys of each location group, built by the first view. */
  crossGroups?: Map<string, Set<string>>;
}

export type MeshInput = Omit<TopologyInput, 'hostname' | 'port' | 'localDiscoveredEndpoints'>;

export function newMesh(input: MeshInput): Mesh {
  const memo = input.memo === true;
  const nodes = uniqueByName(input.nodes);
  const bases = segmentBases(nodes, input.granularity, memo);
  const peers = deduplicatePeerIPs([...input.peers].sort((a, b) => byText(a.name, b.name)));
  const discovered = new Map<string, UDPAddr>();
  const { ips, ones } = allocation(input.subnet, bases.length);
  const mesh: Mesh = { granularity: input.granularity, subnet: input.subnet, nodes, segments: [], peers, discovered, error: null, bySegment: null, views: 0 };
  // Allowed-location IPs are filtered for all segments at once (location-ips.ts), before the
  // allocation loop, which gives the same result as Kilo's filter inside it (design §5.8).
  // Without enough addresses the loop below fails before using it.
  let alips: (readonly CIDR[] | null)[] | null = null;
  if (ips.length >= bases.length && bases.some((b) => b.allowedLocationIPs.length > 0)) {
    alips = filterAllowedLocationIPs(bases, ips as readonly IP[], peers);
  }
  for (let k = 0; k < bases.length; k++) {
    // Quirk (design §16.7): Go hands out one invalid address before failing; we fail at once.
    const ip = ips[k];
    if (!ip) return { ...mesh, error: 'failed to allocate an IP address; ran out of IP addresses' };
    const b = bases[k];
    const filtered = b.allowedLocationIPs.length > 0;
    const seg = segmentWithIP(b, ip, ones[k], memo);
    mesh.segments.push(seg);
    // Index loops over the per-segment lists: for-of over the shared frozen empty ones allocated
    // an iterator per segment.
    for (let i = 0; i < b.discovered.length; i++) {
      const [key, addr] = b.discovered[i];
      if (!discovered.has(key)) discovered.set(key, addr);
    }
    if (filtered && alips) seg.allowedLocationIPs = alips[k]!;
  }
  return mesh;
}

function localSegment(mesh: Mesh, location: string): Segment | undefined {
  if (++mesh.views > 1 && !mesh.bySegment) mesh.bySegment = new Map(mesh.segments.map((s, i) => [s.location, i]));
  if (!mesh.bySegment) return mesh.segments.find((s) => s.location === location);
  const i = mesh.bySegment.get(location);
  return i === undefined ? undefined : mesh.segments[i];
}

/** The topology as `hostname` sees the mesh: its segment, leadership, WireGuard CIDR and endpoints. */
export function meshView(mesh: Mesh, input: Pick<TopologyInput, 'hostname' | 'port' | 'localDiscoveredEndpoints'>): Result<Topology> {
  const local = mesh.nodes.find((n) => n.name === input.hostname);
  if (!local) return { ok: false, error: `node ${JSON.stringify(input.hostname)} is not among the ready nodes` };
  if (mesh.error) return { ok: false, error: mesh.error };
  const localLocation = segmentKey(local, mesh.granularity);
  const own = localSegment(mesh, localLocation);
  const isLeader = own !== undefined && own.hostnames[own.leader] === input.hostname;
  // The local node's own discovered endpoints win over the segments' (most nodes have none).
  let discovered = mesh.discovered;
  if (input.localDiscoveredEndpoints?.size) {
    discovered = new Map(input.localDiscoveredEndpoints);
    for (const [key, addr] of mesh.discovered) if (!discovered.has(key)) discovered.set(key, addr);
  } else discovered = new Map(discovered);
  const cross = mesh.granularity === 'cross' ? crossView(mesh, local) : null;
  return {
    ok: true,
    value: {
      leader: isLeader,
      location: localLocation,
      privateIP: local.internalIP,
      subnet: local.subnet,
      wireGuardCIDR: isLeader && own ? cidr(own.wireGuardIP, mesh.subnet.bits) : mesh.subnet,
      segments: mesh.segments,
      peers: mesh.peers,
      discoveredEndpoints: discovered,
      port: input.port,
      persistentKeepalive: local.persistentKeepalive,
      ...cross,
    },
  };
}

/** The local node's location group in a cross mesh (design §19.1); the groups are built once per mesh. */
function crossView(mesh: Mesh, local: MeshNode): Required<Pick<Topology, 'nodeLocation' | 'sameLocation' | 'crossGroups'>> {
  if (!mesh.crossGroups) {
    const groups = new Map<string, Set<string>>();
    for (const n of mesh.nodes) {
      const g = crossLocation(n);
      if (g === null) continue;
      let members = groups.get(g);
      if (!members) groups.set(g, (members = new Set()));
      members.add(n.nodeKey);
    }
    mesh.crossGroups = groups;
  }
  const nodeLocation = crossLocation(local);
  return { nodeLocation, sameLocation: nodeLocation === null ? null : mesh.crossGroups.get(nodeLocation) ?? null, crossGroups: mesh.crossGroups };
}

/** One node's topology: the view of a mesh built for it alone. */
export function newTopology(input: TopologyInput): Result<Topology> {
  return meshView(newMesh(input), input);
}

export function segmentJSON(s: Segment): SegmentJSON {
  return {
    location: s.location,
    leader: s.leader,
    hostnames: s.hostnames,
    endpoint: endpointJSON(s.endpoint),
    key: s.key,
    persistentKeepalive: s.persistentKeepalive,
    allowedIPs: s.allowedIPs.map((c) => c.s),
    cidrs: s.cidrs.map((c) => c?.s ?? null),
    privateIPs: s.privateIPs.map((ip) => ip.s),
    wireGuardIP: s.wireGuardIP.s,
    allowedLocationIPs: s.allowedLocationIPs.length ? s.allowedLocationIPs.map((c) => c.s) : NO_TEXT,
  };
}
