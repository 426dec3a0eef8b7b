// The load test: real kg agents (each in its own network and mount namespace, programming a real
// kernel through wireguard-go) in a simulated cluster of N nodes and P Peers served by the API
// simulator, driven through scenarios. Per scenario it measures event → programmed latency (from
// the change's commit in the simulator's store to the kernel route change seen by
// `ip monitor route`, or the WireGuard peer seen on the device), agent CPU and RSS, events against
// plans, kernel operations by kind, API requests and watch bytes, and the heartbeat write rate and
// fan-out; after each scenario it plans every node (loadtest/fleet/planner.ts) and runs the fleet check
// (loadtest/fleet/verify.ts), and compares each agent's kernel with its plan.
// CLI: loadtest/run.ts. Everything is bounded: per-change waits, phases, and a hard timeout.
// The scenarios are in scenarios/, the steps they share in load-run.ts, a measured phase in phase.ts.
import { availableParallelism, loadavg } from 'node:os';
import { Mesh } from './mesh/harness.js';
import { RouteMonitor } from './mesh/monitor.js';
import { Sim } from './sim/client.js';
import { clock, LoadRun, sleep } from './load-run.js';
import { cpuTicks } from './metrics.js';
import { runPhase } from './phase.js';
import { startSampling } from './sampling.js';
import { SCENARIO_RUNS } from './scenarios/index.js';
import type { LoadTestOptions, Results } from './types.js';

function newResults(o: LoadTestOptions): Results {
  return {
    version: 1, startedAt: new Date().toISOString(), options: { ...o, log: undefined } as unknown as Omit<LoadTestOptions, 'log'>,
    machine: { cpus: availableParallelism(), loadAvg: loadavg() },
    coldStartMs: [], phases: [], heartbeatModes: [], fleetTiming: { threads1: null, pool: null, speedup: null },
    samples: [], rates: [], scrapes: [], latencies: [], missed: [], checks: [], ok: false,
  };
}

/** Brings up the simulator and the agents (timing each cold start), and their route monitors. */
async function start(run: LoadRun): Promise<void> {
  const { mesh, res, log, o } = run;
  await mesh.down();
  await mesh.up();
  run.sim = new Sim(mesh);
  log(`simulator up: ${run.simNodes} simulated nodes in ${o.locations} locations, ${o.peers} Peers, heartbeat ${o.heartbeat}`);
  for (const name of run.agentNames) {
    const t0 = clock();
    await mesh.startKg(name, [], false);
    await mesh.waitHealthy(name, 300_000);
    res.coldStartMs.push(clock() - t0);
    log(`${name}: programmed ${(res.coldStartMs.at(-1)! / 1000).toFixed(1)} s after start`);
  }
  run.pids = run.agentNames.map((n) => mesh.node(n).kg!.pid!);
  // An agent that exits mid-run fails the run, with its exit code or signal on record.
  for (const name of run.agentNames) {
    mesh.node(name).kg!.on('exit', (code, signal) => {
      if (!run.tearingDown) run.check(`${name} keeps running`, false, `exited during the run (code ${code}, signal ${signal}); log: ${mesh.state}/kg-${name}.log`);
    });
  }
  for (const name of run.agentNames) {
    const m = new RouteMonitor(mesh.node(name).netns);
    await m.start();
    run.monitors.push(m);
  }
  await settle(run);
}

/**
 * Waits (at most 30 s) until every agent has spent two seconds in a row under a quarter of a core:
 * the first phase measures the agents at work, not their warm-up after the first programming
 * (right after it the I/O worker's passes still take 100+ ms); cold start is timed on its own.
 */
async function settle(run: LoadRun): Promise<void> {
  const t0 = clock();
  let last = run.pids.map(cpuTicks);
  let quiet = 0;
  while (quiet < 2 && clock() - t0 < 30_000) {
    await sleep(1000);
    const now = run.pids.map(cpuTicks);
    quiet = now.some((t, i) => !(t - last[i] < 25)) ? 0 : quiet + 1; // ticks are 1/100 s
    last = now;
  }
  run.log(`agents ${quiet >= 2 ? 'settled' : 'still busy'} ${((clock() - t0) / 1000).toFixed(1)} s after start-up`);
}

