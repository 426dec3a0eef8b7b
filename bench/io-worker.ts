// Benchmark: the I/O worker's own cost at N nodes (default 5,000, full granularity), this build
// against a baseline build in the same run: process RSS added by starting the worker and holding
// the state of a cold apply, then of one-node deltas and a re-reading resync; the worker's V8
// heap; and the cold apply's timeline per kernel table. Each measurement runs in a fresh process
// inside a scratch network + mount namespace (deleted at the end), alternating the two builds.
//
//   node dist/bench/io-worker.js [--nodes 5000] [--rounds 2] [--baseline /work/base/dist] [--gap 1000]
//
// `--gap`: milliseconds between starting the worker and the first apply (the agent starts its
// I/O worker before it lists the cluster and plans: ~1.5 s at 5,000 nodes).
import { spawnSync } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { readFileSync } from 'node:fs';
import { Registry } from 'prom-client';
import { commandFlags, type FlagDef } from '../main/flags.js';
import { DeltaTracker } from '../diff/desired.js';
import type { ApplyResult, DataplaneOptions, DesiredDelta, DesiredState } from '../ipc/dataplane.js';
import { fixture } from './plan-fixture.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool } from '../test/dataplane/netns.js';

const FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '5000', usage: 'Nodes of the full-granularity plan applied on one leader.' },
  { name: 'rounds', type: 'string', default: '2', usage: 'Runs of each build (alternated, each in a fresh process).' },
  { name: 'baseline', type: 'string', default: '', usage: 'A baseline build\'s dist directory (e.g. /work/base/dist); empty = this build only.' },
  { name: 'gap', type: 'string', default: '1000', usage: 'Milliseconds between starting the worker and the first apply.' },
  { name: 'backend', type: 'string', default: 'nft', usage: 'iptables backend: nft or legacy.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const cli = commandFlags(process.argv.slice(2), FLAGS, 'node dist/bench/io-worker.js [flags]',
  'The I/O worker\'s RSS, heap and cold-apply timeline at N nodes against a baseline build, in scratch\nnetwork namespaces (needs root, wireguard-go).');
const NODES = Number(cli.nodes);
const MARK = '#io-worker-result ';
const OWN_DIST = resolve(dirname(fileURLToPath(import.meta.url)), '..');

interface Result {
  build: string;
  coldMs: number;
  parts: Record<string, number>;
  rssIdleMB: number;
  rssColdMB: number;
  rssSteadyMB: number;
  liveMB: number;
  heapUsedMB: number | null;
  heapCommittedMB: number | null;
  writes: number;
}

const mb = (b: number): number => b / 1048576;
const rssNow = (): number => Number(/VmRSS:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1]) * 1024;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));
const gc = (): void => (globalThis as { gc?: () => void }).gc?.();

interface Client {
  start(): Promise<void>;
  applyFull(d: string, seq: number): Promise<ApplyResult>;
  applyPrepared(d: DesiredDelta): Promise<ApplyResult>;
  resync(): Promise<ApplyResult>;
  cleanUp(o: { interface: boolean }): Promise<ApplyResult>;
  close(): Promise<void>;
}

async function gauge(reg: Registry, name: string): Promise<number | null> {
  const m = (await reg.getMetricsAsJSON()).find((x) => x.name === name) as { values?: Array<{ value: number }> } | undefined;
  return m?.values?.[0]?.value ?? null;
}

/** The heap a Dataplane of `dist` holds after the same apply, deltas and resync, in this thread (after full GCs). */
async function liveState(dist: string, desired: DesiredState, deltas: DesiredDelta[]): Promise<number> {
  const { Dataplane } = (await import(pathToFileURL(join(dist, 'dataplane/dataplane.js')).href)) as {
    Dataplane: new (o: Partial<DataplaneOptions>) => Client & { apply(d: DesiredState, seq: number): Promise<ApplyResult>; applyDelta(d: DesiredDelta): Promise<ApplyResult>; wireguard: { stopChild(): Promise<void> } };
  };
  const heap = (): number => {
    gc();
    gc();
    return process.memoryUsage().heapUsed;
  };
  const h0 = heap();
  const dp = new Dataplane({ interface: 'kilo0', uapiDir: '/var/run/wireguard', resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: cli.backend as 'nft', ipv6: false });
  await dp.apply(JSON.parse(JSON.stringify(desired)) as DesiredState, 1);
  for (const d of deltas) await dp.applyDelta(structuredClone(d));
  await dp.resync();
  const held = heap() - h0;
  await dp.cleanUp({ interface: true });
  await dp.close();
  await dp.wireguard.stopChild();
  return mb(held);
}

