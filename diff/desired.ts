// The desired→desired delta, made by the plan worker (its one owner): per list, one splice against
// the lists sent last (items compared by identity, then by key), so that a one-node change costs
// O(changed) to move and to apply instead of a whole state.

import type { DesiredDelta, DesiredPeer, DesiredState, Splice } from '../ipc/dataplane.js';
import type { IptablesRule, Route } from '../plan/types.js';
import type { PlanWindows, Window } from '../plan/replan.js';

// Keys are needed only where items differ by identity (spliceOf); they are memoised per frozen
// item, so an item that moved between plans is keyed once.
function memoKey<T extends object>(f: (x: T) => string): (x: T) => string {
  const m = new WeakMap<T, string>();
  return (x) => {
    let k = m.get(x);
    if (k === undefined) {
      k = f(x);
      if (Object.isFrozen(x)) m.set(x, k);
    }
    return k;
  };
}
export const routeItemKey = memoKey((r: Route): string => `${r.dst}|${r.gw}|${r.dev}|${r.src}|${r.table}|${r.onlink}`);
export const peerItemKey = memoKey((p: DesiredPeer): string =>
  `${p.publicKey}|${p.endpoint}|${p.persistentKeepalive}|${p.presharedKeySecret ?? ''}|${p.allowedIPs.join(',')}`);
export const iptItemKey = memoKey((r: IptablesRule): string => `${r.family}|${r.table}|${r.chain}|${r.rule.join('\u0001')}`);

/**
 * One splice turning `prev` into `next`, or null when equal. Items are compared by identity
 * first (the planner hands back the same frozen objects plan after plan, so a re-plan's common
 * prefix and suffix cost one pointer compare per item), then by key.
 */
export function spliceOf<T>(prev: readonly T[], next: readonly T[], key: (x: T) => string): Splice<T> | null {
  const eq = (a: T, b: T) => a === b || key(a) === key(b);
  let pre = 0;
  const pl = prev.length;
  const nl = next.length;
  while (pre < pl && pre < nl && eq(prev[pre], next[pre])) pre++;
  if (pre === pl && pre === nl) return null;
  let suf = 0;
  while (suf < pl - pre && suf < nl - pre && eq(prev[pl - 1 - suf], next[nl - 1 - suf])) suf++;
  return { start: pre, deleteCount: pl - pre - suf, items: next.slice(pre, nl - suf) };
}

/**
 * The splice within window `w` (plan/replan.ts: outside it `next` holds the very items of
 * `prev`), trimmed to the items that differ, applied to `prev` in place; null when equal or when
 * `w` is null (the list did not change). O(window), not O(list).
 */
export function spliceInWindow<T>(prev: T[], next: readonly T[], w: Window | null, key: (x: T) => string): Splice<T> | null {
  if (w === null) return null;
  const eq = (a: T, b: T) => a === b || key(a) === key(b);
  let pre = w.start;
  let pe = w.start + w.deleteCount;
  let ne = w.start + w.count;
  while (pre < pe && pre < ne && eq(prev[pre], next[pre])) pre++;
  while (pe > pre && ne > pre && eq(prev[pe - 1], next[ne - 1])) {
    pe--;
    ne--;
  }
  if (pre === pe && pre === ne) return null;
  const s = { start: pre, deleteCount: pe - pre, items: next.slice(pre, ne) };
  applySplice(prev, s);
  return s;
}

/** Apply a splice in place; returns the removed items. */
export function applySplice<T>(arr: T[], s: Splice<T> | null): T[] {
  if (s === null) return [];
  if (s.items.length === s.deleteCount) {
    // As many in as out (a one-node edit): in place, without moving the rest of a 20,000-item list.
    const removed = arr.slice(s.start, s.start + s.deleteCount);
    for (let i = 0; i < s.items.length; i++) arr[s.start + i] = s.items[i];
    return removed;
  }
  // A spread of tens of thousands of items would exceed the engine's argument limit.
  if (s.items.length <= 8192) return arr.splice(s.start, s.deleteCount, ...s.items);
  const removed = arr.slice(s.start, s.start + s.deleteCount);
  const tail = arr.slice(s.start + s.deleteCount);
  arr.length = s.start;
  for (const x of s.items) arr.push(x);
  for (const x of tail) arr.push(x);
  return removed;
}

const restKey = (d: DesiredState): string =>
  JSON.stringify([d.interface, d.wireguard && { ...d.wireguard, peers: undefined }, d.rules, d.iptables.chains, d.tunnel, d.cni]);

