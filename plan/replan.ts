// Incremental re-plans for the agent's replica (workers/plan-worker.ts). After a change of a few
// node records, only the segments they belong to are rebuilt (topology.ts's own functions), and
// their routes, KILO-NAT rules and WireGuard peer are spliced into the previous plan's lists in
// place: O(change), not O(segments). A segment that appears or disappears moves the WireGuard IP
// of every later one: those are rebuilt too (O(later segments)). The lists' changed windows go
// with the result, so that the desired-state delta (diff/desired.ts) is O(window) too.
//
// plan() stays the reference: every change this module does not handle (the local node or its
// segment, an allocation move that reaches the local segment, Peers, discovered endpoints, DNS
// endpoints, masked routes, other options; in cross granularity, the local location group) falls back to the memoised full plan, counted by
// reason in `stats`. Property tests: test/plan/property.test.ts
// (plans), test/workers/replan.test.ts (the desired-state deltas).
import { byText, network, oneAddress, type CIDR, type IP } from './addr.js';
import { CoverIndex, filterAllowedLocationIPsIndexed } from './location-ips.js';
import { isNATNode, natDiscovery, natTargets, type NATObservation } from './nat.js';
import { nodeReady, type MeshNode, type UDPAddr } from './node.js';
import { plan, peerJSONOf, type Cluster, type PlanExtras, type PlanOptions, type PlanResult } from './plan.js';
import { remoteSegmentRoutes } from './routes.js';
import { segmentReturns } from './iptables.js';
import { allocatedIPs, allocatedSegment, crossLocation, memoSegmentBase, segmentKey, type Segment, type SegmentBase, type Topology } from './topology.js';
import type { IptablesRule, WireGuardPeer } from './types.js';
import { segmentPeer } from './wireguard.js';

/** What the replanner reads from the replica. */
export interface ReplicaView {
  /** The current records by name. */
  readonly nodes: ReadonlyMap<string, MeshNode>;
  /** The name-sorted cluster, for a full plan (may be built on demand). */
  cluster(): Cluster;
  /** The same warnings as cluster().warnings, without sorting every record. */
  warnings(): string[];
}

/** A WireGuard peer of the desired state: its JSON, with the preshared key's secret when it has one. */
export type DesiredPeerOf = WireGuardPeer & { presharedKeySecret?: string };

/** In the new list, items [start, start + count) replaced `deleteCount` items of the previous one. */
export interface Window {
  start: number;
  deleteCount: number;
  count: number;
}

/** Per list, the changed window since the previous plan; null: that list did not change. */
export interface PlanWindows {
  peers: Window | null;
  routes: Window | null;
  prepend: Window | null;
}

export interface Replanned {
  result: PlanResult;
  /** The plan's number (unique in the thread); `windows` are relative to plan `prevId`. */
  id: number;
  prevId: number;
  /** null: a full plan (compare whole lists). */
  windows: PlanWindows | null;
  /** The desired WireGuard peers, in device order (null on non-leaders). */
  desiredPeers: DesiredPeerOf[] | null;
  /** Ready nodes with a key and a keepalive plus ready Peers: who NAT discovery can find (design §6.7). */
  natCandidates: number;
  /** The local node's discovered endpoints, when `observed` was given. */
  discovered: Map<string, UDPAddr> | undefined;
  /** Why this was a full plan (null: incremental). */
  fullReason: string | null;
}

export interface ReplanExtras {
  resolved?: ReadonlyMap<string, IP>;
  privateKey?: string | null;
  /** The local device's peers, for NAT discovery (design §6.7). */
  observed?: NATObservation | null;
}

interface State {
  key: string;
  now: number;
  result: PlanResult;
  segments: Segment[];
  localIdx: number;
  localKey: string;
  /** The `location:<local location>` segment key (§8.3's encapsulation rules read it). */
  logicalKey: string;
  /**
   * Cross granularity (design §19.5): the local node's location group and its segments' keys
   * (the local one included), which have no WireGuard peer and routes of the local kind; null
   * otherwise.
   */
  groupKey: string | null;
  group: ReadonlySet<string> | null;
  routeCount: number[];
  ruleCount: number[];
  iptHead: number;
  desiredPeers: DesiredPeerOf[] | null;
  /** No ready node's readiness ends before this (Unix seconds). */
  minExpiry: number;
  natNodes: Map<string, MeshNode>;
  natPeers: { publicKey: string }[];
  /** Keys of the segments whose unfiltered allowed-location IPs are not empty. */
  alipKeys: Set<string>;
  /** Every ready node's allowed IPs (§5.8 rule 2), built when first needed. */
  cover: CoverIndex | null;
  discovered: Map<string, UDPAddr> | undefined;
}

