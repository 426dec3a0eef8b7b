// Fleet planning throughput: every node of the cluster planned (loadtest/fleet/planner.ts planFleet, as the
// fleet check does), in a piscina pool against one thread. It plans N nodes of N each, so it grows
// with N²: under --fleet=auto it runs only when a calibration (a few plans timed here) predicts
// both runs fit FLEET_BUDGET_S; --fleet=on forces it.
import { availableParallelism } from 'node:os';
import { planFleet } from '../../loadtest/fleet/planner.js';
import { fleetContext, planRange } from '../../loadtest/fleet/planner-worker.js';
import { planOptions, type BenchCluster } from './cluster.js';
import type { BenchConfig } from './options.js';

export const FLEET_BUDGET_S = 15;

export type FleetResult =
  | { ran: true; nodesPlanned: number; threads: number; poolPlansPerSecond: number; oneThreadPlansPerSecond: number; speedup: number; poolMs: number; oneThreadMs: number }
  | { ran: false; reason: string; estimatedSeconds?: number };

/** Seconds to plan (and compile for the fleet check) every node once in one thread, from a few nodes timed as planFleet plans them. */
function estimateSeconds(cfg: BenchConfig, bc: BenchCluster): number {
  const { hostname: _, ...shared } = planOptions(cfg, '', bc.now);
  const ctx = fleetContext({ nodes: bc.nodes, peers: bc.peers, plan: shared, topologyLabel: cfg.topologyLabel, keepPlans: [] });
  const N = ctx.index.names.length;
  const step = Math.max(1, Math.floor(N / 5));
  const t0 = performance.now();
  let planned = 0;
  for (let i = 0; i < N && planned < 5; i += step, planned++) planRange(ctx, i, i + 1);
  return ((performance.now() - t0) / Math.max(1, planned)) * N / 1000;
}

export async function measureFleet(cfg: BenchConfig, bc: BenchCluster): Promise<FleetResult> {
  if (cfg.fleet === 'off') return { ran: false, reason: 'disabled with --fleet=off' };
  const threads = Math.max(2, availableParallelism());
  if (cfg.fleet === 'auto') {
    // One thread, then the pool (ideally 1/threads of it).
    const est = estimateSeconds(cfg, bc) * (1 + 1 / threads);
    if (est > FLEET_BUDGET_S) {
      return { ran: false, estimatedSeconds: Math.round(est), reason: `planning all ${bc.nodes.length} nodes twice would take ~${Math.round(est)} s here (budget ${FLEET_BUDGET_S} s); pass --fleet=on to run it` };
    }
  }
  const { hostname: _, ...shared } = planOptions(cfg, '', bc.now);
  const one = await planFleet(bc.nodes, bc.peers, { threads: 1, plan: shared, topologyLabel: cfg.topologyLabel });
  const pool = await planFleet(bc.nodes, bc.peers, { threads, plan: shared, topologyLabel: cfg.topologyLabel });
  const n = pool.nodes.length;
  return {
    ran: true, nodesPlanned: n, threads,
    oneThreadMs: one.ms.plan, poolMs: pool.ms.plan,
    oneThreadPlansPerSecond: one.nodes.length / (one.ms.plan / 1000),
    poolPlansPerSecond: n / (pool.ms.plan / 1000),
    speedup: one.ms.plan / pool.ms.plan,
  };
}