/** One build in this (fresh) process, inside the scratch namespaces. */
async function inner(dist: string): Promise<Result> {
  const ip = (...a: string[]): void => {
    const r = spawnSync('ip', a, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${r.stderr}`);
  };
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', 'eth0', 'type', 'bridge');
  ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
  ip('link', 'set', 'eth0', 'up');
  const { IoClient } = (await import(pathToFileURL(join(dist, 'workers/io-client.js')).href)) as { IoClient: new (o: Partial<DataplaneOptions>, c: { registry: Registry }) => Client };
  const { privateKey } = keyPair();
  const desired: DesiredState = fixture({ nodes: NODES, privateKey });
  const tracker = new DeltaTracker();
  tracker.full(desired);
  const text = JSON.stringify(desired); // the agent sends the planner's JSON text
  const deltas = [1, 2, 3, 4, 5].map((k) => tracker.delta(fixture({ nodes: NODES, privateKey, changed: k })));
  gc();
  await sleep(200);
  const rss0 = rssNow();
  const reg = new Registry();
  const io = new IoClient({ interface: 'kilo0', uapiDir: '/var/run/wireguard', resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: cli.backend as 'nft', ipv6: false }, { registry: reg });
  await io.start();
  await sleep(Number(cli.gap));
  const rssIdle = rssNow() - rss0;
  const t0 = performance.now();
  const res = await io.applyFull(text, 1);
  const coldMs = performance.now() - t0;
  if (!res.ok) throw new Error(`cold apply: ${JSON.stringify(res.errors.slice(0, 3))}`);
  const parts: Result['parts'] = {};
  for (const r of res.reports) parts[r.kind] = r.durationMs;
  await sleep(500);
  gc();
  const rssCold = rssNow() - rss0;
  let seq = 1;
  for (const d of deltas) {
    const r = await io.applyPrepared({ ...d, base: seq });
    if (!r.ok || r.needFullState) throw new Error(`delta: ${JSON.stringify(r.errors.slice(0, 3))}`);
    seq++;
  }
  await io.resync();
  await sleep(500);
  gc();
  const rssSteady = rssNow() - rss0;
  const used = await gauge(reg, 'kg_io_worker_heap_bytes');
  const committed = await gauge(reg, 'kg_io_worker_heap_committed_bytes');
  await io.cleanUp({ interface: true });
  await io.close();
  const liveMB = await liveState(dist, desired, deltas);
  return {
    build: dist, coldMs, parts, rssIdleMB: mb(rssIdle), rssColdMB: mb(rssCold), rssSteadyMB: mb(rssSteady), liveMB,
    heapUsedMB: used === null ? null : mb(used), heapCommittedMB: committed === null ? null : mb(committed), writes: res.writes,
  };
}

function outer(): void {
  requireTool('wireguard-go', 'wg', 'ip', 'nsenter');
  const builds = [OWN_DIST, ...(cli.baseline ? [resolve(cli.baseline as string)] : [])];
  const results: Result[] = [];
  for (let round = 0; round < Number(cli.rounds); round++) {
    for (const b of round % 2 === 0 ? builds : [...builds].reverse()) {
      const node = TestNode.create(`io${round}`);
      try {
        const r = spawnSync('nsenter', [`--net=${node.netPath}`, `--mount=${node.mountPath}`, '--', process.execPath, '--expose-gc', process.argv[1], ...process.argv.slice(2)], {
          encoding: 'utf8', env: { ...process.env, KG_IO_BENCH_DIST: b }, maxBuffer: 64 << 20, timeout: 600_000,
        });
        const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith(MARK));
        if (!line) throw new Error(`${b}: ${r.stderr}`);
        results.push(JSON.parse(line.slice(MARK.length)) as Result);
      } finally {
        node.destroy();
        cleanupMntRoot();
      }
    }
  }
  console.log(`# ${NODES} nodes, full granularity fixture, worker started ${cli.gap} ms before the first apply; MB = MiB of process RSS over the process before the worker`);
  const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const fmt = (x: number | null): string => (x === null ? 'n/a' : x.toFixed(1));
  const rows: Array<[string, (r: Result) => number | null]> = [
    ['cold apply ms', (r) => r.coldMs],
    ['RSS idle worker MiB', (r) => r.rssIdleMB],
    ['RSS after cold apply MiB', (r) => r.rssColdMB],
    ['RSS after deltas + resync MiB', (r) => r.rssSteadyMB],
    ['state held after deltas + resync (in-thread heap after GC) MiB', (r) => r.liveMB],
    ['worker heap used MiB', (r) => r.heapUsedMB],
    ['worker heap committed MiB', (r) => r.heapCommittedMB],
    ...['wireguard', 'routes', 'rules', 'iptables'].map((k): [string, (r: Result) => number | null] => [`  cold: ${k} ms`, (r) => r.parts[k] ?? null]),
  ];
  const by = (b: string) => results.filter((r) => r.build === b);
  console.log(`| | ${builds.map((b) => (b === OWN_DIST ? 'this build' : b)).join(' | ')} |${builds.length > 1 ? ' this ÷ baseline |' : ''}`);
  console.log(`|---|${builds.map(() => '---:').join('|')}|${builds.length > 1 ? '---:|' : ''}`);
  for (const [name, get] of rows) {
    const cells = builds.map((b) => by(b).map(get));
    if (cells.every((c) => c.every((x) => x === null))) continue;
    const meds = cells.map((c) => (c.some((x) => x === null) ? null : med(c as number[])));
    const ratio = builds.length > 1 && meds[0] !== null && meds[1] !== null && meds[1] !== 0 ? ` ${(meds[0] / meds[1]).toFixed(2)} |` : builds.length > 1 ? ' |' : '';
    console.log(`| ${name} | ${cells.map((c) => c.map(fmt).join(', ')).join(' | ')} |${ratio}`);
  }
}

if (process.env.KG_IO_BENCH_DIST) {
  inner(process.env.KG_IO_BENCH_DIST).then(
    (r) => {
      process.stdout.write(MARK + JSON.stringify(r) + '\n');
      process.exit(0);
    },
    (e: unknown) => {
      process.stderr.write(`io-worker bench: ${e instanceof Error ? e.stack : String(e)}\n`);
      process.exit(1);
    },
  );
} else outer();
