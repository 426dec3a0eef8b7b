// `kg bench --sweep 100,1000,…`: one full run per size, then scaling curves (SVG, bench/svg.ts)
// next to a table, written to --out-dir as index.html, report.md, *.svg and results.json.
import { spawn } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { lineChart, type Series } from '../svg.js';
import type { BenchConfig } from './options.js';
import { machine, type BenchResult } from './index.js';
import { mdTable, textTable, ms, num } from './report.js';

const STEPS = ['cluster', 'dataplane size', 'memory', 'plan time', 'kernel', 'fleet'];

/** A progress bar on stderr, only when it is a terminal. */
function progressBar(total: number): { step: (label: string) => void; done: () => void } {
  const tty = process.stderr.isTTY;
  let n = 0;
  return {
    step(label) {
      if (!tty) return;
      const w = 30, f = Math.round((Math.min(n, total) / total) * w);
      process.stderr.write(`\r\x1b[K[${'#'.repeat(f)}${'.'.repeat(w - f)}] ${String(Math.round((n / total) * 100)).padStart(3)}% ${label}`);
      n++;
    },
    done() {
      if (tty) process.stderr.write('\r\x1b[K');
    },
  };
}

const MiB = 2 ** 20;

export function sweepTable(rs: BenchResult[]): { head: string[]; rows: string[][] } {
  const head = ['nodes', 'WG peers (leader / non-leader)', 'routes (leader)', 'iptables (leader)', 'full plan p50', 'incremental p50', 'cold apply', 'one-change apply', 'no-op resync',
    'records MiB', 'replica MiB', 'pool RSS MiB', 'I/O worker RSS MiB', 'watch MiB/s kilo / adaptive', 'fleet plans/s (1 thread / pool)', 'run s'];
  const rows = rs.map((r) => {
    const k = r.kernel.ran ? r.kernel : null;
    const w = (mode: string) => (r.apiServer.modes.find((m) => m.mode === mode)?.watchBytesPerSecond ?? 0) / MiB;
    return [
      num(r.cluster.nodes), `${num(r.dataplane.leader.wireguardPeers)} / ${r.dataplane.nonLeader ? num(r.dataplane.nonLeader.wireguardPeers) : '–'}`,
      num(r.dataplane.leader.routes), num(r.dataplane.leader.iptablesRules), ms(r.compute.plannerPlan.p50Ms), ms(r.compute.incrementalPlan.p50Ms),
      k ? ms(k.coldApply.medianMs) : r.kernel.ran ? '' : /root/.test(r.kernel.reason) ? 'needs root' : /disabled/.test(r.kernel.reason) ? 'off' : 'not run', k ? ms(k.oneChangeApply.medianMs) : '–', k ? ms(k.noopResync.medianMs) : '–',
      (r.memory.slimRecordsHeapBytes / MiB).toFixed(1), (r.memory.replicaHeapBytes / MiB).toFixed(1), (r.memory.poolRssBytes / MiB).toFixed(1),
      k ? (k.ioWorkerRssBytes / MiB).toFixed(1) : '–', `${w('kilo').toFixed(1)} / ${w('adaptive').toFixed(1)}`,
      r.fleet.ran ? `${Math.round(r.fleet.oneThreadPlansPerSecond)} / ${Math.round(r.fleet.poolPlansPerSecond)}` : r.fleet.estimatedSeconds ? `skipped (~${r.fleet.estimatedSeconds} s)` : 'off',
      r.durationSeconds.toFixed(1),
    ];
  });
  return { head, rows };
}

export function sweepCharts(rs: BenchResult[]): Record<string, string> {
  const s = (name: string, f: (r: BenchResult) => number | null): Series => ({
    name, points: rs.flatMap((r) => { const y = f(r); return y === null ? [] : [[r.cluster.nodes, y] as [number, number]]; }),
  });
  const charts: Record<string, string> = {
    'plan-time.svg': lineChart({
      title: 'Plan compute time (median)', xLabel: 'nodes', yLabel: 'ms', logX: true, logY: true,
      series: [
        s('full plan (parse + plan)', (r) => r.compute.plannerPlan.p50Ms), s('agent\'s first plan (+ whole desired state)', (r) => r.compute.fullPlan.p50Ms),
        s('incremental (one node changed)', (r) => r.compute.incrementalPlan.p50Ms),
      ],
    }),
    'dataplane.svg': lineChart({
      title: 'Dataplane size per node', xLabel: 'nodes', yLabel: 'objects', logX: true, logY: true,
      series: [
        s('leader: WireGuard peers', (r) => r.dataplane.leader.wireguardPeers), s('leader: routes', (r) => r.dataplane.leader.routes),
        s('leader: iptables rules', (r) => r.dataplane.leader.iptablesRules), s('non-leader: WireGuard peers', (r) => r.dataplane.nonLeader?.wireguardPeers ?? null),
        s('non-leader: routes', (r) => r.dataplane.nonLeader?.routes ?? null),
      ],
    }),
    'memory.svg': lineChart({
      title: 'Agent memory', xLabel: 'nodes', yLabel: 'MiB', logX: true,
      series: [
        s('slim Node records (heap)', (r) => r.memory.slimRecordsHeapBytes / MiB), s('planner replica (heap)', (r) => r.memory.replicaHeapBytes / MiB),
        s('PlanPool thread (RSS)', (r) => r.memory.poolRssBytes / MiB), s('I/O worker (RSS)', (r) => (r.kernel.ran ? r.kernel.ioWorkerRssBytes / MiB : null)),
      ],
    }),
    'apiserver.svg': lineChart({
      title: 'API-server watch fan-out of heartbeats', xLabel: 'nodes', yLabel: 'MiB/s', logX: true, logY: true,
      series: ['kilo', 'adaptive'].map((mode) => s(`${mode} heartbeat`, (r) => (r.apiServer.modes.find((m) => m.mode === mode)?.watchBytesPerSecond ?? 0) / MiB)),
    }),
  };
  if (rs.some((r) => r.kernel.ran)) {
    charts['kernel.svg'] = lineChart({
      title: 'Kernel write cost (median)', xLabel: 'nodes', yLabel: 'ms', logX: true, logY: true,
      series: [
        s('cold apply', (r) => (r.kernel.ran ? r.kernel.coldApply.medianMs : null)), s('one-change apply', (r) => (r.kernel.ran ? r.kernel.oneChangeApply.medianMs : null)),
        s('no-op resync', (r) => (r.kernel.ran ? r.kernel.noopResync.medianMs : null)),
      ],
    });
  }
  return charts;
}

