// Benchmark: one real kg agent in a network namespace (wireguard-go, real routes and iptables)
// in a simulated N-node cluster (default 5,000, full granularity: the heaviest plan).
//   1. cold start to fully programmed (spawn → /health 200), and RSS;
//   2. event → programmed latency of a one-node change: from the moment the PATCH leaves the
//      client to the moment the kernel announces the new route (`ip monitor route`), against a
//      same-run baseline: the same route written by hand with `ip route replace`;
//   3. heartbeat churn: every node's last-seen patched once per --heartbeat-period (30 s: ~N/30 updates/s): the agent's
//      CPU and its kernel writes over a window, in steady state: the first --settle seconds after
//      the change loop carry the collection of that loop's garbage (major GCs in three isolates)
//      and are reported on their own.
//
//   node dist/bench/agent.js [--nodes 5000] [--granularity full|location|cross] [--changes 40] [--window 30] [--settle 30] [--log-level warn]
//     [--dual-stack]   (design §20: every node gets an IPv6 pod CIDR and internal IP, the agent --dual-stack-subnet)
//     [--same-location]   (the agent joins the edited node's location, whose internal IP each change moves:
//                          in cross granularity each change is then inside the agent's location)
//     [--heartbeat-period 30]   (every node's check-in period in the simulator; 334 is what
//                                --heartbeat=adaptive picks at 5,000 nodes)
//     [--agent-env production|none]   (the agent's environment: main/agent/process-env.ts, or none)
//     [--resync-period 5m]   (the agent's; a shorter one shows what each resync leaves behind in a soak)
//     [--kg-entry bundle/cli.js|main/cli.js]   (the bundle, or tsc's modules unbundled)
//     [--soak 600]   (4. afterwards, heartbeat churn for this many seconds: RSS sampled every 30 s, growth reported)
// RSS is the process's (threads share one address space); the V8 heap in use of each isolate
// (main thread, planner that answered last, I/O worker) comes from the agent's own metrics.
import { spawn, spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { METADATA_WATCH_ACCEPT as METADATA_ACCEPT } from '../main/agent/node-record.js';
import { clientPrelude, clockMs, cpuSeconds, f, firstProgrammed, histogramMean, metric, patchScript, pct, peakRssMB, rssMB, threadMemory } from './agent-kit.js';
import { commandFlags, type FlagDef } from '../main/flags.js';
import { KG_PROTO } from '../kernel/owner.js';
import { AGENT_ENV } from '../main/agent/process-env.js';
import { DUAL_STACK_SUBNET, KG_BUNDLE, Mesh } from '../loadtest/mesh/harness.js';
import { locationIndex, locationNames } from '../loadtest/apiserver/generate.js';
import { RouteMonitor } from '../loadtest/mesh/monitor.js';

const FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '5000', usage: 'Cluster size (the agent plus simulated nodes).' },
  { name: 'granularity', type: 'string', default: 'full', usage: 'Mesh granularity: full, location or cross.' },
  { name: 'dual-stack', type: 'bool', default: false, usage: `Dual stack (design §20): the simulated nodes get IPv6 pod CIDRs and internal IPs, the agent's node IPv6 too, and the agent --dual-stack-subnet ${DUAL_STACK_SUBNET}.` },
  { name: 'same-location', type: 'bool', default: false, usage: 'The agent\'s node joins the location of the node the change loop edits, and each change moves that node\'s internal IP (in cross granularity a change inside the agent\'s own location, design §19.5).' },
  { name: 'changes', type: 'string', default: '40', usage: 'One-node changes timed for event → programmed.' },
  { name: 'window', type: 'string', default: '30', usage: 'Seconds of the heartbeat-churn window.' },
  { name: 'settle', type: 'string', default: '30', usage: 'Seconds after the change loop reported on their own (garbage collection of that loop).' },
  { name: 'heartbeat-period', type: 'string', default: '30', usage: 'Every simulated node\'s check-in period in seconds (334 is what --heartbeat=adaptive picks at 5,000 nodes).' },
  { name: 'soak', type: 'string', default: '0', usage: 'Seconds of heartbeat churn after the rest, RSS sampled every 30 s (0: none).' },
  { name: 'log-level', type: 'string', default: 'warn', usage: 'The agent\'s --log-level.' },
  { name: 'agent-env', type: 'string', default: 'production', usage: 'The agent\'s environment: production (main/agent/process-env.ts, as the image and manifests set it) or none (a build from before it).' },
  { name: 'resync-period', type: 'string', default: '5m', usage: 'The agent\'s --resync-period (a shorter one shows what each resync leaves behind in a soak).' },
  { name: 'kg-entry', type: 'string', default: KG_BUNDLE, usage: 'kg\'s entry point inside the build: the bundle (what the image runs) or main/cli.js (tsc\'s modules, unbundled).' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const o = commandFlags(process.argv.slice(2), FLAGS, 'node dist/bench/agent.js [flags]',
  'One real kg agent in a network namespace in a simulated cluster: cold start, event → programmed\nlatency of one-node changes, and the CPU of heartbeat churn (needs root, wireguard-go).');
const N = Number(o.nodes);
const granularity = o.granularity as string;
const changes = Number(o.changes);
const windowS = Number(o.window);
const heartbeatPeriod = o['heartbeat-period'] as string;
const settleS = Number(o.settle);
const soakS = Number(o.soak);
const dualStack = o['dual-stack'] as boolean;
const sameLocation = o['same-location'] as boolean;
const LOCATIONS = Math.max(1, Math.round(N / 100));
// The node the change loop edits, and the simulator's location of it (N − 1 generated nodes).
const TARGET = 10;
const target = `node-${String(TARGET).padStart(Math.max(5, String(N - 1).length), '0')}`;
const location = sameLocation ? locationNames(LOCATIONS, N - 1)[locationIndex(TARGET, LOCATIONS, N - 1)] : 'bench';

/**
 * The cold start's timeline from the agent's own log (with --log-level info or debug): each
 * start-up step in ms after the spawn, and the first programming's own split.
 */
function timeline(log: string, t0: number): string | null {
  const steps: string[] = [];
  let first: Record<string, unknown> | null = null;
  for (const line of log.split('\n')) {
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      continue;
    }
    const at = Date.parse(String(r.ts)) - t0;
    const msg = String(r.msg);
    if (/^Starting Kilo|^Kubernetes credentials loaded|^host discovered/.test(msg)) steps.push(`${msg.replace(/^Starting Kilo.*/, 'started').replace(/^Kubernetes /, '')} ${f(at)}`);
    if (msg === 'mesh programmed' && first === null) {
      first = r;
      steps.push(`first programmed ${f(at)}`);
    }
  }
  if (first === null) return null;
  return `${steps.join(', ')} ms; first plan: parse ${first.parseMs}, plan ${first.planMs}, apply ${first.applyMs} ms (kernel ${JSON.stringify(first.kernelMs)})`;
}

