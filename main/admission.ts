// The admission decision of `kg webhook` (design §12.4) as pure functions: one request body in,
// one bounded answer out. Anyone who can reach the webhook's Service can send any body, so every
// step is linear in the body (or n log n), and nothing unbounded from the input is echoed back.
import { parseCIDR } from '../plan/addr.js';
import { DEFAULT_LIMITS, type ClaimLimits } from '../plan/claims.js';
import { validatePeer, type PeerObject } from '../plan/peer.js';

/**
 * Hardening (departs from Kilo, whose webhook reads any size): the largest body read. The API
 * server refuses request bodies over 3 MiB and etcd stores objects up to 1.5 MiB, so the review
 * of any storable Peer (object, and oldObject on UPDATE) fits; a larger body is refused unread.
 */
export const MAX_BODY = 3 << 20;
/** Hardening (departs from Kilo): deeper JSON is refused before parsing (recursive walks overflow the stack at ~4,000; a review nests ~12). */
export const MAX_DEPTH = 64;
/** Hardening (departs from Kilo): objects and arrays per body, bounding what parsing costs (a review holds a few dozen). */
export const MAX_CONTAINERS = 10_000;
/** Hardening (departs from Kilo): object members per body, what parsing pays most for (a review holds a few hundred; README, Security). */
export const MAX_MEMBERS = 100_000;
/** Hardening (departs from Kilo): the request UID is echoed back, so a long one is refused (the API server sends a UUID). */
export const MAX_UID = 256;
/** Overlap warnings shown; the rest are summed up in one last warning. */
export const MAX_WARNINGS = 10;
/** Characters of a message quoted back to the client (denial reasons, 400 texts). */
export const MAX_MESSAGE = 1024;
/**
 * An upper bound of any 200 answer in bytes: the UID and the message (each character at most
 * six when JSON-escaped), the warnings and the envelope.
 */
export const MAX_RESPONSE = 16 << 10;

/** The operations the API server sends; anything else is counted as `other` (fixed metric labels). */
const OPERATIONS = new Set(['CREATE', 'UPDATE', 'DELETE', 'CONNECT']);

/**
 * Hardening (departs from Kilo): a text longer than `max` characters keeps its head and tail
 * (so a denial still says what it is about) and says how much was left out.
 */
export function capText(s: string, max = MAX_MESSAGE): string {
  if (s.length <= max) return s;
  const headEnd = Math.floor(max * 0.6);
  let tailStart = s.length - Math.floor(max * 0.3);
  let head = s.slice(0, headEnd);
  // Never split a surrogate pair: half of one is not valid UTF-8 when sent.
  if (/[\uD800-\uDBFF]$/.test(head)) head = head.slice(0, -1);
  if (/^[\uDC00-\uDFFF]/.test(s.slice(tailStart, tailStart + 1))) tailStart++;
  return `${head}… (${tailStart - head.length} characters left out) …${s.slice(tailStart)}`;
}

/**
 * Why a JSON text is too deep or holds too many objects, arrays or object members, or null. One
 * pass over the characters without parsing (quotes and escapes are tracked, so brackets and
 * colons inside strings do not count); malformed JSON is left for JSON.parse to report.
 */
export function jsonShapeError(s: string, maxDepth = MAX_DEPTH, maxContainers = MAX_CONTAINERS, maxMembers = MAX_MEMBERS): string | null {
  let depth = 0;
  let containers = 0;
  let members = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 0x22) {
      // Skip the string: to the next quote not escaped.
      for (i++; i < s.length; i++) {
        const d = s.charCodeAt(i);
        if (d === 0x5c) i++;
        else if (d === 0x22) break;
      }
    } else if (c === 0x7b || c === 0x5b) {
      if (++depth > maxDepth) return `JSON nested deeper than ${maxDepth} levels`;
      if (++containers > maxContainers) return `more than ${maxContainers} JSON objects and arrays`;
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    } else if (c === 0x3a && ++members > maxMembers) {
      return `more than ${maxMembers} JSON object members`;
    }
  }
  return null;
}

/** The network mask of word k (32 bits) of an address for a prefix length. */
function wordMask(bits: number, k: number): number {
  const left = bits - 32 * k;
  return left >= 32 ? 0xffffffff : left <= 0 ? 0 : (-1 << (32 - left)) >>> 0;
}

/**
 * Overlapping allowed IPs inside one Peer are accepted (Kilo's validation does not check them,
 * design §3.3.3, and kg de-duplicates exact repeats, §5.6) but reported as admission warnings,
 * which kubectl shows to the user.
 *
 * Two prefixes overlap exactly when one contains the other. Sorted by network address (shorter
 * prefix first), a sweep keeps the chain of prefixes that contain the current one: every prefix
 * on the chain overlaps it, and a prefix that does not contain it contains nothing later either.
 * So the pairs are counted in O(n log n) however many there are; the first `max` are named
 * (in the order written), then one warning counts the rest. Networks are kept in typed arrays
 * (~20 bytes an entry: a 3 MiB body lists ~200,000).
 */