/** A real change of one record: its segment before and after (null: not ready). */
interface Change {
  cur: MeshNode | undefined;
  oldKey: string | null;
  newKey: string | null;
}

class Fallback extends Error {}

let planIds = 0;

const MAX_PENDING_SHARE = 0.5;
/** At most this many segments after a moved allocation are rebuilt incrementally. */
const MAX_MOVED_SEGMENTS = 1000;

/** One node's plans, kept up to date incrementally; one per planned hostname. */
export class Replanner {
  private state: State | null = null;
  /** Names changed since the last plan → their record at the last plan (undefined: absent). */
  private readonly pending = new Map<string, MeshNode | undefined>();
  private stale = true;
  private lastId = 0;
  readonly stats = { incremental: 0, full: 0, fallbacks: new Map<string, number>() };

  /** The replica is about to replace (or delete) node `name`'s record `before`. */
  noteNode(name: string, before: MeshNode | undefined): void {
    if (!this.stale && !this.pending.has(name)) this.pending.set(name, before);
  }

  /** Anything else changed (a snapshot, Peers, the topology label): the next plan is a full one. */
  invalidate(): void {
    this.stale = true;
    this.pending.clear();
  }

  /** The plan for `o`; `full`: the memoised full plan whatever changed (a benchmark's baseline). */
  plan(view: ReplicaView, o: PlanOptions, extras: ReplanExtras, full = false): Replanned {
    const key = optionsKey(o, extras);
    const s = this.state;
    let reason: string | null = null;
    if (full) reason = 'asked for a full plan';
    else if (this.stale || !s) reason = this.stale ? 'replica reset' : 'no incremental state';
    else if (s.key !== key) reason = 'options';
    // Design §20.5: the incremental path keeps one family's windows; dual-stack plans are full.
    else if (o.dualStackSubnet) reason = 'dual stack';
    else if (o.now < s.now) reason = 'clock went back';
    else if (this.pending.size > Math.max(64, view.nodes.size * MAX_PENDING_SHARE)) reason = 'many changes';
    if (s && reason === null) {
      try {
        const windows = this.incremental(s, view, o, extras);
        const discovered = extras.observed ? natDiscovery(extras.observed, s.natNodes, s.natPeers) : undefined;
        if (discoveredKey(discovered) !== discoveredKey(s.discovered)) throw new Fallback('discovered endpoints');
        this.pending.clear();
        this.stats.incremental++;
        return { result: s.result, ...this.nextId(), windows, desiredPeers: s.desiredPeers, natCandidates: s.natNodes.size + s.natPeers.length, discovered, fullReason: null };
      } catch (e) {
        if (!(e instanceof Fallback)) {
          // Never plan on from a state a failure left half-updated.
          this.invalidate();
          this.state = null;
          throw e;
        }
        reason = e.message;
      }
    }
    this.stats.fallbacks.set(reason!, (this.stats.fallbacks.get(reason!) ?? 0) + 1);
    return { ...this.full(view, o, extras, key), fullReason: reason };
  }

  private nextId(): { id: number; prevId: number } {
    const prevId = this.lastId;
    this.lastId = ++planIds;
    return { id: this.lastId, prevId };
  }

  /** The memoised full plan, and the state the next incremental plans start from. */
  private full(view: ReplicaView, o: PlanOptions, extras: ReplanExtras, key: string): Omit<Replanned, 'fullReason'> {
    this.state = null;
    this.pending.clear();
    this.stale = false;
    this.stats.full++;
    const c = view.cluster();
    const nat = natTargets(c, o.now);
    const discovered = extras.observed ? natDiscovery(extras.observed, nat.nodes, nat.peers) : undefined;
    const extrasOut: PlanExtras = { resolved: extras.resolved, privateKey: extras.privateKey ?? null, localDiscoveredEndpoints: discovered, describe: false, reuse: true };
    const result = plan(c, o, extrasOut);
    const desiredPeers = result.device ? desiredPeersOf(result) : null;
    this.state = stateOf(c, o, result, key, nat, discovered, desiredPeers);
    return { result, ...this.nextId(), windows: null, desiredPeers, natCandidates: nat.nodes.size + nat.peers.length, discovered };
  }

