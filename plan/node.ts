// Kubernetes Node objects → mesh node records (design §2.2, §3.1), with errors as values.
import { hostPort, network, oneAddress, parseCIDR, parseIP, type CIDR, type IP } from './addr.js';
import { endpointJSON, endpointReady, parseEndpoint, type Endpoint } from './endpoint.js';
import { parseKey } from './key.js';
import { CHECK_IN_PERIOD_ANNOTATION, READY_WINDOW_SECONDS, readyWindowSeconds } from './heartbeat.js';
import { DEFAULT_LIMITS, isShortPrefix, MIN_PREFIX, quote, type ClaimLimits } from './claims.js';
import type { Granularity, NodeJSON } from './types.js';

export { READY_WINDOW_SECONDS };

export const ANNOTATION_PREFIX = 'kilo.squat.ai/';
export const A = {
  endpoint: 'kilo.squat.ai/endpoint',
  forceEndpoint: 'kilo.squat.ai/force-endpoint',
  internalIP: 'kilo.squat.ai/internal-ip',
  forceInternalIP: 'kilo.squat.ai/force-internal-ip',
  key: 'kilo.squat.ai/key',
  lastSeen: 'kilo.squat.ai/last-seen',
  leader: 'kilo.squat.ai/leader',
  location: 'kilo.squat.ai/location',
  persistentKeepalive: 'kilo.squat.ai/persistent-keepalive',
  wireGuardIP: 'kilo.squat.ai/wireguard-ip',
  discoveredEndpoints: 'kilo.squat.ai/discovered-endpoints',
  allowedLocationIPs: 'kilo.squat.ai/allowed-location-ips',
  granularity: 'kilo.squat.ai/granularity',
  cniCompatibilityIP: 'kilo.squat.ai/cni-compatibility-ip',
  /** kg only (heartbeat mode `adaptive`, see heartbeat.ts); Go Kilo ignores it. */
  checkInPeriod: CHECK_IN_PERIOD_ANNOTATION,
  /** kg only (design §20.2): the internal IP of the second family; Go Kilo ignores them. */
  dualStackInternalIP: 'kilo.squat.ai/dual-stack-internal-ip',
  forceDualStackInternalIP: 'kilo.squat.ai/force-dual-stack-internal-ip',
} as const;

export const DEFAULT_TOPOLOGY_LABEL = 'topology.kubernetes.io/region';

/** A discovered UDP address (Go's net.UDPAddr as JSON: IP, Port, Zone). */
export interface UDPAddr {
  readonly ip: IP | null;
  readonly port: number;
  readonly zone: string;
}

export interface MeshNode {
  readonly name: string;
  readonly endpoint: Endpoint | null;
  /** Base64 public key, or null for Kilo's zero key. */
  readonly key: string | null;
  readonly internalIP: CIDR | null;
  readonly noInternalIP: boolean;
  readonly cniCompatibilityIP: CIDR | null;
  readonly lastSeen: number;
  /** Seconds after last-seen before the node is not ready: 60, or 2 × its advertised period. */
  readonly readyWindow: number;
  readonly leader: boolean;
  readonly location: string;
  readonly persistentKeepalive: number;
  readonly subnet: CIDR | null;
  readonly wireGuardIP: CIDR | null;
  /** null when the annotation is absent or not valid JSON. */
  readonly discoveredEndpoints: ReadonlyMap<string, UDPAddr> | null;
  readonly allowedLocationIPs: readonly CIDR[];
  readonly granularity: Granularity | '';
  /** The first `spec.podCIDRs` entry of the other family than `subnet` (design §20.2), or null. */
  readonly subnet2: CIDR | null;
  /** The second family's internal IP (`kilo.squat.ai/[force-]dual-stack-internal-ip`), or null. */
  readonly internalIP2: CIDR | null;
  /**
   * Derived once per parse, so that the many plans of one parsed record (the agent's pool keeps
   * them) do not rebuild them: the one-address CIDR of the internal IP and the segment keys.
   */
  readonly internal32: CIDR | null;
  readonly locationKey: string;
  readonly nodeKey: string;
}

/** The same record with a new last-seen (a heartbeat), keeping its hidden class. */
export function withLastSeen(n: MeshNode, lastSeen: number): MeshNode {
  return meshNode({ ...n, lastSeen });
}

