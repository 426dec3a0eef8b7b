// The check-in schedule (main/agent/checkin.ts): a failed check-in is retried inside the period, so a
// short API outage never lets the node's last-seen reach the readers' window (two periods); the
// retries are bounded, jittered, honour Retry-After, and a long outage falls back to one attempt
// per period. The loop runs on node:test's mock timers against a fake API that fails during
// given outages; the real agent against the API simulator is in test/e2e/checkin.test.ts.
import { mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { CheckInLoop, MAX_CHECK_IN_RETRIES, nextCheckInDelayMs } from '../../main/agent/checkin.js';

const P = 30_000;

test('check-in delay: a period after a success; after failures, jittered doubling capped at P/4, inside the window', () => {
  const d = (failures: number, sinceOkMs: number, random: number, retryAfterMs: number | null = null, periodMs = P) =>
    nextCheckInDelayMs({ periodMs, failures, sinceOkMs, retryAfterMs, random: () => random });
  assert.equal(d(0, 0, 0.5), P, 'the regular period after a success');
  // Nominal 1, 2, 4, 7.5 (P/4), 7.5 s; jitter keeps each in [½, 1] of it.
  assert.deepEqual([1, 2, 3, 4, 5].map((k) => d(k, P, 0)), [500, 1000, 2000, 3750, 3750]);
  assert.deepEqual([1, 2, 3, 4, 5].map((k) => d(k, P, 0.999999).toFixed(0)), ['1000', '2000', '4000', '7500', '7500']);
  assert.equal(d(3, 2 * P - 1500, 0.999), 1500, 'never past the end of the window, where the regular attempt falls');
  assert.equal(d(MAX_CHECK_IN_RETRIES + 1, P + 5000, 0), P - 5000, 'retries used up: straight to the regular attempt');
  assert.equal(d(12, 2 * P + 4000, 0.3), P, 'window over (a long outage): one attempt per period, as Go');
  assert.equal(d(1, P, 0.5, 5000), 5000, 'Retry-After is honoured');
  assert.equal(d(2, 2 * P - 100, 0.5, 3000), 3000, 'even past the end of the window');
  assert.equal(d(12, 3 * P, 0.5, 45_000), 45_000);
  // Short periods (tests use them) keep the shape: base period/16, cap period/4.
  assert.deepEqual([1, 2, 3, 4].map((k) => d(k, 4000, 0.999999, null, 4000).toFixed(0)), ['250', '500', '1000', '1000']);
});

/** A deterministic PRNG (mulberry32). */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Sim {
  attempts: { t: number; ok: boolean }[];
  /** The oldest the published last-seen got, as readers would see it (ms). */
  maxAge: number;
}

/** Runs a CheckInLoop on mock timers for `durationMs` against an API that fails during `outages`. */
async function simulate(o: { periodMs?: number; outages: [number, number][]; durationMs: number; seed: number; retryAfterMs?: number }): Promise<Sim> {
  const periodMs = o.periodMs ?? P;
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 0 });
  try {
    const attempts: Sim['attempts'] = [];
    let published = 0;
    let maxAge = 0;
    const down = (t: number) => o.outages.some(([a, b]) => t >= a && t < b);
    const loop = new CheckInLoop({
      periodMs: () => periodMs,
      now: () => Date.now(),
      random: prng(o.seed),
      attempt: async () => {
        const t = Date.now();
        const ok = !down(t);
        attempts.push({ t, ok });
        if (ok) published = t;
        return { ok, retryAfterMs: ok ? null : o.retryAfterMs ?? null };
      },
    });
    loop.start();
    const step = 100;
    for (let t = 0; t < o.durationMs; t += step) {
      mock.timers.tick(step);
      // Let the attempt's promise settle so that the loop arms its next timer at this time.
      await new Promise((r) => setImmediate(r));
      maxAge = Math.max(maxAge, Date.now() - published);
    }
    loop.stop();
    return { attempts, maxAge };
  } finally {
    mock.timers.reset();
  }
}

