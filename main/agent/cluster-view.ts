// The cluster as the main thread sees it: a readiness record per remote Node, the Peers' DNS
// endpoints, and the clock readiness is judged by. It turns watch events into changes for the
// planner pool and asks for a plan when something the plan depends on moved. A heartbeat
// (last-seen moved, readiness unchanged) costs a map update and no plan; the sweep notices a
// node whose heartbeat lapsed.
import { READY_WINDOW_SECONDS, type NodeObject } from '../../plan/node.js';
import { parsePeer, validatePeer, type PeerObject } from '../../plan/peer.js';
import type { ClaimLimits } from '../../plan/claims.js';
import type { ReflectorEvent } from '../../watch/reflector.js';
import type { PlanPool } from '../../workers/plan-pool.js';
import type { DnsCache } from './dns-cache.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';
import { lastSeenOf, readinessOf, sameButLastSeen, type NodeReadiness } from './node-record.js';
import type { PodCIDRProbes } from './pod-cidr-probes.js';
import { ReadinessClock } from './readiness-clock.js';

interface NodeRecord extends NodeReadiness {
  /** Readiness when the last reconcile started: a flip since then needs a plan. */
  planned: boolean;
}

export interface ClusterViewOptions {
  hostname: string;
  claims: ClaimLimits;
  log: Logger;
  metrics: Pick<Metrics, 'events' | 'errors' | 'annotationWarnings'>;
  pool: Pick<PlanPool, 'setNode' | 'deleteNode' | 'setLastSeen' | 'setPeer' | 'deletePeer'>;
  probes: Pick<PodCIDRProbes, 'seen' | 'forget' | 'run' | 'size'>;
  dns: Pick<DnsCache, 'resolved'>;
  /** Unix seconds. */
  now: () => number;
  /** Asks for a plan. */
  schedule: (reason: string) => void;
  /** An event for the own node (the local node's business). */
  onLocal: (obj: NodeObject) => void;
  /** The own node's readiness at a time (null: not known yet). */
  selfReady: (now: number) => boolean | null;
}

export class ClusterView {
  private readonly nodes = new Map<string, NodeRecord>();
  /** Peers' DNS endpoints (`host:port`) by Peer name: resolved like the nodes'. */
  private readonly peerDns = new Map<string, string>();
  private readonly clock: ReadinessClock;
  /** The own node's readiness when the last reconcile started (null: not known then). */
  private plannedSelf: boolean | null = null;
  /** The counter child of the commonest event, looked up once (prom-client hashes labels per call). */
  private readonly heartbeatEvents: ReturnType<Metrics['events']['labels']>;

  constructor(private readonly o: ClusterViewOptions) {
    this.clock = new ReadinessClock(o.now);
    this.heartbeatEvents = o.metrics.events.labels('node', 'heartbeat');
  }

  /** Remote nodes held. */
  get size(): number {
    return this.nodes.size;
  }

  /** Unix seconds as readiness sees them (frozen through API outages). */
  readinessNow(): number {
    return this.clock.read();
  }

  onNode(e: ReflectorEvent<NodeObject>): void {
    if (e.type === 'delete') this.o.probes.forget(e.name);
    else this.o.probes.seen(e.name, e.obj);
    if (e.name === this.o.hostname) return this.onOwnNode(e);
    if (e.type === 'delete') {
      this.o.metrics.events.labels('node', 'delete').inc();
      this.nodes.delete(e.name);
      this.o.pool.deleteNode(e.name);
      this.o.schedule('node deleted');
      return;
    }
    const prev = this.nodes.get(e.name);
    // The reflector kept the held record (heartbeatInPlace): same object, new last-seen.
    if (prev !== undefined && e.type === 'update' && (e.old === e.obj || sameButLastSeen(e.old, e.obj))) return this.onHeartbeat(e.name, prev, e.obj);
    // One literal, fields in one order: records built by spreading took a slower shape, and the
    // readiness loops visit all 5,000 of them before every plan (~7 ms, measured with a CPU profile).
    const rd = readinessOf(e.obj);
    this.nodes.set(e.name, { lastSeen: rd.lastSeen, window: rd.window, static: rd.static, dns: rd.dns, planned: prev?.planned ?? false });
    this.o.metrics.events.labels('node', e.type).inc();
    this.o.pool.setNode(e.name, e.obj);
    this.o.schedule(`node ${e.type}`);
  }