/** Completes the derived fields of a node record (for records built by hand, e.g. in tests). */
export function meshNode(n: Omit<MeshNode, 'internal32' | 'locationKey' | 'nodeKey' | 'readyWindow' | 'subnet2' | 'internalIP2'> & { readyWindow?: number; subnet2?: CIDR | null; internalIP2?: CIDR | null }): MeshNode {
  // One literal with every field in a fixed order: all records share one hidden class (a spread
  // here made parsing and every later plan several times slower).
  return {
    name: n.name, endpoint: n.endpoint, key: n.key, internalIP: n.internalIP, noInternalIP: n.noInternalIP,
    cniCompatibilityIP: n.cniCompatibilityIP, lastSeen: n.lastSeen, readyWindow: n.readyWindow ?? READY_WINDOW_SECONDS, leader: n.leader, location: n.location,
    persistentKeepalive: n.persistentKeepalive, subnet: n.subnet, wireGuardIP: n.wireGuardIP,
    discoveredEndpoints: n.discoveredEndpoints, allowedLocationIPs: n.allowedLocationIPs, granularity: n.granularity,
    subnet2: n.subnet2 ?? null, internalIP2: n.internalIP2 ?? null,
    internal32: n.internalIP ? oneAddress(n.internalIP.ip) : null, locationKey: `location:${n.location}`, nodeKey: `node:${n.name}`,
  };
}

/** The few fields of a Kubernetes Node that Kilo reads: all the planner needs to cache. */
export interface NodeObject {
  metadata?: { name?: string; annotations?: Record<string, string> | null; labels?: Record<string, string> | null };
  spec?: { podCIDR?: string | null; podCIDRs?: readonly string[] | null } | null;
}

export interface Parsed<T> {
  value: T;
  warnings: string[];
}

const INT_RE = /^[+-]?[0-9]+$/;
const INT64_MAX = 9223372036854775807n;
const INT64_MIN = -9223372036854775808n;

/** strconv.ParseInt(s, 10, 64): null when Go would fail. */
export function parseInt64(s: string): number | null {
  if (!INT_RE.test(s)) return null;
  // Up to 15 digits is exact in a double: skip BigInt, the common case (Unix seconds).
  if (s.length <= 15) return Number(s);
  const n = BigInt(s);
  if (n > INT64_MAX || n < INT64_MIN) return null;
  return Number(n);
}

/** Shared by every node that publishes `{}` (most of them); records are never mutated. */
const NO_ENDPOINTS: ReadonlyMap<string, UDPAddr> = new Map();

/** Parses `kilo.squat.ai/discovered-endpoints` (design §3.1.2); null on any error. */
export function parseDiscoveredEndpoints(text: string): ReadonlyMap<string, UDPAddr> | null {
  if (text === '{}') return NO_ENDPOINTS; // what every node without NAT peers publishes
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (raw === null) return new Map();
  if (typeof raw !== 'object' || Array.isArray(raw)) return null;
  const out = new Map<string, UDPAddr>();
  for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
    // A null value is a nil *net.UDPAddr in Go: there is no address to use, so it is dropped.
    if (v === null) continue;
    if (typeof v !== 'object' || Array.isArray(v)) return null;
    const o = v as Record<string, unknown>;
    let ip: IP | null = null;
    if (o.IP !== undefined && o.IP !== null) {
      if (typeof o.IP !== 'string') return null;
      if (o.IP !== '') {
        ip = parseIP(o.IP);
        if (!ip) return null; // net.IP's UnmarshalText fails on a bad address
      }
    }
    let port = 0;
    if (o.Port !== undefined && o.Port !== null) {
      if (typeof o.Port !== 'number' || !Number.isInteger(o.Port)) return null;
      port = o.Port;
    }
    let zone = '';
    if (o.Zone !== undefined && o.Zone !== null) {
      if (typeof o.Zone !== 'string') return null;
      zone = o.Zone;
    }
    out.set(k, { ip, port, zone });
  }
  return out;
}

/** Serialises discovered endpoints as Go does: sorted keys, compact (design §3.1.2). */
export function formatDiscoveredEndpoints(m: ReadonlyMap<string, UDPAddr> | null): string {
  if (!m) return '';
  const keys = [...m.keys()].sort();
  const parts = keys.map((k) => {
    const a = m.get(k)!;
    return `${JSON.stringify(k)}:{"IP":${JSON.stringify(a.ip ? a.ip.s : '')},"Port":${a.port},"Zone":${JSON.stringify(a.zone)}}`;
  });
  return `{${parts.join(',')}}`;
}

