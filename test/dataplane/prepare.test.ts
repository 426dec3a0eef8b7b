// Dataplane.prepare reads the WireGuard device's peers, the routes and the rules ahead of the first
// desired state (while the agent lists the cluster): the first pass diffs against that read and
// makes none of its own; a change made in between is repaired by the next (re-reading) resync.
// Real kernel and wireguard-go in a test namespace.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../../dataplane/dataplane.js';
import { KG_PROTO } from '../../kernel/owner.js';
import type { DesiredPeer, DesiredState } from '../../ipc/dataplane.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool } from './netns.js';

after(cleanupMntRoot);

const peer = (publicKey: string, allowedIPs: string[]): DesiredPeer => ({ publicKey, allowedIPs, endpoint: null, persistentKeepalive: 0, presharedKey: false });

function peersOf(n: TestNode): string[] {
  return n.run('wg', 'show', 'kilo0', 'peers').trim().split('\n').filter((l) => l.length > 0).sort();
}
function kgRoutes(n: TestNode): string[] {
  return n.routesJSON('-4').filter((r) => r.protocol === String(KG_PROTO)).map((r) => r.dst as string).sort();
}
function kgRules(n: TestNode): string[] {
  return (JSON.parse(n.ip('-4', '-N', '-d', '-j', 'rule', 'show')) as Array<Record<string, any>>)
    .filter((r) => String(r.protocol) === String(KG_PROTO))
    .map((r) => `${r.src ?? '-'}/${r.srclen ?? '-'} ${r.table}`)
    .sort();
}

test('prepare: the first pass diffs against the state read ahead of it; the resync repairs what changed since', async (t) => {
  requireTool('wireguard-go', 'wg');
  const n = TestNode.create('prep').bridges([['eth0', '172.16.0.1/16']]);
  const dp = new Dataplane({ nsenter: n.nsenter, uapiDir: n.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'legacy', ipv6: false });
  t.after(async () => {
    await dp.close();
    await dp.wireguard.stopChild();
    n.destroy();
  });
  // kg's leftovers from a previous run, there before prepare: the first pass must remove them
  n.ip('route', 'add', '10.99.0.0/24', 'via', '172.16.0.9', 'dev', 'eth0', 'proto', String(KG_PROTO));
  n.ip('rule', 'add', 'from', '10.99.0.0/24', 'lookup', '1107', 'protocol', String(KG_PROTO));
  await dp.prepare();
  assert.equal(dp.wireguard.getMode(), 'userspace');

  // made after prepare's read: the first pass does not see them (it reads nothing itself)
  const late = keyPair();
  n.run('wg', 'set', 'kilo0', 'peer', late.publicKey, 'allowed-ips', '10.4.9.9/32');
  n.ip('route', 'add', '10.98.0.0/24', 'via', '172.16.0.9', 'dev', 'eth0', 'proto', String(KG_PROTO));
  n.ip('rule', 'add', 'from', '10.98.0.0/24', 'lookup', '1107', 'protocol', String(KG_PROTO));

  const me = keyPair();
  const others = Array.from({ length: 3 }, () => keyPair());
  const desired: DesiredState = {
    interface: 'kilo0',
    wireguard: { privateKey: me.privateKey, listenPort: 51820, mtu: 1420, address: '10.4.0.1/16', peers: others.map((k, i) => peer(k.publicKey, [`10.4.0.${i + 2}/32`])) },
    routes: [{ dst: '10.42.2.0/24', gw: '10.4.0.2', dev: 'kilo0', src: null, table: null, protocol: 'static', onlink: true }],
    rules: [{ src: '10.42.1.0/24', dst: null, iif: null, table: 1107, priority: null }],
    iptables: { chains: [], prepend: [], append: [] },
    tunnel: null,
    cni: null,
  };
  const first = await dp.apply(desired);
  assert.deepEqual(first.errors, []);
  const wg = first.reports.find((r) => r.kind === 'wireguard')!;
  assert.equal(wg.read, false, 'the device read by prepare is used');
  assert.deepEqual(peersOf(n), [late.publicKey, ...others.map((k) => k.publicKey)].sort());
  assert.deepEqual(kgRoutes(n), ['10.42.2.0/24', '10.98.0.0/24']);
  assert.deepEqual(kgRules(n), ['10.42.1.0/24 1107', '10.98.0.0/24 1107']);

  // a second apply uses the cache; the resync reads again and removes what came in between
  const resync = await dp.resync();
  assert.deepEqual(resync.errors, []);
  assert.deepEqual(peersOf(n), others.map((k) => k.publicKey).sort());
  assert.deepEqual(kgRoutes(n), ['10.42.2.0/24']);
  assert.deepEqual(kgRules(n), ['10.42.1.0/24 1107']);
});
