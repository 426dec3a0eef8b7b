import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Pacer } from '../../main/agent/pacer.js';
import { AGENT_FLAGS, parseDuration } from '../../main/flags.js';

test('pacer: a change after a quiet spell is planned at once, a burst of up to `burst` too', () => {
  const p = new Pacer(100, 3, 0);
  for (let i = 0; i < 3; i++) {
    assert.equal(p.delay(1000 + i), 0);
    p.take(1000 + i);
  }
  // The bucket is empty: the fourth waits for one interval's refill (less what 2 ms refilled).
  assert.equal(p.delay(1003), 98);
});

test('pacer: sustained churn is held to one plan per interval on average', () => {
  const p = new Pacer(100, 3, 0);
  let t = 0;
  let plans = 0;
  // A change every 10 ms for 10 s; each plan starts after its delay and takes 5 ms.
  while (t < 10_000) {
    const d = p.delay(t);
    t += d;
    p.take(t);
    plans++;
    t += 5;
  }
  // 10 s at one per 100 ms, plus the initial burst.
  assert.ok(plans >= 100 && plans <= 103, `plans ${plans}`);
});

test('pacer: changes spaced wider than the interval never wait', () => {
  const p = new Pacer(100, 3, 0);
  for (let t = 0; t < 5_000; t += 120) {
    assert.equal(p.delay(t), 0, `at ${t}`);
    p.take(t);
  }
});

test('pacer: a zero interval never waits', () => {
  const p = new Pacer(0, 1, 0);
  for (let i = 0; i < 10; i++) {
    assert.equal(p.delay(i), 0);
    p.take(i);
  }
});

/** Per change, how long it waits for a token: `rate` changes/s plus one other plan a second (the readiness sweep), each run `runMs` long, one in flight. */
function churnWaits(intervalMs: number, rate: number, runMs: number, seconds: number): number[] {
  const p = new Pacer(intervalMs, 3, 0);
  const arrivals = [...Array.from({ length: seconds * rate }, (_, i) => ({ at: (i * 1000) / rate, churn: true })), ...Array.from({ length: seconds }, (_, i) => ({ at: i * 1000 + 37, churn: false }))].sort((a, b) => a.at - b.at);
  const waits: number[] = [];
  let free = 0; // when the run in flight ends
  for (const a of arrivals) {
    const ready = Math.max(a.at, free);
    const start = ready + p.delay(ready);
    p.take(start);
    free = start + runMs;
    if (a.churn) waits.push(start - a.at);
  }
  return waits;
}

test('pacer: at the default --min-sync-interval, 10 changes/s plus a sweep a second never wait for a token', () => {
  const def = AGENT_FLAGS.find((f) => f.name === 'min-sync-interval')!.default as string;
  const waits = churnWaits(parseDuration(def)!, 10, 25, 60);
  assert.equal(Math.max(...waits), 0);
  // The old 100 ms default is the churn rate itself: the bucket drains and changes queue behind it.
  const old = churnWaits(100, 10, 25, 60);
  assert.ok(Math.max(...old) >= 50, `max wait at 100 ms ${Math.max(...old)}`);
});
