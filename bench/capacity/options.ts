// `kg bench` flags: the cluster shape (or files), the agent settings that change the dataplane,
// and what to measure. Parsed with the agent's own flag parser so errors read the same.
import { STRATEGIES, type Strategy } from '../../plan/encapsulation.js';
import { HEARTBEAT_MODES, DEFAULT_HEARTBEAT_BUDGET, KILO_CHECK_IN_SECONDS, type HeartbeatMode } from '../../plan/heartbeat.js';
import type { Granularity } from '../../plan/types.js';
import { FlagError, parseFlags, type FlagDef } from '../../main/flags.js';

export const BENCH_FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'int', default: 5000, usage: 'Nodes in the synthetic cluster.' },
  { name: 'locations', type: 'int', default: 50, usage: 'Locations (values of the topology label) the nodes are spread over.' },
  { name: 'peers', type: 'int', default: 100, usage: 'Kilo Peers (VPN clients) in the synthetic cluster.' },
  { name: 'granularity', type: 'string', default: 'location', usage: 'Mesh granularity: location, full or cross.' },
  { name: 'encapsulate', type: 'string', default: 'always', usage: 'Encapsulation within a location: never, crosssubnet or always.' },
  { name: 'heartbeat', type: 'string', default: 'kilo', usage: 'Heartbeat mode to highlight: kilo or adaptive (both are reported).' },
  { name: 'heartbeat-budget', type: 'int', default: DEFAULT_HEARTBEAT_BUDGET, usage: 'Adaptive heartbeat: cluster-wide Node writes per second.' },
  { name: 'nodes-file', type: 'string', default: '', usage: 'Read the Nodes from this file (kubectl get nodes -o json|yaml) instead of generating them.' },
  { name: 'peers-file', type: 'string', default: '', usage: 'Read the Peers from this file (with --nodes-file).' },
  { name: 'topology-label', type: 'string', default: 'topology.kubernetes.io/region', usage: 'Node label that groups nodes into locations.' },
  { name: 'now', type: 'string', default: '', usage: 'Unix seconds used as the clock for readiness with --nodes-file (default: the real clock).' },
  { name: 'kernel', type: 'bool', default: true, usage: 'Measure kernel writes in a scratch network namespace (needs root).' },
  { name: 'fleet', type: 'string', default: 'auto', usage: 'Fleet planning throughput (every node planned, pool against one thread): auto (only when it fits ~15 s), on or off.' },
  { name: 'sweep', type: 'string', default: '', usage: 'Comma-separated node counts to run in turn (e.g. 100,1000,5000,10000); writes SVG charts and a table.' },
  { name: 'out-dir', type: 'string', default: 'kg-bench', usage: 'Directory for the sweep report (index.html, report.md, *.svg, results.json).' },
  { name: 'time-budget', type: 'int', default: 1000, usage: 'Milliseconds of CPU time mitata spends on each plan-time measurement.' },
  { name: 'output', short: 'o', type: 'string', default: 'table', usage: 'Output format: table, json or markdown.' },
];

export interface BenchConfig {
  nodes: number;
  locations: number;
  peers: number;
  granularity: Granularity;
  encapsulate: Strategy;
  heartbeat: HeartbeatMode;
  heartbeatBudget: number;
  checkInPeriodSeconds: number;
  nodesFile: string;
  peersFile: string;
  topologyLabel: string;
  /** Unix seconds for readiness; null = real clock (files) or the synthetic clock. */
  now: number | null;
  kernel: boolean;
  fleet: 'auto' | 'on' | 'off';
  sweep: number[];
  outDir: string;
  timeBudgetMs: number;
  output: 'table' | 'json' | 'markdown';
}

const oneOf = <T extends string>(name: string, v: string, allowed: readonly T[]): T => {
  if (!(allowed as readonly string[]).includes(v)) throw new FlagError(`invalid --${name} "${v}"; possible values are: ${allowed.join(', ')}`);
  return v as T;
};

function positiveInt(name: string, v: number, min: number, max = 1_000_000): number {
  if (!Number.isInteger(v) || v < min || v > max) throw new FlagError(`invalid --${name} ${v}: expected an integer from ${min} to ${max}`);
  return v;
}

export function parseBenchFlags(argv: string[]): BenchConfig {
  const { values, set, positionals } = parseFlags(argv, BENCH_FLAGS);
  if (positionals.length > 0) throw new FlagError(`unexpected argument "${positionals[0]}"`);
  const nodesFile = values['nodes-file'] as string;
  const peersFile = values['peers-file'] as string;
  if (peersFile && !nodesFile) throw new FlagError('--peers-file needs --nodes-file');
  if (nodesFile && (set.has('nodes') || set.has('locations') || set.has('peers') || set.has('sweep'))) {
    throw new FlagError('--nodes-file describes the cluster: do not combine it with --nodes, --locations, --peers or --sweep');
  }
  const nodes = positiveInt('nodes', values.nodes as number, 2, 50_000);
  const locations = positiveInt('locations', values.locations as number, 1, 50_000);
  if (!nodesFile && locations > nodes) throw new FlagError(`invalid --locations ${locations}: more locations than --nodes ${nodes}`);
  const sweepText = values.sweep as string;
  const sweep = sweepText === '' ? [] : sweepText.split(',').map((s) => {
    if (!/^[0-9]+$/.test(s.trim())) throw new FlagError(`invalid --sweep "${sweepText}": expected comma-separated node counts`);
    return positiveInt('sweep', Number(s.trim()), 2, 50_000);
  });
  let now: number | null = null;
  if (values.now !== '') {
    if (!/^[0-9]+$/.test(values.now as string)) throw new FlagError(`invalid --now "${values.now}": expected Unix seconds`);
    now = Number(values.now);
  }
  return {
    nodes, locations,
    peers: positiveInt('peers', values.peers as number, 0, 50_000),
    granularity: oneOf('granularity', values.granularity as string, ['location', 'full', 'cross'] as const),
    encapsulate: oneOf('encapsulate', values.encapsulate as string, STRATEGIES),
    heartbeat: oneOf('heartbeat', values.heartbeat as string, HEARTBEAT_MODES),
    heartbeatBudget: positiveInt('heartbeat-budget', values['heartbeat-budget'] as number, 1),
    checkInPeriodSeconds: KILO_CHECK_IN_SECONDS,
    nodesFile, peersFile,
    topologyLabel: values['topology-label'] as string,
    now,
    kernel: values.kernel as boolean,
    fleet: oneOf('fleet', values.fleet as string, ['auto', 'on', 'off'] as const),
    sweep,
    outDir: values['out-dir'] as string,
    timeBudgetMs: positiveInt('time-budget', values['time-budget'] as number, 10, 600_000),
    output: oneOf('output', values.output as string, ['table', 'json', 'markdown'] as const),
  };
}
