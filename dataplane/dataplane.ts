// The dataplane: one reconciler per kernel table, driven one pass at a time (every kernel write is
// serialised through `run`). A pass diffs the desired state against the cached kernel view (kept
// in step with our own writes); a resync re-reads the kernel first and repairs drift. Failed
// writes are retried with exponential backoff; one failing item never blocks the others. Items
// that can never be written as they are (a control character, a value out of range, a line the
// kernel refuses for good) are rejections: warnings with a metric, never retried until they change.
//
// Usable directly (tests, bench) or inside the I/O worker (workers/io-worker.ts).

import type { ChildProcess } from 'node:child_process';
import {
  defaultDataplaneOptions,
  type ApplyResult,
  type CleanUpOptions,
  type DataplaneEvent,
  type DataplaneMetrics,
  type DataplaneOptions,
  type DesiredDelta,
  type DesiredPeer,
  type DesiredState,
  type ObservedState,
  type ReconcilerReport,
  type Splice,
} from '../ipc/dataplane.js';
import { Exec } from './exec.js';
import { IptablesReconciler, protocolLabel } from './iptables.js';
import { RouteReconciler, deletedRouteKey } from './routes.js';
import { RuleReconciler } from './rules.js';
import { WireGuardReconciler } from './wireguard.js';
import { TunnelReconciler } from './tunnel.js';
import { CniReconciler } from './cni.js';
import { applySplice } from '../diff/desired.js';
import type { IptablesChain, IptablesRule } from '../plan/types.js';

const RETRY_MIN_MS = 100;
const RETRY_MAX_MS = 30_000;

/** A peer's place in the desired list: its public key (checked by the WireGuard reconciler). */
const peerKey = (p: DesiredPeer): unknown => p?.publicKey;

/** A splice of items as a splice of their keys. */
function keysOf<T, K>(s: Splice<T> | null, key: (x: T) => K): Splice<K> | null {
  return s === null ? null : { start: s.start, deleteCount: s.deleteCount, items: s.items.map(key) };
}

export function emptyMetrics(): DataplaneMetrics {
  return { iptablesOperations: {}, writes: {}, batches: {}, errors: {}, rejected: {}, resyncs: 0, lastDurationMs: {} };
}

export class Dataplane {
  readonly options: DataplaneOptions;
  readonly exec: Exec;
  readonly iptables: IptablesReconciler;
  readonly routes: RouteReconciler;
  readonly rules: RuleReconciler;
  readonly wireguard: WireGuardReconciler;
  readonly tunnel: TunnelReconciler;
  readonly cni: CniReconciler;
  private readonly m: DataplaneMetrics = emptyMetrics();
  private queue: Promise<unknown> = Promise.resolve();
  private hasDesired = false;
  private closed = false;
  private resyncTimer: NodeJS.Timeout | null = null;
  private retryTimer: NodeJS.Timeout | null = null;
  private retryAttempt = 0;
  private monitor: ChildProcess | null = null;
  private monitorTimer: NodeJS.Timeout | null = null;
  private monitorRestarts = 0;
  private routeDebounce: NodeJS.Timeout | null = null;
  /**
   * The desired lists as last applied, as much as deltas need to splice into them: the peers' and
   * routes' keys in the planner's order (the reconcilers hold the items themselves), the iptables
   * rules whole (their reconciler diffs a splice against the rules it replaces).
   */
  private cur: { peers: unknown[]; routes: Array<string | null>; chains: IptablesChain[]; prepend: IptablesRule[]; append: IptablesRule[] } | null = null;
  private seq = 0;

