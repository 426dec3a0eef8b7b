// workers/gc.ts: the collection after a burst gives the burst's pages back (compacting: sparse
// survivors do not pin them), and a scheduled one never keeps a thread alive. Each case runs in
// its own process: the flags it sets are process-wide.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

const GC = new URL('../../workers/gc.js', import.meta.url).href;

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