export function overlapWarnings(p: PeerObject, max = MAX_WARNINGS): string[] {
  const list = Array.isArray(p.spec?.allowedIPs) ? (p.spec!.allowedIPs as unknown[]) : [];
  const n = list.length;
  const words = new Uint32Array(n * 4); // the network address: IPv4 in word 0, IPv6 in words 0-3
  const bits = new Uint8Array(n);
  const families: [number[], number[]] = [[], []];
  for (let i = 0; i < n; i++) {
    const c = typeof list[i] === 'string' ? parseCIDR(list[i] as string) : null;
    if (!c) continue;
    bits[i] = c.bits;
    if (c.ip.v6) {
      const b = c.ip.b!;
      for (let k = 0; k < 4; k++) words[4 * i + k] = (((b[4 * k] << 24) | (b[4 * k + 1] << 16) | (b[4 * k + 2] << 8) | b[4 * k + 3]) & wordMask(c.bits, k)) >>> 0;
    } else {
      words[4 * i] = (c.ip.n & wordMask(c.bits, 0)) >>> 0;
    }
    families[c.ip.v6 ? 1 : 0].push(i);
  }
  const order = (x: number, y: number) => {
    for (let k = 0; k < 4; k++) if (words[4 * x + k] !== words[4 * y + k]) return words[4 * x + k] - words[4 * y + k];
    return bits[x] - bits[y] || x - y;
  };
  const contains = (outer: number, inner: number, wordCount: number) => {
    if (bits[outer] > bits[inner]) return false;
    for (let k = 0; k < wordCount; k++) if (((words[4 * inner + k] & wordMask(bits[outer], k)) >>> 0) !== words[4 * outer + k]) return false;
    return true;
  };
  const named: [number, number][] = [];
  let total = 0;
  families.forEach((family, v6) => {
    family.sort(order);
    const chain: number[] = [];
    for (const i of family) {
      while (chain.length && !contains(chain[chain.length - 1], i, v6 ? 4 : 1)) chain.pop();
      total += chain.length;
      for (let k = chain.length - 1; k >= 0 && named.length < max; k--) named.push(chain[k] < i ? [chain[k], i] : [i, chain[k]]);
      chain.push(i);
    }
  });
  named.sort(([a, b], [c, d]) => a - c || b - d);
  const text = (i: number) => parseCIDR(list[i] as string)!.s;
  const out = named.map(([a, b]) => `allowedIPs ${text(a)} and ${text(b)} overlap`);
  if (total > named.length) out.push(`... and ${total - named.length} more overlapping pairs of allowedIPs`);
  return out;
}

export interface Verdict {
  status: number;
  /** JSON response body (200) or an error text (400). */
  body: string;
  /** The review's operation as a metric label: CREATE, UPDATE, DELETE, CONNECT or other. */
  operation?: string;
  allowed?: boolean;
}

const bad = (text: string): Verdict => ({ status: 400, body: capText(text) });

/** The admission decision for one request body: pure, so that it is tested without sockets too. */
export function review(contentType: string | undefined, body: string, claims: ClaimLimits = DEFAULT_LIMITS): Verdict {
  if (contentType !== 'application/json') return bad(`received Content-Type=${contentType ?? ''}, expected application/json`);
  const shape = jsonShapeError(body);
  if (shape) return bad(`Request could not be decoded: ${shape}`);
  let ar: unknown;
  try {
    ar = JSON.parse(body);
  } catch (e) {
    return bad(`Request could not be decoded: ${(e as Error).message}`);
  }
  if (!ar || typeof ar !== 'object' || Array.isArray(ar)) return bad('Request could not be decoded: not a JSON object');
  const r = ar as { apiVersion?: unknown; kind?: unknown; request?: unknown };
  if (r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview') return bad('only API v1 is supported');
  const req = r.request as { uid?: unknown; operation?: unknown; object?: unknown } | null | undefined;
  if (!req || typeof req !== 'object' || typeof req.uid !== 'string' || req.uid === '') return bad('Request could not be decoded: request.uid is required');
  if (req.uid.length > MAX_UID) return bad(`Request could not be decoded: request.uid is longer than ${MAX_UID} characters`);
  if (!req.object || typeof req.object !== 'object' || Array.isArray(req.object)) return bad('could not unmarshal the request object into a Peer: not a JSON object');
  const peer = req.object as PeerObject;
  if (peer.spec !== undefined && (peer.spec === null || typeof peer.spec !== 'object' || Array.isArray(peer.spec))) {
    return bad('could not unmarshal the request object into a Peer: spec is not an object');
  }
  const err = validatePeer(peer, claims);
  const warnings = err ? [] : overlapWarnings(peer);
  const response = {
    uid: req.uid,
    allowed: err === null,
    ...(err ? { status: { message: capText(err), code: 403, reason: 'Forbidden' } } : {}),
    ...(warnings.length ? { warnings } : {}),
  };
  return {
    status: 200,
    body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }),
    // Hardening (departs from Kilo): Go uses the operation as sent for the label, so a client
    // could mint label values without end.
    operation: typeof req.operation === 'string' && OPERATIONS.has(req.operation) ? req.operation : 'other',
    allowed: err === null,
  };
}
