// steady: no node changes, only probes at 1/s (a Peer whose allowed IP becomes a route on the
// agents) while the simulated nodes heartbeat; measures the heartbeat load of the mode, and with
// compareHeartbeat the other mode's too.
import { heartbeatLoad, type HeartbeatMode } from '../../plan/heartbeat.js';
import { sleep, type LoadRun, type PhaseTally } from '../load-run.js';
import { runPhase } from '../phase.js';
import type { PhaseResult } from '../types.js';

const probes = (run: LoadRun, seconds: number) => async (t: PhaseTally) => {
  // Probes at 1/s: one node's allowed location IPs move to a new CIDR (a route on the agents).
  let n = 0;
  const start = Date.now();
  while (Date.now() - start < seconds * 1000) {
    const cidr = `172.29.${n % 250}.0/24`;
    for (const m of run.monitors) m.clear('add', cidr);
    const r = await run.sim.call({ op: 'addPeer', name: `probe-${n}`, allowedIP: cidr });
    await run.expectRoute('steady', 'Peer added (probe)', r.at, 'add', cidr, t);
    await run.sim.call({ op: 'deletePeer', name: `probe-${n}` });
    n++;
    await sleep(Math.max(0, start + n * 1000 - Date.now()));
  }
  return n;
};

function modeStats(run: LoadRun, mode: HeartbeatMode, ph: PhaseResult): void {
  const { o, res } = run;
  const policy = { mode, minPeriodSeconds: 30, budget: o.heartbeatBudget };
  // Every Node write goes to every Node watcher (one per agent here, one per node in a real
  // cluster): the measured bytes per event scale the fan-out to 5,000 watchers.
  const bytesPerEvent = ph.api.watchEvents > 0 ? ph.api.watchBytesPerSecond / ph.api.watchEventsPerSecond : 0;
  const hbWrites = ph.api.heartbeatWritesPerSecond;
  res.heartbeatModes.push({
    mode, periodSeconds: ph.api.heartbeatPeriodSeconds, writesPerSecond: hbWrites, watchEventsPerSecond: ph.api.watchEventsPerSecond,
    watchBytesPerSecond: ph.api.watchBytesPerSecond, watchers: ph.api.watchers, perWatcherEventsPerSecond: ph.api.watchEventsPerSecond / Math.max(1, o.agents),
    modelWritesPerSecond: heartbeatLoad(policy, run.simNodes, 1, 0).writesPerSecond,
    fanOutAt5000: { watchEventsPerSecond: hbWrites * 5000, watchBytesPerSecond: hbWrites * 5000 * bytesPerEvent },
  });
  run.log(`  heartbeats (${mode}): period ${ph.api.heartbeatPeriodSeconds} s, ${hbWrites.toFixed(1)} writes/s measured (model ${res.heartbeatModes.at(-1)!.modelWritesPerSecond.toFixed(1)}), ${bytesPerEvent.toFixed(0)} B per watch event → ${(hbWrites * 5000).toFixed(0)} events/s at 5,000 watchers`);
}

export async function steady(run: LoadRun): Promise<void> {
  const { o } = run;
  const ph = await runPhase(run, 'steady', o.heartbeat, probes(run, o.durationS));
  modeStats(run, o.heartbeat, ph);
  if (!o.compareHeartbeat) return;
  const other: HeartbeatMode = o.heartbeat === 'kilo' ? 'adaptive' : 'kilo';
  const sw = await run.sim.call<{ transitionMs: number }>({ op: 'heartbeat', mode: other });
  run.log(`  simulated nodes switch to ${other} heartbeats: one round at Kilo's period first (${(sw.transitionMs / 1000).toFixed(0)} s)`);
  await sleep(sw.transitionMs + 1000);
  const ph2 = await runPhase(run, 'steady', other, probes(run, o.durationS));
  modeStats(run, other, ph2);
  const back = await run.sim.call<{ transitionMs: number }>({ op: 'heartbeat', mode: o.heartbeat });
  await sleep(back.transitionMs + 1000);
}