// parseNode's helpers are plain functions, not closures: 5,000 nodes would allocate 10,000 of them.
/** The key is present as a string; a present non-string value is reported and treated as absent. */
function present(ann: Record<string, unknown>, warnings: string[], name: string, k: string): boolean {
  const v = ann[k];
  if (typeof v === 'string') return true;
  if (v !== undefined) warnings.push(`node ${name}: ${k}: not a string, ignored`);
  return false;
}

function bad(warnings: string[], name: string, key: string, what: string, value: string): void {
  warnings.push(`node ${name}: ${key}: ${what} ${quote(value)}`);
}

/** An endpoint annotation; an empty value is no endpoint, an invalid one a warning. */
function endpointAnnotation(ann: Record<string, string>, warnings: string[], name: string, k: string): Endpoint | null {
  if (!present(ann, warnings, name, k)) return null;
  const e = parseEndpoint(ann[k]);
  if (!e && ann[k] !== '') bad(warnings, name, k, 'invalid endpoint', ann[k]);
  return e;
}

/** An integer annotation: 0 when absent or invalid (with a warning). */
function intAnnotation(ann: Record<string, string>, warnings: string[], name: string, k: string): number {
  if (!present(ann, warnings, name, k)) return 0;
  const n = parseInt64(ann[k]);
  if (n === null) bad(warnings, name, k, 'invalid integer', ann[k]);
  return n ?? 0;
}

/** A CIDR annotation; empty counts as absent. */
function cidrAnnotation(ann: Record<string, string>, warnings: string[], name: string, k: string): CIDR | null {
  if (!present(ann, warnings, name, k) || ann[k] === '') return null;
  const c = parseCIDR(ann[k]);
  if (!c) bad(warnings, name, k, 'invalid CIDR', ann[k]);
  return c;
}

/** The forced internal IP (`-` or empty: none at all), else the annotated one. */
function internalIPAnnotations(ann: Record<string, string>, warnings: string[], name: string): { internalIP: CIDR | null; noInternalIP: boolean } {
  if (present(ann, warnings, name, A.forceInternalIP)) {
    const v = ann[A.forceInternalIP];
    if (v === '' || v === '-') return { internalIP: null, noInternalIP: true };
    const forced = parseCIDR(v);
    if (forced) return { internalIP: forced, noInternalIP: false };
    bad(warnings, name, A.forceInternalIP, 'invalid CIDR', v);
  }
  if (!present(ann, warnings, name, A.internalIP)) return { internalIP: null, noInternalIP: false };
  const v = ann[A.internalIP];
  const internalIP = v === '' ? null : parseCIDR(v);
  if (!internalIP && v !== '') bad(warnings, name, A.internalIP, 'invalid CIDR', v);
  return { internalIP, noInternalIP: false };
}

/**
 * Parses `kilo.squat.ai/allowed-location-ips` (design §3.1 table): items that do not parse are
 * dropped as Kilo drops them; short prefixes and items over the cap are dropped too (claims.ts).
 * Each kind of drop is ONE warning with a count and the first item, however long the list.
 */
function parseAllowedLocationIPs(text: string, name: string, limits: ClaimLimits, warnings: string[]): CIDR[] {
  const list: CIDR[] = [];
  let invalid = 0;
  let firstInvalid = '';
  let short = 0;
  let firstShort = '';
  let over = 0;
  // Quirk (design §16.37): items are not trimmed, so `a/32, b/32` loses its second item.
  for (const item of text.split(',')) {
    const c = parseCIDR(item);
    if (!c) {
      if (invalid++ === 0) firstInvalid = item;
    } else if (isShortPrefix(c, limits)) {
      if (short++ === 0) firstShort = item;
    } else if (list.length >= limits.maxAllowedLocationIPs) over++;
    else list.push(c);
  }
  const key = A.allowedLocationIPs;
  if (invalid === 1) bad(warnings, name, key, 'invalid CIDR', firstInvalid);
  else if (invalid > 1) warnings.push(`node ${name}: ${key}: ${invalid} invalid CIDRs ignored, first: ${quote(firstInvalid)}`);
  // Hardening (departs from Kilo): see claims.ts.
  if (short > 0) warnings.push(`node ${name}: ${key}: ${short === 1 ? 'a prefix' : `${short} prefixes`} shorter than /${MIN_PREFIX} ignored (--allow-short-prefixes allows them), first: ${quote(firstShort)}`);
  if (over > 0) warnings.push(`node ${name}: ${key}: ${list.length + over} CIDRs, only the first ${limits.maxAllowedLocationIPs} are used`);
  return list;
}

