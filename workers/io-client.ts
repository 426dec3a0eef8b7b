// Main-thread side of the I/O worker: starts it, calls it through comlink, receives its push
// events over a MessagePort and restarts it when it dies (bounded backoff). A restarted worker
// holds no desired state: `onRestart` tells the owner of the states (the agent) to send one whole.
// Worker counters become prom-client metrics here (prom-client has no worker aggregation).

import { MessageChannel, Worker, type ResourceLimits } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { IPTABLES_LAYOUTS, type ApplyResult, type CleanUpOptions, type DataplaneEvent, type DataplaneMetrics, type DataplaneOptions, type DesiredDelta, type DesiredState, type IoWorkerApi, type ObservedState } from '../ipc/dataplane.js';

const RESTART_MIN_MS = 100;
const QUICK_DEATH_MS = 60_000;
const RESTART_MAX_MS = 30_000;
/** After this many consecutive failed restarts the supervisor gives up and reports. */
const MAX_RESTARTS = 20;

export interface IoClientOptions {
  onEvent?: (ev: DataplaneEvent) => void;
  /** Called when a restarted worker came up: it holds no state, so the next apply must be whole. */
  onRestart?: () => void;
  registry?: Registry;
  /** Worker script (default: the compiled io-worker.js next to this file). */
  workerUrl?: URL;
  /** The worker's V8 limits (default IO_WORKER_LIMITS). */
  resourceLimits?: ResourceLimits;
}

/**
 * The I/O worker's heap limits. Its state lives long and its passes allocate in bursts (a whole
 * desired state, a kernel read-back), so a small young generation costs little time and keeps
 * the isolate from holding large semi-spaces it never gives back; the old generation is bounded
 * well above the state of a 10,000-node cluster, so that a leak ends in a restart (and a report)
 * instead of the host's OOM killer.
 */
export const IO_WORKER_LIMITS: ResourceLimits = { maxYoungGenerationSizeMb: 6, maxOldGenerationSizeMb: 512 };

class WorkerDied extends Error {}

export class IoClient {
  private worker: Worker | null = null;
  private remote: Comlink.Remote<IoWorkerApi> | null = null;
  private pending = new Set<(e: Error) => void>();
  private closing = false;
  private restarts = 0;
  private consecutiveFailures = 0;
  /** Deaths within QUICK_DEATH_MS of coming up, in a row: they back off too (a worker that dies in every apply). */
  private quickDeaths = 0;
  private upAt = 0;
  private ready: Promise<void> | null = null;
  private last: DataplaneMetrics | null = null;
  private metrics: ReturnType<typeof makeMetrics> | null = null;

  constructor(
    private readonly options: Partial<DataplaneOptions>,
    private readonly o: IoClientOptions = {},
  ) {
    if (o.registry) this.metrics = makeMetrics(o.registry);
  }

  /** Number of times the worker was restarted after dying. */
  get restartCount(): number {
    return this.restarts;
  }

  get threadId(): number | null {
    return this.worker?.threadId ?? null;
  }

  start(): Promise<void> {
    this.ready = this.spawn();
    return this.ready;
  }

  private async spawn(): Promise<void> {
    const ch = new MessageChannel();
    const w = new Worker(this.o.workerUrl ?? new URL('./io-worker.js', import.meta.url), {
      workerData: { events: ch.port2 },
      transferList: [ch.port2],
      resourceLimits: this.o.resourceLimits ?? IO_WORKER_LIMITS,
    });
    ch.port1.on('message', (ev: DataplaneEvent) => {
      if (ev.type === 'applied') void this.refreshMetrics(ev.result);
      this.o.onEvent?.(ev);
    });
    ch.port1.unref();
    w.on('error', (e) => this.o.onEvent?.({ type: 'log', level: 'error', msg: `io-worker error: ${e.message}` }));
    w.on('exit', (code) => {
      ch.port1.close();
      if (this.worker !== w) return;
      this.worker = null;
      this.remote = null;
      for (const rej of this.pending) rej(new WorkerDied(`io-worker exited (code ${code})`));
      this.pending.clear();
      this.last = null; // the new worker's counters start at zero
      if (!this.closing) this.restart();
    });
    this.worker = w;
    this.remote = Comlink.wrap<IoWorkerApi>(nodeEndpoint(w));
    await this.call((r) => r.init(this.options));
    this.upAt = Date.now();
    // the layout in effect is known from the start (design §8.11), before any pass
    await this.refreshMetrics(null);
  }

