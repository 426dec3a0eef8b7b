// The set layout on a host where ipset is unusable (design §8.11): the I/O worker probes once at
// its start, runs the kilo layout for the run, says what is missing and what to do, and shows it
// in kg_iptables_layout_fallback. Kernel state in network namespaces this test creates.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { IoClient } from '../../workers/io-client.js';
import { Dataplane } from '../../dataplane/dataplane.js';
import { Exec } from '../../dataplane/exec.js';
import { IptablesReconciler } from '../../dataplane/iptables.js';
import { DeltaTracker } from '../../diff/desired.js';
import { ipsetProblem } from '../../kernel/ipset.js';
import { fixture } from '../../bench/plan-fixture.js';
import type { DataplaneEvent } from '../../ipc/dataplane.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool } from './netns.js';

after(cleanupMntRoot);

const IPSET = '/usr/sbin/ipset';
const BIN_DIRS = ['/usr/local/sbin', '/usr/local/bin', '/usr/sbin', '/usr/bin', '/sbin', '/bin'];

/**
 * A directory that stands for PATH: a link to every program of the usual directories except
 * `ipset`, and `extra` scripts of our own. Removed by the caller.
 */
function pathWithout(tag: string, extra: Record<string, string> = {}): string {
  const dir = `/tmp/kgt-${process.pid}-${tag}-path`;
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir);
  for (const d of BIN_DIRS) {
    if (!existsSync(d)) continue;
    for (const f of readdirSync(d)) {
      if (f === 'ipset' || f in extra || existsSync(join(dir, f))) continue;
      symlinkSync(join(d, f), join(dir, f));
    }
  }
  for (const [name, text] of Object.entries(extra)) {
    writeFileSync(join(dir, name), text);
    chmodSync(join(dir, name), 0o755);
  }
  return dir;
}

/** Start `client` with `path` as the worker's PATH (a worker copies the environment when it is created). */
async function startWithPath(client: IoClient, path: string): Promise<void> {
  const old = process.env.PATH;
  process.env.PATH = path;
  const started = client.start();
  process.env.PATH = old;
  await started;
}

function bridge(node: TestNode): void {
  node.ip('link', 'add', 'eth0', 'type', 'bridge');
  node.ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
  node.ip('link', 'set', 'eth0', 'up');
}

const natRules = (node: TestNode): string[] => node.run('iptables-nft-save', '-t', 'nat').split('\n').filter((l) => l.startsWith('-A KILO-NAT'));
const ourSets = (node: TestNode): string[] => node.run(IPSET, '-n', 'list').split('\n').filter((l) => l.startsWith('kilo'));
const metric = (text: string, name: string): string[] => text.split('\n').filter((l) => l.startsWith(name));

