#!/usr/bin/env node
// `npm run loadtest -- --nodes 5000 --scenario churn`: the load test (loadtest/loadtest.ts) from
// the command line. Writes <out>/results.json and <out>/report.html. Bounded by --timeout; on
// Ctrl-C or the timeout the namespaces and processes are torn down before exiting.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { commandFlags, type FlagDef } from '../main/flags.js';
import { runLoadTest } from './loadtest.js';
import { SCENARIOS, type LoadTestOptions, type Scenario } from './types.js';
import { renderReport } from './report.js';
import { Mesh } from './mesh/harness.js';

const FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '5000', usage: 'Cluster size, real agents included.' },
  { name: 'locations', type: 'string', default: '50', usage: 'Locations of the simulated nodes.' },
  { name: 'peers', type: 'string', default: '100', usage: 'Peers.' },
  { name: 'agents', type: 'string', default: '1', usage: 'Real kg agents, each in its own namespaces.' },
  { name: 'scenario', type: 'string', default: 'all', usage: `Comma-separated: ${SCENARIOS.join(', ')}, or all.` },
  { name: 'granularity', type: 'string', default: 'location', usage: 'location | full | cross.' },
  { name: 'heartbeat', type: 'string', default: 'both', usage: 'kilo | adaptive | both (both: steady runs once per mode).' },
  { name: 'heartbeat-budget', type: 'string', default: '15', usage: 'Adaptive mode\'s cluster-wide writes/s.' },
  { name: 'duration', type: 'string', default: '60', usage: 'Seconds per scenario.' },
  { name: 'rate', type: 'string', default: '10', usage: 'Node changes per second in churn.' },
  { name: 'soak', type: 'string', default: '0', usage: 'An extra steady phase of this many seconds for the RSS trend.' },
  { name: 'fleet-threads', type: 'string', default: '2', usage: 'Fleet planner threads, the calling thread included (2: it and one worker).' },
  { name: 'fleet', type: 'string', default: 'each', usage: 'each|end: fleet check after every scenario or only at the end.' },
  { name: 'no-baseline', type: 'bool', default: false, usage: 'Skip the one-thread fleet plan.' },
  { name: 'timeout', type: 'string', default: '', usage: 'Hard limit in seconds for the whole run (default: an estimate from the above).' },
  { name: 'out', type: 'string', default: '', usage: 'Results directory (default /tmp/kg-loadtest/<timestamp>).' },
  { name: 'iptables-layout', type: 'string', default: 'sets', usage: 'The agents\' --iptables-layout: sets or kilo.' },
  { name: 'agent-flags', type: 'string', default: '', usage: 'Extra flags for the agents, space-separated (e.g. "--min-sync-interval 20ms").' },
  { name: 'prefix', type: 'string', default: 'kglt', usage: 'Namespace name prefix.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const USAGE = 'npm run loadtest -- [flags]   (node dist/loadtest/run.js [flags])';
const values = commandFlags(process.argv.slice(2), FLAGS, USAGE,
  'The load test: the API simulator with N nodes, real kg agents in network namespaces, the scenarios\nin turn, a fleet check after each; writes results.json and report.html (needs root, wireguard-go).') as Record<string, string> & { 'no-baseline': boolean };
const num = (name: string, min: number, max: number): number => {
  const v = Number(values[name as keyof typeof values]);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`invalid --${name} ${values[name as keyof typeof values]}: expected a number in ${min}..${max}\nRun with --help for usage.`);
    process.exit(2);
  }
  return v;
};
const scenarios = values.scenario === 'all' ? [...SCENARIOS] : values.scenario.split(',').map((s) => s.trim());
for (const s of scenarios) {
  if (!(SCENARIOS as readonly string[]).includes(s)) {
    console.error(`unknown scenario "${s}"; possible values: ${SCENARIOS.join(', ')}, all`);
    process.exit(2);
  }
}
if (values.granularity !== 'location' && values.granularity !== 'full' && values.granularity !== 'cross') {
  console.error(`invalid --granularity ${values.granularity}: expected location, full or cross`);
  process.exit(2);
}
if (!['kilo', 'adaptive', 'both'].includes(values.heartbeat)) {
  console.error(`invalid --heartbeat ${values.heartbeat}: expected kilo, adaptive or both`);
  process.exit(2);
}
if (values.fleet !== 'each' && values.fleet !== 'end') {
  console.error(`invalid --fleet ${values.fleet}: expected each or end`);
  process.exit(2);
}
if (values['iptables-layout'] !== 'sets' && values['iptables-layout'] !== 'kilo') {
  console.error(`invalid --iptables-layout ${values['iptables-layout']}: expected sets or kilo`);
  process.exit(2);
}
if (!/^[a-z][a-z0-9]{0,7}$/.test(values.prefix)) {
  console.error(`invalid --prefix ${values.prefix}: 1-8 lower-case letters and digits`);
  process.exit(2);
}
const o: LoadTestOptions = {
  nodes: num('nodes', 2, 20_000), locations: num('locations', 1, 4000), peers: num('peers', 0, 10_000), agents: num('agents', 1, 16),
  scenarios: scenarios as Scenario[], granularity: values.granularity as 'location' | 'full' | 'cross', heartbeat: values.heartbeat === 'adaptive' ? 'adaptive' : 'kilo',
  compareHeartbeat: values.heartbeat === 'both', heartbeatBudget: num('heartbeat-budget', 0.1, 1e6), durationS: num('duration', 1, 86_400),
  rate: num('rate', 0.1, 1000), fleetEach: values.fleet === 'each', fleetThreads: num('fleet-threads', 1, 64), fleetBaseline: !values['no-baseline'],
  soakS: num('soak', 0, 86_400), prefix: values.prefix, agentFlags: values['agent-flags'].split(' ').filter(Boolean), iptablesLayout: values['iptables-layout'] as 'sets' | 'kilo', log: (l) => console.log(l),
};
// Set-up (keys for N nodes, the agents' cold start) plus each phase and its fleet checks.
const estimate = 300 + o.nodes / 20 + (o.scenarios.length + (o.compareHeartbeat ? 1 : 0)) * (o.durationS + 120 + (o.fleetEach ? o.nodes / 50 : 0)) + o.soakS + o.nodes / 25;
const timeoutS = values.timeout ? num('timeout', 10, 7 * 86_400) : Math.ceil(estimate);
// Outside the checkout by default: results are not sources.
const out = values.out || join(tmpdir(), 'kg-loadtest', new Date().toISOString().replace(/[:.]/g, '-'));

