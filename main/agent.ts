// The agent's main thread: watches, the own node (annotations and heartbeat), change detection
// and coalescing, and the hand-off to the planner pool and the I/O worker.
//
//   reflectors (Nodes, Peers) ──► slim records ──► PlanPool (deltas) ──► plan ──► IoClient.apply
//
// Go's agent re-plans on every event, heartbeats included (~167/s at 5,000 nodes). Here a
// heartbeat-only update (last-seen moved, readiness unchanged) costs a map update; a readiness
// sweep notices when a node's heartbeat lapses; bursts are coalesced under --min-sync-interval.
import { lookup } from 'node:dns/promises';
import { parseCIDR } from '../plan/addr.js';
import { endpointReady, endpointString, newEndpoint, splitHostPort } from '../plan/endpoint.js';
import { A, ANNOTATION_PREFIX, READY_WINDOW_SECONDS, parseInt64, parseNode, withLastSeen, type MeshNode, type NodeObject } from '../plan/node.js';
import { MAX_CHECK_IN_SECONDS, nextAdvertised, readyWindowSeconds, type HeartbeatPolicy } from '../plan/heartbeat.js';
import { parsePeer, validatePeer, type PeerObject } from '../plan/peer.js';
import type { PlanOptions } from '../plan/plan.js';
import type { PlanSummary } from '../ipc/planner.js';
import type { ApplyResult } from '../ipc/dataplane.js';
import { CheckInLoop, type CheckInResult } from './checkin.js';
import type { Config } from './flags.js';
import type { Discovered } from './discovery.js';
import { KubeError } from '../watch/kube-error.js';
import { GraphBusyError } from './graph-service.js';
import { GraphTooLargeError } from '../plan/graph.js';
import type { KubeClient } from '../watch/kube.js';
import type { Logger } from './log.js';
import type { Metrics } from './metrics.js';
import { Pacer } from './pacer.js';
import { MAX_LOGGED, WarningLog } from './warnings.js';
import { Reflector, type KubeObject, type ReflectorEvent } from '../watch/reflector.js';
import type { PlanPool } from '../workers/plan-pool.js';
import type { IoClient } from '../workers/io-client.js';

/** The annotations kg writes on its own node (spec §3.1.3). */
const OWNED = [A.endpoint, A.internalIP, A.key, A.lastSeen, A.wireGuardIP, A.discoveredEndpoints, A.granularity, A.cniCompatibilityIP] as const;
/** Removed on clean-up, in this order (spec §3.1.4); cni-compatibility-ip stays. */
const CLEANUP = [A.endpoint, A.internalIP, A.key, A.lastSeen, A.wireGuardIP, A.discoveredEndpoints, A.granularity] as const;

export interface AgentOptions {
  config: Config;
  log: Logger;
  client: KubeClient;
  metrics: Metrics;
  pool: PlanPool;
  io: IoClient;
  host: Discovered;
  publicKey: string;
  privateKey: string;
  /** Average minimum time between plans under churn (main/pacer.ts); bursts are coalesced. */
  minSyncIntervalMs: number;
  /** Heartbeat (check-in) period; the Go-compatible default is 30 s (the minimum when adaptive). */
  checkInPeriodMs: number;
  /** Heartbeat mode (plan/heartbeat.ts); absent = Kilo's. */
  heartbeat?: HeartbeatPolicy;
  /** Device names used in routes (the private interface, the IPIP tunnel). */
  privateInterface: string;
  tunnelInterface: string;
  /** Clock in Unix seconds (tests inject one). */
  now?: () => number;
  /** Watch tuning (tests use short values). */
  watch?: { timeoutSeconds?: number; watchdogMs?: number; backoffMaxMs?: number };
}

interface NodeRecord {
  obj: NodeObject;
  lastSeen: number;
  /** Seconds after last-seen before the node is not ready (60, or 2 × its advertised period). */
  window: number;
  /** Readiness without the clock: endpoint, key and pod CIDR present. */
  static: boolean;
  /** The DNS endpoint (`host:port`) kg resolves for this node, or "". */
  dns: string;
  /** Readiness when the last reconcile started: a flip since then needs a plan. */
  planned: boolean;
}

