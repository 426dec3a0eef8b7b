// Memoisation across plans. The agent's planner worker re-plans the same long-lived records
// after each change: handing back the same (frozen) objects turns a re-plan into mostly lookups
// and lets the diff compare by pointer. One-shot plans (`kg plan`, the fleet check) would only
// pay for the tables, so memoisation is asked for explicitly: plan(…, { reuse: true }) passes
// `memo: true` down to the topology, routes, iptables and WireGuard builders.
import type { IptablesRule, Route } from './types.js';
import type { WGPeer } from './wg-peer.js';

/**
 * What routes, iptables and WireGuard derive from one reused segment, kept on the segment itself
 * (`Segment.memo`): one property read per segment and module, where WeakMaps keyed by segment
 * missed the cache on a worker idle between changes.
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