// Tear-down on Ctrl-C and on the hard timeout: a mesh object with the same prefix removes by name.
let exiting = false;
const bail = async (why: string, code: number) => {
  if (exiting) return;
  exiting = true;
  console.error(`\n${why}: tearing down the ${o.prefix}-* namespaces`);
  await new Mesh({ prefix: o.prefix, nodes: Array.from({ length: o.agents }, (_, i) => ({ name: `kg-${i}`, location: `agents-${i}` })) }).down().catch(() => {});
  process.exit(code);
};
process.on('SIGINT', () => void bail('interrupted', 130));
process.on('SIGTERM', () => void bail('terminated', 143));
const hard = setTimeout(() => void bail(`hard timeout after ${timeoutS} s`, 124), timeoutS * 1000);
hard.unref();

console.log(`load test: ${JSON.stringify({ ...o, log: undefined })}; hard timeout ${timeoutS} s; results in ${out}`);
const r = await runLoadTest(o);
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'results.json'), JSON.stringify(r, null, 1));
writeFileSync(join(out, 'report.html'), renderReport(r));
console.log(`${r.ok ? 'PASS' : 'FAIL'}: ${r.checks.filter((c) => !c.ok).length} of ${r.checks.length} checks failed; ${join(out, 'results.json')}, ${join(out, 'report.html')}`);
process.exit(r.ok ? 0 : 1);
