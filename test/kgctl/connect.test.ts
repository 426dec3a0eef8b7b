// `kgctl connect` end to end: a real 2-node mesh of kg agents (loadtest/mesh/harness.ts, prefix
// h8c), and kgctl connect in a network namespace of its own on the same underlay, with its own
// mount namespace (its wireguard-go socket stays private). It must register the Peer, bring up
// its WireGuard interface and routes, reach pods through the mesh, follow changes to the Peers,
// and on SIGTERM remove its interface, routes and Peer. Bounded; everything is torn down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mesh, sh, waitFor } from '../../loadtest/mesh/harness.js';
import { generateKeyPair } from '../../main/keys.js';

const KGCTL = new URL('../../main/kgctl.js', import.meta.url).pathname;
const PREFIX = 'h8c';
const CONN_NS = `${PREFIX}-conn`;

test('kgctl connect: this machine becomes a Peer and reaches pods through the mesh', { timeout: 420_000 }, async (t) => {
  const mesh = new Mesh({
    prefix: PREFIX,
    // Endpoints on a second underlay subnet (192.168.88.0/24), internal IPs on the first: a Peer
    // routes the nodes' internal IPs through WireGuard (§7.8), so a Peer whose endpoint were an
    // internal IP would send its own WireGuard packets into the tunnel.
    nodes: ['a1', 'a2'].map((name, i) => ({
      name, location: 'a',
      annotations: { 'kilo.squat.ai/force-endpoint': `192.168.88.${11 + i}:51820`, 'kilo.squat.ai/force-internal-ip': `192.168.77.${11 + i}/24` },
    })),
    flags: ['--encapsulate', 'never'], // no IPIP module in this kernel
  });
  let kgctl: ChildProcess | null = null;
  let log = '';
  t.after(async () => {
    if (kgctl && kgctl.exitCode === null) {
      kgctl.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const pid of sh('ip', ['netns', 'pids', CONN_NS], { allowFail: true }).split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(pid), 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    sh('ip', ['netns', 'del', CONN_NS], { allowFail: true });
    await mesh.down();
  });
  await mesh.up();
  for (const n of mesh.nodes) sh('ip', ['-n', n.netns, 'addr', 'add', `192.168.88.${11 + n.index}/24`, 'dev', 'eth0']);
  sh('ip', ['-n', mesh.apiNs, 'route', 'add', '192.168.88.0/24', 'dev', 'eth0']);
  await Promise.all(mesh.nodes.map((n) => mesh.startKg(n.spec.name)));
  for (const n of mesh.nodes) await mesh.createPod(n.spec.name);

  // The connecting machine: one leg on the underlay bridge, nothing else.
  sh('ip', ['netns', 'add', CONN_NS]);
  sh('ip', ['-n', mesh.ul, 'link', 'add', 'ul-conn', 'type', 'veth', 'peer', 'name', 'eth0', 'netns', CONN_NS]);
  sh('ip', ['-n', mesh.ul, 'link', 'set', 'ul-conn', 'master', 'br0', 'up']);
  sh('ip', ['-n', CONN_NS, 'link', 'set', 'lo', 'up']);
  sh('ip', ['-n', CONN_NS, 'addr', 'add', '192.168.88.60/24', 'dev', 'eth0']);
  sh('ip', ['-n', CONN_NS, 'link', 'set', 'eth0', 'up']);
  sh('ip', ['-n', CONN_NS, 'route', 'add', '192.168.77.2/32', 'dev', 'eth0']); // the API server

  const keyFile = join(mesh.state, 'connect.key');
  const keys = generateKeyPair();
  writeFileSync(keyFile, keys.privateKey + '\n', { mode: 0o600 });
  const args = [
    `--net=/run/netns/${CONN_NS}`, '--', 'unshare', '--mount', '--propagation', 'private', 'sh', '-c',
    `mount -t tmpfs tmpfs /run/wireguard && exec "$0" "$@"`, process.execPath, KGCTL, 'connect', 'roadwarrior',
    '--kubeconfig', mesh.kubeconfig, '--allowed-ip', '10.5.0.9/32', '--allowed-ips', '10.96.0.0/12',
    '--private-key', keyFile, '--resync-period', '5s', '--log-level', 'debug',
  ];
  kgctl = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  kgctl.stdout!.on('data', (c: Buffer) => (log += c.toString()));
  kgctl.stderr!.on('data', (c: Buffer) => (log += c.toString()));
  const alive = () => {
    if (kgctl!.exitCode !== null) throw new Error(`kgctl exited with ${kgctl!.exitCode}:\n${log}`);
  };
  const inConn = (cmd: string[]) => sh('ip', ['netns', 'exec', CONN_NS, ...cmd], { allowFail: true });
  // `wg` must see kgctl's private /run/wireguard (the UAPI socket): enter its mount namespace too.
  const wg = (cmd: string[]) => sh('nsenter', ['-t', String(kgctl!.pid), '-m', '-n', 'wg', ...cmd], { allowFail: true });

  await t.test('registers the Peer with the key it was given', async () => {
    const peer = await waitFor('the Peer roadwarrior', () => {
      alive();
      const out = mesh.kubectl(['get', 'peers.kilo.squat.ai', 'roadwarrior', '-o', 'json'], { allowFail: true });
      return out ? JSON.parse(out) : null;
    }, 60_000, 500);
    assert.deepEqual(peer.spec, { allowedIPs: ['10.5.0.9/32'], persistentKeepalive: 10, publicKey: keys.publicKey });
    // (kubectl runs synchronously: kgctl's output is read once this test yields.)
    await waitFor('the public key in the log', () => log.includes(keys.publicKey), 10_000, 100);
    assert.ok(!log.includes(keys.privateKey), 'the private key is never logged');
  });

  await t.test('its interface, WireGuard peer and routes follow PeerConf and PeerRoutes', async () => {
    await waitFor('routes into the mesh', () => {
      alive();
      const routes = inConn(['ip', 'route', 'show', 'proto', '107']);
      return routes.includes('10.244.2.0/24 via 10.4.0.1 dev kilo0') && routes.includes('10.96.0.0/12 via 10.4.0.1 dev kilo0') ? routes : null;
    }, 60_000, 500);
    const routes = inConn(['ip', 'route', 'show', 'proto', '107']);
    // one location (a), leader a1 (first public endpoint → first by name), WireGuard IP 10.4.0.1
    for (const r of ['10.244.1.0/24 via 10.4.0.1 dev kilo0 onlink', '10.244.2.0/24 via 10.4.0.1 dev kilo0 onlink', '192.168.77.11 via 10.4.0.1 dev kilo0 onlink', '192.168.77.12 via 10.4.0.1 dev kilo0 onlink', '10.4.0.1 dev kilo0']) {
      assert.ok(routes.includes(r), `route ${r} in:\n${routes}`);
    }
    assert.match(inConn(['ip', '-br', 'addr', 'show', 'kilo0']), /kilo0\s+UNKNOWN\s+10\.5\.0\.9\/32|kilo0\s+UP\s+10\.5\.0\.9\/32/);
    const dump = wg(['show', 'kilo0', 'dump']).trim().split('\n');
    assert.equal(dump.length, 2, `one interface line and one peer (the leader of location a):\n${dump.join('\n')}`);
    const a1Key = JSON.parse(mesh.kubectl(['get', 'node', 'a1', '-o', 'json'])).metadata.annotations['kilo.squat.ai/key'];
    const [pk, , endpoint, allowed, , , , keepalive] = dump[1].split('\t');
    assert.equal(pk, a1Key);
    assert.equal(endpoint, '192.168.88.11:51820');
    assert.deepEqual(allowed.split(',').sort(), ['10.244.1.0/24', '192.168.77.11/32', '10.244.2.0/24', '192.168.77.12/32', '10.4.0.1/32', '10.96.0.0/12'].sort());
    assert.equal(keepalive, '10');
  });

  await t.test('pings reach the pods of both nodes through the mesh', async () => {
    for (const n of ['a1', 'a2']) {
      await waitFor(`connect → pod ${n}`, () => {
        alive();
        return mesh.ping({ ns: CONN_NS }, mesh.node(n).podIP!);
      }, 60_000, 1000);
    }
    assert.ok(mesh.ping({ pod: 'a2' }, '10.5.0.9'), 'pod a2 → the connected machine');
  });

  await t.test('repairs drift at the resync period: a route deleted by hand comes back', async () => {
    sh('ip', ['-n', CONN_NS, 'route', 'del', '10.244.2.0/24']);
    await waitFor('the deleted route restored', () => inConn(['ip', 'route', 'show', 'proto', '107']).includes('10.244.2.0/24 via 10.4.0.1 dev kilo0'), 20_000, 300);
    await waitFor('pod a2 reachable again', () => mesh.ping({ ns: CONN_NS }, mesh.node('a2').podIP!), 15_000, 500);
  });

  await t.test('follows the cluster: another Peer appears and goes', async () => {
    const other = generateKeyPair();
    mesh.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'phone' }, spec: { allowedIPs: ['10.5.0.77/32'], publicKey: other.publicKey } }) });
    await waitFor('a route to the other peer', () => inConn(['ip', 'route', 'show', 'proto', '107']).includes('10.5.0.77 dev kilo0'), 20_000, 300);
    await waitFor('the other peer in WireGuard', () => wg(['show', 'kilo0', 'peers']).includes(other.publicKey), 20_000, 300);
    mesh.kubectl(['delete', 'peers.kilo.squat.ai', 'phone']);
    await waitFor('the route to the other peer gone', () => !inConn(['ip', 'route', 'show', 'proto', '107']).includes('10.5.0.77'), 20_000, 300);
    await waitFor('the other peer gone from WireGuard', () => !wg(['show', 'kilo0', 'peers']).includes(other.publicKey), 20_000, 300);
  });

  await t.test('SIGTERM: interface, routes and Peer removed, exit 0', async () => {
    kgctl!.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => (kgctl!.exitCode !== null ? r(kgctl!.exitCode) : kgctl!.once('exit', (c) => r(c))));
    assert.equal(code, 0, log);
    assert.equal(inConn(['ip', 'link', 'show', 'kilo0']).trim(), '', 'kilo0 deleted');
    assert.equal(inConn(['ip', 'route', 'show', 'proto', '107']).trim(), '', 'no routes left');
    assert.ok(!mesh.kubectl(['get', 'peers.kilo.squat.ai', '-o', 'name']).includes('roadwarrior'), 'the Peer it created is deleted');
  });
});
