#!/usr/bin/env node
// `npm run loadtest -- --nodes 5000 --scenario churn`: the load test (loadtest/loadtest.ts) from
// the command line. Writes <out>/results.json and <out>/report.html. Bounded by --timeout; on
// Ctrl-C or the timeout the namespaces and processes are torn down before exiting.
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import { parseArgs } from 'node:util';
import { runLoadTest, SCENARIOS, type LoadTestOptions, type Scenario } from './loadtest.js';
import { renderReport } from './report.js';
import { Mesh } from './mesh/harness.js';

const USAGE = `usage: npm run loadtest -- [options]
  --nodes N            cluster size, real agents included (default 5000)
  --locations N        locations of the simulated nodes (default 50)
  --peers N            Peers (default 100)
  --agents N           real kg agents, each in its own namespaces (default 1)
  --scenario LIST      comma-separated: ${SCENARIOS.join(', ')}, or all (default all)
  --granularity G      location | full (default location)
  --heartbeat M        kilo | adaptive | both (both: steady runs once per mode; default both)
  --heartbeat-budget W adaptive mode's cluster-wide writes/s (default 15)
  --duration S         seconds per scenario (default 60)
  --rate R             node changes per second in churn (default 10)
  --soak S             an extra steady phase of S seconds for the RSS trend (default 0)
  --fleet-threads T    fleet planner pool size (default 2)
  --fleet each|end     fleet check after every scenario or only at the end (default each)
  --no-baseline        skip the one-thread fleet plan
  --timeout S          hard limit for the whole run (default: an estimate from the above)
  --out DIR            results directory (default /tmp/kg-loadtest/<timestamp>)
  --prefix P           namespace name prefix (default kglt)`;

const { values } = parseArgs({
  options: {
    nodes: { type: 'string', default: '5000' }, locations: { type: 'string', default: '50' }, peers: { type: 'string', default: '100' },
    agents: { type: 'string', default: '1' }, scenario: { type: 'string', default: 'all' }, granularity: { type: 'string', default: 'location' },
    heartbeat: { type: 'string', default: 'both' }, 'heartbeat-budget': { type: 'string', default: '15' }, duration: { type: 'string', default: '60' },
    rate: { type: 'string', default: '10' }, soak: { type: 'string', default: '0' }, 'fleet-threads': { type: 'string', default: '2' },
    fleet: { type: 'string', default: 'each' }, 'no-baseline': { type: 'boolean', default: false }, timeout: { type: 'string' },
    out: { type: 'string' }, prefix: { type: 'string', default: 'kglt' }, help: { type: 'boolean', short: 'h', default: false },
  },
});
if (values.help) {
  console.log(USAGE);
  process.exit(0);
}
const num = (name: string, min: number, max: number): number => {
  const v = Number(values[name as keyof typeof values]);
  if (!Number.isFinite(v) || v < min || v > max) {
    console.error(`invalid --${name} ${values[name as keyof typeof values]}: expected a number in ${min}..${max}\n${USAGE}`);
    process.exit(2);
  }
  return v;
};
const scenarios = values.scenario === 'all' ? [...SCENARIOS] : values.scenario!.split(',').map((s) => s.trim());
for (const s of scenarios) {
  if (!(SCENARIOS as readonly string[]).includes(s)) {
    console.error(`unknown scenario "${s}"; possible values: ${SCENARIOS.join(', ')}, all`);
    process.exit(2);
  }
}
if (values.granularity !== 'location' && values.granularity !== 'full') {
  console.error(`invalid --granularity ${values.granularity}: expected location or full`);
  process.exit(2);
}
if (!['kilo', 'adaptive', 'both'].includes(values.heartbeat!)) {
  console.error(`invalid --heartbeat ${values.heartbeat}: expected kilo, adaptive or both`);
  process.exit(2);
}
if (values.fleet !== 'each' && values.fleet !== 'end') {
  console.error(`invalid --fleet ${values.fleet}: expected each or end`);
  process.exit(2);
}
if (!/^[a-z][a-z0-9]{0,7}$/.test(values.prefix!)) {
  console.error(`invalid --prefix ${values.prefix}: 1-8 lower-case letters and digits`);
  process.exit(2);
}
const o: LoadTestOptions = {
  nodes: num('nodes', 2, 20_000), locations: num('locations', 1, 4000), peers: num('peers', 0, 10_000), agents: num('agents', 1, 16),
  scenarios: scenarios as Scenario[], granularity: values.granularity, heartbeat: values.heartbeat === 'adaptive' ? 'adaptive' : 'kilo',
  compareHeartbeat: values.heartbeat === 'both', heartbeatBudget: num('heartbeat-budget', 0.1, 1e6), durationS: num('duration', 1, 86_400),
  rate: num('rate', 0.1, 1000), fleetEach: values.fleet === 'each', fleetThreads: num('fleet-threads', 1, 64), fleetBaseline: !values['no-baseline'],
  soakS: num('soak', 0, 86_400), prefix: values.prefix!, log: (l) => console.log(l),
};
// Set-up (keys for N nodes, the agents' cold start) plus each phase and its fleet checks.
const estimate = 300 + o.nodes / 20 + (o.scenarios.length + (o.compareHeartbeat ? 1 : 0)) * (o.durationS + 120 + (o.fleetEach ? o.nodes / 50 : 0)) + o.soakS + o.nodes / 25;
const timeoutS = values.timeout ? num('timeout', 10, 7 * 86_400) : Math.ceil(estimate);
// Outside the checkout by default: results are not sources.
const out = values.out ?? join(tmpdir(), 'kg-loadtest', new Date().toISOString().replace(/[:.]/g, '-'));

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
