// bench/watch-lines at a small size: it runs, reports every splitter, and refuses unknown flags.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/watch-lines.js', import.meta.url));
const run = (...args: string[]) => spawnSync(process.execPath, [BENCH, ...args], { encoding: 'utf8', timeout: 60_000 });

test('bench/watch-lines: a 1 MiB line through each splitter; --help; unknown flags refused', () => {
  const r = run('--sizes', '1', '--old-budget', '10', '--json');
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.trim().split('\n').map((l) => JSON.parse(l) as { variant: string; consumed: number; finished: boolean; peakMiB: number });
  assert.deepEqual(rows.map((x) => x.variant), ['new-default-limit', 'new-unbounded', 'old']);
  for (const x of rows) {
    assert.equal(x.consumed, 1024 * 1024, `${x.variant} consumed the whole line`);
    assert.ok(x.finished && Number.isFinite(x.peakMiB));
  }
  const help = run('--help');
  assert.equal(help.status, 0);
  assert.match(help.stdout, /^usage: /);
  const bad = run('--size', '1');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /Unknown option '--size'/);
});
