// The real I/O worker thread through its comlink client: apply, no-op resync, metrics, and a
// worker crash: the supervisor restarts it, the new worker asks for the whole state (it holds
// none), and given it (the agent's ioRestarted path) re-reads the kernel, then repairs.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Registry } from 'prom-client';
import { IoClient } from '../../workers/io-client.js';
import { DeltaTracker } from '../../diff/desired.js';
import { KG_PROTO } from '../../kernel/owner.js';
import { fixture } from '../../bench/plan-fixture.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool, waitFor } from './netns.js';

after(cleanupMntRoot);

test('io-worker: apply, no-op resync, metrics, restart after a crash re-reads and repairs', async (t) => {
  requireTool('wireguard-go', 'wg', 'iptables-nft-restore');
  const node = TestNode.create('worker');
  const registry = new Registry();
  const events: string[] = [];
  let restarted = 0;
  const client = new IoClient(
    { nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'nft', ipv6: true },
    { registry, onEvent: (e) => events.push(e.type), onRestart: () => restarted++ },
  );
  t.after(async () => {
    await client.close();
    node.destroy(); // kills the wireguard-go the worker spawned, by pid, before deleting the netns
  });
  node.ip('link', 'add', 'eth0', 'type', 'bridge');
  node.ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
  node.ip('link', 'set', 'eth0', 'up');
  await client.start();
  const desired = fixture({ nodes: 30, privateKey: keyPair().privateKey, ipv6: true });
  // Numbered and sent as the plan worker does: the whole state as JSON text, then deltas.
  const tracker = new DeltaTracker();
  tracker.full(desired);
  let res = await client.applyFull(JSON.stringify(desired), tracker.seq);
  assert.deepEqual(res.errors, []);
  const routes = (): number => (JSON.parse(node.ip('-4', '-j', 'route', 'show', 'proto', String(KG_PROTO))) as unknown[]).length;
  // the default set layout: KILO-NAT holds one rule per set, the addresses are set elements
  const natRules = (): number => node.run('iptables-nft-save', '-t', 'nat').split('\n').filter((l) => l.startsWith('-A KILO-NAT')).length;
  const elements = (): number => node.run('ipset', 'save').split('\n').filter((l) => l.startsWith('add kilo4-nat-')).length;
  assert.equal(routes(), 29 * 3);
  assert.deepEqual([natRules(), elements()], [3, 30 * 3]);
  assert.equal(node.run('wg', 'show', 'kilo0', 'peers').trim().split('\n').length, 29);

  res = await client.resync();
  assert.deepEqual([res.errors.length, res.writes], [0, 0]);

  const text = await registry.metrics();
  assert.match(text, /kilo_iptables_operations_total\{operation="AppendUnique",table="nat",chain="KILO-NAT",protocol="IPv4"\} \d+/);
  assert.match(text, /kg_dataplane_writes_total\{kind="routes"\} 88/);
  // the set layout runs (ipset works here) and its writes have their own counter (design §8.11)
  assert.match(text, /^kg_iptables_layout\{layout="sets"\} 1$/m);
  assert.match(text, /^kg_iptables_layout_fallback 0$/m);
  assert.match(text, /^kg_ipset_operations_total\{operation="add",set="kilo4-nat-wg"\} 30$/m);
  assert.match(text, /^kg_ipset_operations_total\{operation="create",set="kilo4-nat-known"\} 1$/m);

  // someone deletes a route and flushes KILO-NAT, then the worker crashes
  // (no resync timer, no route monitor: only the restarted worker can repair this)
  node.ip('route', 'del', '10.42.5.0/24');
  node.run('iptables-nft', '-t', 'nat', '-F', 'KILO-NAT');
  const firstThread = client.threadId;
  await client.crashForTest();
  assert.ok(await waitFor(() => client.restartCount === 1, 5000), 'supervisor restarted the worker');
  await client.whenReady();
  assert.notEqual(client.threadId, firstThread);
  assert.equal(restarted, 1, 'the owner of the states was told');
  // the new worker holds no base state: a delta is refused with needFullState
  res = await client.applyPrepared(tracker.delta(desired));
  assert.equal(res.needFullState, true);
  // the whole state (the agent's next plan after ioRestarted): the worker reads the kernel first,
  // then repairs; a resync (it reads again) proves the kernel now matches: zero writes
  tracker.full(desired);
  res = await client.applyFull(JSON.stringify(desired), tracker.seq);
  assert.deepEqual(res.errors, []);
  res = await client.resync();
  assert.deepEqual(res.errors, []);
  assert.equal(routes(), 29 * 3);
  assert.deepEqual([natRules(), elements()], [3, 30 * 3]);
  assert.equal(res.writes, 0);

  res = await client.cleanUp({ interface: true });
  assert.deepEqual(res.errors, []);
  assert.equal(routes(), 0);
  assert.deepEqual([natRules(), elements()], [0, 0]);
  assert.notEqual(node.tryRun('ip', 'link', 'show', 'kilo0').code, 0);
});

