// Benchmark: does a burst of /graph requests delay reconciles? One real kg in a network namespace
// (as in bench/agent.ts) in a simulated N-node cluster. Event → programmed latency of one-node
// changes (PATCH leaves the client → the route is in the kernel) is measured with no traffic,
// then while a client in the node's namespace keeps --burst concurrent requests in flight, each
// with a unique query string: first on /health (what the requests cost by themselves, the floor),
// then on /graph. With --baseline, the same is run against
// another build (e.g. main's) in the same run, one after the other, so the two can be compared.
//
//   node dist/bench/graph-burst.js [--nodes 5000] [--format dot] [--baseline /tmp/kg-main/dist] …
//   node dist/bench/graph-burst.js --help
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { commandFlags, FlagError, type FlagDef } from '../main/flags.js';
import { RouteMonitor } from '../loadtest/mesh/monitor.js';
import { cpuSeconds, f, histogramMean, patchScript, pct } from './agent-kit.js';

const FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'int', default: 5000, usage: 'Nodes in the simulated cluster (one of them the real kg).' },
  { name: 'granularity', type: 'string', default: 'location', usage: 'Mesh granularity of kg: location or full.' },
  { name: 'changes', type: 'int', default: 20, usage: 'One-node changes measured in each phase (no traffic, a burst on /health, a burst on /graph).' },
  { name: 'burst', type: 'int', default: 200, usage: 'Concurrent /graph requests kept in flight during the burst phase.' },
  { name: 'rounds', type: 'int', default: 0, usage: 'Bursts to send (0: one after another until the changes are measured).' },
  { name: 'format', type: 'string', default: 'dot', usage: 'The format asked for: dot (the DOT text) or a Graphviz format (svg, png, …).' },
  { name: 'layout', type: 'string', default: 'circo', usage: 'The Graphviz layout asked for (with a rendered format).' },
  { name: 'baseline', type: 'string', default: '', usage: 'The dist directory of another build to run the same against first (e.g. /tmp/kg-main/dist).' },
  { name: 'heartbeat-period', type: 'int', default: 30, usage: 'Every simulated node\'s check-in period in seconds.' },
  { name: 'log-level', type: 'string', default: 'warn', usage: 'kg\'s log level.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];

const o = commandFlags(
  process.argv.slice(2),
  FLAGS,
  'node dist/bench/graph-burst.js [flags]',
  'Event → programmed latency of one-node changes in a real kg, with no /graph traffic and during a\nburst of concurrent /graph requests (unique query strings); with --baseline, another build too.',
  (v) => {
    if (!['location', 'full'].includes(v.granularity as string)) throw new FlagError('--granularity must be location or full');
    for (const n of ['nodes', 'changes', 'burst']) if ((v[n] as number) < 1) throw new FlagError(`--${n} must be at least 1`);
  },
);

const HERE = resolve(fileURLToPath(new URL('.', import.meta.url)), '..');
const N = o.nodes as number;
const graphPath = `/graph?format=${o.format as string}&layout=${o.layout as string}`;

/**
 * The burst client, run in the node's namespace: keeps `burst` requests in flight (each on its own
 * connection, as distinct clients), round after round, until SIGTERM or `rounds`; then prints
 * the answers by status and the rounds' durations.
 */
const burstScript = (path: string, burst: number, rounds: number) => `
  const http = require('http'); const by = {}; const durations = []; let stop = false; let round = 0;
  process.on('SIGTERM', () => (stop = true));
  const one = (i) => new Promise((res) => {
    const req = http.get({ host: '127.0.0.1', port: 1107, path: ${JSON.stringify(path)} + 'nonce=' + round + '-' + i, agent: false, timeout: 120000 }, (r) => {
      r.resume(); r.on('end', () => res(String(r.statusCode)));
    });
    req.on('error', (e) => res(e.code || 'error')); req.on('timeout', () => req.destroy());
  });
  (async () => {
    while (!stop && (${rounds} === 0 || round < ${rounds})) {
      const t0 = Date.now();
      for (const s of await Promise.all(Array.from({ length: ${burst} }, (_, i) => one(i)))) by[s] = (by[s] || 0) + 1;
      durations.push(Date.now() - t0); round++;
    }
    process.stdout.write(JSON.stringify({ by, durations }));
  })();`;

interface Phase {
  latencies: number[];
  planMean: string;
  e2pMean: string;
}

interface Burst extends Phase {
  answers: Record<string, number>;
  roundsMs: number[];
  maxDot: number;
  /** The agent's CPU, % of one core. */
  cpu: number;
}

interface Result {
  name: string;
  quiet: Phase;
  /** The same burst on /health: the cost of the requests themselves, the same-run floor. */
  health: Burst;
  graph: Burst;
}

const run = (cmd: string, args: string[], timeoutMs: number) => new Promise<string>((res, rej) => {
  execFile(cmd, args, { encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 << 20 }, (e, out, err) => (e ? rej(new Error(`${cmd}: ${e.message} ${err}`)) : res(out)));
});

/** The most `dot` children of `pid` alive at once, sampled every 50 ms until stopped. */
function dotSampler(pid: number): () => number {
  let max = 0;
  const t = setInterval(() => {
    let n = 0;
    for (const d of readdirSync('/proc')) {
      if (!/^\d+$/.test(d)) continue;
      try {
        const st = readFileSync(`/proc/${d}/stat`, 'utf8');
        if (st.includes('(dot)') && Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]) === pid) n++;
      } catch {
        /* gone */
      }
    }
    max = Math.max(max, n);
  }, 50);
  return () => (clearInterval(t), max);
}

