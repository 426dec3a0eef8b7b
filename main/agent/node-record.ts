// A Node as the main thread holds it: the slim record the watch keeps (only what the planner
// reads), heartbeat detection on it, and the few fields readiness needs. The planner worker is
// the only place a Node is parsed whole (workers/plan-worker.ts).
import { parseCIDR } from '../../plan/addr.js';
import { endpointReady, parseEndpoint, type Endpoint } from '../../plan/endpoint.js';
import { READY_WINDOW_SECONDS, readyWindowSeconds } from '../../plan/heartbeat.js';
import { parseKey } from '../../plan/key.js';
import { A, ANNOTATION_PREFIX, parseInt64, type NodeObject } from '../../plan/node.js';
import type { KubeObject } from '../../watch/reflector.js';

/** A metadata-only watch, with whole objects as the fallback a server may choose (client-go's form). */
export const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/** Keeps only what the planner reads: kilo.squat.ai annotations, the topology label, podCIDR. */
export function slimNode(o: KubeObject & NodeObject, topologyLabel: string): NodeObject {
  // Only strings: a broken or hostile API server may send anything, and the planner and the
  // heartbeat check compare strings.
  const ann: Record<string, string> = {};
  const all = o.metadata?.annotations ?? {};
  for (const k in all) if (k.startsWith(ANNOTATION_PREFIX) && typeof all[k] === 'string') ann[k] = all[k];
  const label = o.metadata?.labels?.[topologyLabel];
  const podCIDR = o.spec?.podCIDR;
  const podCIDRs = dualPodCIDRs(o);
  return {
    metadata: { name: o.metadata?.name ?? '', annotations: ann, labels: typeof label === 'string' ? { [topologyLabel]: label } : {} },
    spec: podCIDRs ? { podCIDR: typeof podCIDR === 'string' ? podCIDR : '', podCIDRs } : { podCIDR: typeof podCIDR === 'string' ? podCIDR : '' },
  };
}

/** `spec.podCIDRs` when it holds more than one string (dual stack, design §20.2); else undefined. */
export function dualPodCIDRs(o: NodeObject): string[] | undefined {
  const l = o.spec?.podCIDRs;
  // Kubernetes allows two entries, and the planner reads no more (plan/node.ts).
  return Array.isArray(l) && l.length > 1 && typeof l[0] === 'string' && typeof l[1] === 'string' ? [l[0], l[1]] : undefined;
}

function sameMap(a: Record<string, string>, b: Record<string, string>, skip: string): boolean {
  let n = 0;
  for (const k in a) {
    if (k === skip) continue;
    if (a[k] !== b[k]) return false;
    n++;
  }
  for (const k in b) if (k !== skip) n--;
  return n === 0;
}

/**
 * Equal in everything the planner reads except last-seen: the update is a heartbeat. Slim
 * records hold only what the planner reads, so they are compared whole, allocating nothing
 * (it runs for every heartbeat of the cluster).
 */
export function sameButLastSeen(a: NodeObject, b: NodeObject): boolean {
  return (a.spec?.podCIDR ?? '') === (b.spec?.podCIDR ?? '') && String(a.spec?.podCIDRs ?? '') === String(b.spec?.podCIDRs ?? '') &&
    sameMap(a.metadata?.annotations ?? {}, b.metadata?.annotations ?? {}, A.lastSeen) &&
    sameMap(a.metadata?.labels ?? {}, b.metadata?.labels ?? {}, '');
}

/**
 * A heartbeat (only last-seen moved) is written into the record already held, which is kept:
 * storing each fresh record instead promoted it into the old generation for a major GC to
 * collect. Anything else returns the fresh record.
 */
export function heartbeatInPlace(held: NodeObject, fresh: NodeObject): NodeObject {
  if (held === fresh || !sameButLastSeen(held, fresh)) return fresh;
  const seen = fresh.metadata?.annotations?.[A.lastSeen];
  const ann = held.metadata?.annotations;
  if (!ann) return fresh;
  if (seen === undefined) delete ann[A.lastSeen];
  else ann[A.lastSeen] = seen;
  return held;
}

/**
 * A watched record completed from the held one: a metadata-only watch leaves the pod CIDR out,
 * and it can only be set once, so the one seen before is kept; a heartbeat keeps the held record.
 */
export function mergeWatchedNode(fresh: NodeObject, old: NodeObject | undefined): NodeObject {
  const rec = fresh.spec?.podCIDR || !old?.spec?.podCIDR ? fresh : { ...fresh, spec: { ...fresh.spec, podCIDR: old.spec.podCIDR, ...(old.spec.podCIDRs ? { podCIDRs: old.spec.podCIDRs } : {}) } };
  return old !== undefined ? heartbeatInPlace(old, rec) : rec;
}

/** What the main thread needs of a Node for readiness and DNS, read the way parseNode reads it. */
export interface NodeReadiness {
  lastSeen: number;
  /** Seconds after last-seen before the node is not ready (60, or 2 × its advertised period). */
  window: number;
  /** Readiness without the clock: endpoint, key and pod CIDR present. */
  static: boolean;
  /** The DNS endpoint (`host:port`) kg resolves for this node, or "". */
  dns: string;
}

/** The last-seen annotation in Unix seconds (0: absent or malformed), as parseNode reads it. */
export function lastSeenOf(o: NodeObject): number {
  const seen = o.metadata?.annotations?.[A.lastSeen];
  return typeof seen === 'string' ? parseInt64(seen) ?? 0 : 0;
}

function str(ann: Record<string, unknown>, k: string): string | undefined {
  const v = ann[k];
  return typeof v === 'string' ? v : undefined;
}

/** parseNode's endpoint: force-endpoint, falling back to endpoint when it does not parse. */
function endpointOf(ann: Record<string, unknown>): Endpoint | null {
  const force = str(ann, A.forceEndpoint);
  const e = force !== undefined ? parseEndpoint(force) : null;
  if (e) return e;
  const plain = str(ann, A.endpoint);
  return plain !== undefined ? parseEndpoint(plain) : null;
}

/**
 * The readiness fields of a Node without parsing the rest (allowed-location IPs, discovered
 * endpoints, …): the full parse happens once, in the planner worker.
 */
export function readinessOf(o: NodeObject): NodeReadiness {
  const raw = o.metadata?.annotations;
  const ann: Record<string, unknown> = raw && typeof raw === 'object' ? raw : {};
  const period = str(ann, A.checkInPeriod);
  const pod = o.spec?.podCIDR;
  const endpoint = endpointOf(ann);
  const key = str(ann, A.key);
  return {
    lastSeen: lastSeenOf(o),
    window: period !== undefined ? readyWindowSeconds(period) : READY_WINDOW_SECONDS,
    static: endpointReady(endpoint) && key !== undefined && parseKey(key) !== null && typeof pod === 'string' && pod !== '' && parseCIDR(pod) !== null,
    dns: endpoint?.dns ?? '',
  };
}
