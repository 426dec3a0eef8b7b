// The pool's tasks (loadtest/fleet/planner-worker.ts locationTasks): every node once, a location's nodes in
// one task unless it is larger than a task may be (`most`), tasks no larger than that, and whole
// locations added until a task holds `chunk` nodes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { locationTasks } from '../../loadtest/fleet/planner-worker.js';

test('locationTasks: every node once, whole locations per task, a location cut only when larger than a task may be', () => {
  fc.assert(fc.property(
    fc.array(fc.constantFrom('a', 'b', 'c', 'd', 'e', ''), { maxLength: 200 }), fc.integer({ min: 1, max: 30 }), fc.integer({ min: 0, max: 40 }),
    (locations, chunk, extra) => {
      const most = chunk + extra;
      const tasks = locationTasks(locations, chunk, most);
      assert.deepEqual(tasks.flat().sort((x, y) => x - y), locations.map((_, i) => i));
      for (const t of tasks) assert.ok(t.length >= 1 && t.length <= most, `task of ${t.length} nodes (most ${most})`);
      const size = new Map<string, number>();
      for (const l of locations) size.set(l, (size.get(l) ?? 0) + 1);
      for (const [l, n] of size) {
        const holding = tasks.filter((t) => t.some((i) => locations[i] === l)).length;
        if (n <= most) assert.equal(holding, 1, `location ${l} (${n} nodes ≤ ${most}) in ${holding} tasks`);
        else assert.ok(holding <= Math.ceil(n / most) + 1, `location ${l} (${n} nodes) in ${holding} tasks`);
      }
    },
  ));
});

test('locationTasks: contiguous blocks of 60 nodes in 50 locations, chunk 94: two locations per task, none split', () => {
  const locations = Array.from({ length: 3000 }, (_, i) => `loc-${Math.floor(i / 60)}`);
  const tasks = locationTasks(locations, 94, 750);
  assert.equal(tasks.length, 25);
  for (const t of tasks) assert.equal(new Set(t.map((i) => locations[i])).size, 2);
});
