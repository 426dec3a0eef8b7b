// `kg bench`: what Kilo (this kg) costs each node and the API server at a cluster size, measured
// from our own code on this machine: dataplane size (planner), plan time (pool-worker code,
// mitata), kernel writes (real I/O worker in a scratch netns), memory (real pieces), API-server
// load (heartbeat modes over measured object sizes), and fleet planning throughput.
import { cpus, totalmem } from 'node:os';
import { apiLoad, type ApiLoadResult } from './apiserver.js';
import { dataplaneSizes, loadCluster, type DataplaneSize } from './cluster.js';
import { measureCompute, type ComputeResult } from './compute.js';
import { measureFleet, type FleetResult } from './fleet.js';
import { measureKernel, type KernelResult, type KernelSkipped } from './kernel.js';
import { measureMemory, type MemoryResult } from './memory.js';
import type { BenchConfig } from './options.js';

/** The targets at 5,000 nodes (medians); a default run should also finish within 60 s. */
export const TARGETS = { fullPlanMs: 30, incrementalPlanMs: 5 } as const;

export interface BenchResult {
  date: string;
  machine: { cpus: number; cpuModel: string; memoryGiB: number; node: string; platform: string };
  config: BenchConfig;
  cluster: { source: string; nodes: number; locations: number; peers: number; now: number; leader: string; nonLeader: string | null; changed: string };
  dataplane: { leader: DataplaneSize; nonLeader: DataplaneSize | null };
  compute: ComputeResult;
  kernel: KernelResult | KernelSkipped;
  memory: MemoryResult;
  apiServer: ApiLoadResult;
  fleet: FleetResult;
  targets: { fullPlanP50Ms: { value: number; target: number; met: boolean }; incrementalPlanP50Ms: { value: number; target: number; met: boolean } };
  durationSeconds: number;
}

export type Progress = (step: string) => void;

export function machine(): BenchResult['machine'] {
  const c = cpus();
  return { cpus: c.length, cpuModel: c[0]?.model.trim() ?? 'unknown', memoryGiB: Math.round((totalmem() / 2 ** 30) * 10) / 10, node: process.version, platform: `${process.platform}-${process.arch}` };
}

/** One full measurement at one size. `progress` names each step as it starts. */
export async function runOne(cfg: BenchConfig, progress: Progress = () => {}): Promise<BenchResult> {
  const t0 = performance.now();
  progress('cluster');
  const bc = loadCluster(cfg);
  progress('dataplane size');
  const dataplane = dataplaneSizes(cfg, bc);
  progress('memory');
  const memory = await measureMemory(cfg, bc);
  progress('plan time');
  const compute = await measureCompute(cfg, bc);
  progress('kernel');
  const kernel: KernelResult | KernelSkipped = cfg.kernel ? await measureKernel(cfg) : { ran: false, reason: 'disabled with --kernel=false' };
  progress('fleet');
  const fleet = await measureFleet(cfg, bc);
  const full = compute.plannerPlan.p50Ms;
  const inc = compute.incrementalPlan.p50Ms;
  return {
    date: new Date().toISOString(),
    machine: machine(),
    config: cfg,
    cluster: { source: bc.source, nodes: bc.nodes.length, locations: bc.locations, peers: bc.peers.length, now: bc.now, leader: bc.leader, nonLeader: bc.nonLeader, changed: bc.changed },
    dataplane, compute, kernel, memory,
    apiServer: apiLoad(cfg, bc.nodes.length, memory.nodeWatchEventBytes, memory.nodeMetadataEventBytes),
    fleet,
    targets: {
      fullPlanP50Ms: { value: full, target: TARGETS.fullPlanMs, met: full <= TARGETS.fullPlanMs },
      incrementalPlanP50Ms: { value: inc, target: TARGETS.incrementalPlanMs, met: inc <= TARGETS.incrementalPlanMs },
    },
    durationSeconds: (performance.now() - t0) / 1000,
  };
}
