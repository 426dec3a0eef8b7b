// Desired-state deltas between threads. The agent plans whole states; sending a whole 5,000-node
// state to the I/O worker costs a structured clone of ~35,000 objects and a full re-normalisation
// there. Instead the client keeps cheap string keys of what it sent last and sends, per list, one
// splice (common prefix and suffix trimmed): O(N) string compares on the main thread, O(changed)
// everywhere after.

import type { DesiredPeer, DesiredState } from '../ipc/dataplane.js';
import type { IptablesRule, Route } from '../plan/types.js';

export interface Splice<T> {
  start: number;
  deleteCount: number;
  items: T[];
}

export interface DesiredDelta {
  /** Sequence number of the state this delta applies to; the result has seq + 1. */
  base: number;
  interface: string;
  /** The WireGuard head (key, port, MTU, address) or null (non-leader); peers travel separately. */
  wireguard: Omit<NonNullable<DesiredState['wireguard']>, 'peers'> | null;
  peers: Splice<DesiredPeer> | null;
  routes: Splice<Route> | null;
  rules: DesiredState['rules'] | null;
  chains: DesiredState['iptables']['chains'] | null;
  prepend: Splice<IptablesRule> | null;
  append: Splice<IptablesRule> | null;
  tunnel: DesiredState['tunnel'];
  cni: DesiredState['cni'];
}

// Keys are memoised per item object: the planner hands back the same frozen route and rule
// objects plan after plan, so a re-plan's keys are lookups, and equal keys are the same string
// (compared by pointer in spliceOf) instead of 30,000 new strings to build and compare.
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

/** One splice turning `prev` into `next` (by key), or null when equal. */
export function spliceOf<T>(prevKeys: readonly string[], next: readonly T[], nextKeys: readonly string[]): Splice<T> | null {
  let pre = 0;
  const pl = prevKeys.length;
  const nl = nextKeys.length;
  while (pre < pl && pre < nl && prevKeys[pre] === nextKeys[pre]) pre++;
  if (pre === pl && pre === nl) return null;
  let suf = 0;
  while (suf < pl - pre && suf < nl - pre && prevKeys[pl - 1 - suf] === nextKeys[nl - 1 - suf]) suf++;
  return { start: pre, deleteCount: pl - pre - suf, items: next.slice(pre, nl - suf) };
}

/** Apply a splice in place; returns the removed items. */
export function applySplice<T>(arr: T[], s: Splice<T> | null): T[] {
  if (s === null) return [];
  return arr.splice(s.start, s.deleteCount, ...s.items);
}

interface Keys {
  peers: string[];
  routes: string[];
  prepend: string[];
  append: string[];
  rest: string;
}

const restKey = (d: DesiredState): string =>
  JSON.stringify([d.interface, d.wireguard && { ...d.wireguard, peers: undefined }, d.rules, d.iptables.chains, d.tunnel, d.cni]);

function keysOf(d: DesiredState): Keys {
  return {
    peers: (d.wireguard?.peers ?? []).map(peerItemKey),
    routes: d.routes.map(routeItemKey),
    prepend: d.iptables.prepend.map(iptItemKey),
    append: d.iptables.append.map(iptItemKey),
    rest: restKey(d),
  };
}

/** Main-thread side: remembers the keys of the last state sent and produces deltas. */
export class DeltaTracker {
  private keys: Keys | null = null;
  private last: DesiredState | null = null;
  seq = 0;

  /** Forget the last state (the receiver lost it): the next call needs a full send. */
  reset(): void {
    this.keys = null;
    this.last = null;
  }

  get hasBase(): boolean {
    return this.keys !== null;
  }

  /** Record a full send. */
  full(d: DesiredState): void {
    this.keys = keysOf(d);
    this.last = d;
    this.seq++;
  }

  /** The delta from the last state to `d` (which becomes the last state). Requires a base. */
  delta(d: DesiredState): DesiredDelta {
    if (this.keys === null || this.last === null) throw new Error('DeltaTracker: no base state');
    const k = keysOf(d);
    const prev = this.keys;
    const rest = k.rest === prev.rest;
    const delta: DesiredDelta = {
      base: this.seq,
      interface: d.interface,
      wireguard: d.wireguard === null ? null : { privateKey: d.wireguard.privateKey, listenPort: d.wireguard.listenPort, mtu: d.wireguard.mtu, address: d.wireguard.address },
      peers: spliceOf(prev.peers, d.wireguard?.peers ?? [], k.peers),
      routes: spliceOf(prev.routes, d.routes, k.routes),
      rules: rest ? null : d.rules,
      chains: rest ? null : d.iptables.chains,
      prepend: spliceOf(prev.prepend, d.iptables.prepend, k.prepend),
      append: spliceOf(prev.append, d.iptables.append, k.append),
      tunnel: d.tunnel,
      cni: d.cni,
    };
    this.keys = k;
    this.last = d;
    this.seq++;
    return delta;
  }
}