/** Shared by the nodes without allowed-location IPs (most of them); records are never mutated. */
const NO_CIDRS: readonly CIDR[] = Object.freeze([]);

/**
 * Translates a Node object (design §3.1.1). Malformed values are ignored exactly as Kilo ignores
 * them; each one also yields a warning naming the node, the key and the bad value (quoted
 * short: claims.ts). What a node may claim is capped by `limits`.
 */
export function parseNode(obj: NodeObject, topologyLabel = DEFAULT_TOPOLOGY_LABEL, limits: ClaimLimits = DEFAULT_LIMITS): Parsed<MeshNode> {
  const warnings: string[] = [];
  return { value: parseNodeInto(obj, topologyLabel, warnings, limits), warnings };
}

/** parseNode, with the warnings appended to `warnings` (no wrapper or list per node). */
export function parseNodeInto(obj: NodeObject, topologyLabel: string, warnings: string[], limits: ClaimLimits = DEFAULT_LIMITS): MeshNode {
  // Not an object at all, or a name that is not a string: a record without a name, which the
  // planner reports and ignores (a list's item is never trusted to have the declared shape).
  if (obj === null || typeof obj !== 'object') obj = {};
  const rawName = obj.metadata?.name;
  const name = typeof rawName === 'string' ? rawName : '';
  // A malformed API object must not crash the agent: non-object maps and non-string values are
  // treated as absent (with a warning below).
  const rawAnn = obj.metadata?.annotations;
  const ann: Record<string, string> = rawAnn && typeof rawAnn === 'object' ? rawAnn : {};
  const rawLabels = obj.metadata?.labels;
  const labels: Record<string, string> = rawLabels && typeof rawLabels === 'object' ? rawLabels : {};

  let subnet: CIDR | null = null;
  const rawPod = obj.spec?.podCIDR;
  const podCIDR = typeof rawPod === 'string' ? rawPod : '';
  if (podCIDR !== '') {
    const c = parseCIDR(podCIDR);
    if (c) subnet = network(c);
    else bad(warnings, name, 'spec.podCIDR', 'invalid CIDR', podCIDR);
  }

  // Quirk (design §16.1): presence of the key volunteers the node, whatever the value.
  const leader = present(ann, warnings, name, A.leader);
  // Quirk (design §16.2): the annotation wins over the label even when empty.
  const label = labels[topologyLabel];
  const location = present(ann, warnings, name, A.location) ? ann[A.location] : typeof label === 'string' ? label : '';

  let endpoint = endpointAnnotation(ann, warnings, name, A.forceEndpoint);
  if (!endpoint) endpoint = endpointAnnotation(ann, warnings, name, A.endpoint);

  const { internalIP, noInternalIP } = internalIPAnnotations(ann, warnings, name);

  // Quirk (design §16.36): negative keepalives are accepted and propagated.
  const persistentKeepalive = intAnnotation(ann, warnings, name, A.persistentKeepalive);
  const lastSeen = intAnnotation(ann, warnings, name, A.lastSeen);
  let readyWindow = READY_WINDOW_SECONDS;
  if (present(ann, warnings, name, A.checkInPeriod)) {
    readyWindow = readyWindowSeconds(ann[A.checkInPeriod]);
    if (!/^[0-9]{1,6}$/.test(ann[A.checkInPeriod])) bad(warnings, name, A.checkInPeriod, 'invalid period (whole seconds)', ann[A.checkInPeriod]);
  }

  let discoveredEndpoints: ReadonlyMap<string, UDPAddr> | null = null;
  if (present(ann, warnings, name, A.discoveredEndpoints) && ann[A.discoveredEndpoints] !== '') {
    discoveredEndpoints = parseDiscoveredEndpoints(ann[A.discoveredEndpoints]);
    if (!discoveredEndpoints) bad(warnings, name, A.discoveredEndpoints, 'invalid JSON', ann[A.discoveredEndpoints]);
  }

  let allowedLocationIPs = NO_CIDRS;
  if (present(ann, warnings, name, A.allowedLocationIPs) && ann[A.allowedLocationIPs] !== '') {
    allowedLocationIPs = parseAllowedLocationIPs(ann[A.allowedLocationIPs], name, limits, warnings);
  }

  let granularity: Granularity | '' = '';
  if (present(ann, warnings, name, A.granularity)) {
    const g = ann[A.granularity];
    if (g === 'location' || g === 'full' || g === 'cross') granularity = g;
    else if (g !== '') bad(warnings, name, A.granularity, 'unknown granularity', g);
  }

  let key: string | null = null;
  if (present(ann, warnings, name, A.key)) {
    key = parseKey(ann[A.key]);
    if (!key && ann[A.key] !== '') bad(warnings, name, A.key, 'invalid WireGuard key', ann[A.key]);
  }

  const cniCompatibilityIP = cidrAnnotation(ann, warnings, name, A.cniCompatibilityIP);
  const wireGuardIP = cidrAnnotation(ann, warnings, name, A.wireGuardIP);
  const { subnet2, internalIP2 } = secondFamily(obj, ann, subnet, warnings, name);

  return meshNode({
    name, endpoint, key, internalIP, noInternalIP, cniCompatibilityIP, lastSeen, readyWindow, leader, location,
    persistentKeepalive, subnet, wireGuardIP, discoveredEndpoints, allowedLocationIPs, granularity, subnet2, internalIP2,
  });
}

