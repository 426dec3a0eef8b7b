// Messages between the main thread and the piscina planner pool (workers/plan-worker.ts).
//
// Every pool worker holds a replica of the cluster (parsed nodes and peers) fed by deltas over a
// BroadcastChannel, so a plan task carries only a version number and its options, never the
// cluster. Heartbeat-only updates travel as [name, lastSeen] pairs, flushed just before a plan.
// A worker that starts says hello on the channel and the pool broadcasts a snapshot; one that
// misses a delta (a gap in versions) waits for the next snapshot.
import type { NodeObject } from '../plan/node.js';
import type { PeerObject } from '../plan/peer.js';
import type { PlanOptions } from '../plan/plan.js';
import type { DesiredDelta } from './dataplane.js';
import type { ClaimLimits } from '../plan/claims.js';

export interface ReplicaDelta {
  /** The version after this delta; `prev` is the version it applies to. */
  v: number;
  prev: number;
  /** A snapshot: drop everything first. */
  reset?: true;
  nodes?: NodeObject[];
  nodeDeletes?: string[];
  peers?: PeerObject[];
  peerDeletes?: string[];
  /** Heartbeat-only changes: name → last-seen seconds. */
  lastSeen?: [string, number][];
  topologyLabel?: string;
  /** What one node or Peer may claim (--allow-short-prefixes); set with the label. */
  claims?: ClaimLimits;
}

export interface PlanTask {
  kind: 'plan';
  /** The replica version the plan must see. */
  v: number;
  options: PlanOptions;
  /** Base64 private key of the local node (only for the agent's own plan). */
  privateKey?: string | null;
  /** DNS endpoint text → resolved IP text. */
  resolved?: [string, string][];
  /**
   * The local WireGuard device's peers (public key, current endpoint, last handshake in Unix
   * seconds): the worker turns them into the local node's discovered endpoints (design §6.7).
   */
  observed?: { publicKey: string; endpoint: string | null; lastHandshake: number }[] | null;
  /**
   * Produce the dataplane's desired state. The worker keeps the last state it produced for this
   * node; when the I/O worker holds that state (`baseSeq`), the answer is a delta against it
   * (O(changed) to move and to apply), otherwise the whole state as JSON text.
   */
  desired?: { cniPath: string | null; tunnelPrivIface: string | null; baseSeq: number | null };
  /** Include the full plan JSON (kg plan format) in the answer. */
  describe?: boolean;
  /**
   * false: the memoised full plan, even where an incremental re-plan (plan/replan.ts) would do;
   * a benchmark's same-run baseline.
   */
  incremental?: boolean;
}

/**
 * The agent's `/graph`: the topology alone as Graphviz DOT (design §13.1.1), no routes, rules or
 * WireGuard, at most `maxLength` characters.
 */
export interface GraphTask {
  kind: 'graph';
  v: number;
  options: PlanOptions;
  maxLength: number;
}

/** `dot` is null when the local node is not ready (no graph, as in Go). */
export type GraphAnswer = { ok: true; dot: string | null } | { ok: false; needSnapshot: true } | { ok: false; error: string; tooLarge?: true };

export interface PlanSummary {
  hostname: string;
  ready: boolean;
  leader: boolean;
  location: string;
  wireGuardCIDR: string;
  readyNodes: number;
  readyPeers: number;
  wgPeers: number;
  routes: number;
  rules: number;
  iptablesRules: number;
  warnings: string[];
  /** The `kilo.squat.ai/discovered-endpoints` value to publish (design §6.7), when observed was given. */
  discoveredEndpoints: string | null;
  /**
   * Ready nodes with a persistent keepalive plus ready Peers: the only ones NAT discovery can
   * yield an endpoint for (design §6.7). With none, the agent need not read the device for it.
   */
  natCandidates: number;
}

export type PlanAnswer =
  | {
      ok: true;
      summary: PlanSummary;
      /** The whole desired state (JSON text of a DesiredState), numbered `seq`. */
      full?: string;
      /** Or a delta from `baseSeq` to `seq`. */
      delta?: DesiredDelta;
      /** Nothing changed since `baseSeq`: no I/O needed. */
      noop?: true;
      seq?: number;
      plan?: string;
      planMs: number;
      parseMs: number;
      /** V8 heap in use by the planner worker that answered. */
      heapBytes?: number;
      /**
       * The re-plan was incremental (plan/replan.ts), or why it was a full plan: the fallbacks,
       * for logs and metrics. Absent for a described plan.
       */
      replan?: { incremental: true } | { incremental: false; reason: string };
    }
  | { ok: false; needSnapshot: true }
  | { ok: false; error: string };
