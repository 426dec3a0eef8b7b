// WireGuard reconciler against real userspace WireGuard (wireguard-go) in test namespaces, each
// node with a private mount namespace for /run/wireguard. Assertions read `wg show dump`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Dataplane } from '../../dataplane/dataplane.js';
import type { DesiredPeer, DesiredState } from '../../ipc/dataplane.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool, sh, waitFor } from './netns.js';

after(cleanupMntRoot);

interface DumpPeer {
  key: string;
  endpoint: string;
  allowed: string[];
  handshake: number;
  rx: number;
  tx: number;
  keepalive: string;
}
function dump(n: TestNode, iface = 'kilo0'): { listenPort: number; peers: Map<string, DumpPeer> } {
  const lines = n.run('wg', 'show', iface, 'dump').trim().split('\n');
  const head = lines[0].split('\t');
  const peers = new Map<string, DumpPeer>();
  for (const l of lines.slice(1)) {
    const f = l.split('\t');
    peers.set(f[0], { key: f[0], endpoint: f[2], allowed: f[3] === '(none)' ? [] : f[3].split(',').sort(), handshake: Number(f[4]), rx: Number(f[5]), tx: Number(f[6]), keepalive: f[7] });
  }
  return { listenPort: Number(head[2]), peers };
}

function state(iface: string, priv: string, address: string, peers: DesiredPeer[]): DesiredState {
  return { interface: iface, wireguard: { privateKey: priv, listenPort: 51820, mtu: 1420, address, peers }, routes: [], rules: [], iptables: { chains: [], prepend: [], append: [] }, tunnel: null, cni: null };
}

const peer = (publicKey: string, allowedIPs: string[], endpoint: string | null = null): DesiredPeer => ({ publicKey, allowedIPs, endpoint, persistentKeepalive: 0, presharedKey: false });

function dpFor(n: TestNode, extra: Record<string, unknown> = {}): Dataplane {
  return new Dataplane({ nsenter: n.nsenter, uapiDir: n.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'legacy', ipv6: false, ...extra });
}