  private restart(): void {
    if (this.consecutiveFailures >= MAX_RESTARTS) {
      this.o.onEvent?.({ type: 'log', level: 'error', msg: `io-worker: giving up after ${MAX_RESTARTS} failed restarts` });
      return;
    }
    this.quickDeaths = Date.now() - this.upAt < QUICK_DEATH_MS ? Math.min(this.quickDeaths + 1, 20) : 0;
    const delay = Math.min(RESTART_MAX_MS, RESTART_MIN_MS * 2 ** Math.max(this.consecutiveFailures, this.quickDeaths - 1));
    this.restarts++;
    this.metrics?.restarts.inc();
    this.o.onEvent?.({ type: 'log', level: 'warn', msg: `io-worker died; restarting in ${delay} ms` });
    this.ready = new Promise<void>((resolve) => {
      setTimeout(() => {
        this.spawn()
          .then(() => {
            this.consecutiveFailures = 0;
            this.o.onRestart?.();
          })
          .catch(() => {
            this.consecutiveFailures++;
          })
          .finally(resolve);
      }, delay);
    });
  }

  /** Call the worker; rejects (instead of hanging) when the worker dies meanwhile. */
  private call<T>(fn: (r: Comlink.Remote<IoWorkerApi>) => Promise<T>): Promise<T> {
    const r = this.remote;
    if (r === null) return Promise.reject(new WorkerDied('io-worker is not running'));
    return new Promise<T>((resolve, reject) => {
      this.pending.add(reject);
      fn(r).then(
        (v) => {
          this.pending.delete(reject);
          resolve(v);
        },
        (e) => {
          this.pending.delete(reject);
          reject(e);
        },
      );
    });
  }

  /** Wait for a (re)started worker. */
  async whenReady(): Promise<void> {
    await this.ready;
  }

  /**
   * Applies a whole state, numbered by its sender (the plan worker's DeltaTracker): as the
   * planner's JSON text, a string crosses threads as one copy.
   */
  async applyFull(desired: DesiredState | string, seq: number): Promise<ApplyResult> {
    await this.ready;
    const res = await this.call((r) => r.apply(desired, seq));
    await this.refreshMetrics(res);
    return res;
  }

  /** Applies a caller-made delta; `needFullState` in the result asks for applyFull. */
  async applyPrepared(delta: DesiredDelta): Promise<ApplyResult> {
    await this.ready;
    const res = await this.call((r) => r.applyDelta(delta));
    await this.refreshMetrics(res);
    return res;
  }

  async resync(): Promise<ApplyResult> {
    await this.ready;
    const res = await this.call((r) => r.resync());
    await this.refreshMetrics(res);
    return res;
  }

  async observe(): Promise<ObservedState> {
    await this.ready;
    return this.call((r) => r.observe());
  }

  async cleanUp(options: CleanUpOptions): Promise<ApplyResult> {
    await this.ready;
    const res = await this.call((r) => r.cleanUp(options));
    await this.refreshMetrics(res);
    return res;
  }

  /** Test hook: make the worker thread die with an uncaught exception. */
  async crashForTest(): Promise<void> {
    const r = this.remote as unknown as { __crash(): Promise<void> } | null;
    await r?.__crash();
  }

  async close(): Promise<void> {
    this.closing = true;
    await this.ready?.catch(() => {});
    const w = this.worker;
    if (w === null) return;
    try {
      await this.call((r) => r.close());
    } catch {
      /* already gone */
    }
    this.remote?.[Comlink.releaseProxy]();
    await w.terminate();
    this.worker = null;
  }