test('ipset missing from PATH: the worker falls back to the kilo layout, says why, keeps a sets run\'s state working, and shows it in a gauge', async (t) => {
  requireTool('wireguard-go', 'wg', 'iptables-nft-restore', 'ipset');
  const node = TestNode.create('nopath');
  const dir = pathWithout('nopath');
  const registry = new Registry();
  const logs: string[] = [];
  const client = new IoClient(
    { nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'nft', ipv6: false },
    { registry, onEvent: (e: DataplaneEvent) => void (e.type === 'log' && e.level === 'warn' && logs.push(e.msg)) },
  );
  let earlier: Dataplane | null = null;
  t.after(async () => {
    await earlier?.close();
    await client.close();
    node.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  bridge(node);
  const desired = fixture({ nodes: 20, privateKey: keyPair().privateKey, ipv6: false });

  // An earlier run with ipset: the set layout (3 rules in KILO-NAT, the addresses in sets).
  earlier = new Dataplane({ nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'nft', ipv6: false, iptablesLayout: 'sets' });
  assert.deepEqual((await earlier.apply(desired)).errors, []);
  assert.equal(natRules(node).length, 3);
  const setsBefore = ourSets(node);
  assert.ok(setsBefore.includes('kilo4-nat-wg'), setsBefore.join(','));
  await earlier.close();
  earlier = null;

  // This run: no ipset binary at all.
  await startWithPath(client, dir);
  assert.equal(logs.length, 1, 'one warning at start');
  assert.match(logs[0], /--iptables-layout=sets cannot run: the ipset tool is not installed/);
  assert.match(logs[0], /--iptables-layout=kilo/);
  let text = await registry.metrics();
  assert.deepEqual(metric(text, 'kg_iptables_layout_fallback '), ['kg_iptables_layout_fallback 1']);
  assert.deepEqual(metric(text, 'kg_iptables_layout{'), ['kg_iptables_layout{layout="sets"} 0', 'kg_iptables_layout{layout="kilo"} 1']);

  const tracker = new DeltaTracker();
  tracker.full(desired);
  let res = await client.applyFull(JSON.stringify(desired), tracker.seq);
  assert.deepEqual(res.errors, [], 'no raw ipset error: the kilo layout needs no ipset');
  // Kilo's layout, rule for rule: 20 nodes × 3 RETURNs, then the MASQUERADE
  const rules = natRules(node);
  assert.equal(rules.filter((l) => l.includes('--match-set')).length, 0, 'the set rules were replaced');
  assert.equal(rules.filter((l) => / -d \S+ .*-j RETURN/.test(l)).length, 20 * 3);
  assert.deepEqual(ourSets(node), setsBefore, 'the sets stay: no tool to destroy them, nothing refers to them');
  assert.equal(node.run('wg', 'show', 'kilo0', 'peers').trim().split('\n').length, 19, 'WireGuard is programmed');

  // Later passes probe nothing and write nothing.
  res = await client.resync();
  assert.deepEqual([res.errors.length, res.writes], [0, 0]);
  text = await registry.metrics();
  assert.deepEqual(metric(text, 'kg_iptables_layout_fallback '), ['kg_iptables_layout_fallback 1']);
  assert.deepEqual(metric(text, 'kg_ipset_operations_total{operation="add"'), [], 'no set writes in the kilo layout');

  // Clean-up removes every rule of ours; the sets wait for a run with ipset.
  res = await client.cleanUp({ interface: true });
  assert.deepEqual(res.errors, []);
  assert.deepEqual(natRules(node), []);
  // …which is the kilo layout's clean-up with the tool back: nothing of ours is left.
  const kilo = new Dataplane({ nsenter: node.nsenter, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'nft', ipv6: false, iptablesLayout: 'kilo' });
  assert.deepEqual((await kilo.cleanUp({ interface: false })).errors, []);
  await kilo.close();
  assert.deepEqual(ourSets(node), []);
});

// A unit test of the logic above ipset, not of ipset: this kernel has ip_set built in, so the
// "no ip_set module" case is a fake `ipset` that prints what ipset prints then (ipset 7.x,
// "Cannot open session to kernel.") and counts its runs, to show the probes are bounded.
test('ipset without kernel support (fake ipset, unit test): one probe per worker start, a precise warning, no retry storm', async (t) => {
  requireTool('wireguard-go', 'wg', 'iptables-nft-restore');
  const node = TestNode.create('nokernel');
  const calls = `/tmp/kgt-${process.pid}-ipset-calls`;
  const dir = pathWithout('nokernel', {
    ipset: `#!/bin/sh\necho "$*" >> ${calls}\necho "ipset v7.17: Error in line 1: Cannot open session to kernel." >&2\nexit 1\n`,
  });
  const registry = new Registry();
  const logs: string[] = [];
  const client = new IoClient(
    { nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'nft', ipv6: true },
    { registry, onEvent: (e: DataplaneEvent) => void (e.type === 'log' && e.level === 'warn' && logs.push(e.msg)) },
  );
  t.after(async () => {
    await client.close();
    node.destroy();
    rmSync(dir, { recursive: true, force: true });
    rmSync(calls, { force: true });
  });
  bridge(node);
  await startWithPath(client, dir);
  const runs = (): string[] => (existsSync(calls) ? readFileSync(calls, 'utf8').trim().split('\n') : []);
  assert.deepEqual(runs(), ['restore'], 'one probe at start');
  assert.equal(logs.length, 1);
  assert.match(logs[0], /no usable ip_set support .*Cannot open session to kernel.*modprobe ip_set/);

  const desired = fixture({ nodes: 10, privateKey: keyPair().privateKey, ipv6: true });
  const tracker = new DeltaTracker();
  tracker.full(desired);
  assert.deepEqual((await client.applyFull(JSON.stringify(desired), tracker.seq)).errors, []);
  const afterFirst = runs().length;
  for (let i = 0; i < 5; i++) assert.deepEqual((await client.resync()).errors, []);
  assert.equal(runs().length, afterFirst, 'resyncs run ipset no more');
  // the probe, and one read by the kilo layout, which destroys sets of ours an earlier run left (it finds none here)
  assert.deepEqual(runs(), ['restore', 'save']);
  assert.match(await registry.metrics(), /^kg_iptables_layout_fallback 1$/m);
  assert.deepEqual((await client.cleanUp({ interface: true })).errors, []);
});

test('ipset gone after the start-up probe: each pass fails with what is missing and what to do, and removes nothing', async (t) => {
  requireTool('iptables-nft-restore', 'ipset');
  const node = TestNode.create('gone');
  const dir = pathWithout('gone');
  t.after(() => {
    node.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const desired = fixture({ nodes: 10, privateKey: keyPair().privateKey, ipv6: false }).iptables;
  const r = new IptablesReconciler(new Exec(node.nsenter), { backend: 'nft', ipv6: false, layout: 'sets' });
  r.setDesired(desired);
  assert.deepEqual((await r.reconcile(false)).errors, []);
  const rules = natRules(node);
  const sets = node.run(IPSET, 'save');
  const old = process.env.PATH;
  process.env.PATH = dir;
  try {
    for (let i = 0; i < 2; i++) {
      const rep = await r.reconcile(true);
      assert.equal(rep.errors.length, 1, JSON.stringify(rep.errors));
      assert.match(rep.errors[0].message, /^ipset save: the ipset tool is not installed .*; or run with --iptables-layout=kilo$/);
    }
  } finally {
    process.env.PATH = old;
  }
  assert.deepEqual(natRules(node), rules, 'the set rules stay');
  assert.equal(node.run(IPSET, 'save'), sets, 'the sets and their elements stay');
  await r.cleanUp();
  assert.deepEqual(ourSets(node), []);
});

test('ipset problems are named from the texts ipset and the kernel print (real kernel text for a missing set type)', () => {
  const node = TestNode.create('types');
  try {
    // hash:mac is not built into this kernel (hash:net is): the kernel's own answer for a missing type
    const r = node.tryRun(IPSET, 'create', `kgt-${process.pid}`, 'hash:mac');
    assert.notEqual(r.code, 0, 'hash:mac exists on this kernel: pick another missing type');
    assert.equal(ipsetProblem(r.code, r.err).cause, 'type');
    assert.match(ipsetProblem(r.code, r.err).message, /modprobe ip_set_hash_net/);
  } finally {
    node.destroy();
  }
  assert.equal(ipsetProblem(127, 'nsenter: failed to execute ipset: No such file or directory').cause, 'tool');
  assert.equal(ipsetProblem(-1, 'ipset: spawn ipset ENOENT').cause, 'tool');
  assert.equal(ipsetProblem(1, 'ipset v6.23: Kernel error received: Invalid argument').cause, 'kernel');
  assert.equal(ipsetProblem(1, 'ipset v7.1: Error in line 1: Cannot open session to kernel.').cause, 'kernel');
  assert.equal(ipsetProblem(1, 'ipset v6.29: Kernel error received: Operation not permitted').cause, 'permission');
  assert.equal(ipsetProblem(1, 'ipset v7.17: Error in line 3: Hash is full, cannot add more elements').cause, 'other');
});
