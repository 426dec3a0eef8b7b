// Allowed-location-IP filtering (design §5.8), for every segment at once, in O((n + c) log c + p·l):
// c the allowed-location IPs (the candidates), n the allowed IPs of all segments and Peers, p the
// Peers' allowed IPs and l ≤ 33 (129 with IPv6) the distinct prefix lengths among the candidates.
//
// Kilo checks each candidate against every other segment's lists and every Peer: quadratic, so
// two nodes claiming 10,000 allowed-location IPs each made every agent's plan take seconds. The
// result here is the same, order-dependent rule included: segment k sees the segments before it
// already filtered (and their WireGuard IPs allocated), and the ones after it unfiltered.
//
// Addresses become keys on one number line: IPv4 as 32-bit signed numbers, shifted by 2^31 so
// that their order is the addresses' (small integers: no heap number per key), IPv6 as BigInts
// from 2^128 on (JavaScript compares numbers and BigInts exactly): the families never meet.
// A CIDR is the block [start, end] of its network (its written address may carry host bits);
// two CIDRs intersect (design §0.5) exactly when their blocks overlap.
import type { CIDR, IP } from './addr.js';

type Key = number | bigint;

const V6_BASE = 1n << 128n;
/** Below every key: an entry that is not in the lists. */
const DEAD = Number.NEGATIVE_INFINITY;
const FLIP = 0x80000000 | 0;
const mask4 = (bits: number) => (bits === 0 ? 0 : -1 << (32 - bits));

function v6Number(b: Uint8Array): bigint {
  const v = new DataView(b.buffer, b.byteOffset, 16);
  return (v.getBigUint64(0) << 64n) | v.getBigUint64(8);
}

function pointKey(ip: IP): Key {
  return ip.v6 ? v6Number(ip.b!) + V6_BASE : ip.n ^ FLIP;
}

/** The first and last address of a CIDR's network, as keys. */
function blockStart(c: CIDR): Key {
  if (!c.ip.v6) return (c.ip.n & mask4(c.bits)) ^ FLIP;
  const host = BigInt(128 - c.bits);
  return ((v6Number(c.ip.b!) >> host) << host) + V6_BASE;
}

function blockEnd(start: Key, c: CIDR): Key {
  return c.ip.v6 ? (start as bigint) + (1n << BigInt(128 - c.bits)) - 1n : (c.ip.n | ~mask4(c.bits)) ^ FLIP;
}

