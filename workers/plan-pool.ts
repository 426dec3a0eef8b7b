// The planner pool (main-thread side): a piscina pool whose workers hold cluster replicas fed by
// deltas over a BroadcastChannel. Plans carry a replica version; a worker that missed deltas (a
// fresh or restarted one) answers `needSnapshot`, and the task is re-sent with a snapshot.
import { BroadcastChannel } from 'node:worker_threads';
import { randomUUID } from 'node:crypto';
import { Piscina } from 'piscina';
import type { NodeObject } from '../plan/node.js';
import type { PeerObject } from '../plan/peer.js';
import type { GraphAnswer, GraphTask, PlanAnswer, PlanTask, ReplicaDelta } from '../ipc/planner.js';
import type { ClaimLimits } from '../plan/claims.js';

export interface PlanPoolOptions {
  /** Worker threads; set explicitly because containers misreport CPUs. */
  threads: number;
  topologyLabel: string;
  /** What one node or Peer may claim; default plan/claims.ts's DEFAULT_LIMITS. */
  claims?: ClaimLimits;
}

/**
 * The planner threads' V8 limits: the young generation at 2 MiB semi-spaces, as the main
 * thread's (main/agent/process-env.ts). A full plan allocates in bursts and V8 would grow the
 * semi-spaces to 16 MiB and keep them; what survives goes to the old generation, which holds the
 * replica and is not capped (it grows with the cluster).
 */
export const PLANNER_LIMITS = { maxYoungGenerationSizeMb: 6 };

export class PlanPool {
  private readonly pool: Piscina;
  private readonly channel: BroadcastChannel;
  private v = 0;
  /** What snapshots send: the pool's own copy, or the caller's records (holdNodesIn). */
  private readonly nodes = new Map<string, NodeObject>();
  private nodeSource: (() => Iterable<NodeObject>) | null = null;
  private readonly peers = new Map<string, PeerObject>();
  /**
   * Changes since the last flush, the latest per name (null = deleted): a node changed twice is
   * sent once, and a delete followed by a re-add arrives as the re-add.
   */
  private pendingNodes = new Map<string, NodeObject | null>();
  private pendingPeers = new Map<string, PeerObject | null>();
  /** Heartbeats since the last flush, one entry per node however many arrived (bounded by N). */
  private pendingLastSeen = new Map<string, number>();
  stats = { deltas: 0, snapshots: 0 };
  /** Records set or deleted so far, heartbeats excluded: the cluster view's version (/graph's cache). */
  private changed = 0;

  constructor(private readonly o: PlanPoolOptions) {
    const name = `kg-replica-${process.pid}-${randomUUID()}`;
    this.channel = new BroadcastChannel(name);
    // A worker that starts (or restarts) says hello and gets the current state.
    this.channel.onmessage = (ev: unknown) => {
      if ((ev as { data?: { hello?: boolean } }).data?.hello) this.broadcastSnapshot();
    };
    (this.channel as unknown as { unref?: () => void }).unref?.();
    this.pool = new Piscina({
      filename: new URL('./plan-worker.js', import.meta.url).href,
      minThreads: o.threads,
      maxThreads: o.threads,
      // Replicas live in the workers: never tear them down between bursts, and let them process
      // channel messages between tasks (Atomics mode would park them).
      idleTimeout: Number.POSITIVE_INFINITY,
      atomics: 'disabled',
      workerData: { channel: name },
      resourceLimits: PLANNER_LIMITS,
    });
  }

  get threads(): number {
    return this.o.threads;
  }

  get changes(): number {
    return this.changed;
  }

  /**
   * Snapshots take the nodes from `source` (the records the caller already holds, as last given
   * to setNode/setLastSeen) instead of a copy of the pool's own: each Node is held once.
   */
  holdNodesIn(source: () => Iterable<NodeObject>): void {
    this.nodeSource = source;
    this.nodes.clear();
  }

  setNode(name: string, obj: NodeObject): void {
    this.changed++;
    if (!this.nodeSource) this.nodes.set(name, obj);
    this.pendingNodes.set(name, obj);
  }

  deleteNode(name: string): void {
    this.changed++;
    if (!this.nodeSource) this.nodes.delete(name);
    this.pendingNodes.set(name, null);
  }

  /** A heartbeat-only change: no re-parse, just the new last-seen, sent with the next flush. */
  setLastSeen(name: string, lastSeen: number, obj: NodeObject): void {
    if (!this.nodeSource) this.nodes.set(name, obj);
    this.pendingLastSeen.set(name, lastSeen);
  }

  setPeer(name: string, obj: PeerObject): void {
    this.changed++;
    this.peers.set(name, obj);
    this.pendingPeers.set(name, obj);
  }

  deletePeer(name: string): void {
    this.changed++;
    this.peers.delete(name);
    this.pendingPeers.set(name, null);
  }

  /** Broadcasts pending changes as one delta; returns the version plans must see. */
  flush(): number {
    if (this.pendingNodes.size + this.pendingPeers.size + this.pendingLastSeen.size === 0) return this.v;
    const upserts = <T>(m: Map<string, T | null>) => [...m.values()].filter((x): x is T => x !== null);
    const deletes = <T>(m: Map<string, T | null>) => [...m].filter(([, x]) => x === null).map(([k]) => k);
    // Heartbeats are applied first: a full record sent in the same delta carries its own.
    const d: ReplicaDelta = {
      prev: this.v, v: this.v + 1, topologyLabel: this.o.topologyLabel, claims: this.o.claims,
      nodes: upserts(this.pendingNodes), nodeDeletes: deletes(this.pendingNodes),
      peers: upserts(this.pendingPeers), peerDeletes: deletes(this.pendingPeers),
      lastSeen: [...this.pendingLastSeen],
    };
    this.v = d.v;
    this.channel.postMessage(d);
    this.pendingNodes = new Map();
    this.pendingPeers = new Map();
    this.pendingLastSeen = new Map();
    this.stats.deltas++;
    return this.v;
  }

  /** Every worker that is behind (new, restarted, or missed a delta) takes the current state. */
  private broadcastSnapshot(): void {
    this.flush();
    this.stats.snapshots++;
    this.channel.postMessage({ v: this.v, prev: 0, reset: true, nodes: [...(this.nodeSource?.() ?? this.nodes.values())], peers: [...this.peers.values()], topologyLabel: this.o.topologyLabel, claims: this.o.claims });
  }

  plan(task: Omit<PlanTask, 'kind' | 'v'>): Promise<PlanAnswer> {
    return this.run<PlanAnswer>({ ...task, kind: 'plan' });
  }

  /** The topology alone as DOT (the agent's /graph), from the same replica as the plans. */
  graph(task: Omit<GraphTask, 'kind' | 'v'>): Promise<GraphAnswer> {
    return this.run<GraphAnswer>({ ...task, kind: 'graph' });
  }

  private async run<A extends PlanAnswer | GraphAnswer>(task: Omit<PlanTask, 'v'> | Omit<GraphTask, 'v'>): Promise<A> {
    const v = this.flush();
    let a = (await this.pool.run({ ...task, v })) as A;
    // Bounded: a worker that could not catch up gets a broadcast snapshot, twice at most.
    for (let i = 0; i < 2 && !a.ok && 'needSnapshot' in a; i++) {
      this.broadcastSnapshot();
      a = (await this.pool.run({ ...task, v: this.v })) as A;
    }
    return a;
  }

  async close(): Promise<void> {
    this.channel.close();
    await this.pool.destroy();
  }
}
