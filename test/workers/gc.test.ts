// workers/gc.ts: the collection after a burst gives the burst's pages back (compacting: sparse
// survivors do not pin them), and a scheduled one never keeps a thread alive. Each case runs in
// its own process: the flags it sets are process-wide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { IdleCollector } from '../../workers/gc.js';

const GC = new URL('../../workers/gc.js', import.meta.url).href;
const MB = 1 << 20;

function run(script: string): { status: number | null; stdout: string; stderr: string; ms: number } {
  const t0 = performance.now();
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr, ms: performance.now() - t0 };
}

test('collectGarbage: after a burst whose survivors are sparse, the old generation shrinks to about the survivors', () => {
  const r = run(`import { getHeapSpaceStatistics } from 'node:v8';
import { collectGarbage } from ${JSON.stringify(GC)};
const old = () => getHeapSpaceStatistics().find((s) => s.space_name === 'old_space').physical_space_size / 1048576;
let burst = []; for (let i = 0; i < 6e5; i++) burst.push({ a: i, b: 'x' + i });
collectGarbage();
const peak = old();
const kept = burst.filter((_, i) => i % 8 === 0); burst = null;
collectGarbage();
process.stdout.write(JSON.stringify({ peak, after: old(), kept: kept.length }));`);
  assert.equal(r.status, 0, r.stderr);
  const { peak, after } = JSON.parse(r.stdout) as { peak: number; after: number };
  assert.ok(peak > 30, `the burst filled ${peak.toFixed(1)} MiB`);
  assert.ok(after < peak / 3, `old generation ${peak.toFixed(1)} → ${after.toFixed(1)} MiB`);
});

test('collectGarbageSoon: calls fold into one collection, and a pending one does not keep the process alive', () => {
  const r = run(`import { collectGarbageSoon } from ${JSON.stringify(GC)};
import { PerformanceObserver } from 'node:perf_hooks';
let majors = 0;
new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail?.kind === 4 || e.kind === 4) majors++; }).observe({ entryTypes: ['gc'] });
for (let i = 0; i < 5; i++) collectGarbageSoon();
setTimeout(() => { process.stdout.write(String(majors)); collectGarbageSoon(60_000); }, 200);`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '1', 'one major collection for five calls');
  assert.ok(r.ms < 30_000, `the process ended at once (${Math.round(r.ms)} ms), not after the pending collection`);
});

test('collectGarbage: the young generation a burst grew is given back once the thread has been quiet (settling collection)', () => {
  // V8 itself shrinks it only in a collection after ~5 s of low allocation (or its memory
  // reducer's, 8 s or more later): read at SETTLE_MS + 1 s, only the settling collection did it.
  const r = run(`import { collectGarbage, newSpaceBytes, SETTLE_MS } from ${JSON.stringify(GC)};
let burst = []; for (let i = 0; i < 3e5; i++) burst.push({ a: i, b: 'x' + i, c: [i] });
burst = null;
collectGarbage();
const after = newSpaceBytes();
setTimeout(() => process.stdout.write(JSON.stringify({ after, settled: newSpaceBytes() })), SETTLE_MS + 1000);`);
  assert.equal(r.status, 0, r.stderr);
  const { after, settled } = JSON.parse(r.stdout) as { after: number; settled: number };
  assert.ok(after > 2 * MB, `the burst grew the young generation (${(after / MB).toFixed(1)} MiB after the burst's collection)`);
  assert.ok(settled <= 1 * MB, `young generation ${(after / MB).toFixed(1)} → ${(settled / MB).toFixed(1)} MiB after the quiet`);
});

// IdleCollector's timing, on a fake clock: a unit test of the logic above the collection.
class FakeClock {
  now = 0;
  /** The fake heap in use, bytes. */
  heap = 0;
  private next = 1;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  readonly timersApi = {
    now: () => this.now,
    setTimeout: (fn: () => void, ms: number) => {
      const id = this.next++;
      this.timers.set(id, { at: this.now + ms, fn });
      return id;
    },
    clearTimeout: (h: unknown) => void this.timers.delete(h as number),
    heapUsed: () => this.heap,
  };

  /** Moves the clock to `t`, running the timers due on the way, in order. */
  advance(t: number): void {
    for (;;) {
      const due = [...this.timers].filter(([, x]) => x.at <= t).sort((a, b) => a[1].at - b[1].at)[0];
      if (!due) break;
      this.timers.delete(due[0]);
      this.now = due[1].at;
      due[1].fn();
    }
    this.now = t;
  }
}

const OPTS = { idleMs: 500, minIntervalMs: 10_000, maxWaitMs: 60_000, growthBytes: 16 * MB };

function collector(): { c: IdleCollector; clock: FakeClock; at: number[] } {
  const clock = new FakeClock();
  const at: number[] = [];
  const c = new IdleCollector(() => at.push(clock.now), OPTS, clock.timersApi);
  return { c, clock, at };
}