  /** Applies the pending changes to `s`; throws Fallback for what it does not handle. */
  private incremental(s: State, view: ReplicaView, o: PlanOptions, extras: ReplanExtras): PlanWindows | null {
    const changes = this.collect(s, view, o, extras);
    s.now = o.now;
    if (changes.size === 0) {
      s.result.json.warnings = view.warnings();
      return { peers: null, routes: null, prepend: null };
    }
    const r = s.result;
    const prev = { routes: r.json.routes.length, prepend: r.json.iptables.prepend.length, peers: r.json.wireguard.peers.length };
    const { dirty, moved } = dirtySegments(s, view, changes, o);
    refilter(s, view, o, dirty);
    const windows = splice(s, dirty, moved, prev);
    s.result.json.warnings = view.warnings();
    return windows;
  }

  /** The records that changed in a way the plan can see, with the readiness flips due to time. */
  private collect(s: State, view: ReplicaView, o: PlanOptions, extras: ReplanExtras): Map<string, Change> {
    const touched = new Map(this.pending);
    if (o.now >= s.minExpiry) {
      // Some ready node may have run out of time: one pass over the records (every ~30 s).
      let min = Infinity;
      for (const [name, n] of view.nodes) {
        if (!touched.has(name) && nodeReady(n, s.now) !== nodeReady(n, o.now)) touched.set(name, n);
        if (nodeReady(n, o.now)) min = Math.min(min, n.lastSeen + n.readyWindow);
      }
      s.minExpiry = min;
    }
    const changes = new Map<string, Change>();
    for (const [name, before] of touched) {
      const cur = view.nodes.get(name);
      const was = nodeReady(before, s.now);
      const is = nodeReady(cur, o.now);
      if (is) s.minExpiry = Math.min(s.minExpiry, cur!.lastSeen + cur!.readyWindow);
      if (!was && !is) continue;
      if (name === o.hostname) throw new Fallback('local node');
      if (was && is && sameButLastSeen(before!, cur!)) continue;
      if (before?.discoveredEndpoints?.size || cur?.discoveredEndpoints?.size) throw new Fallback('discovered endpoints');
      if (extras.resolved?.size && (isDNS(before) || isDNS(cur))) throw new Fallback('DNS endpoint');
      const oldKey = was ? segmentKey(before!, o.granularity) : null;
      const newKey = is ? segmentKey(cur!, o.granularity) : null;
      if (oldKey === s.localKey || newKey === s.localKey || oldKey === s.logicalKey || newKey === s.logicalKey) throw new Fallback('local segment');
      if (s.groupKey !== null && ((was && crossLocation(before!) === s.groupKey) || (is && crossLocation(cur!) === s.groupKey))) throw new Fallback('cross: the local location');
      changes.set(name, { cur, oldKey, newKey });
      updateCounts(s, was ? before! : null, is ? cur! : null);
    }
    return changes;
  }
}

function isDNS(n: MeshNode | undefined): boolean {
  return !!n?.endpoint && !!n.endpoint.dns && !n.endpoint.ip;
}

/** The same record but for its heartbeat (withLastSeen shares every field but the derived /32). */
function sameButLastSeen(a: MeshNode, b: MeshNode): boolean {
  return a.name === b.name && a.endpoint === b.endpoint && a.key === b.key && a.internalIP === b.internalIP && a.noInternalIP === b.noInternalIP &&
    a.cniCompatibilityIP === b.cniCompatibilityIP && a.readyWindow === b.readyWindow && a.leader === b.leader && a.location === b.location &&
    a.persistentKeepalive === b.persistentKeepalive && a.subnet === b.subnet && a.wireGuardIP === b.wireGuardIP &&
    a.discoveredEndpoints === b.discoveredEndpoints && a.allowedLocationIPs === b.allowedLocationIPs && a.granularity === b.granularity &&
    a.internal32?.s === b.internal32?.s;
}

