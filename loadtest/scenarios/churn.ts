// churn: nodes join at --rate per second, each leaving again ~5 s later; every join and leave is
// timed to the route change on every agent. nodeChurn is also api-faults' load.
import { locName, sleep, type LoadRun, type PhaseTally } from '../load-run.js';
import { runPhase } from '../phase.js';

/** Unique, non-overlapping addresses for the nodes the load test adds. */
const churnCIDR = (k: number) => `10.${200 + ((k >> 8) & 31)}.${k & 255}.0/24`;
const churnInternal = (k: number) => `172.30.${(k >> 8) & 255}.${k & 255}/16`;
const churnEndpoint = (k: number) => `198.19.${(k >> 8) & 255}.${k & 255}:51820`;

/** Node changes at `rate`/s: adds, each deleted again ~5 s later; returns the number of changes. */
export async function nodeChurn(run: LoadRun, scenario: string, seconds: number, rate: number, t: PhaseTally, during?: (elapsedS: number) => Promise<void>): Promise<number> {
  const { sim, monitors, o } = run;
  const live: { name: string; cidr: string; bornAt: number }[] = [];
  const waits: Promise<void>[] = [];
  let changes = 0;
  const start = Date.now();
  let next = start;
  let lastSecond = -1;
  while (Date.now() - start < seconds * 1000) {
    const el = Math.floor((Date.now() - start) / 1000);
    if (during && el !== lastSecond) {
      lastSecond = el;
      await during(el);
    }
    const old = live[0];
    if (old && Date.now() - old.bornAt > 5000) {
      live.shift();
      const r = await sim.call({ op: 'deleteNode', name: old.name });
      waits.push(run.expectRoute(scenario, 'node leaves', r.at, 'del', old.cidr, t));
    } else {
      const k = run.churnK++;
      const name = `zz-churn-${String(k).padStart(5, '0')}`;
      const cidr = churnCIDR(k);
      for (const m of monitors) m.clear('add', cidr), m.clear('del', cidr);
      const r = await sim.call({ op: 'addNode', name, location: locName(k % o.locations), podCIDR: cidr, endpoint: churnEndpoint(k), internalIP: churnInternal(k) });
      live.push({ name, cidr, bornAt: Date.now() });
      waits.push(run.expectRoute(scenario, 'node joins', r.at, 'add', cidr, t));
    }
    changes++;
    next += 1000 / rate;
    await sleep(Math.max(0, next - Date.now()));
  }
  // Leave the cluster as it was: the remaining churn nodes leave too, at the same rate (all at
  // once they would be a burst of ~50 changes in a few ms, not the 10/s the phase measures).
  for (const l of live) {
    const r = await sim.call({ op: 'deleteNode', name: l.name });
    waits.push(run.expectRoute(scenario, 'node leaves', r.at, 'del', l.cidr, t));
    changes++;
    next += 1000 / rate;
    await sleep(Math.max(0, next - Date.now()));
  }
  await Promise.all(waits);
  return changes;
}

export async function churn(run: LoadRun): Promise<void> {
  await runPhase(run, 'churn', run.o.heartbeat, (t) => nodeChurn(run, 'churn', run.o.durationS, run.o.rate, t));
}
