// The fleet check: is the mesh as a whole right? Pure functions over the plans of every node.
//
// Every ready node's pod CIDR must be reachable from every other ready node and from every Peer
// by following, hop by hop, what each node would program: its main routing table (longest
// prefix match) and, for routes through the WireGuard interface, its cryptokey table (longest
// prefix match over the peers' allowed IPs). The receiving end of a WireGuard hop must accept
// the packet's source address from the sender (WireGuard drops packets whose source is not in
// the sending peer's allowed IPs), so an asymmetric peering fails the walk too. Walks end at
// the destination node, or fail on a missing route (blackhole), a hop to a node that is not
// ready or unknown, a hop to a Peer, or a node visited twice (loop).
//
// Besides reachability: WireGuard peering between leaders is symmetric, and no allowed IP is
// claimed twice on one interface; in cross granularity, no WireGuard hop inside a location. compareKernel() compares a real agent's kernel to its plan.
//
// Scope: IPv4 destinations and sources (the simulator's clusters are IPv4); IPv6 pod CIDRs are
// counted as unchecked, never silently passed. A dual-stack fleet's IPv6 half is walked by this
// same verifyFleet over IPv6 destinations compiled in verify6.ts (design §20). Only the main routing table is walked: Kilo's
// table 1107 and its rules carry encapsulated traffic to private IPs, not pod traffic.
//
// Per node, compileNode() turns a plan into two typed arrays indexed by destination (every node's
// pod CIDR, then every Peer's first allowed IP): the routing decision and the cryptokey owner.
// That keeps a 5,000-node fleet at 2 × 5,100 small integers per node, small enough to move
// between threads, where 5,000 plans of 5,000 routes each would not fit in memory.
import type { PlanJSON } from '../../plan/types.js';
import { canonicalEndpoint, type DeviceState } from '../../kernel/uapi.js';
import { normalizeRule, ruleKey as kRuleKey, sameRoute, type KRoute, type KRule } from '../../kernel/ip-format.js';
import { desiredRouteMap } from '../../diff/routes.js';
import { isKiloRuleKey, type SavedTable } from '../../kernel/iptables-save.js';
import type { SavedSet } from '../../kernel/ipset.js';
import { setLayoutOf, type DesiredSets } from '../../diff/ipsets.js';
import { buildDesired } from '../../diff/iptables.js';
import { KG_PROTO } from '../../kernel/owner.js';

/** Routing decision codes (non-negative values are the next hop's node index). */
export const NO_ROUTE = -1;
export const VIA_WG = -2;
export const LOCAL = -3;
/** A route through a gateway that is no node's private IP (or no device at all). */
export const UNKNOWN_GW = -4;
export const UNCHECKED = -5;
/** Cryptokey owner codes. */
export const NO_PEER = -1;
export const UNKNOWN_KEY = -4;

/** What every compiler and verifier must agree on: the fleet's nodes and Peers, by index. */
export interface FleetIndex {
  /** Node names in name order; index = node index. */
  names: string[];
  ready: boolean[];
  /** Whether the node's own plan makes it a leader (fill in after planning; only verifyFleet reads it). */
  leader: boolean[];
  /** Node public keys ('' when none). */
  keys: string[];
  /** Pod CIDR text per node (null when none). */
  podCIDRs: (string | null)[];
  /** Private IP text per node (no prefix), for gateways. */
  privateIPs: (string | null)[];
  /** Ready Peers: name, public key, allowed IPs. Peer p has index names.length + p. */
  peers: { name: string; publicKey: string; allowedIPs: string[] }[];
  /** The WireGuard interface name (--interface). */
  kiloIface: string;
  /**
   * Cross granularity only (design §19.1): node i's location group (-1: none). A WireGuard hop
   * between two nodes of one group fails the walk ('wireguard-inside-location').
   */
  groups?: readonly number[];
  /**
   * Cross dual stack, the IPv6 walk only (design §20.3): node i has no IPv6 internal IP, so the
   * nodes of its location group and it do not reach each other in IPv6; those pairs are unchecked.
   */
  groupGateless?: readonly boolean[];
}