/** The V8 heap in use per isolate, from the agent's metrics (MB). */
/**
 * A minimal watcher: lists one Node for the current resourceVersion, watches Nodes from there
 * with the agent's Accept header for `seconds`, parses every event and prints its own CPU.
 */
const bareWatcher = (kubeconfig: string, seconds: number) => `${clientPrelude(kubeconfig)}
  const base = { ...api, headers: { Authorization: 'Bearer ' + token } };
  https.get({ ...base, path: '/api/v1/nodes?limit=1' }, (res) => { let b = ''; res.on('data', (c) => (b += c)); res.on('end', () => {
    const rv = JSON.parse(b).metadata.resourceVersion; let n = 0; let rest = '';
    const c0 = process.cpuUsage(); const t0 = Date.now();
    https.get({ ...base, path: '/api/v1/nodes?watch=true&allowWatchBookmarks=true&resourceVersion=' + rv,
      headers: { ...base.headers, Accept: ${JSON.stringify(METADATA_ACCEPT)} } }, (w) => {
      w.setEncoding('utf8');
      w.on('data', (c) => { rest += c; let i; while ((i = rest.indexOf('\\n')) >= 0) { JSON.parse(rest.slice(0, i)); rest = rest.slice(i + 1); n++; } });
    });
    setTimeout(() => { const u = process.cpuUsage(c0); console.log('events ' + n + ' cpu ' + ((u.user + u.system) / 10 / (Date.now() - t0)).toFixed(2)); process.exit(0); }, ${seconds * 1000});
  }); });`;