/** Keeps only what the planner reads: kilo.squat.ai annotations, the topology label, podCIDR. */
export function slimNode(o: KubeObject & NodeObject, topologyLabel: string): NodeObject {
  // Only string values are kept: a real API server enforces map[string]string, but a broken or
  // hostile one may send anything, and the planner and the heartbeat check compare strings.
  const ann: Record<string, string> = {};
  const all = o.metadata?.annotations ?? {};
  for (const k in all) if (k.startsWith(ANNOTATION_PREFIX) && typeof all[k] === 'string') ann[k] = all[k];
  const label = o.metadata?.labels?.[topologyLabel];
  const podCIDR = o.spec?.podCIDR;
  return {
    metadata: { name: o.metadata?.name ?? '', annotations: ann, labels: typeof label === 'string' ? { [topologyLabel]: label } : {} },
    spec: { podCIDR: typeof podCIDR === 'string' ? podCIDR : '' },
  };
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
 * records (slimNode) hold only what the planner reads, so this compares them whole, without
 * building anything (it runs for every one of ~170 heartbeats a second at 5,000 nodes).
 */
export function sameButLastSeen(a: NodeObject, b: NodeObject): boolean {
  return (a.spec?.podCIDR ?? '') === (b.spec?.podCIDR ?? '') &&
    sameMap(a.metadata?.annotations ?? {}, b.metadata?.annotations ?? {}, A.lastSeen) &&
    sameMap(a.metadata?.labels ?? {}, b.metadata?.labels ?? {}, '');
}

/**
 * A heartbeat (only last-seen moved) is written into the record already held, which is then
 * kept: at 5,000 nodes ~170 of them arrive every second, and storing each fresh record instead
 * promoted it (~1 KB) into the old generation, to be collected by a major GC later. Anything
 * else returns the fresh record.
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

export class Agent {
  private readonly nodes = new Map<string, NodeRecord>();
  private nodeReflector: Reflector<NodeObject>;
  private peerReflector: Reflector<PeerObject>;
  private readonly now: () => number;
  private readonly log: Logger;

  /** The local node as last written (spec §11.3 "stored local model"). */
  private local: MeshNode | null = null;
  private localObj: NodeObject | null = null;
  /** The own node's annotations as the API has them (what a check-in diffs against). */
  private published: Record<string, string> = {};
  private wireGuardIP: string | null = null;
  private discovered = '';

  private pendingSince: number | null = null;
  private pendingEvents = 0;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly pacer: Pacer;
  /** The counter child of the commonest event, looked up once (prom-client hashes labels per call). */
  private readonly heartbeatEvents: ReturnType<Metrics['events']['labels']>;
  /** The own node's readiness when the last reconcile started (null: not known then). */
  private plannedSelf: boolean | null = null;
  /** The sequence number of the desired state the I/O worker holds (null: none or unknown). */
  private ioSeq: number | null = null;
  private forceApply = false;
  /** Plans asked for so far (graphVersion). */
  private scheduled = 0;
  private stopped = false;
  private inflight: Promise<void> = Promise.resolve();
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly dns = new Map<string, { ip: string | null; at: number }>();
  /** Peers' DNS endpoints (`host:port`) by Peer name: resolved like the nodes'. */
  private readonly peerDns = new Map<string, string>();
  /** The check-in schedule, with prompt retries of a failed one (main/checkin.ts). */
  private readonly checkIns: CheckInLoop;

  /** Health: watches synced, first apply done, no run of failures. */
  firstApply = false;
  consecutiveFailures = 0;
  lastSuccess = 0;
  lastSummary: PlanSummary | null = null;
  private readonly warnings = new WarningLog();

  constructor(private readonly o: AgentOptions) {
    this.now = o.now ?? (() => Math.floor(Date.now() / 1000));
    this.pacer = new Pacer(o.minSyncIntervalMs, 3, performance.now());
    this.heartbeatEvents = o.metrics.events.labels('node', 'heartbeat');
    this.log = o.log;
    this.checkIns = new CheckInLoop({
      periodMs: () => this.checkInPeriodMs(),
      attempt: () => this.checkIn(),
      onRetry: (inMs, failures) => this.log.warn('check-in failed; retrying', { node: o.config.hostname, failures, retryInMs: Math.round(inMs) }),
    });
    const common = {
      client: o.client, log: o.log,
      watchTimeoutSeconds: o.watch?.timeoutSeconds, watchdogMs: o.watch?.watchdogMs, backoffMaxMs: o.watch?.backoffMaxMs,
    };
    this.nodeReflector = new Reflector<NodeObject>({
      ...common,
      path: '/api/v1/nodes',
      slim: (x) => slimNode(x as NodeObject & KubeObject, o.config.topologyLabel),
      // Lists bring whole Nodes; the watch asks for metadata only (kubelet status updates and
      // the images list are most of a Node's bytes, and 5,000 agents receive every one of
      // them). A pod CIDR can only be set once, so the one seen before is kept; a Node that has
      // none yet is fetched (probePodCIDR). A server that ignores the header sends whole Nodes.
      watchAccept: METADATA_WATCH_ACCEPT,
      merge: (fresh, old) => {
        const rec = fresh.spec?.podCIDR || !old?.spec?.podCIDR ? fresh : { ...fresh, spec: { ...fresh.spec, podCIDR: old.spec.podCIDR } };
        return old !== undefined ? heartbeatInPlace(old, rec) : rec;
      },
      onEvent: (e) => this.onNode(e),
      onSynced: () => this.schedule('nodes synced'),
    });
    this.peerReflector = new Reflector<PeerObject>({
      ...common,
      path: '/apis/kilo.squat.ai/v1alpha1/peers',
      slim: (x) => {
        const p = x as PeerObject;
        return { metadata: { name: p.metadata?.name }, spec: p.spec };
      },
      onEvent: (e) => this.onPeer(e),
      onSynced: () => this.schedule('peers synced'),
    });
  }

  get synced(): boolean {
    return this.nodeReflector.hasSynced && this.peerReflector.hasSynced;
  }

  reflectorStats() {
    return { nodes: this.nodeReflector.stats, peers: this.peerReflector.stats };
  }

  /** The Peer CRD must exist (spec §3.3.7): the Go agent exits without it. */
  async checkCRD(): Promise<void> {
    try {
      await this.o.client.request('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peers.kilo.squat.ai', { timeoutMs: 15_000 });
    } catch (e) {
      if (e instanceof KubeError && (e.status === 404 || e.status === 403)) throw new Error('CRD is not present: apply manifests/crds.yaml (peers.kilo.squat.ai)');
      throw e;
    }
  }

  start(): void {
    this.nodeReflector.start();
    this.peerReflector.start();
    // Readiness depends on the clock: a lapsed heartbeat changes the mesh without any event.
    this.timers.push(setInterval(() => this.sweep(), 1000));
    this.checkIns.start();
    // Roaming endpoints are learnt between changes too (handshakes happen without events).
    this.timers.push(setInterval(() => this.refreshObserved(true), this.o.checkInPeriodMs));
    if (this.o.config.resyncPeriodMs > 0) {
      this.timers.push(setInterval(() => {
        this.forceApply = true;
        this.schedule('resync');
      }, this.o.config.resyncPeriodMs));
    }
    for (const t of this.timers) t.unref();
  }

  // ---- events ---------------------------------------------------------------------------

  private onNode(e: ReflectorEvent<NodeObject>): void {
    const m = this.o.metrics;
    if (e.type === 'delete') this.podCIDRProbes.delete(e.name);
    else if (!e.obj.spec?.podCIDR && !this.podCIDRProbes.has(e.name)) {
      this.podCIDRProbes.set(e.name, { next: 0, delayMs: 1000, inflight: false });
      this.probePodCIDRs();
    }
    if (e.name === this.o.config.hostname) {
      m.events.labels('node', e.type).inc();
      if (e.type === 'delete') {
        // Quirk (spec §16.32): the Go agent tries to patch a deleted node and counts an error.
        m.errors.labels('local').inc();
        this.log.warn('the local node was deleted from the API', { node: e.name });
        return;
      }
      void this.handleLocal(e.obj);
      return;
    }
    if (e.type === 'delete') {
      m.events.labels('node', 'delete').inc();
      this.nodes.delete(e.name);
      this.o.pool.deleteNode(e.name);
      this.schedule('node deleted');
      return;
    }
    const obj = e.obj;
    const prev = this.nodes.get(e.name);
    // The reflector kept the held record (heartbeatInPlace): same object, new last-seen.
    if (prev !== undefined && (prev.obj === obj || sameButLastSeen(prev.obj, obj))) {
      // Heartbeat only: no re-parse in the pool, no plan, unless readiness flips (the sweep
      // catches a node coming back; a fresher last-seen can only make it ready). The record
      // is updated in place, like the slim object, so that nothing is promoted.
      const wasReady = this.isReady(prev);
      prev.obj = obj;
      prev.lastSeen = parseInt64(obj.metadata?.annotations?.[A.lastSeen] ?? '') ?? 0;
      this.heartbeatEvents.inc();
      this.o.pool.setLastSeen(e.name, prev.lastSeen, obj);
      if (wasReady !== this.isReady(prev)) this.schedule('node readiness');
      return;
    }
    const n = parseNodeQuick(obj);
    this.nodes.set(e.name, { obj, lastSeen: n.lastSeen, window: n.window, static: n.static, dns: n.dns, planned: prev?.planned ?? false });
    m.events.labels('node', e.type).inc();
    this.o.pool.setNode(e.name, obj);
    this.schedule(`node ${e.type}`);
  }

  private onPeer(e: ReflectorEvent<PeerObject>): void {
    this.o.metrics.events.labels('peer', e.type).inc();
    if (e.type === 'delete') {
      this.peerDns.delete(e.name);
      this.o.pool.deletePeer(e.name);
      this.schedule('peer deleted');
      return;
    }
    // An update that breaks a valid Peer keeps the last valid version (spec §3.3.5): what worked
    // is not lost to a bad edit. A new invalid Peer is reported by the planner as a warning.
    const invalid = validatePeer(e.obj, this.o.config.claims);
    if (e.type === 'update' && invalid !== null && validatePeer(e.old, this.o.config.claims) === null) {
      this.o.metrics.annotationWarnings.inc();
      this.log.warn('invalid Peer update ignored; keeping the last valid version', { peer: e.name, error: invalid });
      return;
    }
    const dns = invalid === null ? parsePeer(e.obj).endpoint?.dns ?? '' : '';
    if (dns) this.peerDns.set(e.name, dns);
    else this.peerDns.delete(e.name);
    this.o.pool.setPeer(e.name, e.obj);
    this.schedule(`peer ${e.type}`);
  }

  /** Counts and logs each planner warning once, when it first appears (main/warnings.ts). */
  private reportWarnings(list: readonly string[]): void {
    const { added, cleared } = this.warnings.update(list);
    const m = this.o.metrics;
    m.annotationWarnings.inc(added.length);
    m.currentWarnings.set(this.warnings.size);
    for (const w of added.slice(0, MAX_LOGGED)) this.log.warn('ignored input', { warning: w });
    if (added.length > MAX_LOGGED) this.log.warn('more ignored input', { more: added.length - MAX_LOGGED, total: this.warnings.size });
    if (cleared > 0) this.log.info('warnings cleared', { cleared, remaining: this.warnings.size });
  }

  private isReady(r: NodeRecord, now = this.readinessNow()): boolean {
    return r.static && now - r.lastSeen < r.window;
  }

  // API outages freeze the readiness clock. No agent can heartbeat while the API is down, so on
  // reconnection every node would look stale and be torn down until its next check-in (Go does
  // that, spec §16.46). The outage's length is taken off the clock until every node had a full
  // readiness window to check in again; a node that really died still drops out, late by the
  // outage's length.
  private outageStart: number | null = null;
  private frozenSeconds = 0;
  private frozenUntil = 0;

  private readinessNow(): number {
    const now = this.now();
    if (this.outageStart !== null) return this.outageStart - this.frozenSeconds;
    if (now >= this.frozenUntil) this.frozenSeconds = 0;
    return now - this.frozenSeconds;
  }

  private trackOutage(): void {
    const now = this.now();
    if (!this.apiReachable) {
      if (this.outageStart === null && this.synced) {
        this.outageStart = now;
        this.log.warn('lost the API; freezing the readiness clock');
      }
    } else if (this.outageStart !== null) {
      this.frozenSeconds += now - this.outageStart;
      // Every node gets one full window of its own (adaptive nodes advertise longer ones).
      let window = READY_WINDOW_SECONDS;
      for (const r of this.nodes.values()) if (r.window > window) window = r.window;
      this.frozenUntil = now + window;
      this.log.info('the API is back', { outageSeconds: now - this.outageStart });
      this.outageStart = null;
    }
  }

  /** The API answers on both watches: the view of the cluster is current. */
  get apiReachable(): boolean {
    return this.nodeReflector.connected && this.peerReflector.connected;
  }

  private exported = { restarts: [0, 0], relists: [0, 0], bytes: [0, 0], invalid: [{} as Record<string, number>, {} as Record<string, number>] };

  /** Reflector counters → prom-client (deltas since the last export). */
  private exportWatchMetrics(): void {
    const m = this.o.metrics;
    [this.nodeReflector.stats, this.peerReflector.stats].forEach((st, i) => {
      const resource = i === 0 ? 'node' : 'peer';
      const e = this.exported;
      if (st.watchRestarts + st.watchErrors > e.restarts[i]) m.watchRestarts.labels(resource).inc(st.watchRestarts + st.watchErrors - e.restarts[i]);
      // Every completed list (start-up, 410, invalid response) is one relist; `relists` counts
      // the 410s that led to one, so adding it counted those twice.
      if (st.lists > e.relists[i]) m.relists.labels(resource).inc(st.lists - e.relists[i]);
      if (st.bytes > e.bytes[i]) m.watchBytes.labels(resource).inc(st.bytes - e.bytes[i]);
      for (const [reason, n] of Object.entries(st.invalid)) {
        if (n > (e.invalid[i][reason] ?? 0)) m.invalidResponses.labels(resource, reason).inc(n - (e.invalid[i][reason] ?? 0));
        e.invalid[i][reason] = n;
      }
      e.restarts[i] = st.watchRestarts + st.watchErrors;
      e.relists[i] = st.lists;
      e.bytes[i] = st.bytes;
    });
  }

  // ---- pod CIDRs the metadata-only watch cannot show ---------------------------------------

  private readonly podCIDRProbes = new Map<string, { next: number; delayMs: number; inflight: boolean }>();
  private podCIDRInflight = 0;

  /**
   * GETs the Nodes that have no pod CIDR yet (a new Node before the IPAM controller assigned
   * one), at most 4 at a time, each with a backoff of 1 s doubling up to 5 min: a Node without a
   * pod CIDR is not ready (spec §2.4.1) and waits for this.
   */
  private probePodCIDRs(): void {
    const now = Date.now();
    for (const [name, p] of this.podCIDRProbes) {
      if (this.podCIDRInflight >= 4 || this.stopped) return;
      if (p.inflight || now < p.next) continue;
      p.inflight = true;
      this.podCIDRInflight++;
      void this.o.client
        .request('GET', `/api/v1/nodes/${encodeURIComponent(name)}`, { timeoutMs: 10_000 })
        .then((body) => {
          const podCIDR = (body as NodeObject | null)?.spec?.podCIDR;
          if (podCIDR) {
            this.podCIDRProbes.delete(name);
            this.nodeReflector.amend(name, (cur) => (cur.spec?.podCIDR ? cur : { ...cur, spec: { ...cur.spec, podCIDR } }));
            return;
          }
          throw new Error('no pod CIDR yet');
        })
        .catch((err: Error) => {
          this.log.debug('node has no pod CIDR yet', { node: name, error: err.message });
          p.next = Date.now() + p.delayMs;
          p.delayMs = Math.min(p.delayMs * 2, 300_000);
        })
        .finally(() => {
          p.inflight = false;
          this.podCIDRInflight--;
        });
    }
  }

  /** Once a second: has any node's readiness flipped since the last plan (heartbeat lapsed)? */
  private sweep(): void {
    this.exportWatchMetrics();
    if (this.podCIDRProbes.size > 0) this.probePodCIDRs();
    this.trackOutage();
    if (!this.synced || this.stopped) return;
    // While the API is unreachable no heartbeat can arrive: remote nodes would all look stale
    // and be torn down. Keep the last good dataplane until the watches are back.
    if (!this.apiReachable) return;
    if (this.readinessChanged()) this.schedule('readiness changed');
  }

  private selfReady(now: number): boolean | null {
    return this.local && now - this.local.lastSeen < readyWindowSeconds(this.advertised > 0 ? String(this.advertised) : undefined);
  }

  // The sweep runs every second over every node: it compares flags and allocates nothing (a key
  // string of the ready set cost ~200 KB of garbage a second at 5,000 nodes).
  /** Records the readiness the reconcile about to run plans with. */
  private markPlanned(): void {
    const now = this.readinessNow();
    for (const r of this.nodes.values()) r.planned = this.isReady(r, now);
    this.plannedSelf = this.selfReady(now);
  }

  /** A node's readiness, or the own node's, flipped since the last reconcile started. */
  private readinessChanged(): boolean {
    const now = this.readinessNow();
    for (const r of this.nodes.values()) if (this.isReady(r, now) !== r.planned) return true;
    return this.selfReady(now) !== this.plannedSelf;
  }

  // ---- the local node (spec §11.3, §11.4) ----------------------------------------------

  private desiredLocal(n: MeshNode, lastSeen: number): MeshNode {
    const c = this.o.config;
    let endpoint = n.endpoint;
    if (!endpointReady(endpoint)) {
      // Stickiness (spec §3.1.5): only when the annotations hold no valid endpoint.
      const ext = c.prioritisePrivateAddresses && this.o.host.privateIP ? this.o.host.privateIP : this.o.host.publicIP;
      endpoint = newEndpoint(ext?.ip ?? null, c.port);
    }
    const internalIP = n.internalIP ?? (n.noInternalIP ? null : this.o.host.privateIP);
    return {
      ...n,
      endpoint,
      key: this.o.publicKey,
      internalIP,
      lastSeen,
      wireGuardIP: this.wireGuardIP ? parseCIDR(this.wireGuardIP) : null,
      granularity: c.meshGranularity,
      cniCompatibilityIP: null,
    };
  }

  private annotationsOf(n: MeshNode): Record<string, string> {
    return {
      [A.endpoint]: endpointString(n.endpoint),
      [A.internalIP]: n.internalIP?.s ?? '',
      [A.key]: n.key ?? '',
      [A.lastSeen]: String(n.lastSeen),
      [A.wireGuardIP]: n.wireGuardIP?.s ?? '',
      [A.discoveredEndpoints]: this.discovered,
      [A.granularity]: n.granularity,
      [A.cniCompatibilityIP]: n.cniCompatibilityIP?.s ?? '',
      ...(this.advertised > 0 ? { [A.checkInPeriod]: String(this.advertised) } : {}),
    };
  }

  /** Writes only the owned annotations that differ (a JSON merge patch, as compatible as Go's). */
  private async publish(current: Record<string, string>, want: Record<string, string>, event: 'local' | 'checkin'): Promise<CheckInResult> {
    const diff: Record<string, string | null> = {};
    for (const k of OWNED) if (current[k] !== want[k]) diff[k] = want[k];
    // The adaptive period is the only owned annotation that can disappear (back to kilo mode):
    // null removes it in a merge patch.
    if (current[A.checkInPeriod] !== want[A.checkInPeriod]) diff[A.checkInPeriod] = want[A.checkInPeriod] ?? null;
    if (Object.keys(diff).length === 0) return { ok: true, retryAfterMs: null };
    try {
      await this.o.client.request('PATCH', `/api/v1/nodes/${encodeURIComponent(this.o.config.hostname)}`, {
        body: { metadata: { annotations: diff } },
        contentType: 'application/merge-patch+json',
        timeoutMs: 10_000,
      });
      return { ok: true, retryAfterMs: null };
    } catch (e) {
      this.o.metrics.errors.labels(event).inc();
      this.log.error('failed to update the local node', { node: this.o.config.hostname, error: (e as Error).message, event });
      return { ok: false, retryAfterMs: e instanceof KubeError ? e.retryAfterMs : null };
    }
  }

  private async handleLocal(obj: NodeObject): Promise<void> {
    const n = parseNode(obj, this.o.config.topologyLabel).value;
    // A restarted adaptive agent keeps the period it advertised (readers' windows rely on it).
    const cur0 = obj.metadata?.annotations?.[A.checkInPeriod];
    if (this.o.heartbeat?.mode === 'adaptive' && this.local === null && cur0 && /^[0-9]{1,6}$/.test(cur0)) {
      this.advertised = Math.min(Number(cur0), MAX_CHECK_IN_SECONDS);
    }
    // Quirk (spec §16.47): the own readiness uses the last-seen held in memory.
    const lastSeen = this.local && this.local.lastSeen > n.lastSeen ? this.local.lastSeen : this.now();
    const want = this.desiredLocal(n, lastSeen);
    const wantAnn = this.annotationsOf(want);
    const cur = obj.metadata?.annotations ?? {};
    const changed = OWNED.some((k) => k !== A.lastSeen && cur[k] !== wantAnn[k]) || cur[A.checkInPeriod] !== wantAnn[A.checkInPeriod];
    if (changed && !(await this.publish(cur, wantAnn, 'local')).ok) return;
    const before = this.local ? JSON.stringify(this.annotationsOf(this.local)) : '';
    this.local = want;
    this.localObj = { ...obj, metadata: { ...obj.metadata, annotations: withPublished(cur, wantAnn) } };
    // Unless the patch above went out, the API holds `cur`: the last-seen taken as now() is the
    // in-memory model's only (§16.47). Taking it as published made a check-in within the same
    // second (after a relist, say) write nothing, and the node skip a whole period.
    this.published = changed ? withPublished(cur, wantAnn) : { ...cur };
    this.o.pool.setNode(this.o.config.hostname, this.localObj);
    if (JSON.stringify(wantAnn) !== before) this.schedule('local node');
  }

  /** The advertised check-in period in seconds (0: none, Kilo's 30 s). */
  private advertised = 0;

  /** The current check-in period: Kilo's fixed one, or the advertised adaptive one. */
  checkInPeriodMs(): number {
    const p = this.o.heartbeat;
    if (!p || p.mode === 'kilo' || this.advertised === 0) return this.o.checkInPeriodMs;
    return this.advertised * 1000;
  }

  /** The 30 s check-in Go agents expect: last-seen (and anything else that moved) published. */
  private async checkIn(): Promise<CheckInResult> {
    if (!this.local || !this.localObj || this.stopped) return { ok: true, retryAfterMs: null };
    const prev = this.local;
    // Adaptive mode: a longer period is advertised in the same write as the last-seen it
    // covers, so that readers stretch this node's window before it goes quiet for longer.
    const p = this.o.heartbeat;
    const advertisedBefore = this.advertised;
    if (p?.mode === 'adaptive') this.advertised = nextAdvertised(p, this.advertised, this.nodes.size + 1);
    const next = withLastSeen(prev, this.now());
    const ann = this.annotationsOf(next);
    const r = await this.publish(this.published, ann, 'checkin');
    this.o.metrics.heartbeats.labels(r.ok ? 'ok' : 'error').inc();
    if (!r.ok) {
      this.advertised = advertisedBefore;
      return r; // the previous last-seen stays in memory (spec §11.4); the loop retries soon
    }
    this.local = next;
    this.published = withPublished(this.published, ann);
    this.localObj = { ...this.localObj, metadata: { ...this.localObj.metadata, annotations: withPublished(this.localObj.metadata?.annotations ?? {}, ann) } };
    // A new period is a change the planner parses (the readiness window); last-seen alone is not.
    if (this.advertised !== advertisedBefore) this.o.pool.setNode(this.o.config.hostname, this.localObj);
    else this.o.pool.setLastSeen(this.o.config.hostname, next.lastSeen, this.localObj);
    return r;
  }

  // ---- planning and applying ------------------------------------------------------------

  /** Asks for a plan; `events` is how many changes this request stands for (0 for a retry). */
  private schedule(reason: string, events = 1): void {
    if (this.stopped) return;
    this.scheduled++;
    this.pendingEvents += events;
    this.pendingSince ??= performance.now();
    this.o.metrics.pendingChanges.set(this.pendingEvents);
    if (this.running || this.timer) return;
    const wait = this.pacer.delay(performance.now());
    this.log.debug('reconcile scheduled', { reason, inMs: Math.round(wait) });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pacer.take(performance.now());
      this.inflight = this.reconcile();
    }, wait);
  }

  private planOptions(): PlanOptions {
    const c = this.o.config;
    return {
      hostname: c.hostname, granularity: c.meshGranularity, subnet: c.subnet, encapsulate: c.encapsulate, local: c.local, cni: c.cni,
      compatibility: c.compatibility, iptablesForwardRules: c.iptablesForwardRules, serviceCIDRs: c.serviceCIDRs, interface: c.interface,
      mtu: c.mtu === 'auto' ? this.o.host.autoMTU : c.mtu, privateInterface: this.o.privateInterface, tunnelInterface: this.o.tunnelInterface,
      now: this.readinessNow(),
    };
  }

  /** DNS endpoints resolve in the background with a cache: one bad name never blocks a reconcile. */
  private resolved(): [string, string][] {
    const out: [string, string][] = [];
    const want = new Set<string>();
    // The endpoint as the planner parses it (force-endpoint falling back to endpoint, §3.1.1).
    for (const r of this.nodes.values()) if (r.dns) want.add(r.dns);
    for (const ep of this.peerDns.values()) want.add(ep);
    // Names no node or Peer uses any more are forgotten.
    for (const ep of this.dns.keys()) if (!want.has(ep)) this.dns.delete(ep);
    for (const ep of want) {
      const c = this.dns.get(ep);
      if (c?.ip) out.push([ep, c.ip]);
      if (!c || Date.now() - c.at > 30_000) {
        this.dns.set(ep, { ip: c?.ip ?? null, at: Date.now() });
        const host = splitHostPort(ep)?.host ?? ep;
        lookup(host, { family: 4 })
          .catch(() => lookup(host))
          .then((a) => {
            const changed = this.dns.get(ep)?.ip !== a.address;
            this.dns.set(ep, { ip: a.address, at: Date.now() });
            if (changed) this.schedule('dns resolved');
          })
          .catch((e: Error) => {
            this.o.metrics.dnsFailures.inc();
            this.log.warn('failed to resolve endpoint', { endpoint: ep, error: e.message });
          });
      }
    }
    return out;
  }

  private async reconcile(): Promise<void> {
    if (this.stopped || !this.synced) return;
    if (!this.apiReachable) {
      // Pending changes wait (they are not dropped); check again in a second.
      this.log.warn('the API is unreachable; keeping the last good dataplane');
      const t = setTimeout(() => this.schedule('waiting for the API', 0), 1000);
      t.unref();
      return;
    }
    this.running = true;
    const since = this.pendingSince;
    const events = this.pendingEvents;
    this.pendingSince = null;
    this.pendingEvents = 0;
    this.o.metrics.pendingChanges.set(0);
    this.o.metrics.batchSize.observe(events);
    this.o.metrics.reconciles.inc();
    this.markPlanned();
    const m = this.o.metrics;
    try {
      if (!this.local) return; // the local node is not known yet: nothing to plan for
      // NAT discovery reads the device (spec §6.7). Reading 5,000 peers on every change would sit
      // on the critical path, so the plan uses the last reading, refreshed after each apply.
      const observed = this.observed;
      const t0 = performance.now();
      const a = await this.o.pool.plan({
        options: this.planOptions(),
        privateKey: this.o.privateKey,
        resolved: this.resolved(),
        observed,
        desired: { cniPath: this.o.config.cni ? this.o.config.cniPath : null, tunnelPrivIface: this.o.host.privateIface, baseSeq: this.ioSeq },
      });
      m.planDuration.observe((performance.now() - t0) / 1000);
      if (!a.ok) {
        m.plans.labels('error').inc();
        m.errors.labels('apply').inc();
        this.consecutiveFailures++;
        this.log.error('planning failed', { error: 'error' in a ? a.error : 'replica unavailable' });
        return;
      }
      m.plans.labels('ok').inc();
      const s = a.summary;
      this.lastSummary = s;
      this.reportWarnings(s.warnings);
      if (s.discoveredEndpoints !== null) this.discovered = s.discoveredEndpoints;
      if (!s.ready) {
        this.log.info('the local node is not ready; leaving the dataplane as it is', { node: this.o.config.hostname });
        return;
      }
      m.nodes.set(s.readyNodes);
      m.peers.set(s.readyPeers);
      m.leader.set(s.leader ? 1 : 0);
      const wgip = s.leader ? s.wireGuardCIDR : null;
      if (wgip !== this.wireGuardIP) {
        this.wireGuardIP = wgip;
        // Published with the next local update or check-in (spec §11.4); do it now.
        if (this.localObj) void this.handleLocal(this.localObj);
      }
      if (a.noop && !this.forceApply) {
        this.markApplied(since);
        return;
      }
      const t1 = performance.now();
      m.ioQueueDepth.set(1);
      let res: ApplyResult;
      // The pool made a delta against the state the I/O worker holds (O(changed) to move and to
      // apply), or the whole state when it holds none; a resync with nothing new re-reads the kernel.
      if (a.heapBytes !== undefined) m.plannerHeap.set(a.heapBytes);
      if (a.noop) res = await this.o.io.resync();
      else if (a.delta) res = await this.o.io.applyPrepared(a.delta);
      // The whole state goes on as the planner's JSON text: a string crosses threads as one copy,
      // where the parsed state (35,000 objects at 5,000 nodes) would be cloned object by object.
      else res = await this.o.io.applyFull(a.full!, a.seq!);
      m.ioQueueDepth.set(0);
      this.forceApply = false;
      const ioMs = performance.now() - t1;
      m.applyDuration.observe(ioMs / 1000);
      if (res.needFullState) {
        this.ioSeq = null;
        this.schedule('the I/O worker needs the whole state', 0);
        return;
      }
      // The worker holds the new state even when some writes failed: it retries those itself.
      this.ioSeq = a.seq ?? this.ioSeq;
      if (!res.ok) {
        m.errors.labels('apply').inc();
        this.consecutiveFailures++;
        this.log.error('applying the plan failed; the I/O worker retries', { errors: res.errors.slice(0, 5).map((x) => `${x.kind} ${x.item}: ${x.message}`) });
        return;
      }
      this.markApplied(since);
      this.refreshObserved();
      this.log.info('mesh programmed', {
        leader: s.leader, nodes: s.readyNodes, peers: s.readyPeers, wgPeers: s.wgPeers, routes: s.routes, writes: res.writes,
        parseMs: Math.round(a.parseMs), planMs: Math.round(a.planMs), applyMs: Math.round(res.durationMs), events,
        waitMs: since === null ? null : Math.round(t0 - since), roundTripMs: Math.round(t1 - t0), ioMs: Math.round(ioMs), latencyMs: since === null ? null : Math.round(performance.now() - since),
        kernelMs: Object.fromEntries(res.reports.filter((r) => r.writes > 0 || r.read).map((r) => [r.kind, Math.round(r.durationMs)])),
      });
    } catch (e) {
      m.errors.labels('apply').inc();
      this.consecutiveFailures++;
      // Unknown what the I/O worker holds now (it may have died): send the whole state next.
      this.ioSeq = null;
      this.log.error('reconcile failed', { error: (e as Error).message });
    } finally {
      this.running = false;
      if (this.pendingEvents > 0 && !this.stopped) {
        const n = this.pendingEvents;
        this.pendingEvents = 0;
        this.schedule('pending', n);
      } else if (this.consecutiveFailures > 0 && !this.stopped) {
        // Bounded retry: back off up to the resync period.
        const wait = Math.min(this.o.config.resyncPeriodMs || 30_000, 250 * 2 ** Math.min(this.consecutiveFailures, 7));
        const t = setTimeout(() => this.schedule('retry', 0), wait);
        t.unref();
      }
    }
  }

  private observed: { publicKey: string; endpoint: string | null; lastHandshake: number }[] | null = null;
  private observing = false;

  /** Reads the device in the background; a change in discovered endpoints schedules a plan. */
  private lastObserved = 0;

  /**
   * Reads the device's peers for NAT discovery (spec §6.7). After an apply it runs at most every
   * 5 s: a read of 5,000 peers occupies the I/O worker, and under churn it would delay the next
   * change's writes; the periodic call (`force`) always runs.
   */
  private refreshObserved(force = false): void {
    if (this.observing || this.stopped) return;
    if (this.lastSummary?.natCandidates === 0) {
      // No keepalive node and no Peer: discovery cannot find anything, so the device (5,000
      // peers to read, with the I/O worker busy meanwhile) is not read.
      if (this.observed === null || this.observed.length > 0) {
        this.observed = [];
        this.schedule('device endpoints changed');
      }
      return;
    }
    if (!force && Date.now() - this.lastObserved < 5_000) return;
    this.lastObserved = Date.now();
    this.observing = true;
    this.o.io.observe()
      .then((st) => {
        // Only peers that completed a handshake can yield a discovered endpoint (spec §6.7); the
        // rest need not cross to the planner on every plan.
        const next = st.peers.filter((p) => p.lastHandshake > 0).map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint, lastHandshake: p.lastHandshake }));
        const key = (x: typeof next | null) => JSON.stringify(x?.map((p) => [p.publicKey, p.endpoint]) ?? null);
        const changed = key(next) !== key(this.observed);
        this.observed = next;
        if (changed) this.schedule('device endpoints changed');
      })
      .catch((e: Error) => this.log.warn('could not read the WireGuard device', { error: e.message }))
      .finally(() => (this.observing = false));
  }

  /** The I/O worker restarted with no state: the next plan sends the whole state. */
  ioRestarted(): void {
    this.ioSeq = null;
    this.forceApply = true;
    this.schedule('I/O worker restarted', 0);
  }

  private markApplied(since: number | null): void {
    this.firstApply = true;
    this.consecutiveFailures = 0;
    this.lastSuccess = Date.now();
    if (since !== null) this.o.metrics.eventToProgrammed.observe((performance.now() - since) / 1000);
  }

  /** healthy only after the watches synced and the first apply; unhealthy after repeated failures or a stale dataplane. */
  health(): { ok: boolean; reason: string } {
    if (!this.synced) return { ok: false, reason: 'watches have not synced' };
    if (!this.local) return { ok: false, reason: `node ${this.o.config.hostname} not found in the API` };
    if (!this.firstApply) return { ok: false, reason: 'the dataplane has not been programmed yet' };
    if (this.consecutiveFailures >= 3) return { ok: false, reason: `${this.consecutiveFailures} consecutive failed reconciles` };
    const staleMs = Math.max(3 * (this.o.config.resyncPeriodMs || 30_000), 120_000);
    if (Date.now() - this.lastSuccess > staleMs) return { ok: false, reason: 'the dataplane is stale' };
    return { ok: true, reason: 'ok' };
  }

  /** SIGTERM: stop taking events, drain in-flight work, then clean up per --clean-up (spec §11.7). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.checkIns.stop();
    for (const t of this.timers) clearInterval(t);
    if (this.timer) clearTimeout(this.timer);
    await Promise.all([this.nodeReflector.stop(), this.peerReflector.stop()]);
    await this.inflight.catch(() => {});
    if (!this.o.config.cleanUp) return;
    try {
      const r = await this.o.io.cleanUp({ interface: this.o.config.cleanUpInterface });
      if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
    } catch (e) {
      this.o.metrics.errors.labels('cleanUp').inc();
      this.log.error('dataplane clean-up failed', { error: (e as Error).message });
    }
    try {
      await this.o.client.request('PATCH', `/api/v1/nodes/${encodeURIComponent(this.o.config.hostname)}`, {
        body: [...CLEANUP, ...(this.localObj?.metadata?.annotations?.[A.checkInPeriod] !== undefined ? [A.checkInPeriod] : [])].map((k) => ({ op: 'remove', path: `/metadata/annotations/${k.replaceAll('~', '~0').replaceAll('/', '~1')}` })),
        contentType: 'application/json-patch+json',
        timeoutMs: 10_000,
      });
    } catch (e) {
      // Quirk (spec §16.40): the patch fails whole if one annotation is missing; it is only logged.
      this.o.metrics.errors.labels('cleanUp').inc();
      this.log.warn('failed to remove the node annotations', { error: (e as Error).message });
    }
  }

  /**
   * The version of what /graph shows: it moves with every record the pool took (heartbeats
   * excepted) and every plan asked for (readiness flips included), so a cached graph is served
   * until something it shows may have changed.
   */
  graphVersion(): number {
    return this.o.pool.changes + this.scheduled;
  }

  /**
   * The DOT of the current cluster for /graph (endpoints not resolved, as in Go; null when this
   * node is not ready). It waits, up to `waitMs`, until no reconcile runs or is scheduled: a
   * graph never queues ahead of a reconcile in the planner pool.
   */
  async graphDOT(maxLength: number, waitMs = 5_000): Promise<string | null> {
    const end = performance.now() + waitMs;
    while (this.running || this.timer) {
      if (performance.now() > end) throw new GraphBusyError('the planner is busy with reconciles; try again later');
      await new Promise((r) => setTimeout(r, 20));
    }
    const a = await this.o.pool.graph({ options: this.planOptions(), maxLength });
    if (a.ok) return a.dot;
    if ('tooLarge' in a) throw new GraphTooLargeError(maxLength);
    throw new Error('error' in a ? a.error : 'the planner replica is unavailable');
  }
}


/** A metadata-only watch, with whole objects as the fallback a server may choose (client-go's form). */
export const METADATA_WATCH_ACCEPT = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';

/** The annotations after `publish` wrote `want`: its keys set, and the period removed when absent from it. */
function withPublished(cur: Record<string, string>, want: Record<string, string>): Record<string, string> {
  const ann = { ...cur, ...want };
  if (!(A.checkInPeriod in want)) delete ann[A.checkInPeriod];
  return ann;
}

/** The cheap part of readiness the main thread tracks: static fields and last-seen. */
function parseNodeQuick(o: NodeObject): { lastSeen: number; window: number; static: boolean; dns: string } {
  const n = parseNode(o).value;
  return { lastSeen: n.lastSeen, window: n.readyWindow, static: endpointReady(n.endpoint) && n.key !== null && n.subnet !== null, dns: n.endpoint?.dns ?? '' };
}
