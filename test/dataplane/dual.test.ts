// Dual stack through the Dataplane (design §20): a dual-stack leader's plan (the hand-derived
// cluster of test/plan/dual.test.ts) applied in a test namespace with real userspace WireGuard,
// iproute2, ip6tables (legacy) and a CNI file; then the single-stack plan of the same node, which
// must take the second family's routes, rules and address away again.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Dataplane } from '../../dataplane/dataplane.js';
import type { DesiredState } from '../../ipc/dataplane.js';
import { parseCIDR } from '../../plan/addr.js';
import { STOCK_CONFLIST } from '../../plan/cni.js';
import { parseCluster, plan } from '../../plan/plan.js';
import type { PlanJSON } from '../../plan/types.js';
import { key, options, peerObj } from '../plan/fixture.js';
import { dualNodes } from '../plan/dual-fixture.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool } from './netns.js';

after(cleanupMntRoot);

/** The dataplane's desired state of a plan, as the plan worker builds it (workers/plan-worker.ts). */
function desired(j: PlanJSON, privateKey: string, cniPath: string, dualMode: boolean): DesiredState {
  return {
    interface: 'kilo0',
    wireguard: { privateKey, listenPort: 51820, mtu: 1420, address: j.wireGuardCIDR, ...(j.dualStack ? { address2: j.dualStack.wireGuardCIDR } : {}), peers: j.wireguard.peers },
    routes: j.routes,
    rules: j.rules,
    iptables: j.iptables,
    tunnel: null,
    cni: { path: cniPath, podCIDR: j.nodes.find((n) => n.name === j.hostname)!.subnet!, ...(dualMode ? { podCIDR2: j.dualStack?.active ? j.dualStack.podCIDR : null } : {}) },
  };
}

/**
 * Node a of the dual-stack cluster in a test namespace: eth0 holds both private addresses (nodad:
 * the IPv6 one is usable as a route source at once), a CNI file, and a Dataplane; all torn down
 * after the test.
 */