/**
 * Design §20.2: the second family's pod CIDR (the first `spec.podCIDRs` entry whose family is not
 * `spec.podCIDR`'s) and internal IP (forced, else annotated; `-` or empty forces none).
 */
function secondFamily(obj: NodeObject, ann: Record<string, string>, subnet: CIDR | null, warnings: string[], name: string): { subnet2: CIDR | null; internalIP2: CIDR | null } {
  let subnet2: CIDR | null = null;
  const list = obj.spec?.podCIDRs;
  if (subnet && Array.isArray(list)) {
    // Kubernetes allows two entries (one per family): a longer list is not read past that.
    for (const text of list.slice(0, 2)) {
      const c = typeof text === 'string' ? parseCIDR(text) : null;
      if (!c) {
        bad(warnings, name, 'spec.podCIDRs', 'invalid CIDR', String(text));
        continue;
      }
      if (c.ip.v6 !== subnet.ip.v6) {
        subnet2 = network(c);
        break;
      }
    }
  }
  if (!(A.dualStackInternalIP in ann) && !(A.forceDualStackInternalIP in ann)) return { subnet2, internalIP2: null };
  if (present(ann, warnings, name, A.forceDualStackInternalIP)) {
    const v = ann[A.forceDualStackInternalIP];
    if (v === '' || v === '-') return { subnet2, internalIP2: null };
    const forced = parseCIDR(v);
    if (forced) return { subnet2, internalIP2: forced };
    bad(warnings, name, A.forceDualStackInternalIP, 'invalid CIDR', v);
  }
  return { subnet2, internalIP2: cidrAnnotation(ann, warnings, name, A.dualStackInternalIP) };
}

export function nodeReady(n: MeshNode | null | undefined, nowSeconds: number): boolean {
  return !!n && endpointReady(n.endpoint) && n.key !== null && n.subnet !== null && nowSeconds - n.lastSeen < n.readyWindow;
}

// The description's empty values are shared (and frozen): `kg plan` describes every node, and
// most have neither discovered endpoints nor allowed-location IPs.
const NO_DISCOVERED_JSON: Record<string, string> = Object.freeze({}) as Record<string, string>;
export const NO_TEXT: string[] = Object.freeze([]) as unknown as string[];

export function nodeJSON(n: MeshNode, nowSeconds: number): NodeJSON {
  let discovered = NO_DISCOVERED_JSON;
  if (n.discoveredEndpoints?.size) {
    discovered = {};
    for (const k of [...n.discoveredEndpoints.keys()].sort()) {
      const a = n.discoveredEndpoints.get(k)!;
      if (a.ip) discovered[k] = hostPort(a.ip, a.port);
    }
  }
  return {
    name: n.name,
    ready: nodeReady(n, nowSeconds),
    location: n.location,
    endpoint: endpointJSON(n.endpoint),
    internalIP: n.internalIP?.s ?? null,
    noInternalIP: n.noInternalIP,
    subnet: n.subnet?.s ?? null,
    key: n.key,
    leader: n.leader,
    lastSeen: n.lastSeen,
    persistentKeepalive: n.persistentKeepalive,
    wireGuardIP: n.wireGuardIP?.s ?? null,
    discoveredEndpoints: discovered,
    allowedLocationIPs: n.allowedLocationIPs.length ? n.allowedLocationIPs.map((c) => c.s) : NO_TEXT,
    granularity: n.granularity,
    // Design §20.2: only nodes with second-family data carry the field (single-stack JSON unchanged).
    ...(n.subnet2 || n.internalIP2 ? { dualStack: { subnet: n.subnet2?.s ?? null, internalIP: n.internalIP2?.s ?? null } } : {}),
  };
}
