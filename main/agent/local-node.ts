// The own node: the annotations kg writes on it, publishing them, and the periodic check-in
// (last-seen) other agents judge this node's readiness by.
import { parseCIDR, type CIDR } from '../../plan/addr.js';
import { endpointReady, endpointString, newEndpoint } from '../../plan/endpoint.js';
import { MAX_CHECK_IN_SECONDS, nextAdvertised, readyWindowSeconds, type HeartbeatPolicy } from '../../plan/heartbeat.js';
import { A, parseNode, withLastSeen, type MeshNode, type NodeObject } from '../../plan/node.js';
import type { KubeClient } from '../../watch/kube.js';
import { KubeError } from '../../watch/kube-error.js';
import type { PlanPool } from '../../workers/plan-pool.js';
import { CheckInLoop, type CheckInResult } from './checkin.js';
import { readCiliumHostIP, type Discovered } from './discovery.js';
import { sameButLastSeen } from './node-record.js';
import type { Config } from '../flags.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';

/** The annotations kg writes on its own node (design §3.1.3). */
const OWNED = [A.endpoint, A.internalIP, A.key, A.lastSeen, A.wireGuardIP, A.discoveredEndpoints, A.granularity, A.cniCompatibilityIP] as const;
/** Removed on clean-up, in this order (design §3.1.4); cni-compatibility-ip stays. */
const CLEANUP = [A.endpoint, A.internalIP, A.key, A.lastSeen, A.wireGuardIP, A.discoveredEndpoints, A.granularity] as const;

export interface LocalNodeOptions {
  config: Config;
  log: Logger;
  client: Pick<KubeClient, 'request'>;
  metrics: Pick<Metrics, 'errors' | 'heartbeats'>;
  pool: Pick<PlanPool, 'setNode' | 'setLastSeen'>;
  host: Discovered;
  publicKey: string;
  /** Heartbeat (check-in) period; the Go-compatible default is 30 s (the minimum when adaptive). */
  checkInPeriodMs: number;
  /** Heartbeat mode (plan/heartbeat.ts); absent = Kilo's. */
  heartbeat?: HeartbeatPolicy;
  /** Unix seconds. */
  now: () => number;
  /** Nodes in the cluster (the adaptive period grows with them). */
  clusterSize: () => number;
  /** Asks for a plan. */
  schedule: (reason: string) => void;
  /** Reads the CNI-compatibility IP from the host (default: `cilium_host`'s, design §9.5). */
  readCniCompatibilityIP?: () => Promise<CIDR | null>;
}

/** The annotations after `publish` wrote `want`: its keys set, and the period removed when absent from it. */
function withPublished(cur: Record<string, string>, want: Record<string, string>): Record<string, string> {
  const ann = { ...cur, ...want };
  if (!(A.checkInPeriod in want)) delete ann[A.checkInPeriod];
  return ann;
}

export class LocalNode {
  /** The local node as last written (design §11.3 "stored local model"). */
  private local: MeshNode | null = null;
  private localObj: NodeObject | null = null;
  /** The own node's annotations as the API has them (what a check-in diffs against). */
  private published: Record<string, string> = {};
  private wireGuardIP: string | null = null;
  private cniIP: CIDR | null = null;
  private readingCniIP = false;
  private discovered = '';
  /** The advertised check-in period in seconds (0: none, Kilo's 30 s). */
  private advertised = 0;
  private stopped = false;
  /** The check-in schedule, with prompt retries of a failed one (main/agent/checkin.ts). */
  private readonly checkIns: CheckInLoop;

  constructor(private readonly o: LocalNodeOptions) {
    this.checkIns = new CheckInLoop({
      periodMs: () => this.checkInPeriodMs(),
      attempt: () => this.checkIn(),
      onRetry: (inMs, failures) => o.log.warn('check-in failed; retrying', { node: o.config.hostname, failures, retryInMs: Math.round(inMs) }),
    });
  }

  /** The own node as last given to the planner pool (null: not yet). */
  get obj(): NodeObject | null {
    return this.localObj;
  }

  /** The own node was seen in the API (until then there is nothing to plan for). */
  get known(): boolean {
    return this.local !== null;
  }

  start(): void {
    this.checkIns.start();
  }

  stop(): void {
    this.stopped = true;
    this.checkIns.stop();
  }