/** Per-node lookups derived from a FleetIndex (rebuilt in each thread: Maps clone poorly). */
export interface IndexLookups {
  /** Destination addresses (uint32; -1 = not IPv4 or absent): nodes, then Peers. */
  addr: Float64Array;
  byName: Map<string, number>;
  /** Public key → node index (of a ready node) or names.length + p (a Peer). */
  byKey: Map<string, number>;
  /** Private IP → node index. */
  byPrivateIP: Map<string, number>;
  /** Keys held by two nodes or Peers. */
  sharedKeys: string[];
  /** coverOf's answer, reused (read it before the next call). */
  cover: Cover;
  /** Who claimed an allowed IP in compile number `stamp` (kept across compiles: no map built per node). */
  claims: Map<string, { stamp: number; by: string }>;
  stamp: number;
  /** Per prefix length: masked address → destinations (built on first use of that length). */
  byPrefix: (Map<number, number[]> | undefined)[];
}

/** An IPv4 prefix and the fleet's destinations inside it. */
export interface Cover {
  bits: number;
  /** The prefix as the kernel holds it (`a.b.c.d/bits`, host bits cleared), for duplicate claims. */
  key: string;
  dests: readonly number[];
}

export function parseV4(s: string): number {
  // By hand: 25 million route and allowed-IP texts at 5,000 nodes; a regex was the hot spot.
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + part;
}

/** An IPv4 CIDR as [network, bits], or null for IPv6 or malformed text. */
export function parseV4CIDR(s: string): [number, number] | null {
  const i = s.indexOf('/');
  const a = parseV4(i < 0 ? s : s.slice(0, i));
  if (a < 0) return null;
  let bits = 32;
  if (i >= 0) {
    const t = s.slice(i + 1);
    bits = t.length > 0 && t.length <= 2 ? Number(t) : NaN;
  }
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) return null;
  return [maskOf(a, bits), bits];
}

function maskOf(a: number, bits: number): number {
  return bits === 0 ? 0 : (a & (0xffffffff << (32 - bits))) >>> 0;
}

export function lookups(ix: FleetIndex): IndexLookups {
  const N = ix.names.length;
  const addr = new Float64Array(N + ix.peers.length).fill(-1);
  const byName = new Map<string, number>();
  const byKey = new Map<string, number>();
  const byPrivateIP = new Map<string, number>();
  const sharedKeys: string[] = [];
  const claim = (k: string, i: number) => {
    if (!k) return;
    if (byKey.has(k)) sharedKeys.push(k);
    else byKey.set(k, i);
  };
  ix.names.forEach((n, i) => {
    byName.set(n, i);
    const c = ix.podCIDRs[i] ? parseV4CIDR(ix.podCIDRs[i]!) : null;
    // A pod's address: the first host of the CIDR (the CNI bridge holds it on the node).
    if (c && ix.ready[i]) addr[i] = c[1] >= 31 ? c[0] : c[0] + 1;
    if (ix.privateIPs[i]) byPrivateIP.set(ix.privateIPs[i]!, i);
  });
  // A segment is keyed by its leader; a non-leader's key in a table is caught by the walk.
  ix.names.forEach((_, i) => ix.ready[i] && claim(ix.keys[i], i));
  ix.peers.forEach((p, j) => {
    claim(p.publicKey, N + j);
    const c = p.allowedIPs.length ? parseV4CIDR(p.allowedIPs[0]) : null;
    if (c) addr[N + j] = c[1] >= 31 ? c[0] : c[0] + 1;
  });
  return { addr, byName, byKey, byPrivateIP, sharedKeys, cover: { bits: 0, key: '', dests: [] }, byPrefix: [], claims: new Map(), stamp: 0 };
}

const NO_DESTS: readonly number[] = Object.freeze([]);

/**
 * The destinations an IPv4 prefix covers (null for IPv6 or malformed text), memoised by text: the
 * same route and allowed-IP texts recur in every node's plan, so each is parsed once per thread,
 * and compiling a plan is one lookup per route instead of a prefix table per node.
 */
/**
 * The destinations an IPv4 prefix covers (null for IPv6 or malformed text). Parsed by hand into
 * a reused object, without allocating: a 5,000-node plan has 10,000 route and allowed-IP texts,
 * many of them built fresh per plan, and looking those up by text cost more than parsing them.
 */
export function coverOf(lk: IndexLookups, text: string): Cover | null {
  canonical = false;
  const p = fastV4CIDR(text) ?? parseV4CIDR(text);
  if (p === null) return null;
  const c = coverOfPrefix(lk, p[0], p[1]);
  // The text itself when it is the canonical form (the usual case: no new string per claim).
  c.key = canonical ? text : `${p[0] >>> 24}.${(p[0] >>> 16) & 255}.${(p[0] >>> 8) & 255}.${p[0] & 255}/${p[1]}`;
  return c;
}

