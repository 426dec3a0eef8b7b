// Time series recorded through the whole run: each agent's CPU and RSS once a second, and the
// first agent's event, plan and kernel-write rates with the API write rate every 5 s. A scrape
// is asynchronous (LoadRun.scrape) and costs the agent ~1 ms of its main thread.
import { clock, type LoadRun } from './load-run.js';
import { cpuTicks, rssMB, sumOf } from './metrics.js';
import type { SimStats } from './sim/protocol.js';

export function startSampling(run: LoadRun, t0: number): NodeJS.Timeout[] {
  const { res, pids, agentNames } = run;
  const lastTicks = pids.map(cpuTicks);
  let lastAt = clock();
  const cpu = setInterval(() => {
    const at = clock();
    pids.forEach((pid, i) => {
      try {
        const tk = cpuTicks(pid);
        if (Number.isNaN(tk)) return;
        res.samples.push({ t: (at - t0) / 1000, agent: agentNames[i], cpuPercent: ((tk - lastTicks[i]) / 100 / ((at - lastAt) / 1000)) * 100, rssMB: rssMB(pid) });
        lastTicks[i] = tk;
      } catch {
        /* the agent exited; the phase reports it */
      }
    });
    lastAt = at;
  }, 1000);
  let prevScrape: { m: Map<string, number>; s: SimStats } | null = null;
  const scrapeRates = async () => {
    const m = await run.scrape(agentNames[0]);
    const s = await run.sim.call<SimStats>({ op: 'stats' });
    if (prevScrape) {
      const dt = (s.at - prevScrape.s.at) / 1000;
      res.rates.push({
        t: (s.at - t0) / 1000,
        events: (sumOf(m, 'kg_watch_events_total') - sumOf(prevScrape.m, 'kg_watch_events_total')) / dt,
        plans: (sumOf(m, 'kg_plans_total') - sumOf(prevScrape.m, 'kg_plans_total')) / dt,
        kernelWrites: (sumOf(m, 'kg_dataplane_writes_total') - sumOf(prevScrape.m, 'kg_dataplane_writes_total')) / dt,
        apiWrites: (s.writes - prevScrape.s.writes) / dt,
      });
    }
    prevScrape = { m, s };
  };
  let scraping = false;
  const rates = setInterval(() => {
    if (scraping) return;
    scraping = true;
    scrapeRates().catch(() => {}).finally(() => (scraping = false));
  }, 5000);
  return [cpu, rates];
}
