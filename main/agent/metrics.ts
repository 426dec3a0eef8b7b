// The agent's metrics (prom-client, main thread only). Kilo's names and help strings
// (design §13.2) so dashboards keep working, plus kg's pipeline metrics. Workers send their
// counters back in replies; prom-client does not aggregate across threads. The I/O worker's
// counters (kilo_iptables_operations_total, kg_dataplane_*) are registered by workers/io-client.ts.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { ReflectorStats } from '../../watch/reflector.js';

export function createMetrics() {
  const registry = new Registry();
  // The event-loop-lag histogram samples with a timer: prom-client's default (10 ms) keeps an
  // idle agent busy; every 100 ms still sees any stall that matters to a network agent.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 100 });
  // prom-client names three gauges `*_total`, which the exposition format reserves for counters
  // (promtool rejects them); their `nodejs_active_*` twins without the suffix stay.
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  const m = {
    registry,
    errors: new Counter({ name: 'kilo_errors_total', help: 'Number of errors that occurred while administering the mesh.', labelNames: ['event'], registers: [registry] }),
    leader: new Gauge({ name: 'kilo_leader', help: 'Leadership status of the node.', registers: [registry] }),
    nodes: new Gauge({ name: 'kilo_nodes', help: 'Number of nodes in the mesh.', registers: [registry] }),
    peers: new Gauge({ name: 'kilo_peers', help: 'Number of peers in the mesh.', registers: [registry] }),
    reconciles: new Counter({ name: 'kilo_reconciles_total', help: 'Number of reconciliation attempts.', registers: [registry] }),
    planDuration: new Histogram({
      name: 'kg_plan_duration_seconds', help: 'Time to compute one plan in the planner pool.',
      buckets: [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1], registers: [registry],
    }),
    applyDuration: new Histogram({
      name: 'kg_apply_duration_seconds', help: 'Time for the I/O worker to bring the kernel to a plan.',
      buckets: [0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5], registers: [registry],
    }),
    eventToProgrammed: new Histogram({
      name: 'kg_event_to_programmed_seconds', help: 'Network programming latency: from a watch event to the kernel state that reflects it.',
      buckets: [0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10], registers: [registry],
    }),
    batchSize: new Histogram({
      name: 'kg_coalesced_batch_size', help: 'Watch events coalesced into one plan.',
      buckets: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000], registers: [registry],
    }),
    pendingChanges: new Gauge({ name: 'kg_pending_changes', help: 'Changes waiting for the next plan.', registers: [registry] }),
    // The process metrics count the main thread's heap only; each worker is an isolate of its own.
    plannerHeap: new Gauge({ name: 'kg_planner_heap_bytes', help: 'V8 heap in use by the planner worker that answered last.', registers: [registry] }),
    events: new Counter({ name: 'kg_watch_events_total', help: 'Watch events received, by resource and kind of change.', labelNames: ['resource', 'change'], registers: [registry] }),
    watchRestarts: new Counter({ name: 'kg_watch_restarts_total', help: 'Watches restarted (server timeout, silence, errors).', labelNames: ['resource'], registers: [registry] }),
    relists: new Counter({ name: 'kg_watch_relists_total', help: 'Full lists completed (start-up, 410 Gone, invalid responses).', labelNames: ['resource'], registers: [registry] }),
    watchBytes: new Counter({ name: 'kg_watch_bytes_total', help: 'Bytes received on watch streams.', labelNames: ['resource'], registers: [registry] }),
    invalidResponses: new Counter({
      name: 'kg_watch_invalid_responses_total', help: 'List and watch responses that could not be used (too long, undecodable, incomplete), by reason; each one restarts the watch with a relist.',
      labelNames: ['resource', 'reason'], registers: [registry],
    }),
    keyFileErrors: new Counter({ name: 'kg_key_file_errors_total', help: 'Problems found with the private key file at start-up (invalid: kept aside and replaced; leftover_temp: an interrupted write cleaned up).', labelNames: ['reason'], registers: [registry] }),
    plans: new Counter({ name: 'kg_plans_total', help: 'Plans computed.', labelNames: ['result'], registers: [registry] }),
    replans: new Counter({ name: 'kg_replans_total', help: 'Plans by kind: incremental, or full with the reason the incremental re-plan fell back (plan/replan.ts).', labelNames: ['kind', 'reason'], registers: [registry] }),
    ioQueueDepth: new Gauge({ name: 'kg_io_queue_depth', help: 'Desired states waiting for the I/O worker.', registers: [registry] }),
    annotationWarnings: new Counter({ name: 'kg_annotation_warnings_total', help: 'Malformed annotations or Peers (ignored as Kilo ignores them), and claims over kg\'s caps; each counted once, when it first appears.', registers: [registry] }),
    currentWarnings: new Gauge({ name: 'kg_annotation_warnings', help: 'Planner warnings in the last plan (malformed annotations or Peers, claims over the caps).', registers: [registry] }),
    heartbeats: new Counter({ name: 'kg_heartbeats_total', help: 'Heartbeat (check-in) writes of the local node.', labelNames: ['result'], registers: [registry] }),
    dualStackDisabled: new Gauge({ name: 'kg_dual_stack_disabled', help: '1 when --dual-stack-subnet is IPv6 but this kernel or network namespace has IPv6 disabled, so only the IPv4 half runs (design §20.8).', registers: [registry] }),
    dnsFailures: new Counter({ name: 'kg_dns_failures_total', help: 'DNS endpoint resolutions that failed.', registers: [registry] }),
  };
  return m;
}

export type Metrics = ReturnType<typeof createMetrics>;

type WatchStats = Pick<ReflectorStats, 'watchRestarts' | 'watchErrors' | 'lists' | 'bytes' | 'invalid'>;

/** Reflector counters → prom-client, as the increase since the last export. */
export class WatchMetricsExport {
  private readonly last = new Map<string, { restarts: number; lists: number; bytes: number; invalid: Record<string, number> }>();

  constructor(private readonly m: Metrics) {}

  export(resource: 'node' | 'peer', st: WatchStats): void {
    const m = this.m;
    let e = this.last.get(resource);
    if (!e) this.last.set(resource, (e = { restarts: 0, lists: 0, bytes: 0, invalid: {} }));
    const restarts = st.watchRestarts + st.watchErrors;
    if (restarts > e.restarts) m.watchRestarts.labels(resource).inc(restarts - e.restarts);
    // Every completed list (start-up, 410, invalid response) is one relist.
    if (st.lists > e.lists) m.relists.labels(resource).inc(st.lists - e.lists);
    if (st.bytes > e.bytes) m.watchBytes.labels(resource).inc(st.bytes - e.bytes);
    for (const [reason, n] of Object.entries(st.invalid)) {
      if (n > (e.invalid[reason] ?? 0)) m.invalidResponses.labels(resource, reason).inc(n - (e.invalid[reason] ?? 0));
      e.invalid[reason] = n;
    }
    e.restarts = restarts;
    e.lists = st.lists;
    e.bytes = st.bytes;
  }
}