/** The number of keys ≤ x (`inclusive`) or < x, in a sorted array. */
function rank(sorted: readonly Key[], x: Key, inclusive: boolean): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (inclusive ? sorted[mid] <= x : sorted[mid] < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

const byKey = (keys: readonly Key[]) => (a: number, b: number) => (keys[a] < keys[b] ? -1 : keys[a] > keys[b] ? 1 : 0);

/**
 * Candidates sorted by one key, and a difference array over them: each CIDR added covers the
 * run of keys inside its block for one binary search each, however many candidates it covers.
 */
class Runs {
  readonly order: number[];
  private readonly keys: Key[];
  private readonly cover: Int32Array;
  constructor(keys: readonly Key[]) {
    this.order = Array.from({ length: keys.length }, (_, i) => i).sort(byKey(keys));
    this.keys = this.order.map((i) => keys[i]);
    this.cover = new Int32Array(keys.length + 1);
  }

  add(c: CIDR): void {
    const lo = blockStart(c);
    const keys = this.keys;
    // Most CIDRs lie wholly outside the candidates' span: no search for them.
    if (lo > keys[keys.length - 1]) return;
    const from = rank(this.keys, lo, false);
    const to = rank(this.keys, blockEnd(lo, c), true);
    if (from < to) {
      this.cover[from]++;
      this.cover[to]--;
    }
  }

  /** Marks every candidate some added CIDR covered. */
  mark(dropped: Uint8Array): void {
    for (let i = 0, run = 0; i < this.order.length; i++) if ((run += this.cover[i]) > 0) dropped[this.order[i]] = 1;
  }

  /** The number of sorted keys ≤ x. */
  atOrBefore(x: Key): number {
    return rank(this.keys, x, true);
  }
}

/** A segment as the filter reads it: allowedIPs WITHOUT its WireGuard IP. */
export interface FilterSegment {
  readonly allowedLocationIPs: readonly CIDR[];
  readonly allowedIPs: readonly CIDR[];
}

/** The candidates (every segment's allowed-location IPs, numbered in segment order) as keys. */
interface Candidates {
  readonly cands: CIDR[];
  /** The segment of each candidate. */
  readonly owner: number[];
  readonly start: Key[];
  readonly end: Key[];
  readonly point: Key[];
  readonly dropped: Uint8Array;
  /** Whether there are IPv4 and IPv6 candidates at all (a CIDR of another family meets none). */
  readonly v4: boolean;
  readonly v6: boolean;
}

/** `lists[j]` belongs to segment `owners[j]` (ascending). */
function candidates(owners: readonly number[], lists: readonly (readonly CIDR[])[]): Candidates {
  const cands: CIDR[] = [];
  const owner: number[] = [];
  let v4 = false;
  let v6 = false;
  for (let j = 0; j < lists.length; j++) {
    const list = lists[j];
    for (let i = 0; i < list.length; i++) {
      const c = list[i];
      cands.push(c);
      owner.push(owners[j]);
      if (c.ip.v6) v6 = true;
      else v4 = true;
    }
  }
  const n = cands.length;
  const start: Key[] = new Array(n);
  const end: Key[] = new Array(n);
  const point: Key[] = new Array(n);
  for (let i = 0; i < n; i++) {
    start[i] = blockStart(cands[i]);
    end[i] = blockEnd(start[i], cands[i]);
    point[i] = pointKey(cands[i].ip);
  }
  return { cands, owner, start, end, point, dropped: new Uint8Array(n), v4, v6 };
}

/**
 * The filtered allowed-location IPs of each segment (null for a segment that has none), in
 * segment order. `wireGuardIPs[k]` is segment k's WireGuard IP; they are allocated one after
 * the other (topology.ts), so the ones of segments 0…k form one range of keys.
 */
export function filterAllowedLocationIPs(
  segments: readonly FilterSegment[],
  wireGuardIPs: readonly IP[],
  peers: readonly { readonly allowedIPs: readonly CIDR[] }[],
): (readonly CIDR[] | null)[] {
  const out: (readonly CIDR[] | null)[] = new Array(segments.length).fill(null);
  const owners: number[] = [];
  const lists: (readonly CIDR[])[] = [];
  for (let k = 0; k < segments.length; k++) {
    if (segments[k].allowedLocationIPs.length === 0) continue;
    owners.push(k);
    lists.push(segments[k].allowedLocationIPs);
  }
  const c = candidates(owners, lists);
  if (c.cands.length === 0) return out;
  // §5.8 rule 2: an allowed IP of any segment covers the candidate's address. Each allowed IP
  // covers a run of the candidates sorted by address: counted with a difference array, so each
  // allowed IP costs one binary search, not one pass over candidates. Index loops and a range
  // check first: this loop sees every allowed IP of the cluster even when there are two candidates.
  const byPoint = new Runs(c.point);
  for (let k = 0; k < segments.length; k++) {
    const allowed = segments[k].allowedIPs;
    for (let j = 0; j < allowed.length; j++) if (allowed[j].ip.v6 ? c.v6 : c.v4) /* flags, not a closure: this loop sees every allowed IP */ byPoint.add(allowed[j]);
  }
  byPoint.mark(c.dropped);
  finishFilter(c, wireGuardIPs, peers, (k, kept) => (out[k] = kept));
  return out;
}

/** Rules 2 (WireGuard IPs), 3 and 1, after rule 2 for the allowed IPs marked `c.dropped`. */
function finishFilter(c: Candidates, wireGuardIPs: readonly IP[], peers: readonly { readonly allowedIPs: readonly CIDR[] }[], put: (k: number, kept: CIDR[]) => void): void {
  dropWireGuardIPs(c, wireGuardIPs);
  const byStart = new Runs(c.start);
  dropMeetingPeers(c, byStart, peers);
  keepInSegmentOrder(c, byStart, put);
}

/**
 * The same filter for the segments that have allowed-location IPs only (`owners[j]`: the
 * position of the segment whose unfiltered list is `lists[j]`, ascending), with rule 2's
 * allowed IPs of every segment kept in `allowed`: O(c log c) for c candidates, whatever the
 * number of segments. For incremental re-plans (replan.ts); the result per listed segment.
 */
export function filterAllowedLocationIPsIndexed(
  owners: readonly number[],
  lists: readonly (readonly CIDR[])[],
  allowed: CoverIndex,
  wireGuardIPs: readonly IP[],
  peers: readonly { readonly allowedIPs: readonly CIDR[] }[],
): Map<number, readonly CIDR[]> {
  const out = new Map<number, readonly CIDR[]>();
  const c = candidates(owners, lists);
  for (let i = 0; i < c.cands.length; i++) if (allowed.covers(c.cands[i].ip)) c.dropped[i] = 1;
  finishFilter(c, wireGuardIPs, peers, (k, kept) => out.set(k, kept));
  return out;
}

/**
 * A multiset of CIDRs (every segment's allowed IPs) that answers whether one of them covers an
 * address: one map lookup per distinct prefix length, kept up to date one CIDR at a time.
 */
export class CoverIndex {
  private readonly blocks = new Map<Key, number>();
  /** Prefix length → how many CIDRs of that length, per family. */
  private readonly lengths = [new Map<number, number>(), new Map<number, number>()];

  add(c: CIDR): void {
    this.bump(c, 1);
  }

  remove(c: CIDR): void {
    this.bump(c, -1);
  }

  private bump(c: CIDR, by: number): void {
    const id = blockId(blockStart(c), c.bits);
    const n = (this.blocks.get(id) ?? 0) + by;
    if (n > 0) this.blocks.set(id, n);
    else this.blocks.delete(id);
    const lengths = this.lengths[c.ip.v6 ? 1 : 0];
    const l = (lengths.get(c.bits) ?? 0) + by;
    if (l > 0) lengths.set(c.bits, l);
    else lengths.delete(c.bits);
  }

  covers(ip: IP): boolean {
    for (const bits of this.lengths[ip.v6 ? 1 : 0].keys()) {
      if (this.blocks.has(blockId(blockStart({ ip, bits, s: '' }), bits))) return true;
    }
    return false;
  }
}

/** §5.8 rule 2, the other half: the WireGuard IP of a segment up to the candidate's own. */
function dropWireGuardIPs(c: Candidates, wireGuardIPs: readonly IP[]): void {
  const { point, owner, dropped } = c;
  // With the WireGuard IPs of segments 0…k (allocated consecutively: one key range).
  if (wireGuardIPs.length > 0) {
    const first = pointKey(wireGuardIPs[0]);
    for (let i = 0; i < point.length; i++) {
      if (!dropped[i] && point[i] >= first && point[i] <= pointKey(wireGuardIPs[owner[i]])) dropped[i] = 1;
    }
  }
}

/**
 * Rule 3: a Peer's allowed IP intersects the candidate. Blocks are nested or disjoint, so a
 * Peer block B meets candidate C when C starts inside B (a run of the candidates sorted by
 * start, counted as above) or when C strictly contains B (C's block is one of B's ancestors:
 * looked up by prefix length, among the lengths the candidates have).
 */
function dropMeetingPeers(c: Candidates, byStart: Runs, peers: readonly { readonly allowedIPs: readonly CIDR[] }[]): void {
  const { cands, start, dropped, v4, v6 } = c;
  const blocks = new Map<Key, number[]>();
  const lengths = new Set<number>();
  for (let i = 0; i < cands.length; i++) {
    const id = blockId(start[i], cands[i].bits);
    const g = blocks.get(id);
    if (g) g.push(i);
    else blocks.set(id, [i]);
    lengths.add(cands[i].bits);
  }
  const sortedLengths = [...lengths].sort((a, b) => a - b);
  for (const p of peers) {
    for (const b of p.allowedIPs) {
      if (!(b.ip.v6 ? v6 : v4)) continue;
      byStart.add(b);
      for (const bits of sortedLengths) {
        if (bits >= b.bits) break;
        const id = blockId(ancestorStart(b, bits), bits);
        const g = blocks.get(id);
        if (!g) continue;
        for (const i of g) dropped[i] = 1;
        blocks.delete(id); // marked once, however many Peer blocks it contains
      }
    }
  }
  byStart.mark(dropped);
}

/** A max-of-ends tree over the candidates sorted by start (`order`: sorted position → candidate). */
class MaxTree {
  private readonly size: number;
  private readonly tree: Key[];
  private readonly pos: Int32Array;
  constructor(order: readonly number[], end: readonly Key[]) {
    const n = order.length;
    let size = 1;
    while (size < n) size <<= 1;
    this.size = size;
    const tree: Key[] = (this.tree = new Array(2 * size).fill(DEAD));
    this.pos = new Int32Array(n);
    for (let r = 0; r < n; r++) this.pos[order[r]] = r;
    for (let i = 0; i < n; i++) tree[this.pos[i] + size] = end[i];
    for (let x = size - 1; x >= 1; x--) tree[x] = tree[2 * x] > tree[2 * x + 1] ? tree[2 * x] : tree[2 * x + 1];
  }

  set(i: number, v: Key): void {
    const tree = this.tree;
    let x = this.pos[i] + this.size;
    tree[x] = v;
    for (x >>= 1; x >= 1; x >>= 1) tree[x] = tree[2 * x] > tree[2 * x + 1] ? tree[2 * x] : tree[2 * x + 1];
  }

  /** The largest end among sorted positions 0 … r-1. */
  maxBefore(r: number): Key {
    const tree = this.tree;
    let best: Key = DEAD;
    let lo = this.size;
    let hi = this.size + r; // [lo, hi)
    while (lo < hi) {
      if (lo & 1) {
        if (tree[lo] > best) best = tree[lo];
        lo++;
      }
      if (hi & 1) {
        hi--;
        if (tree[hi] > best) best = tree[hi];
      }
      lo >>= 1;
      hi >>= 1;
    }
    return best;
  }
}

/**
 * Rule 1: another segment's allowed-location IP intersects the candidate, in segment order. The
 * tree holds the lists as they stand: a segment's own entries leave it while it is checked, and
 * only its survivors come back. C meets a live entry E iff E.start ≤ C.end and E.end ≥ C.start:
 * the largest end among the entries starting at or before C.end decides.
 */
function keepInSegmentOrder(c: Candidates, byStart: Runs, put: (k: number, kept: CIDR[]) => void): void {
  const { cands, owner, start, end, dropped } = c;
  const n = cands.length;
  const tree = new MaxTree(byStart.order, end);
  for (let first = 0; first < n; ) {
    const k = owner[first];
    let last = first;
    while (last < n && owner[last] === k) last++;
    for (let i = first; i < last; i++) tree.set(i, DEAD);
    const kept: CIDR[] = [];
    for (let i = first; i < last; i++) {
      if (!dropped[i] && tree.maxBefore(byStart.atOrBefore(end[i])) >= start[i]) dropped[i] = 1;
      if (!dropped[i]) kept.push(cands[i]);
    }
    for (let i = first; i < last; i++) if (!dropped[i]) tree.set(i, end[i]);
    put(k, kept);
    first = last;
  }
}

/** A block's identity in a map: start and prefix length in one key. */
function blockId(start: Key, bits: number): Key {
  return typeof start === 'bigint' ? (start << 8n) | BigInt(bits) : start * 64 + bits;
}

/** The start of the block of length `bits` that contains CIDR `c`. */
function ancestorStart(c: CIDR, bits: number): Key {
  return blockStart({ ip: c.ip, bits, s: '' });
}
