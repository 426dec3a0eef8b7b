// The main thread's heap trimmer (main/agent/memory.ts): a compacting collection only once the heap
// grew the threshold over what the last one left, and at most once per interval.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HeapTrimmer } from '../../main/agent/memory.js';

const MiB = 1 << 20;

test('heap trimmer: collects once the heap grew 4 MiB over the last floor, at most once a minute', () => {
  let used = 13 * MiB;
  let now = 0;
  const collected: number[] = [];
  const t = new HeapTrimmer({ heapUsed: () => used, now: () => now, collect: () => { collected.push(now); used = 13 * MiB; } });
  assert.equal(t.check(), false, 'the first check only takes the floor');
  used = 16.9 * MiB;
  now = 1_000;
  assert.equal(t.check(), false, 'grown less than 4 MiB');
  used = 17.5 * MiB;
  now = 2_000;
  assert.equal(t.check(), true, 'grown 4.5 MiB: collected');
  used = 22 * MiB;
  now = 30_000;
  assert.equal(t.check(), false, 'within a minute of the last collection');
  now = 62_000;
  assert.equal(t.check(), true, 'a minute later');
  assert.deepEqual(collected, [2_000, 62_000]);
  // A floor that V8's own collection lowered counts from there.
  used = 10 * MiB;
  now = 130_000;
  assert.equal(t.check(), false);
  used = 14.2 * MiB;
  now = 131_000;
  assert.equal(t.check(), true, '4.2 MiB over the lower floor');
});
