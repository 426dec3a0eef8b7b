// A measured phase: the agents' counters, the simulator's counters, CPU and RSS before and after
// a scenario's body, then the checks every phase makes (kernel equals plan, fleet check, every
// change programmed).
import { clock, type LoadRun, type PhaseTally } from './load-run.js';
import { cpuTicks, deltaByLabels, percentile, rssMB, sumOf } from './metrics.js';
import type { SimStats } from './sim/protocol.js';
import type { PhaseResult } from './types.js';
import type { HeartbeatMode } from '../plan/heartbeat.js';

/** What a phase reads before and after its body. */
interface Reading {
  metrics: Map<string, number>[];
  sim: SimStats;
  cpu: number[];
}

/** The phase's figures from the readings around it; per-agent figures are the first agent's. */
function phaseResult(run: LoadRun, scenario: string, mode: HeartbeatMode, r0: Reading, r1: Reading, rss0: number[], wall: number, changes: number, t: PhaseTally): PhaseResult {
  const { lat, missed } = t;
  const a = 0; // per-agent figures from the first agent; the others are in the samples
  const [m0, m1, s0, s1] = [r0.metrics, r1.metrics, r0.sim, r1.sim];
  // A scrape that failed (the agent gone) must not read as negative counts.
  if (m1[a].size === 0) m1[a] = new Map([...m0[a]].map(([k]) => [k, NaN]));
  const events = deltaByLabels(m0[a], m1[a], 'kg_watch_events_total');
  const evTotal = Object.values(events).reduce((x, y) => x + y, 0);
  const plans = sumOf(m1[a], 'kg_plans_total') - sumOf(m0[a], 'kg_plans_total');
  const kernelOps = { ...deltaByLabels(m0[a], m1[a], 'kg_dataplane_writes_total'), ...deltaByLabels(m0[a], m1[a], 'kilo_iptables_operations_total') };
  const dtS = (s1.at - s0.at) / 1000;
  const faults: Record<string, number> = {};
  for (const [k, v] of Object.entries(s1.faults)) if (v - (s0.faults[k] ?? 0)) faults[k] = v - (s0.faults[k] ?? 0);
  return {
    scenario, heartbeat: mode, seconds: wall, changes,
    latency: { n: lat.length, missed: missed.n, p50: percentile(lat, 50), p95: percentile(lat, 95), p99: percentile(lat, 99), max: lat.length ? Math.max(...lat) : null },
    agent: {
      cpuPercent: ((r1.cpu[a] - r0.cpu[a]) / 100 / wall) * 100, rssStartMB: rss0[a], rssEndMB: rssMB(run.pids[a]), eventsReceived: events, plans,
      coalescing: plans > 0 ? evTotal / plans : null, kernelOps,
      watchBytes: sumOf(m1[a], 'kg_watch_bytes_total') - sumOf(m0[a], 'kg_watch_bytes_total'),
      relists: sumOf(m1[a], 'kg_watch_relists_total') - sumOf(m0[a], 'kg_watch_relists_total'),
    },
    api: {
      requests: s1.totalRequests - s0.totalRequests, requestsPerAgent: (s1.totalRequests - s0.totalRequests) / run.o.agents,
      writes: s1.writes - s0.writes, writesPerSecond: (s1.writes - s0.writes) / dtS, heartbeatWritesPerSecond: (s1.heartbeatsSent - s0.heartbeatsSent) / dtS,
      watchEvents: s1.watchEventsSent - s0.watchEventsSent, watchEventsPerSecond: (s1.watchEventsSent - s0.watchEventsSent) / dtS,
      watchBytesPerSecond: (s1.watchBytesSent - s0.watchBytesSent) / dtS, watchers: s1.watchers, heartbeatPeriodSeconds: s1.heartbeatPeriodSeconds, faults,
    },
    fleet: null,
    kernelEqualsPlan: [],
  };
}