  private onOwnNode(e: ReflectorEvent<NodeObject>): void {
    this.o.metrics.events.labels('node', e.type).inc();
    if (e.type !== 'delete') return this.o.onLocal(e.obj);
    // Quirk (design §16.32): the Go agent tries to patch a deleted node and counts an error.
    this.o.metrics.errors.labels('local').inc();
    this.o.log.warn('the local node was deleted from the API', { node: e.name });
  }

  /** No re-parse in the pool and no plan, unless readiness flips; the record is updated in place. */
  private onHeartbeat(name: string, r: NodeRecord, obj: NodeObject): void {
    const wasReady = this.isReady(r);
    r.lastSeen = lastSeenOf(obj);
    this.heartbeatEvents.inc();
    this.o.pool.setLastSeen(name, r.lastSeen, obj);
    if (wasReady !== this.isReady(r)) this.o.schedule('node readiness');
  }

  onPeer(e: ReflectorEvent<PeerObject>): void {
    this.o.metrics.events.labels('peer', e.type).inc();
    if (e.type === 'delete') {
      this.peerDns.delete(e.name);
      this.o.pool.deletePeer(e.name);
      this.o.schedule('peer deleted');
      return;
    }
    // An update that breaks a valid Peer keeps the last valid version (design §3.3.5): what worked is not lost
    // to a bad edit. A new invalid Peer is reported by the planner as a warning.
    const invalid = validatePeer(e.obj, this.o.claims);
    if (e.type === 'update' && invalid !== null && validatePeer(e.old, this.o.claims) === null) {
      this.o.metrics.annotationWarnings.inc();
      this.o.log.warn('invalid Peer update ignored; keeping the last valid version', { peer: e.name, error: invalid });
      return;
    }
    const dns = invalid === null ? parsePeer(e.obj).endpoint?.dns ?? '' : '';
    if (dns) this.peerDns.set(e.name, dns);
    else this.peerDns.delete(e.name);
    this.o.pool.setPeer(e.name, e.obj);
    this.o.schedule(`peer ${e.type}`);
  }

  private isReady(r: NodeRecord, now = this.clock.read()): boolean {
    return r.static && now - r.lastSeen < r.window;
  }

  /**
   * Once a second: starts due pod-CIDR probes, freezes or thaws the readiness clock, and asks
   * for a plan when a node's readiness flipped (a heartbeat lapsed). While the API is
   * unreachable no heartbeat can arrive: the last good dataplane stays.
   */
  tick(synced: boolean, reachable: boolean): void {
    if (this.o.probes.size > 0) this.o.probes.run();
    this.trackOutage(synced, reachable);
    if (!synced || !reachable) return;
    if (this.readinessChanged()) this.o.schedule('readiness changed');
  }

  private trackOutage(synced: boolean, reachable: boolean): void {
    if (!reachable) {
      if (!this.clock.frozen && synced) {
        this.clock.freeze();
        this.o.log.warn('lost the API; freezing the readiness clock');
      }
    } else if (this.clock.frozen) {
      // Every node gets one full window of its own (adaptive nodes advertise longer ones).
      let window = READY_WINDOW_SECONDS;
      for (const r of this.nodes.values()) if (r.window > window) window = r.window;
      this.o.log.info('the API is back', { outageSeconds: this.clock.thaw(window) });
    }
  }

  // The sweep runs every second over every node: it compares flags and allocates nothing.
  /** Records the readiness the reconcile about to run plans with. */
  markPlanned(): void {
    const now = this.clock.read();
    for (const r of this.nodes.values()) r.planned = this.isReady(r, now);
    this.plannedSelf = this.o.selfReady(now);
  }

  /** A node's readiness, or the own node's, flipped since the last reconcile started. */
  readinessChanged(): boolean {
    const now = this.clock.read();
    for (const r of this.nodes.values()) if (this.isReady(r, now) !== r.planned) return true;
    return this.o.selfReady(now) !== this.plannedSelf;
  }

  /** DNS endpoints of nodes (force-endpoint falling back to endpoint, §3.1.1) and Peers, as resolved so far. */
  resolved(): [string, string][] {
    const want = new Set<string>();
    for (const r of this.nodes.values()) if (r.dns) want.add(r.dns);
    for (const ep of this.peerDns.values()) want.add(ep);
    return this.o.dns.resolved(want);
  }
}
