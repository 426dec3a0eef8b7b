// IPIP tunnel and CNI conflist through the Dataplane, in a test namespace.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Dataplane } from '../../dataplane/dataplane.js';
import { CniReconciler } from '../../dataplane/cni.js';
import type { DesiredState } from '../../ipc/dataplane.js';
import { TestNode, cleanupMntRoot } from './netns.js';

after(cleanupMntRoot);

const empty = { chains: [], prepend: [], append: [] };

test('IPIP tunnel: configured where the kernel has IPIP; elsewhere a clear error and the rest still applies', async (t) => {
  const node = TestNode.create('tunl');
  const dp = new Dataplane({ interface: 'wg-none', nsenter: node.nsenter, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'legacy', ipv6: false });
  t.after(async () => {
    await dp.close();
    node.destroy();
  });
  node.ip('link', 'add', 'eth0', 'type', 'bridge');
  node.ip('link', 'set', 'eth0', 'mtu', '1450');
  node.ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
  node.ip('link', 'set', 'eth0', 'up');
  const probe = spawnSync('ip', ['-n', node.name, 'tunnel', 'add', 'kgprobe', 'mode', 'ipip'], { encoding: 'utf8' });
  const hasIpip = probe.status === 0;
  if (hasIpip) node.ip('tunnel', 'del', 'kgprobe');
  const desired: DesiredState = {
    interface: 'wg-none',
    wireguard: null,
    routes: [{ dst: '10.42.2.0/24', gw: '172.16.0.2', dev: 'eth0', src: null, table: null, protocol: 'static', onlink: true }],
    rules: [],
    iptables: empty,
    tunnel: { dev: 'tunl0', address: '10.42.1.1/32', privIface: 'eth0' },
    cni: null,
  };
  const res = await dp.apply(desired);
  assert.equal(JSON.parse(node.ip('-j', 'route', 'show', '10.42.2.0/24')).length, 1, 'routes applied regardless of the tunnel');
  if (hasIpip) {
    assert.deepEqual(res.errors, []);
    const l = JSON.parse(node.ip('-j', 'addr', 'show', 'dev', 'tunl0'))[0];
    assert.equal(l.mtu, 1430);
    assert.deepEqual(l.addr_info.map((a: any) => `${a.local}/${a.prefixlen}`), ['10.42.1.1/32']);
  } else {
    // this development machine: no ipip module
    assert.equal(res.errors.length, 1);
    assert.equal(res.errors[0].kind, 'tunnel');
    assert.match(res.errors[0].message, /kernel has no IPIP support/);
  }
});

test('CNI conflist: rewritten atomically, and only when the range changes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kgt-cni-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, '10-kilo.conflist');
  writeFileSync(path, '{"cniVersion":"0.4.0","name":"kilo","plugins":[{"name":"kubernetes","type":"bridge","bridge":"kube-bridge","mtu":1420,"ipam":{"type":"host-local"}},{"type":"portmap","snat":true,"capabilities":{"portMappings":true}}]}');
  const ino0 = statSync(path).ino;
  const cni = new CniReconciler(); // a file, no kernel: the reconciler alone
  const r1 = await cni.reconcile();
  assert.equal(r1.writes, 0, 'nothing desired yet');
  cni.setDesired({ path, podCIDR: '10.42.1.0/24' });
  const r2 = await cni.reconcile();
  assert.deepEqual([r2.writes, r2.errors.length], [1, 0]);
  const st = statSync(path);
  assert.notEqual(st.ino, ino0, 'replaced by rename (atomic)');
  assert.equal((st.mode & 0o777).toString(8), '644');
  assert.equal(
    readFileSync(path, 'utf8'),
    '{"cniVersion":"0.4.0","name":"kilo","plugins":[{"bridge":"kube-bridge","ipam":{"ranges":[[{"subnet":"10.42.1.0/24"}]],"type":"host-local"},"mtu":1420,"name":"kubernetes","type":"bridge"},{"capabilities":{"portMappings":true},"snat":true,"type":"portmap"}]}',
  );
  const r3 = await cni.reconcile();
  assert.equal(r3.writes, 0);
  assert.equal(statSync(path).ino, st.ino, 'unchanged content: not rewritten');
  cni.setDesired({ path, podCIDR: '10.42.7.0/24' });
  assert.equal((await cni.reconcile()).writes, 1);
  assert.match(readFileSync(path, 'utf8'), /"subnet":"10\.42\.7\.0\/24"/);
  // Between resyncs a verified file is not read again (applies do not pay for it); a resync
  // (reread) checks it and repairs an edit made behind kg's back, as Kilo's resync does.
  writeFileSync(path, readFileSync(path, 'utf8').replace('10.42.7.0/24', '10.99.0.0/24'));
  const quiet = await cni.reconcile(false);
  assert.deepEqual([quiet.read, quiet.writes], [false, 0]);
  const resync = await cni.reconcile(true);
  assert.deepEqual([resync.read, resync.writes], [true, 1]);
  assert.match(readFileSync(path, 'utf8'), /"subnet":"10\.42\.7\.0\/24"/);
  // A new desired range is checked without waiting for a resync.
  cni.setDesired({ path, podCIDR: '10.42.8.0/24' });
  assert.equal((await cni.reconcile(false)).writes, 1);
});
