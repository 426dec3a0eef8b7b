// Agent memory at a cluster size, measured on the real pieces (not modelled):
// - main thread: the slim Node records the agent keeps (main/agent/agent.ts slimNode), made from the
//   JSON of kubelet-like Nodes as they arrive in watch events (loadtest/apiserver generateNodes);
// - the planner replica: workers/plan-worker.ts fed a snapshot in this thread (V8 heap after GC),
//   then a real PlanPool thread holding the same nodes (process RSS delta: thread + replica);
// The I/O worker's memory is measured with the kernel part (it needs a network namespace).
// Also here: the size of one heartbeat's Node watch event, the unit of API-server fan-out.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Store, generateNodes, partialObjectMetadata } from '../../loadtest/apiserver/index.js';
import { slimNode } from '../../main/agent/node-record.js';
import { A, type NodeObject } from '../../plan/node.js';
import type { KubeObject } from '../../loadtest/apiserver/index.js';
import run, { applyDelta } from '../../workers/plan-worker.js';
import { PlanPool } from '../../workers/plan-pool.js';
import { planOptions, type BenchCluster } from './cluster.js';
import { nextVersion } from './compute.js';
import type { BenchConfig } from './options.js';

export interface MemoryResult {
  nodes: number;
  /** Bytes of one heartbeat's MODIFIED watch event line as the simulator sends it, mean over the nodes. */
  nodeWatchEventBytes: number;
  /** The same events as kg's metadata-only Node watch receives them (as=PartialObjectMetadata). */
  nodeMetadataEventBytes: number;
  /** V8 heap held by the agent's slim Node records on the main thread. */
  slimRecordsHeapBytes: number;
  /** V8 heap of a plan-worker replica holding the nodes, its sorted cluster and the last desired state. */
  replicaHeapBytes: number;
  /** Process RSS added by a PlanPool with one thread holding the nodes (thread start-up included). */
  poolRssBytes: number;
}

/** A full GC, so that heap deltas count live objects only. */
export function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) return g();
  setFlagsFromString('--expose-gc');
  (runInNewContext('gc') as () => void)();
}

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * Heartbeat watch events exactly as the API simulator sends them: kubelet-like Nodes
 * (generateNodes) stored in the simulator's Store, then a last-seen patch on each, as an agent's
 * heartbeat does; a watcher collects the MODIFIED lines. The simulator caps a location at 4,094
 * nodes, hence the location count floor.
 */
function heartbeatEventLines(bc: BenchCluster): string[] {
  const store = new Store();
  const t = store.nodes();
  const generated: KubeObject[] = generateNodes({ count: bc.nodes.length, locations: Math.max(1, bc.locations, Math.ceil(bc.nodes.length / 4000)), lastSeen: bc.now - 1 });
  for (const o of generated) store.create(t, o);
  const lines: string[] = [];
  const { cancel } = store.watch(t, { deliver: (ev) => void lines.push(ev.line.toString('utf8')), close: () => {} }, store.rv);
  for (const o of generated) store.patchAnnotations(t, undefined, o.metadata.name ?? '', { [A.lastSeen]: String(bc.now) });
  cancel();
  if (lines.length !== generated.length) throw new Error(`memory: the simulator store sent ${lines.length} watch events for ${generated.length} heartbeats`);
  return lines;
}

export async function measureMemory(cfg: BenchConfig, bc: BenchCluster): Promise<MemoryResult> {
  let lines: string[] | null = heartbeatEventLines(bc);
  const nodeWatchEventBytes = Math.round(lines.reduce((s, l) => s + Buffer.byteLength(l), 0) / lines.length);
  const nodeMetadataEventBytes = Math.round(lines.reduce((s, l) => {
    const e = JSON.parse(l) as { type: string; object: KubeObject };
    return s + Buffer.byteLength(JSON.stringify({ type: e.type, object: partialObjectMetadata(e.object) }) + '\n');
  }, 0) / lines.length);

  // Main thread: each event is parsed and slimmed; the full object becomes garbage at once.
  const h0 = heapAfterGc();
  let records: Map<string, NodeObject> | null = new Map();
  for (const l of lines) {
    const o = (JSON.parse(l) as { object: KubeObject & NodeObject }).object;
    records.set(o.metadata.name ?? "", slimNode(o, cfg.topologyLabel));
  }
  lines = null;
  const slimRecordsHeapBytes = heapAfterGc() - h0;

  // Planner replica in this thread: what a pool worker holds after a snapshot and one plan.
  const options = planOptions(cfg, bc.leader, bc.now);
  applyDelta({ v: nextVersion(), prev: 0, reset: true, nodes: [], peers: [], topologyLabel: cfg.topologyLabel });
  const r0 = heapAfterGc();
  // The worker gets a structured clone: its own copies of every string.
  const v = nextVersion();
  applyDelta({ v, prev: 0, reset: true, nodes: structuredClone([...records.values()]), peers: structuredClone(bc.peers), topologyLabel: cfg.topologyLabel });
  const a = await run({ kind: 'plan', v, options, privateKey: null, desired: { cniPath: null, tunnelPrivIface: 'eth0', baseSeq: null } });
  if (!a.ok) throw new Error(`memory: plan failed: ${'error' in a ? a.error : 'needs a snapshot'}`);
  const replicaHeapBytes = heapAfterGc() - r0;
  // Leave the in-thread replica empty again (the compute part reloads it).
  applyDelta({ v: nextVersion(), prev: 0, reset: true, nodes: [], peers: [], topologyLabel: cfg.topologyLabel });

  // A real pool thread holding the nodes: RSS is the only view of another thread's memory here.
  gc();
  const rss0 = process.memoryUsage().rss;
  const pool = new PlanPool({ threads: 1, topologyLabel: cfg.topologyLabel });
  let poolRssBytes: number;
  try {
    for (const [name, o] of records) pool.setNode(name, o);
    for (const p of bc.peers) pool.setPeer(p.metadata?.name ?? '', p);
    const pa = await pool.plan({ options, desired: { cniPath: null, tunnelPrivIface: 'eth0', baseSeq: null } });
    if (!pa.ok) throw new Error(`memory: pool plan failed: ${'error' in pa ? pa.error : 'needs a snapshot'}`);
    gc();
    poolRssBytes = process.memoryUsage().rss - rss0;
  } finally {
    await pool.close();
  }
  const nodes = records.size;
  records = null;
  return { nodes, nodeWatchEventBytes, nodeMetadataEventBytes, slimRecordsHeapBytes, replicaHeapBytes, poolRssBytes };
}