/** Fleet plan + verify on the final state (the pool against one thread), then every kernel against its plan. */
async function finish(run: LoadRun): Promise<void> {
  const { o, res, log, mesh } = run;
  const pool = await run.fleetCheck(o.fleetThreads);
  res.fleetTiming.pool = { threads: o.fleetThreads, planMs: pool.planMs, verifyMs: pool.verifyMs };
  run.check('final: fleet check', pool.ok, `${pool.report.reached}/${pool.report.paths} paths${pool.ok ? '' : '; ' + pool.report.examples.slice(0, 3).join('; ')}`);
  if (o.fleetBaseline) {
    const one = await run.fleetCheck(1);
    res.fleetTiming.threads1 = { planMs: one.planMs, verifyMs: one.verifyMs };
    res.fleetTiming.speedup = (one.planMs + one.verifyMs) / (pool.planMs + pool.verifyMs);
    log(`fleet plan + verify: 1 thread ${(one.planMs / 1000).toFixed(1)} + ${(one.verifyMs / 1000).toFixed(1)} s, pool of ${o.fleetThreads} ${(pool.planMs / 1000).toFixed(1)} + ${(pool.verifyMs / 1000).toFixed(1)} s (${res.fleetTiming.speedup.toFixed(2)}×)`);
  }
  const fin = await run.kernelEqualsPlan();
  for (const k of fin) run.check(`final: ${k.agent} kernel equals plan`, k.ok, k.ok ? `after ${k.waitedMs} ms` : k.diffs.slice(0, 5).join('; '));
  for (const [i, name] of run.agentNames.entries()) run.check(`final: ${name} still running`, mesh.node(name).kg?.exitCode === null && mesh.node(name).kg?.signalCode === null, `pid ${run.pids[i]}`);
}

export async function runLoadTest(o: LoadTestOptions): Promise<Results> {
  const simNodes = o.nodes - o.agents;
  if (simNodes < o.locations) throw new Error(`--nodes ${o.nodes} leaves fewer simulated nodes than --locations ${o.locations}`);
  const agentNames = Array.from({ length: o.agents }, (_, i) => `kg-${i}`);
  const kgFlags = ['--encapsulate', 'never', '--mesh-granularity', o.granularity, '--iptables-layout', o.iptablesLayout ?? 'sets'];
  const mesh = new Mesh({
    prefix: o.prefix,
    // Each agent leads a location of its own: it holds the WireGuard device and the mesh routes.
    nodes: agentNames.map((name, i) => ({ name, location: `agents-${i}` })),
    flags: [...kgFlags, '--log-level', 'warn', '--resync-period', '5m', '--heartbeat', o.heartbeat, '--heartbeat-budget', String(o.heartbeatBudget), ...(o.agentFlags ?? [])],
    apiScript: 'loadtest/sim/driver.js',
    apiArgs: ['--nodes', String(simNodes), '--peers', String(o.peers), '--locations', String(o.locations), '--heartbeat', o.heartbeat, '--heartbeat-budget', String(o.heartbeatBudget), '--history-size', '20000'],
    log: o.log,
  });
  const run = new LoadRun(o, mesh, newResults(o));
  const timers: NodeJS.Timeout[] = [];
  try {
    await start(run);
    run.t0 = clock();
    timers.push(...startSampling(run, run.t0));
    for (const sc of o.scenarios) {
      // A scenario that throws (the simulator or an agent gone) is a failed check; the rest run.
      try {
        await SCENARIO_RUNS[sc](run);
      } catch (e) {
        run.check(`${sc}: ran to the end`, false, (e as Error).stack ?? String(e));
      }
    }
    if (o.soakS > 0) await runPhase(run, 'soak', o.heartbeat, async () => {
      await sleep(o.soakS * 1000);
      return 0;
    });
    await finish(run);
  } catch (e) {
    run.check('load test ran to the end', false, (e as Error).stack ?? String(e));
  } finally {
    run.tearingDown = true;
    for (const t of timers) clearInterval(t);
    for (const m of run.monitors) m.stop();
    run.closeClients();
    await mesh.down();
  }
  run.res.ok = run.res.checks.length > 0 && run.res.checks.every((c) => c.ok);
  return run.res;
}