  constructor(
    options: Partial<DataplaneOptions> = {},
    private readonly emit: (ev: DataplaneEvent) => void = () => {},
  ) {
    this.options = { ...defaultDataplaneOptions, ...options };
    const o = this.options;
    this.exec = new Exec(o.nsenter);
    this.iptables = new IptablesReconciler(this.exec, { backend: o.iptablesBackend, ipv6: o.ipv6, layout: o.iptablesLayout }, (family, op) => {
      const k = `${protocolLabel(family)}|${op.operation}|${op.table}|${op.chain}`;
      this.m.iptablesOperations[k] = (this.m.iptablesOperations[k] ?? 0) + 1;
    });
    this.routes = new RouteReconciler(this.exec, o.kiloTable);
    this.rules = new RuleReconciler(this.exec, o.kiloTable);
    this.wireguard = new WireGuardReconciler(this.exec, {
      interface: o.interface,
      createInterface: o.createInterface,
      mode: o.wireguardMode,
      wireguardGo: o.wireguardGo,
      uapiDir: o.uapiDir,
    });
    this.wireguard.onLost = () => {
      this.log('warn', `wireguard-go for ${o.interface} exited; recreating`);
      this.scheduleRetry();
    };
    this.tunnel = new TunnelReconciler(this.exec);
    this.cni = new CniReconciler();
    if (o.resyncPeriodMs > 0) this.armResync();
    if (o.routeMonitor) this.startMonitor();
  }

  private log(level: 'debug' | 'info' | 'warn' | 'error', msg: string): void {
    this.emit({ type: 'log', level, msg });
  }

  /** Run one task at a time: the only path to the kernel. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.queue.then(fn, fn);
    this.queue = p.catch(() => {});
    return p;
  }

  /** Apply a whole desired state. `seq` numbers it for later deltas (its sender's DeltaTracker). */
  apply(desired: DesiredState, seq?: number): Promise<ApplyResult> {
    return this.serial(async () => {
      this.setDesired(desired);
      this.seq = seq ?? this.seq + 1;
      return this.pass('apply', false);
    });
  }

  /**
   * Apply a delta (diff/desired.ts) to the state last applied. O(changed) from here to the kernel.
   * When `delta.base` is not the state held here (e.g. a restarted worker), nothing is done and
   * the result says `needFullState`.
   */
  applyDelta(delta: DesiredDelta): Promise<ApplyResult> {
    return this.serial(async () => {
      if (this.cur === null || delta.base !== this.seq) {
        return { ...this.finish('apply', [], performance.now()), needFullState: true };
      }
      const cur = this.cur;
      const removedPeers = applySplice(cur.peers, keysOf(delta.peers, peerKey));
      this.wireguard.patch(delta.wireguard, removedPeers, delta.peers?.items ?? []);
      if (delta.routes !== null) {
        const added = this.routes.patch(cur.routes.slice(delta.routes.start, delta.routes.start + delta.routes.deleteCount), delta.routes.items);
        cur.routes.splice(delta.routes.start, delta.routes.deleteCount, ...added);
      }
      if (delta.rules !== null) this.rules.setDesired(delta.rules);
      if (delta.chains !== null) {
        cur.chains = delta.chains;
        applySplice(cur.prepend, delta.prepend);
        applySplice(cur.append, delta.append);
        this.iptables.setDesired({ chains: cur.chains, prepend: cur.prepend, append: cur.append });
      } else {
        if (delta.prepend) {
          this.iptables.patch('prepend', cur.prepend, delta.prepend);
          applySplice(cur.prepend, delta.prepend);
        }
        if (delta.append) {
          this.iptables.patch('append', cur.append, delta.append);
          applySplice(cur.append, delta.append);
        }
      }
      this.tunnel.setDesired(delta.tunnel);
      this.cni.setDesired(delta.cni);
      this.seq = delta.base + 1;
      return this.pass('apply', false);
    });
  }

  resync(): Promise<ApplyResult> {
    return this.serial(() => this.pass('resync', true));
  }

  private setDesired(d: DesiredState): void {
    this.hasDesired = true;
    this.cur = {
      peers: (d.wireguard?.peers ?? []).map(peerKey),
      routes: this.routes.setDesired(d.routes),
      chains: d.iptables.chains,
      prepend: [...d.iptables.prepend],
      append: [...d.iptables.append],
    };
    this.wireguard.setDesired(d.wireguard);
    this.iptables.setDesired(d.iptables);
    this.rules.setDesired(d.rules);
    this.tunnel.setDesired(d.tunnel);
    this.cni.setDesired(d.cni);
  }

