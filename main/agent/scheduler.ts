// When and how the mesh is programmed: changes ask for a plan, the pacer spaces plans out and
// coalesces the changes that arrive meanwhile (one plan in flight at a time, as kube-proxy's
// bounded-frequency runner), and each run is a plan step (the planner pool) and an apply step
// (the I/O worker). A failed run is retried with backoff; the sequence number of the desired
// state the I/O worker holds decides between a delta and the whole state.
import type { ApplyResult } from '../../ipc/dataplane.js';
import type { PlanAnswer, PlanSummary, PlanTask } from '../../ipc/planner.js';
import type { IoClient } from '../../workers/io-client.js';
import type { PlanPool } from '../../workers/plan-pool.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';
import { Pacer } from './pacer.js';
import { collectGarbageSoon } from '../../workers/gc.js';

/** A plan task without the version (the pool's) and the base the I/O worker holds (the scheduler's). */
export type PlanRequest = Omit<PlanTask, 'kind' | 'v' | 'desired'> & { desired: { cniPath: string | null; tunnelPrivIface: string | null } };

type Planned = Extract<PlanAnswer, { ok: true }>;

export interface SchedulerOptions {
  hostname: string;
  log: Logger;
  metrics: Pick<Metrics, 'pendingChanges' | 'batchSize' | 'reconciles' | 'planDuration' | 'plans' | 'replans' | 'errors' | 'nodes' | 'peers' | 'leader' | 'ioQueueDepth' | 'plannerHeap' | 'applyDuration' | 'eventToProgrammed'>;
  pool: Pick<PlanPool, 'plan'>;
  io: Pick<IoClient, 'applyFull' | 'applyPrepared' | 'resync'>;
  /** Average minimum time between plans under churn; bursts are coalesced. */
  minSyncIntervalMs: number;
  /** The longest retry backoff (0: 30 s). */
  resyncPeriodMs: number;
  /** The watches listed (nothing is planned before) and the API answers on them. */
  synced: () => boolean;
  reachable: () => boolean;
  /** A run starts: readiness as it plans now is recorded. */
  starting: () => void;
  /** What to plan, or null when there is nothing to plan for yet (the own node unknown). */
  request: () => PlanRequest | null;
  /** Every successful plan (warnings, discovered endpoints). */
  planned: (s: PlanSummary) => void;
  /** A plan the own node is ready for: the WireGuard IP it leads with (null: not a leader). */
  leader: (wireGuardCIDR: string | null) => void;
  /** The kernel holds the plan. */
  applied: () => void;
  /** Milliseconds, monotonic; performance.now by default (tests hold their own). */
  clock?: () => number;
}

export class Scheduler {
  private pendingSince: number | null = null;
  private pendingEvents = 0;
  /** The I/O worker needs the whole state: run again when the run in flight ends. */
  private rerun = false;
  private running = false;
  private timer: NodeJS.Timeout | null = null;
  private readonly pacer: Pacer;
  private readonly clock: () => number;
  /** The sequence number of the desired state the I/O worker holds (null: none or unknown). */
  private ioSeq: number | null = null;
  private forceApply = false;
  private stopped = false;
  private inflight: Promise<void> = Promise.resolve();
  /** Plans asked for so far (a part of /graph's version). */
  scheduled = 0;
  /** Health: the first apply done, the run of failures, the last success (ms since epoch). */
  firstApply = false;
  consecutiveFailures = 0;
  lastSuccess = 0;

  constructor(private readonly o: SchedulerOptions) {
    this.clock = o.clock ?? (() => performance.now());
    this.pacer = new Pacer(o.minSyncIntervalMs, 3, this.clock());
  }

  /** A run is in flight or waiting for its turn. */
  get busy(): boolean {
    return this.running || this.timer !== null;
  }