/** Ready-node bookkeeping for one record leaving (`old`) and entering (`cur`) the ready set. */
function updateCounts(s: State, old: MeshNode | null, cur: MeshNode | null): void {
  const r = s.result;
  if (old) {
    r.readyNodes--;
    if (isNATNode(old)) s.natNodes.delete(old.name);
    if (s.cover) for (const c of allowedOf(old)) s.cover.remove(c);
  }
  if (cur) {
    r.readyNodes++;
    if (isNATNode(cur)) s.natNodes.set(cur.name, cur);
    if (s.cover) for (const c of allowedOf(cur)) s.cover.add(c);
  }
}

/** A node's share of its segment's allowed IPs (without the WireGuard IP), as topology.ts builds them. */
function allowedOf(n: MeshNode): CIDR[] {
  const out: CIDR[] = [];
  if (n.subnet) out.push(n.subnet);
  if (n.internalIP) out.push(n.internal32 ?? oneAddress(n.internalIP.ip, true));
  return out;
}

/** Segment position by key (segments are in key order), or -1. */
function indexOf(segments: readonly Segment[], key: string): number {
  let lo = 0;
  let hi = segments.length - 1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    const c = byText(segments[mid].location, key);
    if (c === 0) return mid;
    if (c < 0) lo = mid + 1;
    else hi = mid - 1;
  }
  return -1;
}

/** A rebuilt segment: its position, base and new segment object. */
interface Dirty {
  k: number;
  base: SegmentBase;
  seg: Segment;
}

/** The segments the changes touch: rebuilt, and with every later one when a segment appears or disappears. */
function dirtySegments(s: State, view: ReplicaView, changes: ReadonlyMap<string, Change>, o: PlanOptions): { dirty: Map<number, Dirty>; moved: number } {
  const added = new Map<string, MeshNode[]>();
  const keys = new Set<string>();
  for (const c of changes.values()) {
    if (c.oldKey !== null) keys.add(c.oldKey);
    if (c.newKey !== null) {
      keys.add(c.newKey);
      let a = added.get(c.newKey);
      if (!a) added.set(c.newKey, (a = []));
      a.push(c.cur!);
    }
  }
  const members = new Map<string, MeshNode[]>();
  // The first position whose segment appeared or disappeared: the allocation moves from there.
  let moved = Infinity;
  for (const key of keys) {
    const k = indexOf(s.segments, key);
    const m: MeshNode[] = [];
    if (k >= 0) for (const h of s.segments[k].hostnames) if (!changes.has(h)) m.push(view.nodes.get(h)!);
    for (const n of added.get(key) ?? []) m.push(n);
    if (m.length > 1) m.sort((a, b) => byText(a.name, b.name));
    if (m.length === 0) {
      s.alipKeys.delete(key);
      removeSegment(s, k);
      moved = Math.min(moved, k);
      continue;
    }
    members.set(key, m);
    if (k < 0) moved = Math.min(moved, insertSegment(s, key));
  }
  // The local segment's WireGuard IP is the device's address and in its own routes and rules.
  if (moved <= s.localIdx) throw new Fallback('allocation: the local segment moves');
  // Rebuilding thousands of segments one by one measured slower than the memoised full plan.
  if (s.segments.length - moved > MAX_MOVED_SEGMENTS) throw new Fallback('allocation: many later segments move');
  const dirty = new Map<number, Dirty>();
  const rebuild = (k: number, m: readonly MeshNode[]) => {
    const key = s.segments[k].location;
    const base = memoSegmentBase(key, m);
    if (base.allowedLocationIPs.length > 0) s.alipKeys.add(key);
    else s.alipKeys.delete(key);
    const seg = allocatedSegment(base, k, o.subnet);
    if (!seg) throw new Fallback('allocation: out of addresses');
    dirty.set(k, { k, base, seg });
  };
  for (const [key, m] of members) {
    const k = indexOf(s.segments, key);
    if (k < moved) rebuild(k, m);
  }
  // Every later segment gets the next (or previous) WireGuard IP: rebuilt as the full plan would.
  for (let k = moved; k < s.segments.length; k++) rebuild(k, members.get(s.segments[k].location) ?? s.segments[k].hostnames.map((h) => view.nodes.get(h)!));
  return { dirty, moved };
}

