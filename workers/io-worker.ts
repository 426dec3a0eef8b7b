// The dataplane I/O worker: the only code that touches the kernel. It hosts one Dataplane (all
// reconcilers) and serves the IoWorkerApi over comlink; push events (resync results, errors,
// logs) go out over the MessagePort handed in as workerData.events.
// A kernel error never ends this thread: every failure becomes a report, a metric and a retry.

import { getHeapStatistics } from 'node:v8';
import { parentPort, workerData, type MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';
import { Dataplane } from '../dataplane/dataplane.js';
import { Exec } from '../dataplane/exec.js';
import { fallbackWarning, resolveLayout } from '../dataplane/ipsets.js';
import { collectGarbageSoon } from './gc.js';
import { defaultDataplaneOptions, type ApplyResult, type CleanUpOptions, type DataplaneEvent, type DataplaneMetrics, type DataplaneOptions, type DesiredDelta, type DesiredState, type IoWorkerApi, type LayoutStatus, type ObservedState } from '../ipc/dataplane.js';

if (!parentPort) throw new Error('io-worker must run as a worker thread');

const events: MessagePort | null = (workerData as { events?: MessagePort } | undefined)?.events ?? null;
const emit = (ev: DataplaneEvent): void => {
  try {
    events?.postMessage(ev);
  } catch {
    /* the main thread may be gone */
  }
};

let dp: Dataplane | null = null;
let layout: LayoutStatus | null = null;

/** A hung ipset must not hold the worker's start (the probe is one short run). */
const PROBE_TIMEOUT_MS = 10_000;

/**
 * The layout this run uses (design §8.11): the set layout needs ipset and the kernel's hash:net
 * sets. Probed once per worker start; when unusable, the kilo layout with a warning and a gauge.
 */
async function chooseLayout(options: Partial<DataplaneOptions>): Promise<LayoutStatus> {
  const o = { ...defaultDataplaneOptions, ...options };
  const s = await resolveLayout(new Exec(o.nsenter, PROBE_TIMEOUT_MS), o.iptablesLayout, o.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4']);
  if (s.problem !== null) emit({ type: 'log', level: 'warn', msg: fallbackWarning(s) });
  return s;
}
function need(): Dataplane {
  if (dp === null) throw new Error('io-worker: init() first');
  return dp;
}

const api: IoWorkerApi = {
  async init(options: Partial<DataplaneOptions>): Promise<void> {
    if (dp !== null) await dp.close();
    layout = await chooseLayout(options);
    dp = new Dataplane({ ...options, iptablesLayout: layout.effective }, emit);
    // The device comes up while the agent lists the cluster and plans (the first apply queues behind it).
    void dp.prepare();
  },
  // A whole state and a resync's kernel read-back are bursts of tens of MB: given back after.
  apply(desired: DesiredState | string, seq: number): Promise<ApplyResult> {
    return need().apply(typeof desired === 'string' ? (JSON.parse(desired) as DesiredState) : desired, seq).finally(() => collectGarbageSoon());
  },
  applyDelta(delta: DesiredDelta): Promise<ApplyResult> {
    return need().applyDelta(delta);
  },
  resync(): Promise<ApplyResult> {
    return need().resync().finally(() => collectGarbageSoon());
  },
  observe(): Promise<ObservedState> {
    return need().observe();
  },
  async metrics(): Promise<DataplaneMetrics> {
    const h = getHeapStatistics();
    const d = need();
    return { ...d.metrics(), ipsetOperations: d.iptables.ipsetOperations(), iptablesLayout: layout ?? undefined, heapBytes: h.used_heap_size, heapCommittedBytes: h.total_physical_size };
  },
  cleanUp(options: CleanUpOptions): Promise<ApplyResult> {
    return need().cleanUp(options);
  },
  async close(): Promise<void> {
    if (dp !== null) await dp.close();
    dp = null;
  },
};

// Test hook: lets a test kill the thread the hard way to exercise the supervisor.
(api as unknown as Record<string, unknown>).__crash = (): void => {
  setImmediate(() => {
    throw new Error('io-worker: crash requested');
  });
};

process.on('unhandledRejection', (e) => emit({ type: 'log', level: 'error', msg: `io-worker: unhandled rejection: ${String(e)}` }));

Comlink.expose(api, nodeEndpoint(parentPort));
