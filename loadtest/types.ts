// The load test's options and results (results.json, read by report.ts).
import type { HeartbeatMode } from '../plan/heartbeat.js';
import type { VerifyReport } from './fleet/verify.js';

export const SCENARIOS = ['steady', 'churn', 'leader-loss', 'peers-keys', 'api-faults'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface LoadTestOptions {
  nodes: number;
  locations: number;
  peers: number;
  agents: number;
  scenarios: Scenario[];
  granularity: 'location' | 'full' | 'cross';
  heartbeat: HeartbeatMode;
  /** Also measure the other heartbeat mode's API load in a steady phase (simulated nodes). */
  compareHeartbeat: boolean;
  heartbeatBudget: number;
  /** Seconds per scenario. */
  durationS: number;
  /** Node changes per second in churn. */
  rate: number;
  /** Fleet check after every scenario (else only at the end). */
  fleetEach: boolean;
  fleetThreads: number;
  /** Also time the fleet plan with one thread (the baseline). */
  fleetBaseline: boolean;
  /** Extra steady soak (seconds) for the RSS trend; 0 = none. */
  soakS: number;
  prefix: string;
  /** Extra flags for the agents, after the load test's own. */
  agentFlags?: string[];
  /** The agents' --iptables-layout (default sets). */
  iptablesLayout?: 'sets' | 'kilo';
  log: (line: string) => void;
}

export interface LatencySample {
  scenario: string;
  what: string;
  ms: number;
  /** When the change was made, seconds from the run's start. */
  t?: number;
}

export interface PhaseResult {
  scenario: string;
  heartbeat: HeartbeatMode;
  seconds: number;
  changes: number;
  latency: { n: number; missed: number; p50: number | null; p95: number | null; p99: number | null; max: number | null };
  agent: { cpuPercent: number; rssStartMB: number; rssEndMB: number; eventsReceived: Record<string, number>; plans: number; coalescing: number | null; kernelOps: Record<string, number>; watchBytes: number; relists: number };
  api: { requests: number; requestsPerAgent: number; writes: number; writesPerSecond: number; heartbeatWritesPerSecond: number; watchEvents: number; watchEventsPerSecond: number; watchBytesPerSecond: number; watchers: number; heartbeatPeriodSeconds: number; faults: Record<string, number> };
  fleet: FleetCheck | null;
  kernelEqualsPlan: { agent: string; ok: boolean; diffs: string[]; waitedMs: number }[];
}

export interface FleetCheck {
  ok: boolean;
  threads: number;
  planMs: number;
  verifyMs: number;
  report: Omit<VerifyReport, 'examples'> & { examples: string[] };
}

export interface Results {
  version: 1;
  startedAt: string;
  options: Omit<LoadTestOptions, 'log'>;
  machine: { cpus: number; loadAvg: number[] };
  coldStartMs: number[];
  phases: PhaseResult[];
  heartbeatModes: { mode: HeartbeatMode; periodSeconds: number; writesPerSecond: number; watchEventsPerSecond: number; watchBytesPerSecond: number; watchers: number; perWatcherEventsPerSecond: number; modelWritesPerSecond: number; fanOutAt5000: { watchEventsPerSecond: number; watchBytesPerSecond: number } }[];
  fleetTiming: { threads1: { planMs: number; verifyMs: number } | null; pool: { threads: number; planMs: number; verifyMs: number } | null; speedup: number | null };
  samples: { t: number; agent: string; cpuPercent: number; rssMB: number }[];
  rates: { t: number; events: number; plans: number; kernelWrites: number; apiWrites: number }[];
  /** The load test's own /metrics scrapes of the agents: when, how long the agent took to answer, how big. */
  scrapes: { t: number; agent: string; ms: number; bytes: number }[];
  latencies: LatencySample[];
  /** Changes never seen in an agent's kernel within 30 s. */
  missed: { scenario: string; what: string; agent: string; change: string }[];
  /** Every assertion the run makes about correctness; `ok` is their conjunction. */
  checks: { name: string; ok: boolean; detail: string }[];
  ok: boolean;
}