/** Takes segment k and what derives from it out of the plan's lists. */
function removeSegment(s: State, k: number): void {
  const r = s.result;
  r.json.routes.splice(sum(s.routeCount, k), s.routeCount[k]);
  r.json.iptables.prepend.splice(s.iptHead + sum(s.ruleCount, k), s.ruleCount[k]);
  if (r.device) {
    const i = peerIndex(s, k);
    r.device.peers.splice(i, 1);
    r.json.wireguard.peers.splice(i, 1);
    s.desiredPeers!.splice(i, 1);
  }
  s.routeCount.splice(k, 1);
  s.ruleCount.splice(k, 1);
  s.segments.splice(k, 1);
  if (k < s.localIdx) s.localIdx--;
}

/** Makes room for a new segment `key` at its place in key order (filled by the rebuild); returns it. */
function insertSegment(s: State, key: string): number {
  let k = 0;
  let hi = s.segments.length;
  while (k < hi) {
    const mid = (k + hi) >>> 1;
    if (byText(s.segments[mid].location, key) < 0) k = mid + 1;
    else hi = mid;
  }
  s.segments.splice(k, 0, { location: key, hostnames: [], allowedLocationIPs: [] } as unknown as Segment);
  s.routeCount.splice(k, 0, 0);
  s.ruleCount.splice(k, 0, 0);
  if (k <= s.localIdx) s.localIdx++;
  const r = s.result;
  if (r.device) {
    const i = peerIndex(s, k);
    r.device.peers.splice(i, 0, r.device.peers[0]);
    r.json.wireguard.peers.splice(i, 0, r.json.wireguard.peers[0]);
    s.desiredPeers!.splice(i, 0, s.desiredPeers![0]);
  }
  return k;
}

/**
 * Allowed-location IPs (design §5.8) are filtered against every segment: with any in the
 * cluster, the filter runs again over the candidates alone (rule 2's allowed IPs in an index),
 * and every segment whose filtered list changed is rebuilt too.
 */
function refilter(s: State, view: ReplicaView, o: PlanOptions, dirty: Map<number, Dirty>): void {
  const hadFiltered = [...dirty.keys()].some((k) => s.segments[k].allowedLocationIPs.length > 0);
  if (s.alipKeys.size === 0 && !hadFiltered) return;
  if (!s.cover) {
    s.cover = new CoverIndex();
    for (const n of view.nodes.values()) if (nodeReady(n, o.now)) for (const c of allowedOf(n)) s.cover.add(c);
  }
  const owners: number[] = [];
  const bases = new Map<number, SegmentBase>();
  for (const key of s.alipKeys) {
    const k = indexOf(s.segments, key);
    const d = dirty.get(k);
    bases.set(k, d ? d.base : memoSegmentBase(key, s.segments[k].hostnames.map((h) => view.nodes.get(h)!)));
    owners.push(k);
  }
  owners.sort((a, b) => a - b);
  const lists = owners.map((k) => bases.get(k)!.allowedLocationIPs);
  const filtered = filterAllowedLocationIPsIndexed(owners, lists, s.cover, allocatedIPs(o.subnet, s.segments.length), s.result.topology!.peers);
  for (const k of owners) {
    const list = filtered.get(k)!;
    const d = dirty.get(k);
    if (!d && sameList(list, s.segments[k].allowedLocationIPs)) continue;
    if (k === s.localIdx || inGroup(s, k)) throw new Fallback('local segment');
    const seg = d ? d.seg : allocatedSegment(bases.get(k)!, k, o.subnet)!;
    seg.allowedLocationIPs = list;
    if (!d) dirty.set(k, { k, base: bases.get(k)!, seg });
  }
}

