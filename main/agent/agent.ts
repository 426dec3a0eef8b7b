// The agent's main thread, wired from its rooms:
//
//   reflectors (Nodes, Peers) ──► ClusterView ──► PlanPool (deltas)
//                                 LocalNode (own annotations, check-in)
//   Scheduler: pacing ──► plan (PlanPool) ──► apply (IoClient)
//
// The Go agent re-plans on every event, heartbeats included; here a heartbeat costs a map
// update, a once-a-second sweep notices lapsed ones, and bursts are coalesced.
import type { PlanOptions } from '../../plan/plan.js';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import type { HeartbeatPolicy } from '../../plan/heartbeat.js';
import type { PlanSummary } from '../../ipc/planner.js';
import { GraphTooLargeError } from '../../plan/graph.js';
import { KubeError } from '../../watch/kube-error.js';
import type { KubeClient } from '../../watch/kube.js';
import { Reflector, type KubeObject } from '../../watch/reflector.js';
import type { PlanPool } from '../../workers/plan-pool.js';
import type { IoClient } from '../../workers/io-client.js';
import { ClusterView } from './cluster-view.js';
import { DeviceObserver } from './device-observer.js';
import type { Discovered } from './discovery.js';
import { DnsCache } from './dns-cache.js';
import type { Config } from '../flags.js';
import { GraphBusyError } from './graph-service.js';
import { LocalNode } from './local-node.js';
import type { Logger } from '../log.js';
import { WatchMetricsExport, type Metrics } from './metrics.js';
import { METADATA_WATCH_ACCEPT, mergeWatchedNode, slimNode } from './node-record.js';
import { PodCIDRProbes } from './pod-cidr-probes.js';
import { Scheduler, type PlanRequest } from './scheduler.js';
import { MAX_LOGGED, WarningLog } from './warnings.js';
import { HeapTrimmer } from './memory.js';
import { collectGarbage } from '../../workers/gc.js';
import { getHeapStatistics } from 'node:v8';

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
  /** Average minimum time between plans under churn (main/agent/pacer.ts); bursts are coalesced. */
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

export class Agent {
  private readonly nodeReflector: Reflector<NodeObject>;
  private readonly peerReflector: Reflector<PeerObject>;
  private readonly view: ClusterView;
  private readonly local: LocalNode;
  private readonly scheduler: Scheduler;
  private readonly device: DeviceObserver;
  private readonly probes: PodCIDRProbes;
  private readonly warnings = new WarningLog();
  /** Gives back what heartbeat churn grows this isolate's heap by (main/agent/memory.ts). */
  private readonly trimmer = new HeapTrimmer({ heapUsed: () => getHeapStatistics().used_heap_size, now: () => performance.now(), collect: collectGarbage });
  private readonly watchMetrics: WatchMetricsExport;
  private readonly timers: NodeJS.Timeout[] = [];
  private lastSummary: PlanSummary | null = null;
  /** start() ran: the own node may be written to. */
  private started = false;
  /** The own node as listed before start(): handled then. */
  private earlyLocal: NodeObject | null = null;

  constructor(private readonly o: AgentOptions) {
    const now = o.now ?? (() => Math.floor(Date.now() / 1000));
    const schedule = (reason: string) => this.scheduler.schedule(reason);
    this.watchMetrics = new WatchMetricsExport(o.metrics);
    this.probes = new PodCIDRProbes({
      client: o.client, log: o.log,
      found: (name, podCIDR, podCIDRs) => this.nodeReflector.amend(name, (cur) => (cur.spec?.podCIDR ? cur : { ...cur, spec: { ...cur.spec, podCIDR, ...(podCIDRs ? { podCIDRs } : {}) } })),
    });
    this.local = new LocalNode({
      config: o.config, log: o.log, client: o.client, metrics: o.metrics, pool: o.pool, host: o.host, publicKey: o.publicKey,
      checkInPeriodMs: o.checkInPeriodMs, heartbeat: o.heartbeat, now, clusterSize: () => this.view.size + 1, schedule,
    });
    this.view = new ClusterView({
      hostname: o.config.hostname, claims: o.config.claims, log: o.log, metrics: o.metrics, pool: o.pool, probes: this.probes,
      dns: new DnsCache({ log: o.log, metrics: o.metrics, changed: () => schedule('dns resolved') }),
      now, schedule, onLocal: (obj) => this.onLocal(obj), selfReady: (t) => this.local.selfReady(t),
    });
    this.device = new DeviceObserver({
      io: o.io, log: o.log, candidates: () => this.lastSummary?.natCandidates ?? null, changed: () => schedule('device endpoints changed'),
    });
    this.scheduler = this.createScheduler();
    [this.nodeReflector, this.peerReflector] = this.createReflectors();
    o.pool.holdNodesIn(() => this.heldNodes());
  }

  /** The nodes as the pool was given them: the watched remote ones and the own node as published. */
  private *heldNodes(): Iterable<NodeObject> {
    for (const [name, obj] of this.nodeReflector.store) if (name !== this.o.config.hostname) yield obj;
    if (this.local.obj) yield this.local.obj;
  }

