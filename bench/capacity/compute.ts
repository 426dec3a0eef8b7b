// Plan compute time, measured with mitata through the code the agent's pool worker runs
// (workers/plan-worker.ts), called in this thread: the replica is fed exactly as PlanPool feeds
// it (a snapshot, then deltas), and each plan task asks for the dataplane's desired state, as the
// agent does (a whole state the first time, then a delta against the state the I/O worker holds).
import { measure } from 'mitata';
import run, { applyDelta } from '../../workers/plan-worker.js';
import { parseCluster, plan } from '../../plan/plan.js';
import type { PlanAnswer, PlanTask } from '../../ipc/planner.js';
import type { NodeObject } from '../../plan/node.js';
import { syntheticKey } from '../synthetic.js';
import { changedNode, planOptions, type BenchCluster } from './cluster.js';
import type { BenchConfig } from './options.js';

export interface Timing {
  minMs: number;
  p50Ms: number;
  p99Ms: number;
  avgMs: number;
  samples: number;
}

export interface ComputeResult {
  node: string;
  /** The planner alone, as `kg plan` runs it: parse every Node and Peer, then plan one node. */
  plannerPlan: Timing;
  /** Snapshot of all N nodes into the replica (parse) + plan + whole desired state: the agent's first plan. */
  fullPlan: Timing;
  /** One node's annotation changed: delta into the replica + plan + desired-state delta. */
  incrementalPlan: Timing;
  /** Medians over the samples: the replica update (parse) and the worker's own timer (plan + desired state). */
  breakdown: { full: Breakdown; incremental: Breakdown };
}
export interface Breakdown { applyDeltaMs: number; planMs: number }

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? 0;
function recorder() {
  const apply: number[] = [], planMs: number[] = [];
  return {
    add(a: number, p: number) { apply.push(a); planMs.push(p); },
    result: (): Breakdown => ({ applyDeltaMs: median(apply), planMs: median(planMs) }),
  };
}

const toTiming = (s: { min: number; p50: number; p99: number; avg: number; samples: number[] }): Timing => ({
  minMs: s.min / 1e6, p50Ms: s.p50 / 1e6, p99Ms: s.p99 / 1e6, avgMs: s.avg / 1e6, samples: s.samples.length,
});

/**
 * The in-thread replica is one per process: its versions only ever grow (the worker ignores an
 * older snapshot), across parts and sweep sizes.
 */
let version = 0;
export const nextVersion = (): number => ++version;
const PRIVATE_KEY = syntheticKey(0xffff, 7);

function ok(a: PlanAnswer, what: string): Extract<PlanAnswer, { ok: true }> {
  if (!a.ok) throw new Error(`plan worker failed (${what}): ${'error' in a ? a.error : 'needs a snapshot'}`);
  return a;
}

export async function measureCompute(cfg: BenchConfig, bc: BenchCluster): Promise<ComputeResult> {
  const options = planOptions(cfg, bc.leader, bc.now);
  const task = (v: number, baseSeq: number | null): PlanTask => ({
    kind: 'plan', v, options, privateKey: PRIVATE_KEY, desired: { cniPath: null, tunnelPrivIface: 'eth0', baseSeq },
  });
  let lastApplyMs = 0;
  const snapshot = () => {
    nextVersion();
    const t0 = performance.now();
    applyDelta({ v: version, prev: 0, reset: true, nodes: bc.nodes, peers: bc.peers, topologyLabel: cfg.topologyLabel });
    lastApplyMs = performance.now() - t0;
    return version;
  };
  const fullParts = recorder(), incParts = recorder();
  const budget = { min_cpu_time: cfg.timeBudgetMs * 1e6, max_samples: 1000, min_samples: 5 };

  const plannerPlan = await measure(() => plan(parseCluster(bc.nodes, bc.peers, cfg.topologyLabel), options, { describe: false }), budget);

  const first = ok(await run(task(snapshot(), null)), 'snapshot');
  if (first.full === undefined) throw new Error('plan worker: expected a whole desired state after a snapshot');
  const full = await measure(async () => {
    const a = ok(await run(task(snapshot(), null)), 'full');
    fullParts.add(lastApplyMs, a.planMs);
    return a;
  }, budget);

  // Incremental: the I/O worker holds the last state (baseSeq); each change gets a delta.
  let seq = ok(await run(task(snapshot(), null)), 'base').seq!;
  const orig = bc.nodes.find((n) => n.metadata?.name === bc.changed) as NodeObject;
  let k = 0;
  const change = async () => {
    const prev = version;
    nextVersion();
    const t0 = performance.now();
    applyDelta({ v: version, prev, nodes: [changedNode(orig, ++k)] });
    const applyMs = performance.now() - t0;
    const a = ok(await run(task(version, seq)), 'incremental');
    incParts.add(applyMs, a.planMs);
    if (a.delta === undefined) throw new Error(`plan worker: a one-node change gave ${a.noop ? 'no change' : 'a whole state'}, expected a delta`);
    seq = a.seq!;
    return a;
  };
  await change();
  const inc = await measure(change, budget);
  return { node: bc.leader, plannerPlan: toTiming(plannerPlan), fullPlan: toTiming(full), incrementalPlan: toTiming(inc), breakdown: { full: fullParts.result(), incremental: incParts.result() } };
}