export const STEP_MARK = 'KG_BENCH_STEP ';

/**
 * One size in a fresh process: heap, JIT and module state (the in-thread replica, the worker's
 * delta trackers) of one size must not leak into the next size's memory and time figures.
 */
function runSize(cfg: BenchConfig, n: number, onStep: (step: string) => void): Promise<BenchResult> {
  const args = ['bench', '--nodes', String(n), '--locations', String(Math.min(cfg.locations, n)), '--peers', String(cfg.peers),
    '--granularity', cfg.granularity, '--encapsulate', cfg.encapsulate, '--heartbeat', cfg.heartbeat, '--heartbeat-budget', String(cfg.heartbeatBudget),
    '--topology-label', cfg.topologyLabel, `--kernel=${cfg.kernel}`, '--fleet', cfg.fleet, '--time-budget', String(cfg.timeBudgetMs), '-o', 'json'];
  const cli = fileURLToPath(new URL('../../main/cli.js', import.meta.url));
  return new Promise((resolvePromise, reject) => {
    const child = spawn(process.execPath, [cli, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, KG_BENCH_PROGRESS: '1' } });
    // Ctrl-C reaches the child too (same process group); it deletes its netns and exits, then so do we.
    const forward = (sig: NodeJS.Signals) => child.kill(sig);
    process.on('SIGINT', forward);
    process.on('SIGTERM', forward);
    let out = '', err = '', partial = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => {
      const lines = (partial + b.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (l.startsWith(STEP_MARK)) onStep(l.slice(STEP_MARK.length));
        else err += l + '\n';
      }
    });
    child.on('close', (code, signal) => {
      process.off('SIGINT', forward);
      process.off('SIGTERM', forward);
      if (signal || code === 130 || code === 143) {
        process.exit(code ?? 130);
      }
      if (code !== 0) return reject(new Error(`sweep at ${n} nodes failed: ${(err + partial).trim().split('\n').slice(-2).join(' | ')}`));
      try {
        resolvePromise(JSON.parse(out) as BenchResult);
      } catch (e) {
        reject(new Error(`sweep at ${n} nodes: unreadable result: ${(e as Error).message}`));
      }
    });
  });
}

export async function runSweep(cfg: BenchConfig): Promise<number> {
  const bar = progressBar(cfg.sweep.length * STEPS.length);
  const results: BenchResult[] = [];
  for (const n of cfg.sweep) results.push(await runSize(cfg, n, (step) => bar.step(`${num(n)} nodes: ${step}`)));
  bar.done();
  const dir = resolve(cfg.outDir);
  mkdirSync(dir, { recursive: true });
  const charts = sweepCharts(results);
  for (const [f, svg] of Object.entries(charts)) writeFileSync(join(dir, f), svg + '\n');
  const { head, rows } = sweepTable(results);
  const m = machine();
  const c = cfg;
  const title = `kg bench sweep: ${c.sweep.join(', ')} nodes, ≤ ${c.locations} locations, ${c.peers} peers, granularity ${c.granularity}, encapsulate ${c.encapsulate}`;
  const where = `Measured ${new Date().toISOString()} on ${m.cpus} × ${m.cpuModel}, ${m.memoryGiB} GiB, node ${m.node}.`;
  const md = `# ${title}\n\n${where}\n\n${mdTable(head, rows)}\n\n${Object.keys(charts).map((f) => `![${f}](${f})`).join('\n')}\n`;
  writeFileSync(join(dir, 'report.md'), md);
  const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;');
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title>
<style>body{font-family:sans-serif;margin:2em}table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}td:first-child,th:first-child{text-align:left}</style></head>
<body><h1>${esc(title)}</h1><p>${esc(where)}</p>
<table><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr>
${rows.map((r) => `<tr>${r.map((x) => `<td>${esc(x)}</td>`).join('')}</tr>`).join('\n')}</table>
${Object.values(charts).map((svg) => `<div>${svg}</div>`).join('\n')}
</body></html>\n`;
  writeFileSync(join(dir, 'index.html'), html);
  writeFileSync(join(dir, 'results.json'), JSON.stringify(results, null, 2) + '\n');
  if (cfg.output === 'json') process.stdout.write(JSON.stringify({ outDir: dir, results }, null, 2) + '\n');
  else process.stdout.write(`${title}\n\n${cfg.output === 'markdown' ? mdTable(head, rows) : textTable(head, rows)}\n\n`);
  process.stderr.write(`kg bench: sweep report written to ${join(dir, 'index.html')} (table + charts), ${join(dir, 'report.md')}, ${Object.keys(charts).join(', ')} and results.json\n`);
  return 0;
}
