// Kilo Peer custom resources → peer records (design §2.3, §3.3).
import { parseCIDR, parseIP, type CIDR } from './addr.js';
import { endpointJSON, isDNS1123Subdomain, newEndpoint, parseEndpoint, type Endpoint } from './endpoint.js';
import { parseKey } from './key.js';
import { DEFAULT_LIMITS, isShortPrefix, quote, SHORT_PREFIX_RULE, type ClaimLimits } from './claims.js';
import type { PeerJSON } from './types.js';

export interface MeshPeer {
  readonly name: string;
  readonly publicKey: string | null;
  readonly allowedIPs: readonly CIDR[];
  readonly endpoint: Endpoint | null;
  /** Always present for Peers built from objects (design §16.14); seconds, ≥ 0. */
  readonly persistentKeepalive: number;
  /** Base64 preshared key: a secret, never printed. */
  readonly presharedKey: string | null;
}

export interface PeerObject {
  metadata?: { name?: string };
  spec?: {
    allowedIPs?: unknown;
    publicKey?: unknown;
    endpoint?: { dnsOrIP?: { dns?: unknown; ip?: unknown } | null; port?: unknown } | null;
    persistentKeepalive?: unknown;
    presharedKey?: unknown;
  } | null;
}

const str = (v: unknown): string => (typeof v === 'string' ? v : '');
const num = (v: unknown): number => (typeof v === 'number' && Number.isFinite(v) ? Math.trunc(v) : 0);

/** A Peer object's name, '' when the object or its name is malformed. */
export function peerName(p: PeerObject | null | undefined): string {
  return str(p?.metadata?.name);
}

/**
 * A value of any JSON type for an error text, bounded: a string is quoted short (claims.ts), a
 * list or an object is named, not serialised (it may be megabytes, or nested too deep to print).
 */
function quoteAny(v: unknown): string {
  if (typeof v === 'string') return quote(v);
  if (Array.isArray(v)) return 'a list';
  if (v !== null && typeof v === 'object') return 'an object';
  return String(v);
}

/**
 * The admission/informer validation of design §3.3.3. Returns the error text, or null when valid.
 * kg only ever sees Peers that pass it (invalid ones are dropped by the informer filter), and
 * `kg webhook` denies exactly these, so that the API server refuses what kg would ignore.
 */
export function validatePeer(p: PeerObject, limits: ClaimLimits = DEFAULT_LIMITS): string | null {
  if (p === null || typeof p !== 'object' || Array.isArray(p)) return 'not an object';
  const spec = p.spec;
  if (!spec || typeof spec !== 'object') return 'spec is required';
  const allowed = spec.allowedIPs ?? [];
  if (!Array.isArray(allowed)) return 'allowedIPs must be a list';
  // Hardening (departs from Kilo): a cap on the count and on short prefixes (plan/claims.ts).
  // A Peer over them is invalid as a whole, as any other invalid Peer is: kg never uses part of one.
  if (allowed.length > limits.maxPeerAllowedIPs) return `allowedIPs has ${allowed.length} entries; at most ${limits.maxPeerAllowedIPs} are allowed`;
  for (const a of allowed) {
    const c = typeof a === 'string' ? parseCIDR(a) : null;
    if (!c) return `failed to parse ${quoteAny(a)} as a valid IP address`;
    if (isShortPrefix(c, limits)) return `allowed IP ${quote(a as string)} is too broad: ${SHORT_PREFIX_RULE}`;
  }
  if (spec.endpoint) {
    const dns = str(spec.endpoint.dnsOrIP?.dns);
    const ip = str(spec.endpoint.dnsOrIP?.ip);
    if (dns === '' && ip === '') return 'either an endpoint DNS name or IP must be given';
    if (dns !== '' && !isDNS1123Subdomain(dns)) {
      return `failed to validate endpoint DNS name ${quote(dns)}: a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character`;
    }
    if (ip !== '' && !parseIP(ip)) return `failed to parse ${quote(ip)} as a valid IP address`;
    const port = spec.endpoint.port;
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 1 || port > 65535) {
      return `port must be a valid UDP port number, got ${quoteAny(port)}`;
    }
  }
  const pka = spec.persistentKeepalive;
  if (pka !== undefined && pka !== null && (typeof pka !== 'number' || pka < 0)) {
    return `persistent keepalive must be greater than or equal to zero; got ${quoteAny(pka)}`;
  }
  if (!parseKey(str(spec.publicKey))) return `failed to parse public key ${quoteAny(spec.publicKey ?? '')}: must be 32 bytes of standard base64`;
  return null;
}

/** Translates a Peer object (design §3.3.4). */
export function parsePeer(p: PeerObject): MeshPeer {
  const spec = p.spec ?? {};
  const allowedIPs: CIDR[] = [];
  if (Array.isArray(spec.allowedIPs)) {
    for (const a of spec.allowedIPs) {
      const c = typeof a === 'string' ? parseCIDR(a) : null;
      if (c) allowedIPs.push(c); // host bits kept (design §16.15)
    }
  }
  let endpoint: Endpoint | null = null;
  const port = num(spec.endpoint?.port);
  if (spec.endpoint && port > 0) {
    const ip = parseIP(str(spec.endpoint.dnsOrIP?.ip));
    if (ip) endpoint = newEndpoint(ip, port);
    // Quirk (design §16.8): DNS wins over IP when both are given, even if it does not parse.
    const dns = str(spec.endpoint.dnsOrIP?.dns);
    if (dns !== '') endpoint = parseEndpoint(`${dns}:${port}`);
  }
  const pka = num(spec.persistentKeepalive);
  return {
    name: peerName(p),
    publicKey: parseKey(str(spec.publicKey)),
    allowedIPs,
    endpoint,
    persistentKeepalive: pka > 0 ? pka : 0,
    presharedKey: parseKey(str(spec.presharedKey)),
  };
}

export function peerReady(p: MeshPeer | null | undefined): boolean {
  return !!p && p.allowedIPs.length > 0 && p.publicKey !== null;
}

export function peerJSON(p: MeshPeer): PeerJSON {
  return {
    name: p.name,
    ready: peerReady(p),
    allowedIPs: p.allowedIPs.map((c) => c.s),
    endpoint: endpointJSON(p.endpoint),
    publicKey: p.publicKey ?? '',
    presharedKey: p.presharedKey !== null,
    persistentKeepalive: p.persistentKeepalive,
  };
}