/** The checks after a scenario's phase (a soak phase has none). */
async function phaseChecks(run: LoadRun, scenario: string, ph: PhaseResult, t: PhaseTally): Promise<void> {
  const { o, res } = run;
  ph.kernelEqualsPlan = await run.kernelEqualsPlan();
  for (const k of ph.kernelEqualsPlan) run.check(`${scenario}: ${k.agent} kernel equals plan`, k.ok, k.ok ? `after ${k.waitedMs} ms` : k.diffs.slice(0, 5).join('; '));
  if (o.fleetEach) {
    ph.fleet = await run.fleetCheck(o.fleetThreads);
    run.check(`${scenario}: fleet check`, ph.fleet.ok, `${ph.fleet.report.reached}/${ph.fleet.report.paths} paths over ${ph.fleet.report.readyNodes} nodes and ${ph.fleet.report.peers} Peers; plan ${(ph.fleet.planMs / 1000).toFixed(1)} s, verify ${(ph.fleet.verifyMs / 1000).toFixed(1)} s${ph.fleet.ok ? '' : '; ' + ph.fleet.report.examples.slice(0, 3).join('; ')}`);
  }
  run.check(`${scenario}: every change programmed`, t.missed.n === 0, `${t.lat.length} changes seen on the agents' kernels, ${t.missed.n} not within 30 s${t.missed.n ? ': ' + res.missed.filter((x) => x.scenario === scenario).slice(0, 5).map((x) => `${x.what} (${x.change})`).join('; ') : ''}`);
}

/** Runs `body` (which returns its number of changes) as a measured phase and records it. */
export async function runPhase(run: LoadRun, scenario: string, mode: HeartbeatMode, body: (t: PhaseTally) => Promise<number>): Promise<PhaseResult> {
  const { o, res, log } = run;
  log(`— ${scenario} (${mode} heartbeats), ${scenario === 'soak' ? o.soakS : o.durationS} s`);
  const m0 = await Promise.all(run.agentNames.map((n) => run.scrape(n)));
  const s0 = await run.sim.call<SimStats>({ op: 'stats' });
  const rss0 = run.pids.map(rssMB);
  const c0 = run.pids.map(cpuTicks);
  const w0 = clock();
  const t: PhaseTally = { lat: [], missed: { n: 0 } };
  const changes = await body(t);
  const wall = (clock() - w0) / 1000;
  const c1 = run.pids.map(cpuTicks);
  const s1 = await run.sim.call<SimStats>({ op: 'stats' });
  const m1 = await Promise.all(run.agentNames.map((n) => run.scrape(n)));
  const ph = phaseResult(run, scenario, mode, { metrics: m0, sim: s0, cpu: c0 }, { metrics: m1, sim: s1, cpu: c1 }, rss0, wall, changes, t);
  const f = (x: number | null) => (x === null ? 'n/a' : x.toFixed(1));
  const evTotal = Object.values(ph.agent.eventsReceived).reduce((x, y) => x + y, 0);
  log(`  ${changes} changes; event → programmed n=${t.lat.length} missed=${t.missed.n} p50 ${f(ph.latency.p50)} p95 ${f(ph.latency.p95)} p99 ${f(ph.latency.p99)} ms; agent CPU ${ph.agent.cpuPercent.toFixed(1)}%, RSS ${rss0[0].toFixed(0)}→${ph.agent.rssEndMB.toFixed(0)} MB; ${evTotal} events / ${ph.agent.plans} plans; API ${ph.api.writesPerSecond.toFixed(1)} writes/s, ${ph.api.watchEventsPerSecond.toFixed(0)} watch events/s`);
  const slow = res.latencies.filter((l) => l.scenario === scenario).sort((x, y) => y.ms - x.ms).slice(0, 5);
  if (slow.length) log(`  slowest: ${slow.map((l) => `${l.ms.toFixed(0)} ms (${l.what} at ${l.t?.toFixed(1)} s)`).join(', ')}; checks start at ${((clock() - run.t0) / 1000).toFixed(1)} s`);
  if (scenario !== 'soak') await phaseChecks(run, scenario, ph, t);
  res.phases.push(ph);
  return ph;
}