/** A plan every `everyMs` from `from` to `to` (ms), each a full plan asking for a collection. */
function plans(x: ReturnType<typeof collector>, from: number, to: number, everyMs: number): void {
  for (let t = from; t <= to; t += everyMs) {
    x.clock.advance(t);
    x.c.busy();
    x.c.request();
  }
}

test('IdleCollector: a burst of full plans is collected once, after the planner has been idle', () => {
  const x = collector();
  x.clock.advance(20_000); // long after any earlier collection
  plans(x, 20_000, 25_000, 200);
  x.clock.advance(25_499);
  assert.deepEqual(x.at, [], 'nothing while plans keep coming, nor before the idle time has passed');
  x.clock.advance(40_000);
  assert.deepEqual(x.at, [25_500], 'one collection, idleMs after the last plan');
});

test('IdleCollector: plans spaced wider than the idle time are collected at most once per interval, and the last one always', () => {
  const x = collector();
  x.clock.advance(20_000);
  plans(x, 20_000, 50_000, 1_000); // 31 full plans, one a second
  x.clock.advance(100_000);
  assert.ok(x.at.length >= 3 && x.at.length <= 4, `collections at ${x.at.join(', ')}`);
  for (let i = 1; i < x.at.length; i++) assert.ok(x.at[i] - x.at[i - 1] >= OPTS.minIntervalMs, `collections at ${x.at.join(', ')}`);
  assert.ok(x.at.at(-1)! >= 50_000, `the burst's last plan is collected after it (${x.at.join(', ')})`);
});

test('IdleCollector: an urgent request (first plan, after a snapshot) runs at once, whatever the interval, and does not count in it', () => {
  const x = collector();
  x.clock.advance(1_000);
  x.c.request(true); // the first plan
  x.clock.advance(1_000);
  assert.deepEqual(x.at, [1_000]);
  x.c.request(); // the full re-plan right after it: once idle, not 10 s after the urgent one
  x.clock.advance(1_499);
  assert.deepEqual(x.at, [1_000]);
  x.clock.advance(1_500);
  assert.deepEqual(x.at, [1_000, 1_500]);
  x.clock.advance(2_000);
  x.c.request();
  x.clock.advance(3_000);
  x.c.request(true);
  x.clock.advance(3_000);
  assert.deepEqual(x.at, [1_000, 1_500, 3_000], 'the urgent request did not wait for the minimum interval');
  x.clock.advance(4_000);
  x.c.request();
  x.clock.advance(11_499);
  assert.deepEqual(x.at, [1_000, 1_500, 3_000], 'a plain request waits 10 s after the last plain collection');
  x.clock.advance(11_500);
  assert.deepEqual(x.at, [1_000, 1_500, 3_000, 11_500]);
});

test('IdleCollector: endless churn still collects, once per maxWaitMs', () => {
  const x = collector();
  x.clock.advance(20_000);
  plans(x, 20_000, 200_000, 100);
  assert.deepEqual(x.at, [80_000, 140_000, 200_000]);
});

test('IdleCollector: with no request, tasks never collect', () => {
  const x = collector();
  for (let t = 0; t < 10_000; t += 100) {
    x.clock.advance(t);
    x.c.busy();
  }
  x.clock.advance(100_000);
  assert.deepEqual(x.at, []);
});

test('IdleCollector on real timers: a pending collection does not keep the process alive, and one runs after a burst', () => {
  const r = run(`import { IdleCollector, collectGarbage } from ${JSON.stringify(GC)};
let n = 0;
const c = new IdleCollector(() => { n++; collectGarbage(); }, { idleMs: 50, minIntervalMs: 5_000, maxWaitMs: 10_000, growthBytes: 1e12 });
for (let i = 0; i < 5; i++) c.request();
setTimeout(() => { process.stdout.write(String(n)); c.request(); c.request(); }, 300);`);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, '1', 'one collection for five requests');
  assert.ok(r.ms < 4_000, `the process ended at once (${Math.round(r.ms)} ms), not after the pending collection`);
});

test('IdleCollector: a burst whose heap grows by growthBytes since the last collection is collected at once, mid-burst', () => {
  const clock = new FakeClock();
  const at: number[] = [];
  // A collection brings the heap in use back to its live 30 MiB.
  const c = new IdleCollector(() => { at.push(clock.now); clock.heap = 30 * MB; }, OPTS, clock.timersApi);
  clock.heap = 60 * MB;
  c.request(true); // the first plan
  clock.advance(1_000);
  assert.deepEqual(at, [0]);
  // A burst of full plans every 200 ms, each leaving 1 MiB more in use: never idle for 500 ms.
  for (let t = 2_000; t <= 40_000; t += 200) {
    clock.advance(t);
    clock.heap += MB;
    c.busy();
    c.request();
  }
  // 16 MiB of growth every 16 plans (3.2 s): collections mid-burst, the heap never 16 MiB above its floor.
  assert.ok(at.length >= 11 && at.length <= 13, `collections at ${at.join(', ')}`);
  assert.ok(clock.heap <= 46 * MB, `heap ${clock.heap / MB} MiB`);
  assert.ok(at.every((t, i) => i === 0 || t < 40_000), 'all during the burst');
});