  /** Asks for a plan; `events` is how many changes this request stands for (0 for a retry). */
  schedule(reason: string, events = 1): void {
    if (this.stopped) return;
    this.scheduled++;
    this.pendingEvents += events;
    this.pendingSince ??= this.clock();
    this.o.metrics.pendingChanges.set(this.pendingEvents);
    if (this.running || this.timer) return;
    const wait = this.pacer.delay(this.clock());
    this.o.log.debug('reconcile scheduled', { reason, inMs: Math.round(wait) });
    this.timer = setTimeout(() => {
      this.timer = null;
      this.pacer.take(this.clock());
      this.inflight = this.reconcile();
    }, wait);
  }

  /** The next run applies even when the plan is unchanged (a resync re-reads the kernel). */
  resync(): void {
    this.forceApply = true;
    this.schedule('resync');
  }

  /** The I/O worker restarted with no state: the next plan sends the whole state. */
  ioRestarted(): void {
    this.ioSeq = null;
    this.forceApply = true;
    if (this.running) this.rerun = true;
    else this.schedule('I/O worker restarted', 0);
  }

  /** No new runs; resolves when the one in flight is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.inflight.catch(() => {});
  }

  private later(reason: string, ms: number): void {
    const t = setTimeout(() => this.schedule(reason, 0), ms);
    t.unref();
  }

  private async reconcile(): Promise<void> {
    if (this.stopped || !this.o.synced()) return;
    if (!this.o.reachable()) {
      // Pending changes wait (they are not dropped); check again in a second.
      this.o.log.warn('the API is unreachable; keeping the last good dataplane');
      this.later('waiting for the API', 1000);
      return;
    }
    this.running = true;
    const since = this.pendingSince;
    const events = this.pendingEvents;
    this.pendingSince = null;
    this.pendingEvents = 0;
    const m = this.o.metrics;
    m.pendingChanges.set(0);
    m.batchSize.observe(events);
    m.reconciles.inc();
    this.o.starting();
    try {
      const step = await this.plan();
      if (step !== null) await this.apply(step.a, { since, events, t0: step.t0 });
    } catch (e) {
      m.errors.labels('apply').inc();
      this.consecutiveFailures++;
      // Unknown what the I/O worker holds now (it may have died): send the whole state next.
      this.ioSeq = null;
      this.o.log.error('reconcile failed', { error: (e as Error).message });
    } finally {
      this.running = false;
      this.next();
    }
  }

  /** After a run: the changes that came meanwhile, or a retry with backoff up to the resync period. */
  private next(): void {
    if (this.stopped) return;
    if (this.pendingEvents > 0 || this.rerun) {
      const n = this.pendingEvents;
      this.pendingEvents = 0;
      this.rerun = false;
      this.schedule('pending', n);
    } else if (this.consecutiveFailures > 0) {
      this.later('retry', Math.min(this.o.resyncPeriodMs || 30_000, 250 * 2 ** Math.min(this.consecutiveFailures, 7)));
    }
  }

  /** The plan step: null when there is nothing to apply (no own node, a failure, not ready). */
  private async plan(): Promise<{ a: Planned; t0: number } | null> {
    const t0 = this.clock();
    const req = this.o.request();
    if (req === null) return null;
    const m = this.o.metrics;
    const a = await this.o.pool.plan({ ...req, desired: { ...req.desired, baseSeq: this.ioSeq } });
    m.planDuration.observe((this.clock() - t0) / 1000);
    if (!a.ok) {
      m.plans.labels('error').inc();
      m.errors.labels('apply').inc();
      this.consecutiveFailures++;
      this.o.log.error('planning failed', { error: 'error' in a ? a.error : 'replica unavailable' });
      return null;
    }
    m.plans.labels('ok').inc();
    // The reasons are the planner's own fixed strings; anything else is counted as 'other'.
    if (a.replan) m.replans.labels(a.replan.incremental ? 'incremental' : 'full', a.replan.incremental ? '' : replanReason(a.replan.reason)).inc();
    const s = a.summary;
    this.o.planned(s);
    if (!s.ready) {
      this.o.log.info('the local node is not ready; leaving the dataplane as it is', { node: this.o.hostname });
      return null;
    }
    m.nodes.set(s.readyNodes);
    m.peers.set(s.readyPeers);
    m.leader.set(s.leader ? 1 : 0);
    this.o.leader(s.leader ? s.wireGuardCIDR : null);
    return { a, t0 };
  }

