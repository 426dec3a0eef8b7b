// `kg bench` end to end at a small size, `kg bench --sweep`, bad flags, and bench/compare.
// The kernel part runs for real (root, a scratch netns); the test checks it leaves nothing behind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { XMLValidator } from 'fast-xml-parser';
import { syntheticNodes, syntheticPeers } from '../../bench/synthetic.js';
import { SYNTHETIC_NOW } from '../../bench/capacity/cluster.js';
import type { BenchResult } from '../../bench/capacity/index.js';
import type { PlanJSON } from '../../plan/types.js';

const CLI = fileURLToPath(new URL('../../main/cli.js', import.meta.url));
const COMPARE = fileURLToPath(new URL('../../bench/compare.js', import.meta.url));
const kg = (...args: string[]) => spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', timeout: 180_000, maxBuffer: 64 << 20 });
const tmp = mkdtempSync(join(tmpdir(), 'kg-bench-test-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const netnsOf = (pid: number) => spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.split('\n').filter((l) => l.startsWith(`kgt-${pid}-kgbench`));
const SHAPE = { nodes: 200, locations: 10, peers: 10 };
const FAST = ['--time-budget', '100', '--fleet', 'off'];

function counts(j: PlanJSON) {
  return {
    wireguardPeers: j.wireguard.peers.length, allowedIPs: j.wireguard.peers.reduce((s, p) => s + p.allowedIPs.length, 0),
    routes: j.routes.length, ipRules: j.rules.length, iptablesRules: j.iptables.prepend.length + j.iptables.append.length,
  };
}

let small: BenchResult;

test('kg bench -o json at 200 nodes: structure and sanity, kernel measured in a netns that is gone afterwards', () => {
  const r = kg('bench', '--nodes', '200', '--locations', '10', '--peers', '10', ...FAST, '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  small = JSON.parse(r.stdout) as BenchResult;
  const { dataplane: d, compute: c, memory: m, apiServer: a, kernel: k } = small;
  assert.equal(small.cluster.nodes, 200);
  assert.equal(small.cluster.locations, 10);
  // Location granularity: the leader holds a peer per other location and per Peer; others none.
  assert.ok(d.leader.leader && d.nonLeader && !d.nonLeader.leader);
  assert.equal(d.leader.wireguardPeers, 9 + 10);
  assert.ok(d.leader.wireguardPeers > d.nonLeader.wireguardPeers);
  assert.ok(d.leader.allowedIPs >= d.leader.wireguardPeers && d.leader.routes > 0 && d.leader.iptablesRules > 0);
  for (const t of [c.plannerPlan, c.fullPlan, c.incrementalPlan]) {
    assert.ok(t.minMs > 0 && t.minMs <= t.p50Ms && t.p50Ms <= t.p99Ms && t.samples >= 5, JSON.stringify(t));
  }
  assert.ok(m.slimRecordsHeapBytes > 200 * 100 && m.replicaHeapBytes > m.slimRecordsHeapBytes, JSON.stringify(m));
  assert.ok(m.poolRssBytes > 0 && m.nodeWatchEventBytes > 5_000, JSON.stringify(m));
  assert.deepEqual(a.modes.map((x) => x.mode), ['kilo', 'adaptive']);
  const kilo = a.modes[0];
  assert.equal(kilo.writesPerSecond, 200 / 30);
  assert.equal(kilo.watchEventsPerSecond, (200 / 30) * 200);
  // kg watches Nodes metadata-only: its fan-out is counted in those events' bytes.
  assert.ok(m.nodeMetadataEventBytes > 500 && m.nodeMetadataEventBytes * 2 < m.nodeWatchEventBytes, JSON.stringify(m));
  assert.equal(kilo.watchBytesPerSecond, kilo.watchEventsPerSecond * m.nodeMetadataEventBytes);
  assert.ok(k.ran, `kernel part did not run: ${'reason' in k ? k.reason : ''} (this test needs root, wireguard-go and iptables)`);
  if (!k.ran) return;
  assert.equal(k.desired.wireguardPeers, d.leader.wireguardPeers);
  assert.equal(k.desired.routes, d.leader.routes);
  assert.ok(k.coldApply.medianMs > 0 && k.coldWrites >= k.desired.wireguardPeers);
  assert.ok(k.oneChangeWrites > 0 && k.oneChangeWrites < 10, `one change wrote ${k.oneChangeWrites}`);
  assert.ok(k.noopResync.medianMs > 0 && k.ioWorkerRssBytes > 0);
  assert.match(k.namespace, /^kgt-\d+-kgbench$/);
  assert.ok(!spawnSync('ip', ['netns', 'list'], { encoding: 'utf8' }).stdout.includes(k.namespace), 'scratch netns deleted');
  assert.equal(small.fleet.ran, false);
});

test('dataplane sizes match an independent count from kg plan on the same cluster', () => {
  assert.ok(small, 'needs the first test');
  const nodesFile = join(tmp, 'nodes.json');
  const peersFile = join(tmp, 'peers.json');
  const shape = { ...SHAPE, now: SYNTHETIC_NOW };
  writeFileSync(nodesFile, JSON.stringify({ apiVersion: 'v1', kind: 'NodeList', items: syntheticNodes(shape) }));
  writeFileSync(peersFile, JSON.stringify({ kind: 'PeerList', items: syntheticPeers(shape) }));
  for (const [size, host] of [[small.dataplane.leader, small.cluster.leader], [small.dataplane.nonLeader!, small.cluster.nonLeader!]] as const) {
    const p = kg('plan', '--hostname', host, '--nodes', nodesFile, '--peers', peersFile, '--now', String(small.cluster.now), '--mesh-granularity', 'location', '--encapsulate', 'always', '-o', 'json');
    assert.equal(p.status, 0, p.stderr);
    const j = JSON.parse(p.stdout) as PlanJSON;
    assert.equal(j.leader, size.leader);
    const { node: _n, leader: _l, location: _loc, ...rest } = size;
    assert.deepEqual(rest, counts(j), host);
  }
  // The same files through --nodes-file give the same sizes.
  const r = kg('bench', '--nodes-file', nodesFile, '--peers-file', peersFile, '--now', String(small.cluster.now), '--kernel=false', ...FAST, '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  const f = JSON.parse(r.stdout) as BenchResult;
  assert.equal(f.cluster.source, 'files');
  assert.deepEqual(f.dataplane, small.dataplane);
  assert.equal(f.kernel.ran, false);
});

test('full granularity: every node leads, one WireGuard peer per other node and per Peer', () => {
  const r = kg('bench', '--nodes', '60', '--locations', '3', '--peers', '5', '--granularity', 'full', '--kernel=false', ...FAST, '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout) as BenchResult;
  assert.equal(j.dataplane.nonLeader, null);
  assert.equal(j.dataplane.leader.wireguardPeers, 59 + 5);
});

test('fleet planning throughput: every node planned by the pool and by one thread', () => {
  const r = kg('bench', '--nodes', '40', '--locations', '4', '--peers', '2', '--kernel=false', '--time-budget', '100', '--fleet', 'on', '-o', 'json');
  assert.equal(r.status, 0, r.stderr);
  const f = (JSON.parse(r.stdout) as BenchResult).fleet;
  assert.ok(f.ran, JSON.stringify(f));
  if (!f.ran) return;
  assert.equal(f.nodesPlanned, 40);
  assert.ok(f.threads >= 2 && f.oneThreadPlansPerSecond > 0 && f.poolPlansPerSecond > 0);
  assert.ok(Math.abs(f.speedup - f.oneThreadMs / f.poolMs) < 1e-9);
});

test('Ctrl-C during the kernel part deletes the scratch netns', async () => {
  const child = spawn(process.execPath, [CLI, 'bench', '--nodes', '3000', '--locations', '3000', '--peers', '0', '--granularity', 'full', ...FAST, '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  let seen = false;
  for (let i = 0; i < 1200 && !seen; i++) {
    if (child.exitCode !== null) break;
    seen = netnsOf(child.pid!).length > 0;
    if (!seen) await new Promise((r) => setTimeout(r, 50));
  }
  assert.ok(seen, `the bench never created its netns: ${stderr}`);
  await new Promise((r) => setTimeout(r, 500));
  child.kill('SIGINT');
  const code = await exited;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /SIGINT: deleting network namespace/);
  assert.deepEqual(netnsOf(child.pid!), [], 'netns deleted after Ctrl-C');
  assert.ok(!existsSync(`/run/kgt-${child.pid}-mnt`), 'mount root removed');
});

test('not root: the kernel part says clearly that it needs root, the rest is measured', () => {
  // Unprivileged through a new user namespace without a mapping: uid 65534 and no capabilities,
  // yet the checkout stays readable (root's owner bits still apply), so the test also runs from a
  // checkout that only root can read, such as one under /root or in a `mktemp -d` directory.
  const r = spawnSync('unshare', ['--user', '--', process.execPath, CLI, 'bench', '--nodes', '40', '--locations', '4', '--peers', '2', ...FAST], { encoding: 'utf8', timeout: 120_000, cwd: tmpdir() });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /Kernel write cost\n.*\n-+\nnot measured: the kernel write cost needs root/);
  assert.match(r.stdout, /I\/O worker holding the plan\s+not measured/);
  assert.match(r.stdout, /incremental \(one node changed/);
});

test('bad flags: one clear error line and exit status 1', () => {
  const cases: [string[], RegExp][] = [
    [['--nodes', 'many'], /invalid argument "many" for "--nodes"/],
    [['--nodes', '1'], /invalid --nodes 1/],
    [['--granularity', 'cosmic'], /invalid --granularity "cosmic"; possible values are: location, full, cross/],
    [['--nodes', '20', '--locations', '30'], /more locations than --nodes/],
    [['-o', 'xml'], /invalid --output "xml"/],
    [['--sweep', '100,lots'], /invalid --sweep/],
    [['--heartbeat', 'sometimes'], /invalid --heartbeat/],
    [['--nodes-file', join(tmp, 'missing.yaml')], /failed to read nodes from/],
    [['--peers-file', 'x.yaml'], /--peers-file needs --nodes-file/],
    [['--frobnicate'], /unknown flag: --frobnicate/],
  ];
  for (const [args, re] of cases) {
    const r = kg('bench', ...args);
    assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
    const lines = r.stderr.trim().split('\n');
    assert.equal(lines.length, 1, `${args.join(' ')}: one line, got ${r.stderr}`);
    assert.match(lines[0], /^Error: /);
    assert.match(lines[0], re);
    assert.equal(r.stdout, '');
  }
});

test('kg bench --sweep writes a table and SVG charts', () => {
  const out = join(tmp, 'sweep');
  const r = kg('bench', '--sweep', '30,90', '--locations', '3', '--peers', '2', '--kernel=false', ...FAST, '--out-dir', out, '-o', 'markdown');
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\| nodes \|/);
  assert.match(r.stdout, /\| 30 \|/);
  assert.match(r.stdout, /\| 90 \|/);
  assert.match(r.stderr, /sweep report written to/);
  for (const f of ['plan-time.svg', 'dataplane.svg', 'memory.svg', 'apiserver.svg']) {
    const svg = readFileSync(join(out, f), 'utf8');
    assert.equal(XMLValidator.validate(svg), true, f);
    assert.equal((svg.match(/<circle /g) ?? []).length >= 2, true, `${f} has points`);
  }
  assert.ok(!existsSync(join(out, 'kernel.svg')), 'no kernel chart without kernel numbers');
  const md = readFileSync(join(out, 'report.md'), 'utf8');
  assert.match(md, /!\[plan-time.svg\]\(plan-time.svg\)/);
  const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8')) as BenchResult[];
  assert.deepEqual(results.map((x) => x.cluster.nodes), [30, 90]);
  assert.match(readFileSync(join(out, 'index.html'), 'utf8'), /<svg /);
});

test('compare: equal files pass, a planted regression fails, bad input is an error', () => {
  const file = (name: string, p50s: number[]) => {
    const p = join(tmp, name);
    writeFileSync(p, JSON.stringify({ format: 'kg-bench-results/1', bench: 'plan', date: '', commit: null, machine: {}, measurements: p50s.map((p50, i) => ({ name: `m${i}`, unit: 'ms', p50 })) }));
    return p;
  };
  const cmp = (...a: string[]) => spawnSync(process.execPath, [COMPARE, ...a], { encoding: 'utf8' });
  const base = file('old.json', [10, 20, 30]);
  const same = cmp(base, file('same.json', [10, 20, 30]));
  assert.equal(same.status, 0, same.stdout + same.stderr);
  assert.match(same.stdout, /no regression/);
  const worse = cmp(base, file('worse.json', [10, 30, 30.5]));
  assert.equal(worse.status, 1, worse.stdout);
  assert.match(worse.stdout, /m1 .*1\.50x\s+REGRESSION/);
  assert.doesNotMatch(worse.stdout, /m2 .*REGRESSION/);
  assert.equal(cmp(base, join(tmp, 'worse.json'), '--threshold', '0.6').status, 0, 'within a looser threshold');
  // Against a same-run baseline: a uniformly 2x slower machine is no regression; a real one is.
  const named = (fname: string, plan: number, clone: number) => {
    const p = join(tmp, fname);
    writeFileSync(p, JSON.stringify({ measurements: [
      { name: 'plan/full/100 nodes', unit: 'ms', p50: plan }, { name: 'baseline/structuredClone/100 nodes', unit: 'ms', p50: clone },
    ] }));
    return p;
  };
  const b0 = named('b0.json', 10, 1);
  assert.equal(cmp(b0, named('b-slow-machine.json', 20, 2)).status, 1, 'absolute: flagged');
  const rel = cmp(b0, join(tmp, 'b-slow-machine.json'), '--baseline', 'baseline/structuredClone');
  assert.equal(rel.status, 0, rel.stdout);
  assert.match(rel.stdout, /plan\/full\/100 nodes .*1\.00x/);
  assert.equal(cmp(b0, named('b-real.json', 20, 1), '--baseline', 'baseline/structuredClone').status, 1, 'relative: a real regression');
  const bad = cmp(base, join(tmp, 'nope.json'));
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /^compare: cannot read /);
  // kg bench JSON is comparable too.
  const kb = join(tmp, 'kb.json');
  writeFileSync(kb, JSON.stringify(small));
  const self = cmp(kb, kb);
  assert.equal(self.status, 0, self.stdout + self.stderr);
  assert.match(self.stdout, /kg-bench\/full-plan\/200 nodes\/10 loc\/location/);
});
