// The scheduler in-process: a fake planner pool and I/O worker, timers and the monotonic clock
// held by the test (node:test's mock timers). Pacing, coalescing, waiting for the API, retries
// with backoff, and which state (delta, whole, resync) goes to the I/O worker.
import { afterEach, beforeEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { Scheduler, type SchedulerOptions } from '../../main/agent/scheduler.js';
import { createMetrics } from '../../main/agent/metrics.js';
import { silentLogger } from '../../main/log.js';
import type { DesiredDelta } from '../../ipc/dataplane.js';
import { FakePool, readySummary } from './fake-pool.js';
import { recordingIo } from './fake-io.js';

let ms = 0;

beforeEach(() => {
  ms = 0;
  mock.timers.enable({ apis: ['setTimeout', 'setInterval'] });
});
afterEach(() => mock.timers.reset());

/** Lets the promise chains of a run finish (setImmediate is not mocked). */
const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

/** Moves the clock and the timers on by `n` ms, then lets the runs that started finish. */
async function advance(n: number): Promise<void> {
  ms += n;
  mock.timers.tick(n);
  await settle();
}

function setup(o: Partial<SchedulerOptions> & { known?: () => boolean } = {}) {
  const pool = new FakePool();
  const rec = recordingIo();
  const metrics = createMetrics();
  const state = { synced: true, reachable: true, starts: 0, applied: 0, leader: [] as (string | null)[] };
  const s = new Scheduler({
    hostname: 'self', log: silentLogger, metrics, pool, io: rec.io as unknown as SchedulerOptions['io'],
    minSyncIntervalMs: 1000, resyncPeriodMs: 0,
    synced: () => state.synced, reachable: () => state.reachable,
    starting: () => state.starts++,
    request: () => ((o.known ?? (() => true))() ? { options: {} as never, desired: { cniPath: null, tunnelPrivIface: null } } : null),
    planned: () => {},
    leader: (c) => state.leader.push(c),
    applied: () => state.applied++,
    clock: () => ms,
    ...o,
  });
  const batches = async () => (await metrics.batchSize.get()).values.find((v) => v.metricName?.endsWith('_sum'))?.value ?? 0;
  return { s, pool, rec, metrics, state, batches };
}

test('scheduler pacing: a burst of 3 plans at once, then one per interval', async () => {
  const { s, pool } = setup();
  for (let i = 0; i < 3; i++) {
    s.schedule('change');
    await advance(0);
    assert.equal(pool.tasks.length, i + 1, `plan ${i + 1} starts at once`);
  }
  s.schedule('change');
  await advance(0);
  assert.equal(pool.tasks.length, 3, 'the bucket is empty: the fourth waits');
  await advance(999);
  assert.equal(pool.tasks.length, 3);
  await advance(1);
  assert.equal(pool.tasks.length, 4, 'one interval later');
});

test('scheduler coalescing: changes during a run become one run, with all of them in its batch', async () => {
  const { s, pool, batches } = setup();
  pool.hold = true;
  s.schedule('change');
  await advance(0);
  assert.equal(pool.tasks.length, 1);
  assert.equal(s.busy, true);
  for (let i = 0; i < 5; i++) s.schedule('change');
  await advance(5000);
  assert.equal(pool.tasks.length, 1, 'one run at a time');
  pool.release();
  await settle();
  await advance(0);
  assert.equal(pool.tasks.length, 2, 'the five changes: one more run');
  assert.equal(await batches(), 1 + 5);
  await advance(10_000);
  assert.equal(pool.tasks.length, 2, 'nothing pending: no more runs');
  assert.equal(s.busy, false);
});

test('scheduler: nothing is planned before the watches synced or while the API is unreachable; changes wait', async () => {
  const { s, pool, state, batches } = setup();
  state.synced = false;
  s.schedule('change');
  await advance(0);
  assert.equal(pool.tasks.length, 0, 'not synced');
  state.synced = true;
  state.reachable = false;
  s.schedule('change');
  s.schedule('change');
  await advance(0);
  assert.equal(pool.tasks.length, 0, 'unreachable');
  await advance(1000);
  assert.equal(pool.tasks.length, 0, 'checked again after a second, still unreachable');
  state.reachable = true;
  await advance(999);
  assert.equal(pool.tasks.length, 0);
  await advance(1);
  assert.equal(pool.tasks.length, 1, 'the check a second later plans');
  assert.equal(await batches(), 3, 'with every change that waited (the first run was dropped before synced)');
});

test('scheduler retry: a failed plan is retried with exponential backoff, capped; success resets it', async () => {
  const { s, pool, rec } = setup({ resyncPeriodMs: 3000 });
  const fail = { ok: false as const, error: 'boom' };
  pool.answers.push(fail, fail, fail, fail);
  s.schedule('change');
  await advance(0);
  assert.equal(s.consecutiveFailures, 1);
  // 250 ms × 2^failures: 500, 1000, 2000, then the cap (the resync period, 3 s).
  for (const [wait, n] of [[500, 2], [1000, 3], [2000, 4], [3000, 5]] as const) {
    await advance(wait - 1);
    assert.equal(pool.tasks.length, n - 1, `not before ${wait} ms`);
    await advance(1);
    assert.equal(pool.tasks.length, n, `retry ${n - 1} after ${wait} ms`);
  }
  assert.equal(s.consecutiveFailures, 0, 'the fifth plan succeeded');
  assert.equal(s.firstApply, true);
  assert.deepEqual(rec.calls, ['full 5']);
  await advance(60_000);
  assert.equal(pool.tasks.length, 5, 'no retries after a success');
});

test('scheduler retry: a failed apply and a thrown one are retried; a throw forgets what the I/O worker holds', async () => {
  const { s, pool, rec } = setup();
  rec.next.push({ ok: false, errors: [{ kind: 'route', item: 'x', message: 'EPERM' }] as never });
  s.schedule('change');
  await advance(0);
  assert.deepEqual(rec.calls, ['full 1']);
  assert.equal(s.consecutiveFailures, 1);
  assert.equal(s.firstApply, false);
  await advance(500);
  assert.equal(pool.tasks[1].desired?.baseSeq, 1, 'the worker holds state 1 even though writes failed');
  assert.equal(s.consecutiveFailures, 0);
  rec.next.push(new Error('worker died'));
  s.schedule('change');
  await advance(1000);
  assert.equal(s.consecutiveFailures, 1);
  await advance(500);
  assert.equal(pool.tasks.length, 4);
  assert.equal(pool.tasks[3].desired?.baseSeq, null, 'after a throw the whole state is sent');
});

test('scheduler apply step: delta against the base, noop skips the I/O worker, whole state when it asks', async () => {
  const { s, pool, rec, state } = setup({ minSyncIntervalMs: 0 });
  const delta = (base: number, seq: number) => ({ ok: true as const, summary: readySummary({ leader: true, wireGuardCIDR: '10.4.0.1/16' }), delta: { base } as DesiredDelta, seq, planMs: 0, parseMs: 0 });
  pool.answers.push(
    { ok: true, summary: readySummary(), full: '{}', seq: 7, planMs: 0, parseMs: 0 },
    delta(7, 8),
    { ok: true, summary: readySummary(), noop: true, seq: 8, planMs: 0, parseMs: 0 },
    delta(8, 9),
  );
  rec.next.push({}, {}, { needFullState: true });
  for (let i = 0; i < 4; i++) {
    s.schedule('change');
    await advance(0);
  }
  // No fifth change: the run that met needFullState is followed by one with the whole state.
  await advance(0);
  assert.deepEqual(pool.tasks.map((t) => t.desired?.baseSeq), [null, 7, 8, 8, null], 'a worker that lost its state gets the whole one next');
  assert.deepEqual(rec.calls, ['full 7', 'delta from 7', 'delta from 8', 'full 5']);
  assert.deepEqual(state.leader, [null, '10.4.0.1/16', null, '10.4.0.1/16', null]);
  assert.equal(state.applied, 3, 'noop counts as applied without I/O');
});

test('scheduler: an I/O worker restart sends the whole state, and a forced run with nothing new re-reads the kernel', async () => {
  const { s, pool, rec } = setup({ minSyncIntervalMs: 0 });
  s.schedule('change');
  await advance(0);
  pool.answers.push({ ok: true, summary: readySummary(), noop: true, seq: 1, planMs: 0, parseMs: 0 });
  s.resync();
  await advance(0);
  s.ioRestarted();
  await advance(0);
  assert.deepEqual(pool.tasks.map((t) => t.desired?.baseSeq), [null, 1, null]);
  assert.deepEqual(rec.calls, ['full 1', 'resync', 'full 3']);
});

test('scheduler: an I/O worker restart during a run is not lost: the whole state follows that run', async () => {
  const { s, pool, rec } = setup({ minSyncIntervalMs: 0 });
  s.schedule('change');
  await advance(0);
  pool.hold = true;
  s.schedule('change');
  await advance(0);
  s.ioRestarted();
  pool.release();
  await advance(0);
  await advance(0);
  assert.deepEqual(pool.tasks.map((t) => t.desired?.baseSeq), [null, 1, null], 'a third run, with the whole state, without another change');
  assert.equal(rec.calls.at(-1)?.startsWith('full'), true, rec.calls.join(', '));
});

test('scheduler: a node that is not ready or not known yet plans nothing to apply; stop ends the runs', async () => {
  let known = false;
  const { s, pool, rec, state } = setup({ known: () => known });
  s.schedule('change');
  await advance(0);
  assert.equal(pool.tasks.length, 0, 'the own node unknown: no plan');
  assert.equal(state.starts, 1, 'but the run started');
  known = true;
  pool.answers.push({ ok: true, summary: readySummary({ ready: false }), full: '{}', seq: 1, planMs: 0, parseMs: 0 });
  s.schedule('change');
  await advance(0);
  assert.equal(pool.tasks.length, 1);
  assert.deepEqual(rec.calls, [], 'not ready: the dataplane is left as it is');
  await s.stop();
  s.schedule('change');
  await advance(10_000);
  assert.equal(pool.tasks.length, 1, 'stopped');
});