  /**
   * Work that needs no desired state, done ahead of the first one (the agent starts this worker
   * before it lists the cluster and plans): the WireGuard device comes up (created on startup,
   * as Kilo's mesh.New does: design §11.1), the iptables backend is detected, and the device's peers,
   * the routes and the rules are read for the first pass to diff against (a change made between
   * this read and that pass is repaired by the next resync). Failures are left for the first pass,
   * which tries again and reports them.
   */
  prepare(): Promise<void> {
    return this.serial(async () => {
      const t0 = performance.now();
      await Promise.all([
        this.iptables.getBackend().catch(() => null),
        this.options.createInterface ? this.wireguard.prepare().catch((e: Error) => this.log('debug', `WireGuard device not ready ahead of the plan: ${e.message}`)) : null,
        // the tables' current state, read while the cluster is listed (the first pass skips its reads)
        this.hasDesired ? null : this.routes.prime(),
        this.hasDesired ? null : this.rules.prime(),
      ]);
      this.log('debug', `dataplane prepared in ${Math.round(performance.now() - t0)} ms`);
    });
  }

  private async pass(cause: ApplyResult['cause'], reread: boolean): Promise<ApplyResult> {
    const t0 = performance.now();
    const reports: ReconcilerReport[] = [];
    if (this.hasDesired) {
      // Every table side by side (each is one batch). Routes and rules are read and diffed at
      // once and written once the devices they may name are there: the WireGuard link (its MTU,
      // address and state; its peers are written meanwhile) and the IPIP tunnel.
      let linkDone = (): void => {};
      const link = new Promise<void>((r) => (linkDone = r));
      const tunnel = this.tunnel.reconcile(reread);
      const devices = Promise.all([link, tunnel]).catch(() => {}); // over, failed or not (the failure is reported by its own step)
      const [tu, cni, ipt, wg, routes, rules] = await Promise.all([
        tunnel,
        this.cni.reconcile(reread),
        this.iptables.reconcile(reread),
        this.wireguard.reconcile(reread, () => linkDone()),
        this.routes.reconcile(reread, devices),
        this.rules.reconcile(reread, devices),
      ]);
      reports.push(tu, cni, ipt, wg, routes, rules);
    }
    const res = this.finish(cause, reports, t0);
    if (reread) this.m.resyncs++;
    return res;
  }

  private finish(cause: ApplyResult['cause'], reports: ReconcilerReport[], t0: number): ApplyResult {
    const errors = reports.flatMap((r) => r.errors);
    const rejected = reports.flatMap((r) => r.rejected);
    for (const r of reports) {
      this.m.writes[r.kind] = (this.m.writes[r.kind] ?? 0) + r.writes;
      this.m.batches[r.kind] = (this.m.batches[r.kind] ?? 0) + r.batches;
      this.m.lastDurationMs[r.kind] = r.durationMs;
      if (r.errors.length > 0) this.m.errors[r.kind] = (this.m.errors[r.kind] ?? 0) + r.errors.length;
    }
    for (const x of rejected) {
      const k = `${x.kind}|${x.reason}`;
      this.m.rejected[k] = (this.m.rejected[k] ?? 0) + (x.count ?? 1);
    }
    const res: ApplyResult = {
      cause,
      ok: errors.length === 0,
      durationMs: performance.now() - t0,
      reports,
      writes: reports.reduce((a, r) => a + r.writes, 0),
      errors,
      rejected,
    };
    for (const x of rejected) this.log('warn', `${x.kind} ${x.item} ${x.reason === 'clamped' ? 'clamped' : 'not written'}: ${x.message}`);
    for (const e of errors) {
      this.emit({ type: 'error', error: e });
      this.log('error', `${e.kind} ${e.item}: ${e.message}`);
    }
    // Only transient errors are retried: a rejection is final until its desired item changes.
    if (cause !== 'cleanup') {
      if (errors.length > 0) this.scheduleRetry();
      else this.retryAttempt = 0;
    }
    return res;
  }