async function variant(name: string, dist: string): Promise<Result> {
  // The build's own harness: it starts that build's kg and simulator.
  const { Mesh } = (await import(pathToFileURL(join(dist, 'loadtest/mesh/harness.js')).href)) as typeof import('../loadtest/mesh/harness.js');
  const mesh = new Mesh({
    prefix: `kgbg${name[0]}`,
    nodes: [{ name: 'kg-0', location: 'bench' }],
    flags: ['--encapsulate', 'never', '--mesh-granularity', o.granularity as string, '--log-level', o['log-level'] as string, '--resync-period', '5m'],
    apiArgs: ['--nodes', String(N - 1), '--locations', String(Math.max(1, Math.round(N / 100))), '--heartbeat-period', String(o['heartbeat-period'])],
  });
  const onSignal = () => void mesh.down().then(() => process.exit(130));
  process.once('SIGINT', onSignal);
  try {
    await mesh.down();
    await mesh.up();
    await mesh.startKg('kg-0', [], false);
    await mesh.waitHealthy('kg-0', 300_000);
    const node = mesh.node('kg-0');
    const pid = node.kg!.pid!;
    const mon = new RouteMonitor(node.netns);
    await mon.start();
    let k = 0;
    const phase = async (): Promise<Phase> => {
      const before = mesh.http('kg-0', '/metrics').body;
      const latencies: number[] = [];
      for (let i = 0; i < (o.changes as number); i++, k++) {
        const cidr = `172.31.${k}.0/24`;
        const out = await run('ip', ['netns', 'exec', mesh.apiNs, process.execPath, '-e', patchScript(mesh.kubeconfig, 'node-00010', { 'kilo.squat.ai/allowed-location-ips': cidr })], 30_000);
        const at = await mon.wait('add', cidr, 120_000);
        if (at === null) throw new Error(`${name}: route ${cidr} never programmed`);
        latencies.push(at - Number(out));
        await new Promise((r) => setTimeout(r, 300));
      }
      const after = mesh.http('kg-0', '/metrics').body;
      return { latencies, planMean: histogramMean(before, after, 'kg_plan_duration_seconds'), e2pMean: histogramMean(before, after, 'kg_event_to_programmed_seconds') };
    };
    // A burst: a client in the node's namespace, stopped when the phase's changes are measured.
    const during = async (path: string) => {
      const c0 = cpuSeconds(pid);
      const t0 = Date.now();
      const maxDot = dotSampler(pid);
      const client = execFile('nsenter', [`--net=/run/netns/${node.netns}`, '--', process.execPath, '-e', burstScript(path, o.burst as number, o.rounds as number)], { encoding: 'utf8', maxBuffer: 16 << 20 });
      let out = '';
      client.stdout!.on('data', (c: string) => (out += c));
      const ended = new Promise<void>((r) => client.on('exit', () => r()));
      await new Promise((r) => setTimeout(r, 1000));
      const p = await phase();
      client.kill('SIGTERM');
      await ended;
      const summary = JSON.parse(out || '{"by":{},"durations":[]}') as { by: Record<string, number>; durations: number[] };
      return { ...p, answers: summary.by, roundsMs: summary.durations, maxDot: maxDot(), cpu: ((cpuSeconds(pid) - c0) / ((Date.now() - t0) / 1000)) * 100 };
    };
    const quiet = await phase();
    const health = await during('/health?');
    const graph = await during(`${graphPath}&`);
    mon.stop();
    return { name, quiet, health, graph };
  } finally {
    process.off('SIGINT', onSignal);
    await mesh.down();
  }
}

const stats = (xs: number[]) => `p50 ${f(pct(xs, 50))} ms, p95 ${f(pct(xs, 95))} ms, max ${f(Math.max(...xs))} ms`;
console.log(`# ${N} nodes (${o.granularity as string} granularity), ${o.changes as number} changes per phase, burst of ${o.burst as number} × GET ${graphPath}&nonce=…`);
const results: Result[] = [];
if (o.baseline) results.push(await variant('baseline', resolve(o.baseline as string)));
results.push(await variant('current', HERE));
for (const r of results) {
  const line = (what: string, p: Phase) => console.log(`  event → programmed, ${what} ${stats(p.latencies)}; in the agent: plan ${p.planMean}, event → programmed ${p.e2pMean}`);
  const burst = (what: string, b: Burst) => {
    line(`during the burst on ${what}:`, b);
    console.log(`    ratio to no traffic: p50 ${f(pct(b.latencies, 50) / pct(r.quiet.latencies, 50))}×, p95 ${f(pct(b.latencies, 95) / pct(r.quiet.latencies, 95))}×; answers ${JSON.stringify(b.answers)} in ${b.roundsMs.length} rounds (${b.roundsMs.length ? stats(b.roundsMs) : 'none finished'}); at most ${b.maxDot} dot processes at once; agent CPU ${f(b.cpu)}% of one core`);
  };
  console.log(`${r.name}:`);
  line('no /graph traffic:          ', r.quiet);
  burst('/health (floor)', r.health);
  burst('/graph', r.graph);
}
if (results.length === 2) {
  const [b, c] = results;
  console.log(`current ÷ baseline during the /graph burst: p50 ${f(pct(c.graph.latencies, 50) / pct(b.graph.latencies, 50))}×, p95 ${f(pct(c.graph.latencies, 95) / pct(b.graph.latencies, 95))}×`);
}