  /** The apply step: a delta against what the I/O worker holds, the whole state, or a resync. */
  private async apply(a: Planned, run: { since: number | null; events: number; t0: number }): Promise<void> {
    if (a.noop && !this.forceApply) return this.markApplied(run.since);
    const m = this.o.metrics;
    const t1 = this.clock();
    m.ioQueueDepth.set(1);
    if (a.heapBytes !== undefined) m.plannerHeap.set(a.heapBytes);
    let res: ApplyResult;
    if (a.noop) res = await this.o.io.resync();
    else if (a.delta) res = await this.o.io.applyPrepared(a.delta);
    // The whole state crosses as the planner's JSON text: one copy, not a clone per object.
    else res = await this.o.io.applyFull(a.full!, a.seq!);
    // A whole state (its JSON text) or a resync: this thread's share of the burst, given back.
    if (!a.delta) collectGarbageSoon();
    m.ioQueueDepth.set(0);
    this.forceApply = false;
    const ioMs = this.clock() - t1;
    m.applyDuration.observe(ioMs / 1000);
    if (res.needFullState) {
      this.ioSeq = null;
      this.rerun = true; // this run is still in flight: schedule() now would be dropped
      return;
    }
    // The worker holds the new state even when some writes failed: it retries those itself.
    // Unless the worker restarted meanwhile: then what it holds is unknown, and the rerun sends it all.
    if (!this.rerun) this.ioSeq = a.seq ?? this.ioSeq;
    if (!res.ok) {
      m.errors.labels('apply').inc();
      this.consecutiveFailures++;
      this.o.log.error('applying the plan failed; the I/O worker retries', { errors: res.errors.slice(0, 5).map((x) => `${x.kind} ${x.item}: ${x.message}`) });
      return;
    }
    this.markApplied(run.since);
    this.o.applied();
    this.logProgrammed(a, res, { ...run, t1, ioMs });
  }

  private logProgrammed(a: Planned, res: ApplyResult, t: { since: number | null; events: number; t0: number; t1: number; ioMs: number }): void {
    const s = a.summary;
    const now = this.clock();
    this.o.log.info('mesh programmed', {
      leader: s.leader, nodes: s.readyNodes, peers: s.readyPeers, wgPeers: s.wgPeers, routes: s.routes, writes: res.writes,
      parseMs: Math.round(a.parseMs), planMs: Math.round(a.planMs), replan: a.replan?.incremental ? 'incremental' : a.replan?.reason ?? null, applyMs: Math.round(res.durationMs), events: t.events,
      waitMs: t.since === null ? null : Math.round(t.t0 - t.since), roundTripMs: Math.round(t.t1 - t.t0), ioMs: Math.round(t.ioMs), latencyMs: t.since === null ? null : Math.round(now - t.since),
      kernelMs: Object.fromEntries(res.reports.filter((r) => r.writes > 0 || r.read).map((r) => [r.kind, Math.round(r.durationMs)])),
    });
  }

  private markApplied(since: number | null): void {
    this.firstApply = true;
    this.consecutiveFailures = 0;
    this.lastSuccess = Date.now();
    if (since !== null) this.o.metrics.eventToProgrammed.observe((this.clock() - since) / 1000);
  }
}

/** A fallback reason as a metric label: short, from the planner's fixed texts, else 'other'. */
function replanReason(reason: string): string {
  return /^[a-z][a-z :,-]{0,60}$/.test(reason) ? reason : 'other';
}