  /** Retry failed writes: a re-reading pass after 100 ms, 200 ms, … up to 30 s. */
  private scheduleRetry(): void {
    if (this.closed || this.retryTimer !== null) return;
    const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** this.retryAttempt);
    this.retryAttempt = Math.min(this.retryAttempt + 1, 20);
    this.retryTimer = setTimeout(() => {
      this.retryTimer = null;
      void this.serial(() => this.pass('retry', true)).then((r) => this.emit({ type: 'applied', result: r }));
    }, delay);
    this.retryTimer.unref?.();
  }

  private armResync(): void {
    this.resyncTimer = setInterval(() => {
      if (this.closed) return;
      void this.resync().then((r) => this.emit({ type: 'applied', result: r }));
    }, this.options.resyncPeriodMs);
    this.resyncTimer.unref?.();
  }

  /**
   * `ip monitor route`: when the kernel deletes one of our desired routes (someone else did it;
   * our own deletes are of routes we no longer want), mark just that route dirty and re-add it in
   * a small incremental pass (debounced). Other drift is repaired by the periodic resync.
   */
  private startMonitor(): void {
    if (this.closed) return;
    const child = this.exec.spawnLong('ip', ['monitor', 'route']);
    this.monitor = child;
    let buf = '';
    child.stdout?.on('data', (b: Buffer) => {
      buf += b.toString();
      const lines = buf.split('\n');
      buf = lines.pop() ?? '';
      let hit = false;
      for (const l of lines) {
        const key = deletedRouteKey(l);
        if (key !== null && this.routes.noteDeleted(key)) hit = true;
      }
      if (!hit || this.routeDebounce !== null || !this.hasDesired) return;
      this.routeDebounce = setTimeout(() => {
        this.routeDebounce = null;
        void this.serial(async () => {
          const t0 = performance.now();
          const r = await this.routes.reconcile(false);
          const res = this.finish('resync', [r], t0);
          this.emit({ type: 'applied', result: res });
          return res;
        });
      }, 50);
      this.routeDebounce.unref?.();
    });
    child.stderr?.on('data', () => {});
    child.on('error', () => {});
    child.on('exit', () => {
      if (this.monitor !== child || this.closed) return;
      this.monitor = null;
      const delay = Math.min(60_000, 1000 * 2 ** Math.min(this.monitorRestarts++, 6));
      this.monitorTimer = setTimeout(() => this.startMonitor(), delay);
      this.monitorTimer.unref?.();
    });
  }

  observe(): Promise<ObservedState> {
    return this.serial(() => this.wireguard.observe());
  }

  metrics(): DataplaneMetrics {
    return structuredClone(this.m);
  }

  /** Design §11.7: iptables, routes/rules, then (optionally) the interface, then the tunnel. */
  cleanUp(opts: CleanUpOptions): Promise<ApplyResult> {
    return this.serial(async () => {
      const t0 = performance.now();
      this.hasDesired = false;
      this.cur = null;
      const reports: ReconcilerReport[] = [];
      reports.push(await this.iptables.cleanUp());
      reports.push(await this.routes.cleanUp());
      reports.push(await this.rules.cleanUp());
      reports.push(await this.wireguard.cleanUp(opts.interface));
      reports.push(await this.tunnel.cleanUp());
      return this.finish('cleanup', reports, t0);
    });
  }

  /** Stop timers and the monitor; the kernel state stays. wireguard-go keeps running. */
  async close(): Promise<void> {
    this.closed = true;
    for (const t of [this.resyncTimer, this.retryTimer, this.monitorTimer, this.routeDebounce]) if (t) clearTimeout(t);
    if (this.resyncTimer) clearInterval(this.resyncTimer);
    const m = this.monitor;
    this.monitor = null;
    if (m && m.exitCode === null) {
      const done = new Promise<void>((r) => m.once('exit', () => r()));
      m.kill('SIGTERM');
      await done;
    }
    await this.queue.catch(() => {});
  }
}