  /** The own readiness at a time (null: not known yet). */
  selfReady(now: number): boolean | null {
    return this.local && now - this.local.lastSeen < readyWindowSeconds(this.advertised > 0 ? String(this.advertised) : undefined);
  }

  /** The discovered endpoints to publish with the next write. */
  setDiscovered(text: string): void {
    this.discovered = text;
  }

  /** The WireGuard IP of a leader (null otherwise); a change is published now rather than at the next check-in (design §11.4). */
  /**
   * Only Cilium's encapsulator has a CNI-compatibility IP; Go reads it at every local reconcile.
   * Read beside the reconcile, as the WireGuard IP is set: a change publishes again.
   */
  private refreshCniIP(): void {
    if (this.o.config.compatibility !== 'cilium' || this.readingCniIP || this.stopped) return;
    this.readingCniIP = true;
    (this.o.readCniCompatibilityIP ?? readCiliumHostIP)()
      .then((ip) => {
        if ((ip?.s ?? null) === (this.cniIP?.s ?? null)) return;
        this.cniIP = ip;
        if (this.localObj) void this.handle(this.localObj);
      })
      .catch((e: Error) => this.o.log.warn('could not read cilium_host', { error: e.message }))
      .finally(() => (this.readingCniIP = false));
  }

  setWireGuardIP(cidr: string | null): void {
    if (cidr === this.wireGuardIP) return;
    this.wireGuardIP = cidr;
    if (this.localObj) void this.handle(this.localObj);
  }

  /** The annotations kg owns: design §3.1.3's, and with --dual-stack-subnet the second internal IP (§20.2). */
  private owned(): readonly string[] {
    return this.o.config.dualStackSubnet ? [...OWNED, A.dualStackInternalIP] : OWNED;
  }

  private desiredLocal(n: MeshNode, lastSeen: number): MeshNode {
    const c = this.o.config;
    let endpoint = n.endpoint;
    if (!endpointReady(endpoint)) {
      // Stickiness (design §3.1.5): only when the annotations hold no valid endpoint.
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
      cniCompatibilityIP: c.compatibility === 'cilium' ? this.cniIP : null,
      // Design §20.2: sticky as internal-ip is (§3.1.5): the annotated value wins over discovery.
      internalIP2: c.dualStackSubnet ? n.internalIP2 ?? this.o.host.privateIP2 ?? null : null,
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
      ...(this.o.config.dualStackSubnet ? { [A.dualStackInternalIP]: n.internalIP2?.s ?? '' } : {}),
      ...(this.advertised > 0 ? { [A.checkInPeriod]: String(this.advertised) } : {}),
    };
  }