const mesh = new Mesh({
  prefix: 'kgbench',
  nodes: [{ name: 'kg-0', location }],
  dualStack,
  kgEntry: o['kg-entry'] as string,
  // Resync every 5 min by default: the churn window then measures heartbeats alone (a resync's own cost is
  // reported from the agent's histograms when one ran).
  flags: ['--encapsulate', 'never', '--mesh-granularity', granularity, '--log-level', o['log-level'] as string, '--resync-period', o['resync-period'] as string],
  apiArgs: ['--nodes', String(N - 1), '--locations', String(LOCATIONS), '--heartbeat-period', heartbeatPeriod, ...(dualStack ? ['--dual-stack'] : [])],
});
process.on('SIGINT', () => void mesh.down().then(() => process.exit(130)));

try {
  await mesh.down();
  const tUp = Date.now();
  await mesh.up();
  console.log(`# ${N} nodes (${granularity} granularity${dualStack ? ', dual stack' : ''}, the agent in location ${location}, kg from ${o['kg-entry'] as string}), simulator and namespaces up in ${((Date.now() - tUp) / 1000).toFixed(1)} s`);

  // 1. Cold start.
  const t0 = clockMs();
  // The agent runs with the environment production gives it (the harness spawns it with this
  // process's environment; the simulator, already running, keeps its own).
  const saved = { ...process.env };
  if (o['agent-env'] === 'production') Object.assign(process.env, AGENT_ENV);
  else if (o['agent-env'] !== 'none') throw new Error(`--agent-env: production or none, not ${String(o['agent-env'])}`);
  const started = mesh.startKg('kg-0', [], false);
  for (const k of Object.keys(AGENT_ENV)) {
    if (saved[k] === undefined) delete process.env[k];
    else process.env[k] = saved[k];
  }
  await started;
  const pid = mesh.node('kg-0').kg!.pid!;
  // A tight poll (curl every 20 ms, in the node's namespace): the harness's own health check
  // spawns node every 300 ms, which would add up to ~0.4 s to the measurement. It gives up at
  // once when kg has exited (a zombie until this process reaps it).
  const alive = `{ [ -e /proc/${pid} ] && ! grep -q '^State:[[:space:]]*Z' /proc/${pid}/status; } || exit 2`;
  const poller = spawnSync('nsenter', [`--net=/run/netns/${mesh.node('kg-0').netns}`, '--', 'sh', '-c',
    `for i in $(seq 1 15000); do [ "$(curl -s -o /dev/null -w "%{http_code}" --max-time 1 http://127.0.0.1:1107/health)" = 200 ] && exit 0; ${alive}; sleep 0.02; done; exit 1`], { timeout: 300_000 });
  const cold = clockMs() - t0;
  if (poller.status === 2) {
    await new Promise((r) => setTimeout(r, 500)); // its last output reaches the log through this event loop
    throw new Error(`kg exited before it was healthy; the end of its log:\n${readFileSync(join(mesh.state, 'kg-kg-0.log'), 'utf8').slice(-2000)}`);
  }
  if (poller.status !== 0) throw new Error('kg did not become healthy within 300 s');
  await mesh.waitHealthy('kg-0', 10_000);
  const wgPeers = mesh.on('kg-0', ['wg', 'show', 'kilo0', 'peers']).trim().split('\n').filter(Boolean).length;
  // kg's routes carry its own protocol in every table; with the set layout most per-address
  // iptables rules are ipset elements, counted beside the rules.
  const countRoutes = (family: string) => mesh.on('kg-0', ['ip', family, 'route', 'show', 'table', 'all', 'proto', String(KG_PROTO)]).split('\n').filter(Boolean).length;
  const routes = dualStack ? `${countRoutes('-4')} + ${countRoutes('-6')} IPv6` : countRoutes('-4');
  const iptRules = mesh.on('kg-0', ['iptables-save']).split('\n').filter((l) => l.startsWith('-A') && l.includes('Kilo')).length;
  const elements = mesh.on('kg-0', ['ipset', 'save']).split('\n').filter((l) => /^add kilo[46]-/.test(l)).length;
  const rules = `${iptRules} iptables rules, ${elements} ipset elements`;
  console.log(`cold start → programmed: ${f(cold)} ms (${wgPeers} WireGuard peers, ${routes} routes, ${rules}); RSS ${f(rssMB(pid))} MB`);
  console.log(`  memory by thread: ${threadMemory(mesh.http('kg-0', '/metrics').body)}`);
  // The agent's log reaches its file through this process's event loop, which the synchronous
  // steps above held up: let it run first.
  await new Promise((r) => setTimeout(r, Math.max(500, 5_000 - (clockMs() - t0 - cold))));
  console.log(`  RSS 5 s after programmed: ${f(rssMB(pid))} MB`);
  const log = readFileSync(join(mesh.state, 'kg-kg-0.log'), 'utf8');
  const tl = timeline(log, t0);
  if (tl) console.log(`  timeline (from the agent's log): ${tl}`);
  const programmed = firstProgrammed(log);
  if (programmed !== null) console.log(`  first apply: ${programmed}`);

  // 2. Event → programmed. A route monitor in the node's namespace timestamps kernel changes.
  const mon = new RouteMonitor(mesh.node('kg-0').netns);
  await mon.start();
  const added = async (what: string, dst: string, timeoutMs: number): Promise<number> => {
    const at = await mon.wait('add', dst, timeoutMs);
    if (at === null) throw new Error(`timed out waiting for ${what}`);
    return at;
  };
  const lat: number[] = [];
  const base: number[] = [];
  const before = mesh.http('kg-0', '/metrics').body;
  // In its own location a node's allowed-location IPs get no route (design §19.3): there each
  // change moves the edited node's internal IP, the gateway of its pod CIDR's route.
  const podCIDR = sameLocation ? mesh.kubectl(['get', 'node', target, '-o', 'jsonpath={.spec.podCIDR}']).trim() : '';
  for (let k = 0; k < changes; k++) {
    const cidr = sameLocation ? podCIDR : `172.31.${k}.0/24`;
    const edit: Record<string, string> = sameLocation ? { 'kilo.squat.ai/force-internal-ip': `172.16.0.${100 + (k % 100)}/20` } : { 'kilo.squat.ai/allowed-location-ips': cidr };
    mon.clear('add', cidr);
    const r = spawnSync('ip', ['netns', 'exec', mesh.apiNs, process.execPath, '-e', patchScript(mesh.kubeconfig, target, edit)], { encoding: 'utf8', timeout: 30_000 });
    if (r.status !== 0) throw new Error(`patch failed: ${r.stderr}`);
    const sent = Number(r.stdout);
    const at = await added(`route ${cidr} in the kernel`, cidr, 10_000);
    lat.push(at - sent);
    // Baseline: the same kind of route written by hand, timed the same way.
    const hand = `172.31.${200 + (k % 50)}.0/24`;
    mon.clear('add', hand);
    const t = clockMs();
    spawnSync('ip', ['-n', mesh.node('kg-0').netns, 'route', 'replace', hand, 'dev', 'kilo0']);
    base.push((await added('hand route', hand, 5_000)) - t);
    spawnSync('ip', ['-n', mesh.node('kg-0').netns, 'route', 'del', hand, 'dev', 'kilo0']);
  }
  mon.stop();
  console.log(`  RSS right after the changes ${f(rssMB(pid))} MB, peak so far ${f(peakRssMB(pid))} MB`);
  // Where the time goes, from the agent's own histograms (sum ÷ count over the change loop).
  const after = mesh.http('kg-0', '/metrics').body;
  const avg = (name: string, labels = '') => histogramMean(before, after, name, labels);
  const backend = mesh.on('kg-0', ['sh', '-c', 'iptables -V']).trim();
  console.log(`  iptables: ${backend}`);
  const replanCounts = (t: string) => new Map([...t.matchAll(/^kg_replans_total\{kind="(\w+)",reason="([^"]*)"\} (\S+)$/gm)].map((x) => [`${x[1]}${x[2] ? ` (${x[2]})` : ''}`, Number(x[3])]));
  const r0 = replanCounts(before);
  const replans = [...replanCounts(after)].map(([k, n]) => [k, n - (r0.get(k) ?? 0)] as const).filter(([, n]) => n > 0);
  console.log(`  re-plans during the changes: ${replans.map(([k, n]) => `${k} ${n}`).join(', ') || 'none counted'}`);
  console.log(`  inside the agent, mean per reconcile: plan (pool) ${avg('kg_plan_duration_seconds')}, apply (I/O worker call) ${avg('kg_apply_duration_seconds')}, dataplane pass ${avg('kg_dataplane_pass_duration_seconds', '{cause="apply"}')}, event → programmed ${avg('kg_event_to_programmed_seconds')}`);
  console.log(`event → programmed (one node's ${sameLocation ? 'internal IP' : 'allowed-location IPs'} changed, ${changes} samples): p50 ${f(pct(lat, 50))} ms, p95 ${f(pct(lat, 95))} ms, p99 ${f(pct(lat, 99))} ms, max ${f(Math.max(...lat))} ms`);
  console.log(`  baseline, the same route by hand (spawn ip route replace → monitor): p50 ${f(pct(base, 50))} ms, p99 ${f(pct(base, 99))} ms; ratio p50 ${f(pct(lat, 50) / pct(base, 50))}×`);

  // 3. Heartbeat churn: the simulator patches every node's last-seen once per period. First the
  // settling period right after the change loop, then the steady-state window.
  if (settleS > 0) {
    const s0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, settleS * 1000));
    console.log(`heartbeat churn right after the change loop (${settleS} s, GC of that loop included): agent CPU ${f(((cpuSeconds(pid) - s0) / settleS) * 100)}% of one core`);
  }
  // Same-run floor: a bare client in the same namespace that only receives the same watch stream
  // (TLS, metadata-only, one JSON.parse per event) over the same window, and does nothing else.
  const floor = spawn('nsenter', [`--net=/run/netns/${mesh.node('kg-0').netns}`, '--', process.execPath, '-e', bareWatcher(mesh.kubeconfig, windowS)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let floorOut = '';
  floor.stdout.on('data', (c: Buffer) => (floorOut += c.toString()));
  floor.stderr.on('data', (c: Buffer) => (floorOut += c.toString()));
  const floorDone = new Promise<void>((r) => floor.on('exit', () => r()));
  const m0 = mesh.http('kg-0', '/metrics').body;
  const c0 = cpuSeconds(pid);
  const w0 = Date.now();
  await new Promise((r) => setTimeout(r, windowS * 1000));
  const c1 = cpuSeconds(pid);
  const wall = (Date.now() - w0) / 1000;
  await floorDone;
  const m1 = mesh.http('kg-0', '/metrics').body;
  const hb = metric(m1, /^kg_watch_events_total\{resource="node",change="heartbeat"\} (\d+)/gm) - metric(m0, /^kg_watch_events_total\{resource="node",change="heartbeat"\} (\d+)/gm);
  const writes = metric(m1, /^kg_dataplane_writes_total\{[^}]*\} (\d+)/gm) - metric(m0, /^kg_dataplane_writes_total\{[^}]*\} (\d+)/gm);
  const plans = metric(m1, /^kg_plans_total\{[^}]*\} (\d+)/gm) - metric(m0, /^kg_plans_total\{[^}]*\} (\d+)/gm);
  console.log(`  memory by thread after churn: ${threadMemory(m1)}; peak RSS so far ${f(peakRssMB(pid))} MB`);
  console.log(`heartbeat churn, steady state, over ${f(wall)} s: ${hb} heartbeat events (${f(hb / wall)}/s), agent CPU ${f(((c1 - c0) / wall) * 100)}% of one core, ${writes} kernel writes, ${plans} plans (periodic resyncs included); RSS ${f(rssMB(pid))} MB`);
  const fl = /events (\d+) cpu ([0-9.]+)/.exec(floorOut);
  console.log(fl
    ? `  baseline, a bare client receiving the same watch stream (TLS + JSON.parse, nothing else): ${fl[1]} events, CPU ${fl[2]}% of one core; agent ÷ bare ${f(((c1 - c0) / wall) * 100 / Number(fl[2]))}×`
    : `  baseline failed: ${floorOut.trim().slice(0, 300)}`);

  // 4. Soak: heartbeat churn goes on; RSS every 30 s (the first sample is the reference).
  if (soakS > 0) {
    const samples: number[] = [rssMB(pid)];
    const s0 = cpuSeconds(pid);
    for (let t = 30; t <= soakS; t += 30) {
      await new Promise((r) => setTimeout(r, 30_000));
      samples.push(rssMB(pid));
    }
    const first = samples[0];
    const last = samples.at(-1)!;
    console.log(`soak, ${soakS} s of heartbeat churn: RSS ${f(first)} → ${f(last)} MB (${f(((last - first) / first) * 100)} %), min ${f(Math.min(...samples))}, max ${f(Math.max(...samples))} MB; agent CPU ${f(((cpuSeconds(pid) - s0) / soakS) * 100)}% of one core`);
    console.log(`  samples (MB, every 30 s): ${samples.map(f).join(' ')}`);
    console.log(`  memory by thread after the soak: ${threadMemory(mesh.http('kg-0', '/metrics').body)}`);
  }
} finally {
  await mesh.down();
}