/** Sender side: remembers the last state sent and produces deltas against it. */
interface Sent {
  peers: DesiredPeer[];
  routes: Route[];
  prepend: IptablesRule[];
  append: IptablesRule[];
  rest: string;
}

// Copies of the lists (pointers only): a caller may reuse or change its arrays after a send.
const sent = (d: DesiredState): Sent => ({
  peers: [...(d.wireguard?.peers ?? [])], routes: [...d.routes], prepend: [...d.iptables.prepend], append: [...d.iptables.append], rest: restKey(d),
});

/** What to send for a new state: the whole state, a delta, or nothing (the receiver's state stands). */
export type DesiredMessage = { full: DesiredState; seq: number } | { delta: DesiredDelta; seq: number } | { noop: true; seq: number };

/** Sender side: numbers the states it sends and makes deltas against the last one. */
export class DeltaTracker {
  private last: Sent | null = null;
  seq = 0;

  /**
   * The message for `d` when the receiver holds the state numbered `held` (null: none). A delta
   * only against this tracker's last state; a delta that changes nothing is a no-op, and the
   * receiver's number stands.
   */
  next(d: DesiredState, held: number | null, windows: PlanWindows | null = null): DesiredMessage {
    if (this.last === null || held !== this.seq) {
      this.full(d);
      return { full: d, seq: this.seq };
    }
    const delta = windows ? this.windowDelta(d, windows) : this.delta(d);
    if (!delta.peers && !delta.routes && !delta.prepend && !delta.append && !delta.rules) {
      this.seq--;
      return { noop: true, seq: this.seq };
    }
    return { delta, seq: this.seq };
  }

  get hasBase(): boolean {
    return this.last !== null;
  }

  /** Record a full send. */
  full(d: DesiredState): void {
    this.last = sent(d);
    this.seq++;
  }

  /**
   * The delta from the last state to `d` when the planner names the windows of its lists that
   * may have changed since that state (plan/replan.ts): O(change), the last state's lists patched
   * in place instead of copied.
   */
  private windowDelta(d: DesiredState, w: PlanWindows): DesiredDelta {
    const prev = this.last!;
    const rest = restKey(d);
    const same = rest === prev.rest;
    const delta: DesiredDelta = {
      base: this.seq,
      interface: d.interface,
      wireguard: d.wireguard === null ? null : { privateKey: d.wireguard.privateKey, listenPort: d.wireguard.listenPort, mtu: d.wireguard.mtu, address: d.wireguard.address, ...(d.wireguard.address2 ? { address2: d.wireguard.address2 } : {}) },
      peers: spliceInWindow(prev.peers, d.wireguard?.peers ?? [], w.peers, peerItemKey),
      routes: spliceInWindow(prev.routes, d.routes, w.routes, routeItemKey),
      rules: same ? null : d.rules,
      chains: same ? null : d.iptables.chains,
      prepend: spliceInWindow(prev.prepend, d.iptables.prepend, w.prepend, iptItemKey),
      append: spliceOf(prev.append, d.iptables.append, iptItemKey),
      tunnel: d.tunnel,
      cni: d.cni,
    };
    prev.append = [...d.iptables.append];
    prev.rest = rest;
    this.seq++;
    return delta;
  }

  /** The delta from the last state to `d` (which becomes the last state). Requires a base. */
  delta(d: DesiredState): DesiredDelta {
    if (this.last === null) throw new Error('DeltaTracker: no base state');
    const prev = this.last;
    const next = sent(d);
    const rest = next.rest === prev.rest;
    const delta: DesiredDelta = {
      base: this.seq,
      interface: d.interface,
      wireguard: d.wireguard === null ? null : { privateKey: d.wireguard.privateKey, listenPort: d.wireguard.listenPort, mtu: d.wireguard.mtu, address: d.wireguard.address, ...(d.wireguard.address2 ? { address2: d.wireguard.address2 } : {}) },
      peers: spliceOf(prev.peers, next.peers, peerItemKey),
      routes: spliceOf(prev.routes, next.routes, routeItemKey),
      rules: rest ? null : d.rules,
      chains: rest ? null : d.iptables.chains,
      prepend: spliceOf(prev.prepend, next.prepend, iptItemKey),
      append: spliceOf(prev.append, next.append, iptItemKey),
      tunnel: d.tunnel,
      cni: d.cni,
    };
    this.last = next;
    this.seq++;
    return delta;
  }
}