const parsed: [number, number] = [0, 0];
/** Whether the text fastV4CIDR last parsed is `a.b.c.d/bits` as the kernel prints it (no host bits, no leading zeros). */
let canonical = false;

/** parseV4CIDR for canonical text, into a reused pair; null for anything else (parseV4CIDR decides). */
function fastV4CIDR(text: string): [number, number] | null {
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  let i = 0;
  let zeros = false;
  for (; i < text.length; i++) {
    const ch = text.charCodeAt(i);
    if (ch >= 48 && ch <= 57) {
      if (digits === 1 && part === 0) zeros = true;
      part = part * 10 + (ch - 48);
      if (++digits > 3 || part > 255) return null;
    } else if (ch === 46 && digits > 0 && dots < 3) {
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else if (ch === 47) break;
    else return null;
  }
  if (dots !== 3 || digits === 0) return null;
  n = n * 256 + part;
  let bits = 32;
  if (i < text.length) {
    const len = text.length - i - 1;
    if (len < 1 || len > 2) return null;
    if (len === 2 && text.charCodeAt(i + 1) === 48) zeros = true;
    bits = 0;
    for (let k = i + 1; k < text.length; k++) {
      const ch = text.charCodeAt(k);
      if (ch < 48 || ch > 57) return null;
      bits = bits * 10 + (ch - 48);
    }
    if (bits > 32) return null;
  }
  parsed[0] = maskOf(n, bits);
  parsed[1] = bits;
  canonical = !zeros && i < text.length && parsed[0] === n;
  return parsed;
}

function coverOfPrefix(lk: IndexLookups, net: number, bits: number): Cover {
  const c = lk.cover;
  let m = lk.byPrefix[bits];
  if (!m) {
    m = lk.byPrefix[bits] = new Map();
    for (let j = 0; j < lk.addr.length; j++) {
      if (lk.addr[j] < 0) continue;
      const k = maskOf(lk.addr[j], bits);
      const l = m.get(k);
      if (l) l.push(j);
      else m.set(k, [j]);
    }
  }
  c.bits = bits;
  c.dests = m.get(net) ?? NO_DESTS;
  return c;
}

/** One node's (or Peer's) forwarding, compiled against the fleet's destinations. */
export interface CompiledNode {
  /** Node index, or names.length + p for a Peer. */
  index: number;
  /** Per destination: the next hop's node index, or NO_ROUTE, VIA_WG, LOCAL, UNKNOWN_GW, UNCHECKED. */
  next: Int32Array | Int16Array;
  /** Per destination (or source): the WireGuard peer owning the address (index), NO_PEER or UNKNOWN_KEY. */
  wgOwner: Int32Array | Int16Array;
  /** Node/Peer indices of this node's WireGuard peers (UNKNOWN_KEY for a key nobody holds). */
  wgPeers: Int32Array;
  /** Allowed IPs claimed by two peers of this interface: "cidr: peerA, peerB". */
  duplicates: string[];
}

/** The parts of a plan the fleet check reads (PlanJSON has them all). */
export type PlanForCheck = Pick<PlanJSON, 'hostname' | 'routes'> & { wireguard: Pick<PlanJSON['wireguard'], 'applied' | 'peers'> };

/** Shared memory: the fleet planner's workers verify destination ranges over every node's arrays without copies. */
function newArray(n: number, size: number): Int32Array | Int16Array {
  return size < 32_000 ? new Int16Array(new SharedArrayBuffer(2 * n)) : new Int32Array(new SharedArrayBuffer(4 * n));
}

function compileWG(ix: FleetIndex, lk: IndexLookups, index: number, peers: readonly { publicKey: string; allowedIPs: readonly string[] }[], name: string): Omit<CompiledNode, 'next'> {
  const D = lk.addr.length;
  const stamp = ++lk.stamp;
  const duplicates: string[] = [];
  const wgPeers: number[] = [];
  const wgOwner = newArray(D, D + ix.names.length).fill(NO_PEER);
  // Longest prefix per destination; of equal prefixes the first claim holds (as the kernel keeps one).
  const best = new Int8Array(D).fill(-1);
  for (const p of peers) {
    const owner = lk.byKey.get(p.publicKey) ?? UNKNOWN_KEY;
    wgPeers.push(owner);
    for (const a of p.allowedIPs) {
      const c = coverOf(lk, a);
      // The kernel masks allowed IPs, so 10.0.0.1/24 and 10.0.0.0/24 are one claim.
      const key = c ? c.key : a.toLowerCase();
      const prev = lk.claims.get(key);
      if (prev === undefined) lk.claims.set(key, { stamp, by: p.publicKey });
      else if (prev.stamp === stamp) duplicates.push(`${name}: allowed IP ${a} claimed by ${prev.by} and ${p.publicKey}`);
      else {
        prev.stamp = stamp;
        prev.by = p.publicKey;
      }
      if (!c) continue;
      for (let i = 0; i < c.dests.length; i++) {
        const j = c.dests[i];
        if (c.bits > best[j]) {
          best[j] = c.bits;
          wgOwner[j] = owner;
        }
      }
    }
  }
  // Shared memory too: in full granularity every node has 5,000 peers, which each verify task copied.
  const shared = new Int32Array(new SharedArrayBuffer(4 * wgPeers.length));
  shared.set(wgPeers);
  return { index, wgOwner, wgPeers: shared, duplicates };
}

type PlanRoute = PlanForCheck['routes'][number];

/** A node's main routing table compiled: per destination the winning route's index, prefix length and decision. */
export interface RouteTable {
  routes: readonly PlanRoute[];
  winner: Int32Array;
  bits: Int8Array;
  decision: Int32Array;
}

function decide(ix: FleetIndex, lk: IndexLookups, r: PlanRoute): number {
  return r.dev === ix.kiloIface ? VIA_WG : r.gw !== null ? (lk.byPrivateIP.get(r.gw) ?? UNKNOWN_GW) : UNKNOWN_GW;
}

const inMain = (r: PlanRoute): boolean => r.table === null || r.table === 254;

/** Longest prefix per destination over the main table; of equal prefixes the first route holds (the kernel refuses the second). */
export function routeTable(ix: FleetIndex, lk: IndexLookups, routes: readonly PlanRoute[]): RouteTable {
  const D = lk.addr.length;
  const t: RouteTable = { routes, winner: new Int32Array(D).fill(-1), bits: new Int8Array(D).fill(-1), decision: new Int32Array(D).fill(NO_ROUTE) };
  for (let k = 0; k < routes.length; k++) {
    const r = routes[k];
    if (!inMain(r)) continue;
    const c = coverOf(lk, r.dst);
    if (!c) continue;
    let decision = 0;
    let decided = false;
    for (let i = 0; i < c.dests.length; i++) {
      const j = c.dests[i];
      if (c.bits <= t.bits[j]) continue;
      if (!decided) {
        decision = decide(ix, lk, r);
        decided = true;
      }
      t.bits[j] = c.bits;
      t.winner[j] = k;
      t.decision[j] = decision;
    }
  }
  return t;
}

/** What compiling reads of a route: two routes alike here compile alike. */
const alike = (a: PlanRoute, b: PlanRoute): boolean => a === b || (a.dst === b.dst && a.gw === b.gw && a.dev === b.dev && a.table === b.table);

/** At most this many routes in or out for a table to be compiled from another. */
const MAX_EDITS = 16;

/**
 * The decisions of `routes` from `base`'s table, when `routes` is `base.routes` with a few routes
 * taken out and put in (the non-leaders of one location differ in their own routes): the common
 * routes keep their order, so each destination's winner is base's unless a removed route won it
 * or an added route beats it. Null (compile in full) when they differ more, or when a removed
 * route won a destination other than `me` (the node compiled, LOCAL anyway) or an added route
 * ties a winner. Destination `me`'s decision is then not its routes' and must be overridden.
 */
export function decisionsFrom(lk: IndexLookups, ix: FleetIndex, base: RouteTable, routes: readonly PlanRoute[], me: number): Int32Array | null {
  const R = base.routes;
  const removed: number[] = [];
  const added: number[] = [];
  let i = 0;
  let j = 0;
  while (i < R.length || j < routes.length) {
    if (i < R.length && j < routes.length && alike(R[i], routes[j])) {
      i++;
      j++;
      continue;
    }
    // The nearest point where both lists agree again: a routes out of base, b in.
    let step = -1;
    for (let s = 1; s <= MAX_EDITS && step < 0; s++) {
      for (let a = 0; a <= s; a++) {
        if (i + a < R.length && j + s - a < routes.length && alike(R[i + a], routes[j + s - a])) {
          step = a;
          break;
        }
        if (i + a === R.length && j + s - a === routes.length) {
          step = a;
          break;
        }
      }
      if (step >= 0) {
        for (let k = 0; k < step; k++) removed.push(i + k);
        for (let k = 0; k < s - step; k++) added.push(j + k);
        i = Math.min(R.length, i + step);
        j = Math.min(routes.length, j + s - step);
      }
    }
    if (step < 0 || removed.length + added.length > MAX_EDITS) return null;
  }
  for (const k of removed) {
    const c = inMain(R[k]) ? coverOf(lk, R[k].dst) : null;
    // The node itself is LOCAL whatever its routes say (its own routes are the ones left out).
    if (c) for (let x = 0; x < c.dests.length; x++) if (base.winner[c.dests[x]] === k && c.dests[x] !== me) return null;
  }
  const decision = base.decision.slice();
  const bits = base.bits.slice();
  for (const k of added) {
    const r = routes[k];
    const c = inMain(r) ? coverOf(lk, r.dst) : null;
    if (!c) continue;
    for (let x = 0; x < c.dests.length; x++) {
      const d = c.dests[x];
      if (c.bits === bits[d]) return null;
      if (c.bits < bits[d]) continue;
      bits[d] = c.bits;
      decision[d] = decide(ix, lk, r);
    }
  }
  return decision;
}

/**
 * Compiles one node's plan: per destination, the longest-prefix route of its main table, and the
 * WireGuard peer owning it. `like`: a table to compile from by difference (decisionsFrom), e.g. of
 * another node of the same location; when it has none, the node's own table is kept there.
 */
export function compileNode(ix: FleetIndex, lk: IndexLookups, plan: PlanForCheck, like?: { base: RouteTable | null }): CompiledNode {
  // The plan is read once, here: plans come in many object shapes, and a shape check deeper in
  // this (inlined) function failed and deoptimised it on most nodes of a 5,000-node fleet.
  const { hostname, routes, wireguard } = plan;
  const peers = wireguard.applied ? wireguard.peers : [];
  const me = lk.byName.get(hostname);
  if (me === undefined) throw new Error(`plan for ${hostname}: not a node of the fleet`);
  const D = lk.addr.length;
  let decision = like?.base ? decisionsFrom(lk, ix, like.base, routes, me) : null;
  if (!decision) {
    const t = routeTable(ix, lk, routes);
    if (like && !like.base) like.base = t;
    decision = t.decision;
  }
  const next = newArray(D, D + ix.names.length);
  for (let j = 0; j < D; j++) next[j] = lk.addr[j] < 0 ? UNCHECKED : decision[j];
  if (lk.addr[me] >= 0) next[me] = LOCAL;
  const w = compileWG(ix, lk, me, peers, hostname);
  return { ...w, next };
}

/** Compiles a Peer's configuration (kgctl showconf peer): everything goes through WireGuard. */
export function compilePeer(ix: FleetIndex, lk: IndexLookups, p: number, conf: readonly { publicKey: string; allowedIPs: readonly string[] }[]): CompiledNode {
  const N = ix.names.length;
  const w = compileWG(ix, lk, N + p, conf, `peer ${ix.peers[p].name}`);
  const next = newArray(lk.addr.length, lk.addr.length + N).fill(VIA_WG);
  return { ...w, next };
}

export interface VerifyReport {
  ok: boolean;
  readyNodes: number;
  peers: number;
  /** Source → destination walks made, and how many reached their destination. */
  paths: number;
  reached: number;
  /** Destinations not checked (IPv6 or no pod CIDR), plus the pairs skipped by `groupGateless`. */
  unchecked: number;
  /** Failures by kind, and the first few of each. */
  failures: Record<string, number>;
  examples: string[];
  hops: { max: number; mean: number };
  ms: number;
}

const MAX_EXAMPLES = 20;

/**
 * Verifies the fleet: `nodes[i]` is node i's compiled plan (null if not planned), `peers[p]` the
 * compiled configuration of Peer p.
 */
export function verifyFleet(
  ix: FleetIndex, lk: IndexLookups, nodes: readonly (CompiledNode | null)[], peers: readonly CompiledNode[],
  /** Part of the work, for parallel verification: destinations [from, to) and whether to run the interface checks. */
  part: { from: number; to: number; interfaceChecks: boolean } = { from: 0, to: Number.MAX_SAFE_INTEGER, interfaceChecks: true },
): VerifyReport {
  const t0 = performance.now();
  const N = ix.names.length;
  const failures: Record<string, number> = {};
  const examples: string[] = [];
  const fail = (kind: string, text: string) => {
    failures[kind] = (failures[kind] ?? 0) + 1;
    if (examples.length < MAX_EXAMPLES) examples.push(`${kind}: ${text}`);
  };
  const label = (i: number) => (i >= N ? `peer ${ix.peers[i - N]?.name ?? i}` : ix.names[i] ?? String(i));
  const checks = part.interfaceChecks;
  if (checks) for (const k of lk.sharedKeys) fail('shared-key', `public key ${k} is held by two nodes or Peers`);

  const ready: number[] = [];
  for (let i = 0; i < N; i++) {
    if (!ix.ready[i]) continue;
    if (!nodes[i]) checks && fail('unplanned', `${ix.names[i]} is ready but has no plan`);
    else ready.push(i);
  }
  // Interface checks: duplicate allowed IPs, unknown keys, symmetric peering between leaders.
  const compiledAll = checks ? [...ready.map((i) => nodes[i]!), ...peers] : [];
  for (const c of compiledAll) {
    for (const d of c.duplicates) fail('duplicate-allowed-ip', d);
    if (c.wgPeers.includes(UNKNOWN_KEY)) fail('unknown-peer-key', `${label(c.index)} has a WireGuard peer whose key no ready leader or Peer holds`);
  }
  const peerSets = new Map<number, Set<number>>();
  if (checks) for (const i of ready) if (ix.leader[i]) peerSets.set(i, new Set(nodes[i]!.wgPeers));
  for (const [a, set] of peerSets) {
    for (const b of set) {
      if (b < 0 || b >= N) continue;
      const back = peerSets.get(b);
      if (!back) fail('asymmetric-peering', `${ix.names[a]} peers with ${label(b)}, which is not a ready leader`);
      else if (!back.has(a)) fail('asymmetric-peering', `${ix.names[a]} peers with ${ix.names[b]}, but ${ix.names[b]} does not peer with ${ix.names[a]}`);
    }
  }

  // Reachability: every ready node's pod address from every other ready node and every Peer.
  let paths = 0;
  let reached = 0;
  let unchecked = 0;
  let hopSum = 0;
  let hopMax = 0;
  const sources = [...ready, ...peers.map((_, p) => N + p)];
  const compiledOf = (i: number): CompiledNode | null => (i >= N ? (peers[i - N] ?? null) : (nodes[i] ?? null));
  const visited = new Int32Array(N + peers.length).fill(-1);
  let stamp = 0;
  const dsts: number[] = [];
  for (const dst of ready) {
    if (dst < part.from || dst >= part.to) continue;
    if (lk.addr[dst] < 0) unchecked++;
    else dsts.push(dst);
  }
  // Source-major: a source's rows are read in order; destination-major, every path's first hop
  // read another node's row and missed the cache (5,000 rows of 10 KB each).
  for (const src of sources) {
    for (const dst of dsts) {
      if (src === dst) continue;
      if (ix.groupGateless && src < N && ix.groups![src] >= 0 && ix.groups![src] === ix.groups![dst] && (ix.groupGateless[src] || ix.groupGateless[dst])) {
        unchecked++;
        continue;
      }
      paths++;
      stamp++;
      const srcAddrIdx = src; // a node's pod address and a Peer's first allowed IP share the index space
      let h = src;
      let hops = 0;
      let ok = false;
      for (;;) {
        if (h === dst) {
          ok = true;
          break;
        }
        if (visited[h] === stamp) {
          fail('loop', `${label(src)} → ${ix.names[dst]}: ${label(h)} visited twice`);
          break;
        }
        visited[h] = stamp;
        const c = compiledOf(h)!;
        const r = c.next[dst];
        let k: number;
        if (r === VIA_WG) {
          k = c.wgOwner[dst];
          if (k === NO_PEER || k === UNKNOWN_KEY) {
            fail('blackhole', `${label(src)} → ${ix.names[dst]}: ${label(h)} routes into WireGuard but no peer allows ${ix.podCIDRs[dst]}`);
            break;
          }
          if (k >= N) {
            fail('misroute', `${label(src)} → ${ix.names[dst]}: ${label(h)} sends it to ${label(k)}`);
            break;
          }
          if (ix.groups && h < N && ix.groups[h] >= 0 && ix.groups[h] === ix.groups[k]) {
            fail('wireguard-inside-location', `${label(src)} → ${ix.names[dst]}: ${ix.names[h]} tunnels to ${ix.names[k]} of its own location`);
            break;
          }
          const rc = nodes[k];
          if (!rc || !ix.ready[k]) {
            fail('dead-hop', `${label(src)} → ${ix.names[dst]}: ${label(h)} sends it through WireGuard to ${label(k)}, which is not ready`);
            break;
          }
          if (!ix.leader[k]) {
            fail('dead-hop', `${label(src)} → ${ix.names[dst]}: ${label(h)} sends it through WireGuard to ${ix.names[k]}, which leads no segment`);
            break;
          }
          // The receiver must attribute the packet's source to the sender, or WireGuard drops it.
          if (lk.addr[srcAddrIdx] >= 0 && rc.wgOwner[srcAddrIdx] !== h) {
            fail('source-rejected', `${label(src)} → ${ix.names[dst]}: ${ix.names[k]} drops packets from ${label(src)} arriving from ${label(h)} (allowed IPs)`);
            break;
          }
        } else if (r >= 0) {
          k = r;
          if (!nodes[k] || !ix.ready[k]) {
            fail('dead-hop', `${label(src)} → ${ix.names[dst]}: ${label(h)} routes it via ${label(k)}, which is not ready`);
            break;
          }
        } else {
          const why = r === NO_ROUTE ? 'no route' : r === UNKNOWN_GW ? 'a route through a gateway that is no node' : `decision ${r}`;
          fail('blackhole', `${label(src)} → ${ix.names[dst]}: ${label(h)} has ${why} for ${ix.podCIDRs[dst]}`);
          break;
        }
        h = k;
        hops++;
      }
      if (ok) {
        reached++;
        hopSum += hops;
        if (hops > hopMax) hopMax = hops;
      }
    }
  }
  const ok = Object.keys(failures).length === 0;
  return {
    ok, readyNodes: ready.length, peers: peers.length, paths, reached, unchecked, failures, examples,
    hops: { max: hopMax, mean: reached ? hopSum / reached : 0 }, ms: performance.now() - t0,
  };
}

/** One report from the reports of disjoint parts (destination ranges). */
export function mergeReports(parts: readonly VerifyReport[], ms: number): VerifyReport {
  const failures: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p.failures)) failures[k] = (failures[k] ?? 0) + v;
  const reached = parts.reduce((a, p) => a + p.reached, 0);
  return {
    ok: parts.every((p) => p.ok), readyNodes: parts[0]?.readyNodes ?? 0, peers: parts[0]?.peers ?? 0,
    paths: parts.reduce((a, p) => a + p.paths, 0), reached, unchecked: parts.reduce((a, p) => a + p.unchecked, 0),
    failures, examples: parts.flatMap((p) => p.examples).slice(0, MAX_EXAMPLES),
    hops: { max: Math.max(0, ...parts.map((p) => p.hops.max)), mean: reached ? parts.reduce((a, p) => a + p.hops.mean * p.reached, 0) / reached : 0 },
    ms,
  };
}

