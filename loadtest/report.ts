// The load test's HTML report: one self-contained page with inline SVG plots (bench/svg.ts).
import { barChart, esc, histogram, lineChart, type Series } from '../bench/svg.js';
import type { Results } from './types.js';

/** Latency bins on a log scale (1 ms … 30 s), so that a long tail stays visible. */
function logBins(xs: readonly number[]): { lo: number; hi: number; count: number }[] {
  const edges: number[] = [];
  for (let e = 1; e <= 32_768; e *= Math.SQRT2) edges.push(Math.round(e * 10) / 10);
  const bins = edges.slice(0, -1).map((lo, i) => ({ lo, hi: edges[i + 1], count: 0 }));
  for (const x of xs) {
    const b = bins.find((bb) => x < bb.hi) ?? bins[bins.length - 1];
    b.count++;
  }
  // Trim empty bins at both ends.
  let a = 0;
  let z = bins.length;
  while (a < z && bins[a].count === 0) a++;
  while (z > a && bins[z - 1].count === 0) z--;
  return bins.slice(Math.max(0, a - 1), Math.min(bins.length, z + 1));
}

const f1 = (x: number | null | undefined) => (x === null || x === undefined ? 'n/a' : x.toFixed(1));

export function renderReport(r: Results): string {
  const o = r.options;
  const parts: string[] = [];
  const target = (label: string, value: string, goal: string, ok: boolean | null) =>
    `<tr><td>${esc(label)}</td><td>${esc(value)}</td><td>${esc(goal)}</td><td class="${ok === null ? '' : ok ? 'ok' : 'bad'}">${ok === null ? '—' : ok ? 'met' : 'missed'}</td></tr>`;
  const churn = r.phases.find((p) => p.scenario === 'churn');
  const soak = r.phases.find((p) => p.scenario === 'soak');
  const rssGrowth = soak ? ((soak.agent.rssEndMB - soak.agent.rssStartMB) / soak.agent.rssStartMB) * 100 : null;
  const fleetTotal = r.fleetTiming.pool ? (r.fleetTiming.pool.planMs + r.fleetTiming.pool.verifyMs) / 1000 : null;
  const kilo = r.heartbeatModes.find((m) => m.mode === 'kilo');
  const adaptive = r.heartbeatModes.find((m) => m.mode === 'adaptive');
  const hbRatio = kilo && adaptive && adaptive.writesPerSecond > 0 ? kilo.writesPerSecond / adaptive.writesPerSecond : null;
  parts.push(`<h1>kg load test: ${o.nodes} nodes, ${o.locations} locations, ${o.peers} Peers, ${o.agents} real agent(s)</h1>
<p>${esc(r.startedAt)} · ${esc(o.granularity)} granularity · heartbeat ${esc(o.heartbeat)} · scenarios ${esc(o.scenarios.join(', '))} · ${o.durationS} s each · ${r.machine.cpus} CPUs (load ${r.machine.loadAvg.map((x) => x.toFixed(1)).join(' ')} at start; the machine is shared, numbers are noisy) ·
<b class="${r.ok ? 'ok' : 'bad'}">${r.ok ? 'all correctness checks passed' : 'correctness checks FAILED'}</b></p>
<h2>Targets</h2><table><tr><th>what</th><th>measured</th><th>target</th><th></th></tr>
${target('churn: event → programmed p99', churn ? `${f1(churn.latency.p99)} ms (n=${churn.latency.n}, ${churn.changes} changes at ${o.rate}/s)` : 'not run', '≤ 200 ms', churn && churn.latency.p99 !== null ? churn.latency.p99 <= 200 : null)}
${target('agent RSS growth over the soak', rssGrowth === null ? 'no soak' : `${rssGrowth.toFixed(1)} % over ${f1(soak!.seconds)} s (${f1(soak!.agent.rssStartMB)} → ${f1(soak!.agent.rssEndMB)} MB)`, '< 5 % over 10 min', rssGrowth === null ? null : rssGrowth < 5)}
${target('fleet plan + verify (pool)', fleetTotal === null ? 'n/a' : `${fleetTotal.toFixed(1)} s (${r.fleetTiming.pool!.threads} threads)`, '≤ 20 s', fleetTotal === null ? null : fleetTotal <= 20)}
${target('pool vs one thread (plan + verify)', r.fleetTiming.speedup === null ? 'n/a' : `${r.fleetTiming.speedup.toFixed(2)}× (1 thread ${f1((r.fleetTiming.threads1!.planMs + r.fleetTiming.threads1!.verifyMs) / 1000)} s)`, '≥ 1.7× on 2 cores', r.fleetTiming.speedup === null ? null : r.fleetTiming.speedup >= 1.7)}
${target('heartbeat writes, kilo ÷ adaptive', hbRatio === null ? 'n/a' : `${hbRatio.toFixed(1)}× (${f1(kilo!.writesPerSecond)} vs ${f1(adaptive!.writesPerSecond)} writes/s)`, '≥ 10×', hbRatio === null ? null : hbRatio >= 10)}
</table>`);

  // Latency histograms per scenario.
  const scen = [...new Set(r.latencies.map((l) => l.scenario))];
  const lat = scen.map((s) => {
    const xs = r.latencies.filter((l) => l.scenario === s).map((l) => l.ms);
    const ph = r.phases.find((p) => p.scenario === s);
    const marks = ph && ph.latency.p50 !== null ? [{ label: 'p50', x: ph.latency.p50 }, { label: 'p99', x: ph.latency.p99! }] : [];
    return histogram({ title: `${s}: event → programmed (${xs.length} samples)`, xLabel: 'ms (log bins)', bins: logBins(xs), marks, width: 560, height: 300 });
  });
  parts.push(`<h2>Event → programmed</h2><p>From the change's commit in the API simulator to the kernel change in the agent's namespace (<code>ip monitor route</code>; WireGuard peers by polling the device every 20 ms).</p><div class="row">${lat.join('')}</div>`);

  const agents = [...new Set(r.samples.map((s) => s.agent))];
  const cpu: Series[] = agents.map((a) => ({ name: `${a} CPU %`, points: r.samples.filter((s) => s.agent === a).map((s) => [s.t, s.cpuPercent] as [number, number]) }));
  const rss: Series[] = agents.map((a) => ({ name: `${a} RSS MB`, points: r.samples.filter((s) => s.agent === a).map((s) => [s.t, s.rssMB] as [number, number]) }));
  const rates: Series[] = [
    { name: 'watch events/s (agent)', points: r.rates.map((x) => [x.t, x.events]) },
    { name: 'plans/s', points: r.rates.map((x) => [x.t, x.plans]) },
    { name: 'kernel writes/s', points: r.rates.map((x) => [x.t, x.kernelWrites]) },
    { name: 'API writes/s', points: r.rates.map((x) => [x.t, x.apiWrites]) },
  ];
  parts.push(`<h2>Agent over time</h2><div class="row">${lineChart({ title: 'Agent CPU (% of one core)', xLabel: 'seconds', yLabel: '%', series: cpu, width: 560, height: 300 })}${lineChart({ title: 'Agent RSS', xLabel: 'seconds', yLabel: 'MB', series: rss, width: 560, height: 300 })}</div>
<div class="row">${lineChart({ title: 'Event rates', xLabel: 'seconds', yLabel: 'per second', series: rates, width: 1120, height: 320 })}</div>`);

  if (r.heartbeatModes.length) {
    const bars = r.heartbeatModes.flatMap((m) => [{ label: `${m.mode} (${m.periodSeconds} s)`, value: m.writesPerSecond, group: 'measured writes/s' }]);
    const fan = r.heartbeatModes.map((m) => ({ label: m.mode, value: m.fanOutAt5000.watchEventsPerSecond, group: 'watch events/s at 5,000 watchers' }));
    parts.push(`<h2>Heartbeat modes</h2><div class="row">${barChart({ title: `Node writes/s from heartbeats (${o.nodes} nodes)`, yLabel: 'writes/s', bars, width: 560, height: 300 })}${barChart({ title: 'Watch fan-out if every node watches', yLabel: 'events/s', bars: fan, width: 560, height: 300 })}</div>
<table><tr><th>mode</th><th>period</th><th>writes/s</th><th>watch events/s sent</th><th>watch MB/s sent</th><th>watchers</th><th>events/s per watcher</th><th>fan-out at 5,000 watchers</th></tr>
${r.heartbeatModes.map((m) => `<tr><td>${m.mode}</td><td>${m.periodSeconds} s</td><td>${f1(m.writesPerSecond)}</td><td>${f1(m.watchEventsPerSecond)}</td><td>${(m.watchBytesPerSecond / 1e6).toFixed(2)}</td><td>${m.watchers}</td><td>${f1(m.perWatcherEventsPerSecond)}</td><td>${Math.round(m.fanOutAt5000.watchEventsPerSecond).toLocaleString('en')} events/s, ${(m.fanOutAt5000.watchBytesPerSecond / 1e6).toFixed(0)} MB/s</td></tr>`).join('\n')}</table>`);
  }
  if (r.fleetTiming.pool) {
    const bars = [
      ...(r.fleetTiming.threads1 ? [{ label: 'plan, 1 thread', value: r.fleetTiming.threads1.planMs / 1000, group: '1 thread' }, { label: 'verify, 1 thread', value: r.fleetTiming.threads1.verifyMs / 1000, group: '1 thread' }] : []),
      { label: `plan, pool of ${r.fleetTiming.pool.threads}`, value: r.fleetTiming.pool.planMs / 1000, group: 'pool' },
      { label: `verify, pool of ${r.fleetTiming.pool.threads}`, value: r.fleetTiming.pool.verifyMs / 1000, group: 'pool' },
    ];
    parts.push(`<h2>Fleet plan and check</h2>${barChart({ title: `Plan every node and verify the mesh (${o.nodes} nodes)`, yLabel: 'seconds', bars, width: 560, height: 300 })}`);
  }
  parts.push(`<h2>Scenarios</h2><table><tr><th>scenario</th><th>heartbeat</th><th>s</th><th>changes</th><th>p50/p95/p99 ms</th><th>missed</th><th>CPU %</th><th>RSS MB</th><th>events → plans</th><th>kernel ops</th><th>API req/agent</th><th>watch KB/agent</th><th>API writes/s</th><th>fleet check</th></tr>
${r.phases.map((p) => `<tr><td>${esc(p.scenario)}</td><td>${p.heartbeat}</td><td>${f1(p.seconds)}</td><td>${p.changes}</td><td>${f1(p.latency.p50)} / ${f1(p.latency.p95)} / ${f1(p.latency.p99)}</td><td>${p.latency.missed}</td><td>${f1(p.agent.cpuPercent)}</td><td>${f1(p.agent.rssStartMB)} → ${f1(p.agent.rssEndMB)}</td><td>${Object.values(p.agent.eventsReceived).reduce((a, b) => a + b, 0)} → ${p.agent.plans}${p.agent.coalescing ? ` (${p.agent.coalescing.toFixed(1)}:1)` : ''}</td><td>${esc(Object.entries(p.agent.kernelOps).map(([k, v]) => `${k} ${v}`).join(', ') || '0')}</td><td>${f1(p.api.requestsPerAgent)}</td><td>${f1(p.agent.watchBytes / 1024)}</td><td>${f1(p.api.writesPerSecond)}</td><td class="${p.fleet ? (p.fleet.ok ? 'ok' : 'bad') : ''}">${p.fleet ? `${p.fleet.ok ? 'ok' : 'FAILED'} (${p.fleet.report.reached}/${p.fleet.report.paths})` : '—'}</td></tr>`).join('\n')}</table>
<h2>Checks</h2><ul>${r.checks.map((c) => `<li class="${c.ok ? 'ok' : 'bad'}">${c.ok ? '✔' : '✘'} ${esc(c.name)}: ${esc(c.detail)}</li>`).join('')}</ul>`);
  return `<!doctype html><html><head><meta charset="utf-8"><title>kg load test</title><style>
body{font-family:sans-serif;margin:2em;max-width:1200px;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}
.ok{color:#176317}.bad{color:#b00020;font-weight:bold}.row{display:flex;flex-wrap:wrap;gap:8px}svg{background:#fff}code{background:#f3f3f3}
</style></head><body>${parts.join('\n')}</body></html>\n`;
}
