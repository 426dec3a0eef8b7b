// Heartbeat (check-in) policy: how often a node publishes kilo.squat.ai/last-seen, and how long
// readers wait before they call it not ready; shared by the agent, the load test and `kg bench`.
// `kilo` (default) is Go Kilo's fixed 30 s / 60 s (design §2.4.1, §11.4). `adaptive` (all-kg
// clusters only: a Go agent ignores the advertised period) keeps the cluster under a write
// budget (README, "Heartbeat modes", has the numbers).

/** kg's own annotation: the node's check-in period in whole seconds (absent = Kilo's 30 s). */
export const CHECK_IN_PERIOD_ANNOTATION = 'kilo.squat.ai/check-in-period';

export type HeartbeatMode = 'kilo' | 'adaptive';
export const HEARTBEAT_MODES: readonly HeartbeatMode[] = ['kilo', 'adaptive'];

/** Kilo's check-in period and readiness window (design §2.4.1: strictly less than 60 s). */
export const KILO_CHECK_IN_SECONDS = 30;
export const READY_WINDOW_SECONDS = 2 * KILO_CHECK_IN_SECONDS;
/** The longest adaptive period: a dead node is dropped after at most twice this. */
export const MAX_CHECK_IN_SECONDS = 600;
/** Default cluster-wide budget of heartbeat writes per second in adaptive mode. */
export const DEFAULT_HEARTBEAT_BUDGET = 15;

export interface HeartbeatPolicy {
  mode: HeartbeatMode;
  /** The minimum (kilo: the only) period, seconds. */
  minPeriodSeconds: number;
  /** Cluster-wide heartbeat writes per second that adaptive mode aims to stay under. */
  budget: number;
}

/** The period a node with this policy checks in at, in a cluster of `nodeCount` nodes. */
export function checkInPeriodSeconds(p: HeartbeatPolicy, nodeCount: number): number {
  if (p.mode === 'kilo') return p.minPeriodSeconds;
  const want = Math.ceil(Math.max(1, nodeCount) / Math.max(p.budget, 1e-9));
  return Math.min(MAX_CHECK_IN_SECONDS, Math.max(p.minPeriodSeconds, want));
}

/**
 * Whether an advertised period should be re-published: only when it moved by more than 10 %
 * (or the mode changed), so that a cluster growing by one node does not make every node write.
 */
export function periodChanged(advertised: number, next: number): boolean {
  if (advertised <= 0) return next !== KILO_CHECK_IN_SECONDS;
  return Math.abs(next - advertised) > advertised / 10;
}

/**
 * The period a node advertises next, given the one it advertises now (0: none, so Kilo's 30 s and
 * a Go-identical Node): always 0 in kilo mode; in adaptive mode the period for this cluster size,
 * re-published only when it moved by more than 10 % (periodChanged).
 */
export function nextAdvertised(p: HeartbeatPolicy, advertised: number, nodeCount: number): number {
  if (p.mode !== 'adaptive') return 0;
  const period = checkInPeriodSeconds(p, nodeCount);
  return periodChanged(advertised, period) ? period : advertised;
}

/**
 * The readiness window of a node (seconds) from its advertised period: Kilo's 60 s unless it
 * advertises a longer period. A malformed or shorter value never shortens the window, so a bad
 * annotation cannot make a node flap.
 */
export function readyWindowSeconds(advertised: string | undefined): number {
  if (advertised === undefined || !/^[0-9]{1,6}$/.test(advertised)) return READY_WINDOW_SECONDS;
  const s = Math.min(Number(advertised), MAX_CHECK_IN_SECONDS);
  return Math.max(READY_WINDOW_SECONDS, 2 * s);
}

/** API-server load of a heartbeat mode (pure arithmetic over measured sizes). */
export interface HeartbeatLoad {
  mode: HeartbeatMode;
  periodSeconds: number;
  /** Node writes per second, cluster-wide. */
  writesPerSecond: number;
  /** Watch events per second the API server sends: every write reaches every Node watcher. */
  watchEventsPerSecond: number;
  /** Bytes per second of those watch events (one Node object each). */
  watchBytesPerSecond: number;
  /** Longest time before readers drop a dead node. */
  detectionSeconds: number;
}

export function heartbeatLoad(p: HeartbeatPolicy, nodeCount: number, nodeWatchers: number, nodeObjectBytes: number): HeartbeatLoad {
  const periodSeconds = checkInPeriodSeconds(p, nodeCount);
  const writesPerSecond = nodeCount / periodSeconds;
  const watchEventsPerSecond = writesPerSecond * nodeWatchers;
  return {
    mode: p.mode,
    periodSeconds,
    writesPerSecond,
    watchEventsPerSecond,
    watchBytesPerSecond: watchEventsPerSecond * nodeObjectBytes,
    detectionSeconds: p.mode === 'kilo' ? READY_WINDOW_SECONDS : Math.max(READY_WINDOW_SECONDS, 2 * periodSeconds),
  };
}