  /** Writes only the owned annotations that differ (a JSON merge patch, as compatible as Go's). */
  private async publish(current: Record<string, string>, want: Record<string, string>, event: 'local' | 'checkin'): Promise<CheckInResult> {
    const diff: Record<string, string | null> = {};
    for (const k of this.owned()) if (current[k] !== want[k]) diff[k] = want[k];
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
      this.o.log.error('failed to update the local node', { node: this.o.config.hostname, error: (e as Error).message, event });
      return { ok: false, retryAfterMs: e instanceof KubeError ? e.retryAfterMs : null };
    }
  }

  /** An event for the own node: publish what differs from what kg wants there, then plan. */
  async handle(obj: NodeObject): Promise<void> {
    this.refreshCniIP();
    const n = parseNode(obj, this.o.config.topologyLabel).value;
    // A restarted adaptive agent keeps the period it advertised (readers' windows rely on it).
    const cur0 = obj.metadata?.annotations?.[A.checkInPeriod];
    if (this.o.heartbeat?.mode === 'adaptive' && this.local === null && cur0 && /^[0-9]{1,6}$/.test(cur0)) {
      this.advertised = Math.min(Number(cur0), MAX_CHECK_IN_SECONDS);
    }
    // Quirk (design §16.47): the own readiness uses the last-seen held in memory.
    const lastSeen = this.local && this.local.lastSeen > n.lastSeen ? this.local.lastSeen : this.o.now();
    const want = this.desiredLocal(n, lastSeen);
    const wantAnn = this.annotationsOf(want);
    const cur = obj.metadata?.annotations ?? {};
    const changed = this.owned().some((k) => k !== A.lastSeen && cur[k] !== wantAnn[k]) || cur[A.checkInPeriod] !== wantAnn[A.checkInPeriod];
    if (changed && !(await this.publish(cur, wantAnn, 'local')).ok) return;
    const before = this.local ? JSON.stringify(this.annotationsOf(this.local)) : '';
    const prevObj = this.localObj;
    this.local = want;
    this.localObj = { ...obj, metadata: { ...obj.metadata, annotations: withPublished(cur, wantAnn) } };
    // Unless the patch above went out, the API holds `cur`: the last-seen taken as now() is only
    // the in-memory model's (§16.47). Taking it as published made a check-in within the same
    // second write nothing, and the node skip a whole period.
    this.published = changed ? withPublished(cur, wantAnn) : { ...cur };
    this.o.pool.setNode(this.o.config.hostname, this.localObj);
    // Also what the operator sets on this node (location, leader, allowed-location IPs, labels):
    // Go re-plans on every local event, and kg's own annotations alone would miss those.
    if (JSON.stringify(wantAnn) !== before || prevObj === null || !sameButLastSeen(prevObj, this.localObj)) this.o.schedule('local node');
    // The cilium_host address came in while this ran: publish it now.
    if (this.o.config.compatibility === 'cilium' && (want.cniCompatibilityIP?.s ?? null) !== (this.cniIP?.s ?? null)) void this.handle(this.localObj);
  }

  /** The current check-in period: Kilo's fixed one, or the advertised adaptive one. */
  checkInPeriodMs(): number {
    const p = this.o.heartbeat;
    if (!p || p.mode === 'kilo' || this.advertised === 0) return this.o.checkInPeriodMs;
    return this.advertised * 1000;
  }

  /** The check-in Go agents expect: last-seen (and anything else that moved) published. */
  private async checkIn(): Promise<CheckInResult> {
    if (!this.local || !this.localObj || this.stopped) return { ok: true, retryAfterMs: null };
    const prev = this.local;
    // Adaptive mode: a longer period is advertised in the same write as the last-seen it
    // covers, so that readers stretch this node's window before it goes quiet for longer.
    const p = this.o.heartbeat;
    const advertisedBefore = this.advertised;
    if (p?.mode === 'adaptive') this.advertised = nextAdvertised(p, this.advertised, this.o.clusterSize());
    const next = withLastSeen(prev, this.o.now());
    const ann = this.annotationsOf(next);
    const r = await this.publish(this.published, ann, 'checkin');
    this.o.metrics.heartbeats.labels(r.ok ? 'ok' : 'error').inc();
    if (!r.ok) {
      this.advertised = advertisedBefore;
      return r; // the previous last-seen stays in memory (design §11.4); the loop retries soon
    }
    this.local = next;
    this.published = withPublished(this.published, ann);
    this.localObj = { ...this.localObj, metadata: { ...this.localObj.metadata, annotations: withPublished(this.localObj.metadata?.annotations ?? {}, ann) } };
    // A new period is a change the planner parses (the readiness window); last-seen alone is not.
    if (this.advertised !== advertisedBefore) this.o.pool.setNode(this.o.config.hostname, this.localObj);
    else this.o.pool.setLastSeen(this.o.config.hostname, next.lastSeen, this.localObj);
    return r;
  }

  /** Clean-up: removes kg's annotations (quirk, design §16.40: the patch fails whole if one is missing; it is only logged). */
  async removeAnnotations(): Promise<void> {
    const keys = [...CLEANUP, ...(this.o.config.dualStackSubnet ? [A.dualStackInternalIP] : []), ...(this.localObj?.metadata?.annotations?.[A.checkInPeriod] !== undefined ? [A.checkInPeriod] : [])];
    try {
      await this.o.client.request('PATCH', `/api/v1/nodes/${encodeURIComponent(this.o.config.hostname)}`, {
        body: keys.map((k) => ({ op: 'remove', path: `/metadata/annotations/${k.replaceAll('~', '~0').replaceAll('/', '~1')}` })),
        contentType: 'application/json-patch+json',
        timeoutMs: 10_000,
      });
    } catch (e) {
      this.o.metrics.errors.labels('cleanUp').inc();
      this.o.log.warn('failed to remove the node annotations', { error: (e as Error).message });
    }
  }
}