/** What a node's kernel holds, read in its network namespace (loadtest/fleet/kernel.ts). */
export interface KernelState {
  /** kg's routes (and static ones), both families (dataplane/routes.ts readRoutes). */
  routes: KRoute[];
  /** Policy rules (any table; only Kilo's table is compared). */
  rules: KRule[];
  /** The WireGuard device, or null when there is none. */
  wireguard: DeviceState | null;
  /** iptables-save output per family, parsed. */
  iptables: { ipv4: Map<string, SavedTable>; ipv6?: Map<string, SavedTable> };
  /** kg's ipsets; when it holds any, the kernel is compared with the plan in the set layout (design §8.10). */
  ipsets?: Map<string, SavedSet>;
}

/** The set layout's elements: every non-empty set holds exactly the planned elements; no other set of kg's. */
function compareSets(want: DesiredSets, have: Map<string, SavedSet>): string[] {
  const out: string[] = [];
  for (const [name, s] of want.sets) {
    const h = have.get(name);
    if (s.counts.size === 0) {
      if (h) out.push(`ipset ${name} not in the plan`);
      continue;
    }
    if (!h) {
      out.push(`ipset ${name} missing`);
      continue;
    }
    for (const e of s.counts.keys()) if (!h.elements.has(e)) out.push(`ipset ${name}: ${e} missing`);
    for (const e of h.elements) if (!s.counts.has(e)) out.push(`ipset ${name}: ${e} not in the plan`);
  }
  // (sets of a family not compared, kilo6-* when only IPv4 is, are left out)
  const prefixes = new Set([...want.sets.keys()].map((n) => n.slice(0, 6)));
  for (const name of have.keys()) if (!want.sets.has(name) && prefixes.has(name.slice(0, 6))) out.push(`ipset ${name} not in the plan`);
  return out;
}

