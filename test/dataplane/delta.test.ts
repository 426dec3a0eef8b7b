// Incremental (delta) passes against the real kernel: a sequence of plans applied as deltas leaves
// the kernel exactly where a full re-read finds nothing to do, and each delta pass reads nothing.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../../dataplane/dataplane.js';
import { KG_PROTO } from '../../kernel/owner.js';
import { fixture } from '../../bench/plan-fixture.js';
import { stateApplier } from './deltas.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool, waitFor } from './netns.js';

after(cleanupMntRoot);

test('deltas: O(changed) passes keep the kernel equal to the desired state (legacy iptables, userspace WireGuard)', async (t) => {
  requireTool('wireguard-go', 'wg', 'iptables-legacy-restore');
  const node = TestNode.create('delta');
  const dp = new Dataplane({ nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'legacy', ipv6: true });
  t.after(async () => {
    await dp.close();
    await dp.wireguard.stopChild();
    node.destroy();
  });
  node.ip('link', 'add', 'eth0', 'type', 'bridge');
  node.ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
  node.ip('link', 'set', 'eth0', 'up');
  const { privateKey } = keyPair();
  const applyState = stateApplier(dp);
  const variants = [
    { changed: 0 },
    { changed: 3 },
    { changed: 4, omit: 7 },
    { changed: 4, omit: 9, ipv6: true },
    { changed: 0, omit: 3, ipv6: true },
    { changed: 5 },
  ];
  let first = true;
  for (const v of variants) {
    const res = await applyState(fixture({ nodes: 40, privateKey, ...v }));
    assert.deepEqual(res.errors, [], JSON.stringify(v));
    if (!first) {
      for (const r of res.reports.filter((x) => ['routes', 'iptables', 'wireguard'].includes(x.kind))) assert.equal(r.read, false, `${r.kind} used its cached view`);
      assert.ok(res.writes <= 30, `small delta wrote ${res.writes}`);
    }
    first = false;
    const check = await dp.resync();
    assert.deepEqual([check.errors.length, check.writes], [0, 0], `after ${JSON.stringify(v)} a full re-read finds nothing to do`);
  }
  const peers = node.run('wg', 'show', 'kilo0', 'peers').trim().split('\n');
  assert.equal(peers.length, 39);
  const routes = JSON.parse(node.ip('-4', '-j', 'route', 'show', 'proto', String(KG_PROTO))) as unknown[];
  assert.equal(routes.length, 39 * 3 + 1);
});

test('periodic resync repairs drift on its own; --mtu=auto follows the underlay (default-route device − 80)', async (t) => {
  requireTool('wireguard-go', 'iptables-nft-restore');
  const node = TestNode.create('resync');
  node.ip('link', 'add', 'eth0', 'type', 'bridge');
  node.ip('link', 'set', 'eth0', 'mtu', '1400');
  node.ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
  node.ip('link', 'set', 'eth0', 'up');
  node.ip('route', 'add', 'default', 'via', '172.16.0.254', 'dev', 'eth0', 'onlink');
  const dp = new Dataplane({ nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 300, routeMonitor: false, iptablesBackend: 'nft', iptablesLayout: 'kilo', ipv6: false });
  t.after(async () => {
    await dp.close();
    await dp.wireguard.stopChild();
    node.destroy();
  });
  const d = fixture({ nodes: 10, privateKey: keyPair().privateKey });
  d.wireguard!.mtu = 0; // auto
  const res = await stateApplier(dp)(d);
  assert.deepEqual(res.errors, []);
  assert.equal(JSON.parse(node.ip('-j', 'link', 'show', 'kilo0'))[0].mtu, 1320);
  const natRules = (): number => node.run('iptables-nft-save', '-t', 'nat').split('\n').filter((l) => l.startsWith('-A KILO-NAT')).length;
  assert.equal(natRules(), 31);
  node.run('iptables-nft', '-t', 'nat', '-F', 'KILO-NAT');
  node.run('wg', 'set', 'kilo0', 'peer', d.wireguard!.peers[0].publicKey, 'remove');
  assert.ok(await waitFor(() => natRules() === 31 && node.run('wg', 'show', 'kilo0', 'peers').trim().split('\n').length === 9, 5000), 'the resync timer repaired KILO-NAT and the peer');
});
