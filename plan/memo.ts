// Memoisation across plans. The agent's planner worker keeps parsed records for hours and
// re-plans after each change: there, deriving routes, rules and peers from the same record
// objects as last time and handing back the same (frozen) output objects turns a 5,000-node
// re-plan into mostly lookups, and lets the diff compare keys by pointer. A one-shot plan
// (`kg plan`, the fleet check) parses fresh records every time: memo tables would only add work
// and garbage, so memoisation is on only inside plan(…, { reuse: true }).
import type { IptablesRule, Route } from './types.js';
import type { WGPeer } from './wireguard.js';

let enabled = false;

export function memoOn(): boolean {
  return enabled;
}

/** Runs `f` with memoisation on or off (restored afterwards; plans are synchronous). */
export function withMemo<T>(on: boolean, f: () => T): T {
  const before = enabled;
  enabled = on;
  try {
    return f();
  } finally {
    enabled = before;
  }
}

/**
 * What routes, iptables and WireGuard derive from one reused segment, kept on the segment itself
 * (`Segment.memo`): a re-plan then reads one property per segment and module. Three WeakMaps
 * keyed by segment cost three hash probes per segment, and on a worker that idles between
 * changes each probe was a cache miss: 15,000 of them per re-plan at 5,000 segments.
 */
export interface SegmentMemo {
  /** The segment's routes as a remote segment, with what else they depend on. */
  routes: { deps: readonly unknown[]; routes: Route[]; masked: boolean } | null;
  /** The segment's own KILO-NAT rules. */
  rules: readonly IptablesRule[] | null;
  /** The segment as a peer of the local device. */
  peer: WGPeer | null;
}

export function newSegmentMemo(): SegmentMemo {
  return { routes: null, rules: null, peer: null };
}