/** Differences between a plan and a kernel (empty = the kernel holds exactly the plan). */
export function compareKernel(plan: PlanJSON, k: KernelState, o: { families?: ('ipv4' | 'ipv6')[]; kiloTable?: number } = {}): string[] {
  const out: string[] = [];
  const families = o.families ?? ['ipv4'];
  // Routes: exactly the planned set of kg's routes.
  const want = desiredRouteMap(plan.routes);
  const have = new Map<string, KRoute>(k.routes.filter((r) => r.proto === KG_PROTO).map((r) => [`${r.table}|${r.dst}`, r] as const));
  for (const [key, r] of want as Map<string, KRoute>) {
    const h = have.get(key);
    if (!h) out.push(`route ${r.dst} (table ${r.table}) missing`);
    else if (!sameRoute(h, r)) out.push(`route ${r.dst} differs: kernel via ${h.gw} dev ${h.dev}, plan via ${r.gw} dev ${r.dev}`);
  }
  for (const [key, r] of have) if (!(want as Map<string, KRoute>).has(key)) out.push(`route ${r.dst} (table ${r.table}) not in the plan`);
  // Rules: Kilo's table.
  const table = o.kiloTable ?? 1107;
  const wantRules = new Set(plan.rules.map((r) => kRuleKey(normalizeRule(r))));
  const haveRules = new Set(k.rules.filter((r) => r.table === table).map(kRuleKey));
  for (const r of wantRules) if (!haveRules.has(r)) out.push(`rule ${r} missing`);
  for (const r of haveRules) if (!wantRules.has(r)) out.push(`rule ${r} not in the plan`);
  // WireGuard: the same peers, allowed IPs and endpoints.
  if (plan.wireguard.applied) {
    if (!k.wireguard) out.push(`WireGuard device ${plan.wireguard.interface} missing`);
    else {
      const dev = k.wireguard.peers;
      const norm = (xs: readonly string[]) => xs.map((a) => { const c = parseV4CIDR(a); return c ? `${c[0]}/${c[1]}` : a.toLowerCase(); }).sort().join(',');
      for (const p of plan.wireguard.peers) {
        const d = dev.get(p.publicKey);
        if (!d) {
          out.push(`WireGuard peer ${p.publicKey} missing`);
          continue;
        }
        if (norm(d.allowedIPs) !== norm(p.allowedIPs)) out.push(`WireGuard peer ${p.publicKey}: allowed IPs ${d.allowedIPs.join(',')} ≠ plan ${p.allowedIPs.join(',')}`);
        const pe = canonicalEndpoint(p.endpoint);
        if (pe !== null && canonicalEndpoint(d.endpoint) !== pe) out.push(`WireGuard peer ${p.publicKey}: endpoint ${d.endpoint} ≠ plan ${p.endpoint}`);
        if (d.persistentKeepalive !== p.persistentKeepalive) out.push(`WireGuard peer ${p.publicKey}: keepalive ${d.persistentKeepalive} ≠ plan ${p.persistentKeepalive}`);
      }
      const planned = new Set(plan.wireguard.peers.map((p) => p.publicKey));
      for (const key of dev.keys()) if (!planned.has(key)) out.push(`WireGuard peer ${key} not in the plan`);
    }
  }
  // iptables: chains Kilo owns hold exactly the plan's rules; elsewhere Kilo's rules in order.
  const layout = k.ipsets !== undefined && k.ipsets.size > 0 ? setLayoutOf(plan.iptables, families) : null;
  if (layout !== null) out.push(...compareSets(layout.sets, k.ipsets!));
  const desired = layout?.desired ?? buildDesired(plan.iptables, families);
  for (const f of families) {
    const saved = k.iptables[f];
    if (!saved) {
      out.push(`iptables (${f}) not read`);
      continue;
    }
    for (const [tname, t] of desired.get(f) ?? []) {
      const st = saved.get(tname);
      const chains = new Set([...t.chains, ...t.rules.keys()]);
      for (const chain of chains) {
        const wantRulesC = t.rules.get(chain) ?? [];
        const got = st?.chains.get(chain);
        if (!got) {
          out.push(`iptables ${f} ${tname} chain ${chain} missing`);
          continue;
        }
        const wantSet = new Set(wantRulesC);
        const mine = t.chains.has(chain) ? got : got.filter((r) => wantSet.has(r) || isKiloRuleKey(r));
        if (mine.join('\n') !== wantRulesC.join('\n')) out.push(`iptables ${f} ${tname} ${chain}: kernel has ${mine.length} rules, plan ${wantRulesC.length} (or another order)`);
      }
    }
  }
  return out;
}