function dualNode(t: { after: (fn: () => Promise<void>) => void }, tag: string) {
  requireTool('wireguard-go', 'wg', 'ip6tables-legacy-save', 'iptables-legacy-save');
  const node = TestNode.create(tag);
  const dir = mkdtempSync(join(tmpdir(), `kgt-${tag}-`));
  const cniPath = join(dir, '10-kilo.conflist');
  writeFileSync(cniPath, JSON.stringify(STOCK_CONFLIST));
  const dp = new Dataplane({ interface: 'kilo0', nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'legacy', ipv6: true, iptablesLayout: 'kilo' });
  t.after(async () => {
    await dp.close();
    node.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  node.ip('link', 'add', 'eth0', 'type', 'bridge');
  node.ip('addr', 'add', '192.168.0.1/24', 'dev', 'eth0');
  node.ip('addr', 'add', 'fd00:1::1/64', 'dev', 'eth0', 'nodad');
  node.ip('link', 'set', 'eth0', 'up');
  return { node, dp, cniPath };
}

test('dual stack: IPv6 routes, ip6tables rules, the second WireGuard address and two CNI ranges are applied, and taken away again', async (t) => {
  const { node, dp, cniPath } = dualNode(t, 'dual');
  const cluster = parseCluster(dualNodes(), [], 'topology.kubernetes.io/region');
  const dual = plan(cluster, { ...options('a', { local: true }), dualStackSubnet: parseCIDR('fd04::/64')! }).json;
  const single = plan(cluster, options('a', { local: true })).json;
  const { privateKey } = keyPair();

  const r1 = await dp.apply(desired(dual, privateKey, cniPath, true));
  assert.deepEqual(r1.errors, []);
  const addrs = JSON.parse(node.ip('-j', 'addr', 'show', 'dev', 'kilo0'))[0].addr_info.filter((a: any) => a.scope !== 'link').map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.deepEqual(addrs.sort(), ['10.4.0.1/16', 'fd04::1/64']);
  const v6 = node.routesJSON('-6').filter((r) => r.protocol === '107').map((r) => `${r.dst} via ${r.gateway} dev ${r.dev}`).sort();
  assert.deepEqual(v6, ['fd00:2::3 via fd04::2 dev kilo0', 'fd10:0:0:2::/64 via fd00:1::2 dev eth0', 'fd10:0:0:3::/64 via fd04::2 dev kilo0']);
  const wg = node.run('wg', 'show', 'kilo0', 'allowed-ips').trim().split(/\s+/).slice(1).sort();
  assert.deepEqual(wg, ['10.2.3.0/24', '10.2.4.0/24', '10.4.0.2/32', '192.168.1.3/32', '192.168.1.4/32', 'fd00:2::3/128', 'fd04::2/128', 'fd10:0:0:3::/64'].sort());
  const save6 = node.run('ip6tables-legacy-save', '-t', 'nat');
  for (const want of ['-A KILO-NAT -d fd04::2/128', '-A KILO-NAT -d fd10:0:0:3::/64', '-A POSTROUTING -s fd10:0:0:1::/64']) assert.ok(save6.includes(want), `ip6tables: ${want}`);
  assert.ok(!node.run('iptables-legacy-save', '-t', 'nat').includes('fd04::'), 'no IPv6 address in iptables');
  const ranges = JSON.parse(readFileSync(cniPath, 'utf8')).plugins[0].ipam.ranges;
  assert.deepEqual(ranges, [[{ subnet: '10.2.1.0/24' }], [{ subnet: 'fd10:0:0:1::/64' }]]);

  // Back to single stack (the agent still has --dual-stack-subnet, so it owns the second range
  // set): the IPv6 half goes, the IPv4 half stays.
  const r2 = await dp.apply(desired(single, privateKey, cniPath, true));
  assert.deepEqual(r2.errors, []);
  const after2 = JSON.parse(node.ip('-j', 'addr', 'show', 'dev', 'kilo0'))[0].addr_info.filter((a: any) => a.scope !== 'link').map((a: any) => `${a.local}/${a.prefixlen}`);
  assert.deepEqual(after2, ['10.4.0.1/16']);
  assert.deepEqual(node.routesJSON('-6').filter((r) => r.protocol === '107'), []);
  assert.equal(node.routesJSON('-4').filter((r) => r.protocol === '107').length, single.routes.length);
  assert.ok(!node.run('ip6tables-legacy-save', '-t', 'nat').includes('fd04::'), 'ip6tables per-address rules removed');
  assert.equal(node.run('wg', 'show', 'kilo0', 'allowed-ips').includes('fd'), false);
  assert.deepEqual(JSON.parse(readFileSync(cniPath, 'utf8')).plugins[0].ipam.ranges, [[{ subnet: '10.2.1.0/24' }]]);
});

// A Peer with allowed IPs of both families (design §20.3): the kernel takes its IPv6 route only
// with an IPv6 source, which the dual-stack plan gives it.
test('dual stack: a Peer with allowed IPs of both families is routed in each family by the kernel', async (t) => {
  const { node, dp, cniPath } = dualNode(t, 'dualpeer');
  const peers = [peerObj('laptop', { allowedIPs: ['10.5.0.1/32', 'fd05::1/128'], publicKey: key(21) })];
  const j = plan(parseCluster(dualNodes(), peers, 'topology.kubernetes.io/region'), { ...options('a', { local: true }), dualStackSubnet: parseCIDR('fd04::/64')! }).json;
  const r = await dp.apply(desired(j, keyPair().privateKey, cniPath, true));
  assert.deepEqual(r.errors, []);
  const route = (fam: '-4' | '-6', dst: string) => node.routesJSON(fam).find((x) => x.dst === dst && x.protocol === '107');
  assert.equal(route('-4', '10.5.0.1')?.prefsrc, '192.168.0.1');
  assert.equal(route('-6', 'fd05::1')?.prefsrc, 'fd00:1::1');
  assert.match(node.run('wg', 'show', 'kilo0', 'allowed-ips'), /10\.5\.0\.1\/32 fd05::1\/128/);
});
