// What one node or Peer may claim in the mesh, and how a malformed value is quoted in a warning.
//
// Hardening (departs from Kilo): Kilo takes every allowed-location IP of every node and every
// allowed IP of every Peer, of any prefix length. One annotation could then route 0.0.0.0/1
// (half of the internet) through one node on every node, or make every agent's plan take
// seconds. kg caps the count per node and per Peer, and refuses prefixes shorter than /8 unless
// --allow-short-prefixes says otherwise.
import type { CIDR } from './addr.js';

export interface ClaimLimits {
  /** Allowed-location IPs one node may claim; the ones after this many are dropped (one warning). */
  readonly maxAllowedLocationIPs: number;
  /** Allowed IPs one Peer may hold; a Peer with more is invalid (ignored, and denied by the webhook). */
  readonly maxPeerAllowedIPs: number;
  /** Accept prefixes shorter than MIN_PREFIX (0.0.0.0/0, 0.0.0.0/1, ::/0, 2000::/3 …). */
  readonly allowShortPrefixes: boolean;
}

/** 1,024 each: far above what Kilo's users list, far below what one node could otherwise add to every agent's plan. */
export const DEFAULT_LIMITS: ClaimLimits = Object.freeze({ maxAllowedLocationIPs: 1024, maxPeerAllowedIPs: 1024, allowShortPrefixes: false });

/**
 * The shortest prefix accepted without --allow-short-prefixes, in both families: 1/256 of each
 * address space. It refuses default-route-like claims (0.0.0.0/0 and /1, 64.0.0.0/2, ::/0,
 * 2000::/3, fc00::/7) and keeps the private ranges 10.0.0.0/8 and fd00::/8 claimable. It is a
 * tripwire, not a fence: 256 /8s still cover IPv4, which is why the count is capped too and why
 * the admission policy (manifests/node-policy.yaml) keeps nodes from writing the annotation.
 */
export const MIN_PREFIX = 8;

export function limitsWith(o: Partial<ClaimLimits>): ClaimLimits {
  return Object.freeze({ ...DEFAULT_LIMITS, ...o });
}

export function isShortPrefix(c: CIDR, limits: ClaimLimits): boolean {
  return !limits.allowShortPrefixes && c.bits < MIN_PREFIX;
}

/** The rule in words, for warnings and denials. */
export const SHORT_PREFIX_RULE = `prefixes shorter than /${MIN_PREFIX} are refused unless kg runs with --allow-short-prefixes`;

const QUOTE_MAX = 64;

/**
 * A value as a warning quotes it: JSON-escaped (control characters cannot reach a log line
 * raw), and when long, a short prefix and its size, so that a 1 MiB annotation makes a
 * 100-byte warning: `"10.0.0.0/33,10.0.0.0/33,1…" (1,048,576 bytes)`.
 */
export function quote(value: string): string {
  if (value.length <= QUOTE_MAX) return JSON.stringify(value);
  let head = value.slice(0, QUOTE_MAX / 2);
  // Do not split a surrogate pair.
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  return `${JSON.stringify(head + '…')} (${Buffer.byteLength(value).toLocaleString('en-US')} bytes)`;
}