  private async refreshMetrics(res: ApplyResult | null): Promise<void> {
    if (this.metrics === null) return;
    if (res !== null) this.metrics.duration.labels(res.cause).observe(res.durationMs / 1000);
    let cur: DataplaneMetrics;
    try {
      cur = await this.call((r) => r.metrics());
    } catch {
      return;
    }
    const prev = this.last;
    this.last = cur;
    const m = this.metrics;
    const delta = (a: Record<string, number>, b: Record<string, number> | undefined, f: (k: string, d: number) => void): void => {
      for (const [k, v] of Object.entries(a)) {
        const d = v - (b?.[k] ?? 0);
        if (d > 0) f(k, d);
      }
    };
    delta(cur.iptablesOperations, prev?.iptablesOperations, (k, d) => {
      const [protocol, operation, table, chain] = k.split('|');
      m.iptables.labels({ operation, table, chain, protocol }).inc(d);
    });
    delta(cur.ipsetOperations ?? {}, prev?.ipsetOperations, (k, d) => {
      const [operation, set] = k.split('|');
      m.ipset.labels({ operation, set }).inc(d);
    });
    if (cur.iptablesLayout !== undefined) {
      for (const l of IPTABLES_LAYOUTS) m.layout.labels(l).set(cur.iptablesLayout.effective === l ? 1 : 0);
      m.layoutFallback.set(cur.iptablesLayout.effective === cur.iptablesLayout.requested ? 0 : 1);
    }
    delta(cur.writes, prev?.writes, (k, d) => m.writes.labels(k).inc(d));
    delta(cur.batches, prev?.batches, (k, d) => m.batches.labels(k).inc(d));
    delta(cur.errors, prev?.errors, (k, d) => m.errors.labels(k).inc(d));
    delta(cur.rejected, prev?.rejected, (k, d) => {
      const [kind, reason] = k.split('|');
      m.rejected.labels({ kind, reason }).inc(d);
    });
    const dr = cur.resyncs - (prev?.resyncs ?? 0);
    if (dr > 0) m.resyncs.inc(dr);
    if (cur.heapBytes !== undefined) m.heap.set(cur.heapBytes);
    if (cur.heapCommittedBytes !== undefined) m.heapCommitted.set(cur.heapCommittedBytes);
  }
}

function makeMetrics(registry: Registry) {
  const reg = [registry];
  return {
    iptables: new Counter({
      name: 'kilo_iptables_operations_total',
      help: 'Number of iptables operations.',
      labelNames: ['operation', 'table', 'chain', 'protocol'],
      registers: reg,
    }),
    // kind="iptables" counts the sets' lines too (it is one reconciler); kg_ipset_operations_total breaks them down
    writes: new Counter({ name: 'kg_dataplane_writes_total', help: 'Kernel objects written (added, changed or removed) by reconciler; iptables includes its ipset sets and elements.', labelNames: ['kind'], registers: reg }),
    // Not in kilo_iptables_operations_total: its operation values are Go's, fixed (design §13.2).
    ipset: new Counter({
      name: 'kg_ipset_operations_total',
      help: 'ipset operations of the set layout by set: create, add, del, swap, destroy (lines the kernel took) and save (reads, set "*").',
      labelNames: ['operation', 'set'],
      registers: reg,
    }),
    layout: new Gauge({ name: 'kg_iptables_layout', help: 'The iptables layout in effect (1) and the other (0): sets or kilo.', labelNames: ['layout'], registers: reg }),
    layoutFallback: new Gauge({
      name: 'kg_iptables_layout_fallback',
      help: '1 when --iptables-layout=sets cannot run (ipset missing or the kernel lacks ip_set/hash:net) and kg uses the kilo layout for this run; the log says what is missing.',
      registers: reg,
    }),
    batches: new Counter({ name: 'kg_dataplane_batches_total', help: 'Write batches (iptables-restore and ipset restore runs, ip -batch runs, UAPI sets) by reconciler.', labelNames: ['kind'], registers: reg }),
    errors: new Counter({ name: 'kg_dataplane_errors_total', help: 'Failed dataplane writes or reads by reconciler.', labelNames: ['kind'], registers: reg }),
    rejected: new Counter({
      name: 'kg_dataplane_rejected_total',
      help: 'Desired items not written as they are: invalid (dropped before writing), clamped (written with a field brought into range), refused (the kernel refuses them for good; not retried until they change).',
      labelNames: ['kind', 'reason'],
      registers: reg,
    }),
    resyncs: new Counter({ name: 'kg_dataplane_resyncs_total', help: 'Full re-reads of the kernel state (periodic, drift repair, retries).', registers: reg }),
    restarts: new Counter({ name: 'kg_io_worker_restarts_total', help: 'Restarts of the dataplane I/O worker after it died.', registers: reg }),
    // The process metrics count the main thread's heap only; each worker is an isolate of its own.
    heap: new Gauge({ name: 'kg_io_worker_heap_bytes', help: 'V8 heap in use by the I/O worker thread.', registers: reg }),
    heapCommitted: new Gauge({ name: 'kg_io_worker_heap_committed_bytes', help: 'Physical memory held by the I/O worker thread\'s V8 heap (in use or free).', registers: reg }),
    duration: new Histogram({
      name: 'kg_dataplane_pass_duration_seconds',
      help: 'Duration of one dataplane pass in the I/O worker.',
      labelNames: ['cause'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: reg,
    }),
  };
}