  private createScheduler(): Scheduler {
    const o = this.o;
    return new Scheduler({
      hostname: o.config.hostname, log: o.log, metrics: o.metrics, pool: o.pool, io: o.io,
      minSyncIntervalMs: o.minSyncIntervalMs, resyncPeriodMs: o.config.resyncPeriodMs,
      synced: () => this.synced, reachable: () => this.apiReachable,
      starting: () => this.view.markPlanned(),
      request: () => this.planRequest(),
      planned: (s) => {
        this.lastSummary = s;
        this.reportWarnings(s.warnings);
        if (s.discoveredEndpoints !== null) this.local.setDiscovered(s.discoveredEndpoints);
      },
      leader: (cidr) => this.local.setWireGuardIP(cidr),
      applied: () => this.device.refresh(),
    });
  }

  private createReflectors(): [Reflector<NodeObject>, Reflector<PeerObject>] {
    const o = this.o;
    const common = {
      client: o.client, log: o.log,
      watchTimeoutSeconds: o.watch?.timeoutSeconds, watchdogMs: o.watch?.watchdogMs, backoffMaxMs: o.watch?.backoffMaxMs,
    };
    const nodes = new Reflector<NodeObject>({
      ...common,
      path: '/api/v1/nodes',
      slim: (x) => slimNode(x as NodeObject & KubeObject, o.config.topologyLabel),
      // Lists bring whole Nodes; the watch asks for metadata only (kubelet status updates are
      // most of a Node's bytes, and every agent receives every one). A Node without a pod CIDR
      // yet is fetched (PodCIDRProbes). A server that ignores the header sends whole Nodes.
      watchAccept: METADATA_WATCH_ACCEPT,
      // What slimNode never reads, ~90 % of a kubelet's Node, is not parsed at all.
      listDrop: [['status'], ['metadata', 'managedFields']],
      merge: mergeWatchedNode,
      onEvent: (e) => this.view.onNode(e),
      // The planner's replica parses each page of the first list while the next one is fetched.
      onPage: () => void o.pool.flush(),
      onSynced: () => this.scheduler.schedule('nodes synced'),
    });
    const peers = new Reflector<PeerObject>({
      ...common,
      path: '/apis/kilo.squat.ai/v1alpha1/peers',
      slim: (x) => {
        const p = x as PeerObject;
        return { metadata: { name: p.metadata?.name }, spec: p.spec };
      },
      onEvent: (e) => this.view.onPeer(e),
      onSynced: () => this.scheduler.schedule('peers synced'),
    });
    return [nodes, peers];
  }

  get synced(): boolean {
    return this.nodeReflector.hasSynced && this.peerReflector.hasSynced;
  }

  /** The API answers on both watches: the view of the cluster is current. */
  get apiReachable(): boolean {
    return this.nodeReflector.connected && this.peerReflector.connected;
  }