function sameList<T>(a: readonly T[], b: readonly T[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const sum = (xs: readonly number[], end: number): number => {
  let t = 0;
  for (let i = 0; i < end; i++) t += xs[i];
  return t;
};

/**
 * Puts the rebuilt segments and what derives from them into the plan's lists. `moved`: where a
 * segment appeared or disappeared (Infinity: nowhere); `prev`: the lists' lengths before.
 */
function splice(s: State, dirty: ReadonlyMap<number, Dirty>, moved: number, prev: { routes: number; prepend: number; peers: number }): PlanWindows {
  const r = s.result;
  const t = r.topology!;
  const own = s.localIdx >= 0 ? s.segments[s.localIdx] : undefined;
  const order = [...dirty.keys()].sort((a, b) => a - b);
  const scratch: IptablesRule[] = [];
  const routesOf = remoteSegmentRoutes(t, r.routeOptions!, own);
  // Running offsets of segment k's items: one pass, however many segments were rebuilt.
  let at = 0;
  let routeAt = 0;
  let ruleAt = s.iptHead;
  for (const k of order) {
    for (; at < k; at++) {
      routeAt += s.routeCount[at];
      ruleAt += s.ruleCount[at];
    }
    const seg = dirty.get(k)!.seg;
    s.segments[k] = seg;
    if (inGroup(s, k)) {
      // Cross: a location neighbour moved by the allocation; its routes do not name its WireGuard IP.
      const n = segmentReturns(seg, scratch, 0, true);
      replace(r.json.iptables.prepend, ruleAt, s.ruleCount[k], scratch, n);
      s.ruleCount[k] = n;
      continue;
    }
    const rr = routesOf(seg);
    if (rr.masked) throw new Fallback('masked routes');
    replace(r.json.routes, routeAt, s.routeCount[k], rr.routes, rr.routes.length);
    s.routeCount[k] = rr.routes.length;
    const n = segmentReturns(seg, scratch, 0, true);
    replace(r.json.iptables.prepend, ruleAt, s.ruleCount[k], scratch, n);
    s.ruleCount[k] = n;
    if (r.device) {
      const i = peerIndex(s, k);
      const p = segmentPeer(t, seg, true);
      r.device.peers[i] = p;
      r.json.wireguard.peers[i] = s.desiredPeers![i] = peerJSONOf(p, true);
    }
  }
  // Segments [from, end) changed (a segment taken out at the end leaves none to rebuild); the
  // ones after them, and the Peers' items after those, did not move.
  const from = Math.min(moved, order.length ? order[0] : Infinity);
  const end = Math.max(order.length ? order[order.length - 1] + 1 : from, moved === Infinity ? from : moved);
  const window = (prevLen: number, len: number, start: number, stop: number): Window => ({ start, deleteCount: prevLen - (len - stop) - start, count: stop - start });
  return {
    routes: window(prev.routes, r.json.routes.length, sum(s.routeCount, from), sum(s.routeCount, end)),
    prepend: window(prev.prepend, r.json.iptables.prepend.length, s.iptHead + sum(s.ruleCount, from), s.iptHead + sum(s.ruleCount, end)),
    peers: r.device ? window(prev.peers, r.json.wireguard.peers.length, peerIndex(s, from), peerIndex(s, end)) : null,
  };
}

/** Replaces `count` items of `xs` at `at` with the first `n` of `items`: in place when as many. */
function replace<T>(xs: T[], at: number, count: number, items: readonly T[], n: number): void {
  if (n === count) for (let i = 0; i < n; i++) xs[at + i] = items[i];
  else xs.splice(at, count, ...items.slice(0, n));
}

/** The device peer of remote segment k (the local segment has none, nor in cross its location group's). */
function peerIndex(s: State, k: number): number {
  if (!s.group) return s.localIdx >= 0 && s.localIdx < k ? k - 1 : k;
  let before = 0;
  for (const key of s.group) if (indexOf(s.segments, key) < k) before++;
  return k - before;
}

/** Cross granularity: whether segment k is in the local node's location group (design §19.5). */
function inGroup(s: State, k: number): boolean {
  return s.group !== null && k < s.segments.length && s.group.has(s.segments[k].location);
}

/**
 * Cross granularity: the route count of each segment of the local location group, read off the
 * plan's list (each emits routes to its own pod CIDR and private IP only, design §19.3); false
 * when the list cannot be split that way (then no incremental state).
 */
function groupRouteCounts(t: Topology, routes: readonly { dst: string }[], routeCount: number[], end: number): boolean {
  let at = 0;
  for (let k = 0; k < t.segments.length; k++) {
    const s = t.segments[k];
    if (!t.sameLocation!.has(s.location)) {
      at += routeCount[k];
      continue;
    }
    const own = new Set<string>();
    for (const c of s.cidrs) if (c) own.add(network(c).s);
    for (const p of s.privateIPs) own.add(oneAddress(p).s);
    let n = 0;
    while (at + n < end && own.has(routes[at + n].dst)) n++;
    routeCount[k] = n;
    at += n;
  }
  return at === end;
}

function desiredPeersOf(r: PlanResult): DesiredPeerOf[] {
  const device = r.device!;
  return r.json.wireguard.peers.map((p, i) => (device.peers[i].presharedKey ? { ...p, presharedKeySecret: device.peers[i].presharedKey! } : p));
}

/** The state of a full plan, or null when its shape is one the incremental path does not keep up. */
function stateOf(
  c: Cluster, o: PlanOptions, result: PlanResult, key: string, nat: { nodes: Map<string, MeshNode>; peers: { publicKey: string }[] },
  discovered: Map<string, UDPAddr> | undefined, desiredPeers: DesiredPeerOf[] | null,
): State | null {
  const t = result.topology;
  if (!t || result.routesMasked || !result.routeOptions) return null;
  const segments = t.segments;
  const localIdx = indexOf(segments, t.location);
  const group = t.sameLocation ?? null;
  const routeCount: number[] = new Array(segments.length);
  const ruleCount: number[] = new Array(segments.length);
  let routes = 0;
  let rules = 0;
  for (let k = 0; k < segments.length; k++) {
    const m = segments[k].memo;
    if (k === localIdx) continue;
    if (group?.has(segments[k].location)) {
      // Cross: a location neighbour; its routes are counted below.
      if (!m?.rules) return null;
      rules += ruleCount[k] = m.rules.length;
      continue;
    }
    if (!m?.routes || !m.rules) return null;
    routes += routeCount[k] = m.routes.routes.length;
    rules += ruleCount[k] = m.rules.length;
  }
  let peerIPs = 0;
  for (const p of t.peers) peerIPs += p.allowedIPs.length;
  const j = result.json;
  if (localIdx >= 0) {
    const own = segments[localIdx];
    routeCount[localIdx] = j.routes.length - routes - peerIPs;
    ruleCount[localIdx] = (own.memo?.rules?.length ?? 1 + own.allowedIPs.length) + own.allowedLocationIPs.length;
    rules += ruleCount[localIdx];
  }
  if (group && localIdx >= 0 && !groupRouteCounts(t, j.routes, routeCount, j.routes.length - peerIPs)) return null;
  const iptHead = j.iptables.prepend.length - rules - 2 * peerIPs;
  if (iptHead < 0 || (localIdx >= 0 && routeCount[localIdx] < 0)) return null;
  let minExpiry = Infinity;
  const alipKeys = new Set<string>();
  for (const n of c.nodes) {
    if (!nodeReady(n, o.now)) continue;
    minExpiry = Math.min(minExpiry, n.lastSeen + n.readyWindow);
    if (n.allowedLocationIPs.length > 0) alipKeys.add(segmentKey(n, o.granularity));
  }
  return {
    key, now: o.now, result, segments, localIdx, localKey: t.location, logicalKey: `location:${c.nodes.find((n) => n.name === o.hostname)!.location}`,
    groupKey: t.nodeLocation ?? null, group,
    routeCount, ruleCount, iptHead, desiredPeers, minExpiry, natNodes: nat.nodes, natPeers: nat.peers, alipKeys, cover: null, discovered,
  };
}

function discoveredKey(m: ReadonlyMap<string, UDPAddr> | undefined): string {
  if (!m) return '-';
  let out = '';
  for (const k of [...m.keys()].sort()) out += `${k}=${m.get(k)!.ip?.s}:${m.get(k)!.port};`;
  return out;
}

/** Everything but the clock that a plan depends on and the replica does not hold. */
function optionsKey(o: PlanOptions, e: ReplanExtras): string {
  const resolved = e.resolved ? [...e.resolved].map(([k, ip]) => `${k}=${ip.s}`).join(',') : '';
  return JSON.stringify([{ ...o, now: 0, subnet: o.subnet.s, serviceCIDRs: o.serviceCIDRs.map((c) => c.s) }, resolved, e.privateKey ?? null, !!e.observed]);
}

