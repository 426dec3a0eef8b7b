// leader-loss: a location's leader stops heartbeating until it reads as not ready: its pod CIDR
// route must go and its successor be peered; then it comes back and the route returns.
import { findLeader } from '../../plan/topology.js';
import { checkInPeriodSeconds, readyWindowSeconds } from '../../plan/heartbeat.js';
import { locName, sleep, type LoadRun, type PhaseTally } from '../load-run.js';
import { runPhase } from '../phase.js';

async function loseLeaders(run: LoadRun, t: PhaseTally): Promise<number> {
  const { o, sim, monitors } = run;
  const cluster = await run.cluster();
  const period = checkInPeriodSeconds({ mode: o.heartbeat, minPeriodSeconds: 30, budget: o.heartbeatBudget }, run.simNodes);
  const ago = readyWindowSeconds(o.heartbeat === 'adaptive' ? String(period) : undefined) + 5;
  const rounds = Math.max(1, Math.min(o.locations, Math.floor(o.durationS / 6)));
  let changes = 0;
  for (let i = 0; i < rounds; i++) {
    const loc = locName(i % o.locations);
    const members = cluster.nodes.filter((n) => n.location === loc);
    if (members.length < 2) continue;
    // The location's leader, as every agent elects it, and its successor.
    const leader = members[findLeader(members)];
    const leaderName = leader.name;
    const rest = members.filter((n) => n !== leader);
    const successor = rest[findLeader(rest)];
    const cidr = leader.subnet!.s;
    for (const m of monitors) m.clear('del', cidr), m.clear('add', cidr);
    const r = await sim.call({ op: 'stopHeartbeat', name: leaderName, agoSeconds: ago });
    await Promise.all([
      run.expectRoute('leader-loss', 'leader lost: its pod CIDR route removed', r.at, 'del', cidr, t),
      // In full granularity every node is its own segment: there is no successor.
      ...(o.granularity === 'location' && successor?.key ? [run.expectWgKey('leader-loss', 'leader lost: successor peered', r.at, successor.key, t)] : []),
    ]);
    const back = await sim.call({ op: 'resumeHeartbeat', name: leaderName });
    await run.expectRoute('leader-loss', 'leader back: route restored', back.at, 'add', cidr, t);
    changes += 2;
    await sleep(1000);
  }
  return changes;
}

export async function leaderLoss(run: LoadRun): Promise<void> {
  await runPhase(run, 'leader-loss', run.o.heartbeat, (t) => loseLeaders(run, t));
}