  /** The Peer CRD must exist (design §3.3.7): the Go agent exits without it. */
  async checkCRD(): Promise<void> {
    try {
      await this.o.client.request('GET', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peers.kilo.squat.ai', { timeoutMs: 15_000 });
    } catch (e) {
      if (e instanceof KubeError && (e.status === 404 || e.status === 403)) throw new Error('CRD is not present: apply manifests/crds.yaml (peers.kilo.squat.ai)');
      throw e;
    }
  }

  /**
   * The node list starts first, as Go's node informer does (design §11.1): it then overlaps the
   * CRD check, the listener and the I/O worker's start. start() does the rest.
   */
  listNodes(): void {
    this.nodeReflector.start();
  }

  /** Nothing is written to the own node before the start-up checks passed (Go publishes after them). */
  private onLocal(obj: NodeObject): void {
    if (this.started) void this.local.handle(obj);
    else this.earlyLocal = obj;
  }

  /** A start that failed before start(): the lists stop, nothing else ran. */
  async abortStart(): Promise<void> {
    await Promise.all([this.nodeReflector.stop(), this.peerReflector.stop()]);
  }

  start(): void {
    this.nodeReflector.start();
    this.peerReflector.start();
    // Readiness depends on the clock: a lapsed heartbeat changes the mesh without any event.
    this.timers.push(setInterval(() => this.sweep(), 1000));
    this.local.start();
    this.started = true;
    if (this.earlyLocal) void this.local.handle(this.earlyLocal);
    this.earlyLocal = null;
    // Roaming endpoints are learnt between changes too (handshakes happen without events).
    this.timers.push(setInterval(() => this.device.refresh(true), this.o.checkInPeriodMs));
    if (this.o.config.resyncPeriodMs > 0) this.timers.push(setInterval(() => this.scheduler.resync(), this.o.config.resyncPeriodMs));
    for (const t of this.timers) t.unref();
  }

  private sweep(): void {
    this.watchMetrics.export('node', this.nodeReflector.stats);
    this.watchMetrics.export('peer', this.peerReflector.stats);
    this.view.tick(this.synced, this.apiReachable);
    if (this.scheduler.firstApply && !this.scheduler.busy) this.trimmer.check();
  }

  /** The I/O worker restarted with no state: the next plan sends the whole state. */
  ioRestarted(): void {
    this.scheduler.ioRestarted();
  }

  private planRequest(): PlanRequest | null {
    if (!this.local.known) return null;
    const c = this.o.config;
    return {
      options: this.planOptions(),
      privateKey: this.o.privateKey,
      resolved: this.view.resolved(),
      observed: this.device.observed,
      desired: { cniPath: c.cni ? c.cniPath : null, tunnelPrivIface: this.o.host.privateIface },
    };
  }

  private planOptions(): PlanOptions {
    const c = this.o.config;
    return {
      hostname: c.hostname, granularity: c.meshGranularity, subnet: c.subnet, encapsulate: c.encapsulate, local: c.local, cni: c.cni,
      compatibility: c.compatibility, iptablesForwardRules: c.iptablesForwardRules, serviceCIDRs: c.serviceCIDRs, interface: c.interface,
      mtu: c.mtu === 'auto' ? this.o.host.autoMTU : c.mtu, privateInterface: this.o.privateInterface, tunnelInterface: this.o.tunnelInterface,
      now: this.view.readinessNow(),
      ...(c.dualStackSubnet ? { dualStackSubnet: c.dualStackSubnet } : {}),
    };
  }

  /** Counts and logs each planner warning once, when it first appears (main/agent/warnings.ts). */
  private reportWarnings(list: readonly string[]): void {
    const { added, cleared } = this.warnings.update(list);
    const m = this.o.metrics;
    m.annotationWarnings.inc(added.length);
    m.currentWarnings.set(this.warnings.size);
    for (const w of added.slice(0, MAX_LOGGED)) this.o.log.warn('ignored input', { warning: w });
    if (added.length > MAX_LOGGED) this.o.log.warn('more ignored input', { more: added.length - MAX_LOGGED, total: this.warnings.size });
    if (cleared > 0) this.o.log.info('warnings cleared', { cleared, remaining: this.warnings.size });
  }

  /** Healthy only after the watches synced and the first apply; not after repeated failures or a stale dataplane. */
  health(): { ok: boolean; reason: string } {
    const s = this.scheduler;
    if (!this.synced) return { ok: false, reason: 'watches have not synced' };
    if (!this.local.known) return { ok: false, reason: `node ${this.o.config.hostname} not found in the API` };
    if (!s.firstApply) return { ok: false, reason: 'the dataplane has not been programmed yet' };
    if (s.consecutiveFailures >= 3) return { ok: false, reason: `${s.consecutiveFailures} consecutive failed reconciles` };
    const staleMs = Math.max(3 * (this.o.config.resyncPeriodMs || 30_000), 120_000);
    if (Date.now() - s.lastSuccess > staleMs) return { ok: false, reason: 'the dataplane is stale' };
    return { ok: true, reason: 'ok' };
  }

  /** SIGTERM: stop taking events, drain in-flight work, then clean up per --clean-up (design §11.7). */
  async stop(): Promise<void> {
    const done = this.scheduler.stop();
    this.local.stop();
    this.device.stop();
    this.probes.stop();
    for (const t of this.timers) clearInterval(t);
    await Promise.all([this.nodeReflector.stop(), this.peerReflector.stop()]);
    await done;
    if (!this.o.config.cleanUp) return;
    try {
      const r = await this.o.io.cleanUp({ interface: this.o.config.cleanUpInterface });
      if (!r.ok) throw new Error(r.errors.map((e) => e.message).join('; '));
    } catch (e) {
      this.o.metrics.errors.labels('cleanUp').inc();
      this.o.log.error('dataplane clean-up failed', { error: (e as Error).message });
    }
    await this.local.removeAnnotations();
  }

  /**
   * The version of what /graph shows: it moves with every record the pool took (heartbeats
   * excepted) and every plan asked for (readiness flips included), so a cached graph is served
   * until something it shows may have changed.
   */
  graphVersion(): number {
    return this.o.pool.changes + this.scheduler.scheduled;
  }

  /**
   * The DOT of the current cluster for /graph (endpoints not resolved, as in Go; null when this
   * node is not ready). It waits, up to `waitMs`, until no reconcile runs or is scheduled: a
   * graph never queues ahead of a reconcile in the planner pool.
   */
  async graphDOT(maxLength: number, waitMs = 5_000): Promise<string | null> {
    const end = performance.now() + waitMs;
    while (this.scheduler.busy) {
      if (performance.now() > end) throw new GraphBusyError('the planner is busy with reconciles; try again later');
      await new Promise((r) => setTimeout(r, 20));
    }
    const a = await this.o.pool.graph({ options: this.planOptions(), maxLength });
    if (a.ok) return a.dot;
    if ('tooLarge' in a) throw new GraphTooLargeError(maxLength);
    throw new Error('error' in a ? a.error : 'the planner replica is unavailable');
  }
}