test('check-in loop: an outage of up to half a period around a check-in never lets last-seen reach the window (200 random cases)', async (t) => {
  let worst = 0;
  for (let seed = 1; seed <= 200; seed++) {
    const r = prng(seed * 7919);
    // The outage begins anywhere in the first two periods, often just before a check-in.
    const start = Math.floor(r() * 2 * P);
    const len = Math.floor(r() * (P / 2));
    const sim = await simulate({ outages: [[start, start + len]], durationMs: 4 * P, seed });
    worst = Math.max(worst, sim.maxAge);
    // P + the outage + at most one capped delay (P/4): 1.75 periods, a quarter period of margin.
    assert.ok(sim.maxAge <= 1.75 * P + 100, `seed ${seed}: outage ${start}+${len} ms: last-seen reached ${sim.maxAge} ms (window ${2 * P})`);
    // Back to the regular schedule once it succeeded: one attempt per period afterwards.
    const after = sim.attempts.filter((a) => a.t >= start + len);
    const firstOk = after.findIndex((a) => a.ok);
    for (let i = firstOk + 1; i < after.length; i++) assert.equal(after[i].t - after[i - 1].t, P, `seed ${seed}: regular period after recovery`);
  }
  t.diagnostic(`oldest last-seen over 200 outages: ${worst} ms (window ${2 * P} ms)`);
  assert.ok(worst > P, 'the cases did meet failed check-ins');
});

test('check-in loop: the outage that Go does not survive (it retries one period later, at the window) is bridged', async () => {
  // The check-in due at 30 s fails and the API is back at 40 s: Go's next try is at 60 s, when
  // last-seen is exactly 60 s old. Here the retries land within 7.5 s of the recovery.
  const sim = await simulate({ outages: [[29_000, 40_000]], durationMs: 3 * P, seed: 1 });
  const firstOk = sim.attempts.find((a) => a.ok)!;
  assert.ok(firstOk.t >= 40_000 && firstOk.t <= 47_500, `recovered at ${firstOk.t} ms`);
  assert.ok(sim.maxAge < 2 * P - P / 4, `last-seen reached ${sim.maxAge} ms`);
  assert.ok(sim.attempts.filter((a) => !a.ok).length >= 3, 'retried several times');
});

test('check-in loop: a long outage is bounded: at most MAX retries in the window, then one attempt per period; Retry-After honoured', async () => {
  const outage: [number, number] = [29_000, 29_000 + 5 * P];
  const sim = await simulate({ outages: [outage], durationMs: 8 * P, seed: 3 });
  const failed = sim.attempts.filter((a) => !a.ok);
  const inWindow = failed.filter((a) => a.t <= 2 * P);
  assert.ok(inWindow.length <= MAX_CHECK_IN_RETRIES + 1, `${inWindow.length} attempts before the window ran out`);
  const later = failed.filter((a) => a.t > 2 * P);
  for (let i = 1; i < later.length; i++) assert.equal(later[i].t - later[i - 1].t, P, 'one attempt per period once the window ran out');
  // In any one period, never more than MAX retries plus the regular attempt.
  for (const a of sim.attempts) assert.ok(sim.attempts.filter((b) => b.t >= a.t && b.t < a.t + P).length <= MAX_CHECK_IN_RETRIES + 1);
  const firstOk = sim.attempts.find((a) => a.t >= outage[1])!;
  assert.ok(firstOk.ok && firstOk.t - outage[1] <= P, 'back within a period of the recovery');
  // A server that asks for 5 s between tries gets them.
  const slow = await simulate({ outages: [[29_000, 45_000]], durationMs: 3 * P, seed: 4, retryAfterMs: 5000 });
  const tries = slow.attempts.filter((a) => a.t >= 29_000 && a.t <= 46_000);
  for (let i = 1; i < tries.length; i++) assert.ok(tries[i].t - tries[i - 1].t >= 5000, `Retry-After: ${tries.map((a) => a.t)}`);
});