test('wireguard (userspace): create, deltas without replacing peers, handshake survives, drift, non-leader, clean-up', async (t) => {
  requireTool('wireguard-go', 'wg');
  const a = TestNode.create('wg-a');
  const b = TestNode.create('wg-b');
  const veth = `kgv${process.pid % 100000}`;
  const dps: Dataplane[] = [];
  t.after(async () => {
    for (const d of dps) {
      await d.close();
      await d.wireguard.stopChild(); // kill wireguard-go by pid before the netns goes
    }
    a.destroy();
    b.destroy();
  });
  sh('ip', ['link', 'add', `${veth}a`, 'netns', a.name, 'type', 'veth', 'peer', 'name', `${veth}b`, 'netns', b.name]);
  a.ip('addr', 'add', '192.168.77.1/24', 'dev', `${veth}a`);
  b.ip('addr', 'add', '192.168.77.2/24', 'dev', `${veth}b`);
  a.ip('link', 'set', `${veth}a`, 'up');
  b.ip('link', 'set', `${veth}b`, 'up');

  const ka = keyPair();
  const kb = keyPair();
  const others = Array.from({ length: 50 }, () => keyPair());
  const dpa = dpFor(a);
  const dpb = dpFor(b);
  dps.push(dpa, dpb);

  const aPeers = (extra: DesiredPeer[] = [], tweak = false): DesiredPeer[] => [
    peer(kb.publicKey, ['10.4.0.2/32', '10.42.2.0/24'], '192.168.77.2:51820'),
    ...others.map((k, i) => peer(k.publicKey, [`10.4.1.${i}/32`, `10.43.${i}.0/24`, ...(tweak && i === 7 ? ['10.44.7.0/24'] : [])], `192.168.88.${i + 1}:51820`)),
    ...extra,
  ];
  // 1. apply from empty: wireguard-go is spawned (the kernel has no WireGuard here)
  let res = await dpa.apply(state('kilo0', ka.privateKey, '10.4.0.1/16', aPeers()));
  assert.deepEqual(res.errors, []);
  res = await dpb.apply(state('kilo0', kb.privateKey, '10.4.0.2/16', [peer(ka.publicKey, ['10.4.0.1/32', '10.42.1.0/24'], '192.168.77.1:51820')]));
  assert.deepEqual(res.errors, []);
  const obs = await dpa.observe();
  assert.equal(obs.mode, 'userspace');
  assert.equal(obs.publicKey, ka.publicKey);
  assert.ok(obs.ownedPid !== null && obs.ownedPid > 0);
  const link = JSON.parse(a.ip('-d', '-j', 'addr', 'show', 'dev', 'kilo0'))[0];
  assert.equal(link.linkinfo.info_kind, 'tun');
  assert.equal(link.mtu, 1420);
  assert.ok(link.flags.includes('UP'));
  assert.deepEqual(link.addr_info.filter((x: any) => x.family === 'inet').map((x: any) => `${x.local}/${x.prefixlen}`), ['10.4.0.1/16']);
  let d = dump(a);
  assert.equal(d.listenPort, 51820);
  assert.equal(d.peers.size, 51);
  assert.deepEqual(d.peers.get(others[3].publicKey)!.allowed, ['10.4.1.3/32', '10.43.3.0/24']);
  assert.equal(d.peers.get(others[3].publicKey)!.endpoint, '192.168.88.4:51820');

  // traffic: a handshake between a and b
  a.run('ping', '-c', '2', '-i', '0.2', '-W', '2', '-q', '10.4.0.2');
  d = dump(a);
  const before = d.peers.get(kb.publicKey)!;
  assert.ok(before.handshake > 0 && before.rx > 0, 'handshake happened');

  // 2. no-op resync: zero writes
  res = await dpa.resync();
  assert.deepEqual([res.errors.length, res.writes], [0, 0]);

  // 3. one-change delta: peer 7 gains an allowed IP, one peer is added; b's session is untouched
  const newcomer = keyPair();
  res = await dpa.apply(state('kilo0', ka.privateKey, '10.4.0.1/16', aPeers([peer(newcomer.publicKey, ['10.4.9.9/32'])], true)));
  assert.deepEqual(res.errors, []);
  assert.equal(res.reports.find((r) => r.kind === 'wireguard')!.writes, 2);
  d = dump(a);
  assert.equal(d.peers.size, 52);
  assert.deepEqual(d.peers.get(others[7].publicKey)!.allowed, ['10.4.1.7/32', '10.43.7.0/24', '10.44.7.0/24']);
  const afterB = d.peers.get(kb.publicKey)!;
  assert.equal(afterB.handshake, before.handshake, 'peer b was not replaced: its handshake survives');
  assert.ok(afterB.rx >= before.rx, 'peer b keeps its counters');

  // 4. a key change is a remove plus an add; an allowed-IP loss replaces only that peer's list
  const rekey = keyPair();
  const changed = aPeers([peer(rekey.publicKey, ['10.4.9.9/32'])], false);
  res = await dpa.apply(state('kilo0', ka.privateKey, '10.4.0.1/16', changed));
  assert.deepEqual(res.errors, []);
  d = dump(a);
  assert.ok(!d.peers.has(newcomer.publicKey) && d.peers.has(rekey.publicKey));
  assert.deepEqual(d.peers.get(others[7].publicKey)!.allowed, ['10.4.1.7/32', '10.43.7.0/24']);
  assert.equal(d.peers.get(kb.publicKey)!.handshake, before.handshake);

  // 5. drift: someone removes a peer and changes the listen port; a resync repairs both
  a.run('wg', 'set', 'kilo0', 'listen-port', '51999', 'peer', others[0].publicKey, 'remove');
  res = await dpa.resync();
  assert.deepEqual(res.errors, []);
  d = dump(a);
  assert.equal(d.listenPort, 51820);
  assert.deepEqual(d.peers.get(others[0].publicKey)!.allowed, ['10.4.1.0/32', '10.43.0.0/24']);

  // 6. wireguard-go dies: the next pass (retry) brings the interface back with its peers
  process.kill(obs.ownedPid!, 'SIGKILL');
  assert.ok(await waitFor(() => a.tryRun('wg', 'show', 'kilo0', 'dump').code === 0 && dump(a).peers.size === 52, 8000), 'interface recreated by the retry');

  // 7. non-leader: link down, configuration left alone
  res = await dpa.apply({ ...state('kilo0', ka.privateKey, '10.4.0.1/16', []), wireguard: null });
  assert.deepEqual(res.errors, []);
  assert.ok(!JSON.parse(a.ip('-j', 'link', 'show', 'kilo0'))[0].flags.includes('UP'));
  assert.equal(dump(a).peers.size, 52);

  // 8. clean-up with --clean-up-interface: link gone, wireguard-go gone
  const pid = (await dpa.observe()).ownedPid!;
  res = await dpa.cleanUp({ interface: true });
  assert.deepEqual(res.errors, []);
  assert.notEqual(a.tryRun('ip', 'link', 'show', 'kilo0').code, 0);
  assert.ok(await waitFor(() => { try { process.kill(pid, 0); return false; } catch { return true; } }, 3000), 'wireguard-go exited');
});

test('wireguard: kernel path down to its fallback decision; adopting an existing interface', async (t) => {
  requireTool('wireguard-go', 'wg');
  const n = TestNode.create('wg-k');
  let child: number | null = null;
  const dps: Dataplane[] = [];
  t.after(async () => {
    for (const d of dps) {
      await d.close();
      await d.wireguard.stopChild();
    }
    if (child !== null) try { process.kill(child, 'SIGKILL'); } catch { /* gone */ }
    n.destroy();
  });
  const k = keyPair();
  // --wireguard-mode=kernel on a kernel without WireGuard: a reported error, no crash, nothing created
  const dk = dpFor(n, { wireguardMode: 'kernel' });
  dps.push(dk);
  let res = await dk.apply(state('kilo0', k.privateKey, '10.4.0.1/16', []));
  assert.equal(res.ok, false);
  assert.match(res.errors.map((e) => e.message).join(';'), /Unknown device type|not supported/i);
  assert.notEqual(n.tryRun('ip', 'link', 'show', 'kilo0').code, 0);
  await dk.close();

  // --create-interface=false adopts a userspace interface someone else runs
  const { spawn } = await import('node:child_process');
  const p = spawn('nsenter', [`--mount=${n.mountPath}`, `--net=${n.netPath}`, '--', 'wireguard-go', '-f', 'kilo0'], { stdio: 'ignore' });
  child = p.pid!;
  assert.ok(await waitFor(() => n.tryRun('test', '-S', '/run/wireguard/kilo0.sock').code === 0, 5000));
  const da = dpFor(n, { createInterface: false });
  dps.push(da);
  res = await da.apply(state('kilo0', k.privateKey, '10.4.0.1/16', [peer(keyPair().publicKey, ['10.4.0.2/32'])]));
  assert.deepEqual(res.errors, []);
  const obs = await da.observe();
  assert.deepEqual([obs.mode, obs.ownedPid, obs.peers.length], ['userspace', null, 1]);
  assert.equal(dump(n).peers.size, 1);
});