test('io-worker: the WireGuard device comes up at start, before any desired state (not with --create-interface=false)', async (t) => {
  requireTool('wireguard-go', 'wg');
  const node = TestNode.create('prep');
  node.ip('link', 'add', 'eth0', 'type', 'bridge');
  node.ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
  node.ip('link', 'set', 'eth0', 'up');
  const opts = { nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'nft' as const, ipv6: false };
  const adopter = new IoClient({ ...opts, createInterface: false });
  const client = new IoClient(opts);
  t.after(async () => {
    await adopter.close();
    await client.close();
    node.destroy();
  });
  await adopter.start();
  const obs = await adopter.observe(); // queued behind the preparation: it is over
  assert.equal(obs.mode, null);
  assert.notEqual(node.tryRun('ip', 'link', 'show', 'kilo0').code, 0, '--create-interface=false creates nothing');
  await adopter.close();

  await client.start();
  const seen = await client.observe();
  assert.equal(seen.mode, 'userspace');
  assert.ok(seen.ownedPid !== null && seen.ownedPid > 0);
  assert.equal(node.tryRun('ip', 'link', 'show', 'kilo0').code, 0, 'kilo0 exists before the first apply');
  assert.equal(seen.peers.length, 0);
  assert.equal(seen.up, false, 'the link stays down until a plan says otherwise');
  // the first apply adopts it (no second wireguard-go) and writes everything in one pass
  const desired = fixture({ nodes: 5, privateKey: keyPair().privateKey });
  const res = await client.applyFull(JSON.stringify(desired), 1);
  assert.deepEqual(res.errors, []);
  const after = await client.observe();
  assert.equal(after.ownedPid, seen.ownedPid);
  assert.equal(after.up, true);
  assert.equal(after.peers.length, 4);
});

test('io-worker: a worker that keeps dying soon after it came up is restarted with growing delays', async (t) => {
  const node = TestNode.create('quick');
  const client = new IoClient({ nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'nft', ipv6: false, createInterface: false });
  t.after(async () => {
    await client.close();
    node.destroy();
  });
  await client.start();
  // deaths 1 and 2 come back after 100 and 200 ms; the third one waits 400 ms
  for (let i = 1; i <= 2; i++) {
    await client.crashForTest();
    assert.ok(await waitFor(() => client.restartCount === i, 5000));
    await client.whenReady();
  }
  await client.crashForTest();
  assert.ok(await waitFor(() => client.restartCount === 3, 5000));
  const t0 = Date.now();
  await client.whenReady();
  assert.ok(Date.now() - t0 >= 300, `the third restart in a row waited ${Date.now() - t0} ms`);
  assert.equal((await client.observe()).interface, 'kilo0', 'the restarted worker answers');
});
