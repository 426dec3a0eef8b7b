// WireGuard configurations (design §6.1–6.4) and the CNI conflist (§10.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCIDR } from '../../plan/addr.js';
import { conflistRange, rewriteConflist, sortedJSON, STOCK_CONFLIST } from '../../plan/cni.js';
import { parseEndpoint } from '../../plan/endpoint.js';
import { parseCluster, plan } from '../../plan/plan.js';
import { peerConf, renderINI, segmentAsPeer } from '../../plan/wireguard.js';
import { examplePeers, exampleNodes } from './example.js';
import { key, options, peerObj, planFor, specNodes, specPeers } from './fixture.js';

test('wireguard: the leader device configuration (§6.1)', () => {
  const nodes = exampleNodes();
  nodes[0].metadata!.annotations!['kilo.squat.ai/persistent-keepalive'] = '15';
  const peers = [peerObj('laptop', { allowedIPs: ['10.5.0.1/32'], publicKey: key(9), presharedKey: key(10), endpoint: { dnsOrIP: { dns: 'laptop.example' }, port: 4000 } })];
  const r = plan(parseCluster(nodes, peers, 'topology.kubernetes.io/region'), options('alpha'), { privateKey: key(99) });
  assert.equal(r.json.wireguard.applied, true);
  assert.equal(r.json.wireguard.listenPort, 51820);
  assert.deepEqual(r.json.wireguard.peers, [
    { publicKey: key(3), endpoint: '198.51.100.7:51820', allowedIPs: ['10.42.2.0/24', '172.16.5.4/32', '10.4.0.2/32', '172.16.9.0/24'], persistentKeepalive: 15, presharedKey: false },
    { publicKey: key(4), endpoint: '198.51.100.8:51820', allowedIPs: ['10.42.3.0/24', '10.4.0.3/32'], persistentKeepalive: 15, presharedKey: false },
    { publicKey: key(9), endpoint: 'laptop.example:4000', allowedIPs: ['10.5.0.1/32'], persistentKeepalive: 15, presharedKey: true },
  ]);
  assert.ok(!JSON.stringify(r.json).includes(key(10)), 'the preshared key is never printed');
  assert.ok(!JSON.stringify(r.json).includes(key(99)), 'the private key is never printed');
  assert.equal(renderINI(r.device!), [
    '[Interface]', `PrivateKey = ${key(99)}`, 'ListenPort = 51820', '',
    '[Peer]', 'AllowedIPs = 10.42.2.0/24, 172.16.5.4/32, 10.4.0.2/32, 172.16.9.0/24', 'Endpoint = 198.51.100.7:51820', 'PersistentKeepalive = 15', `PublicKey = ${key(3)}`, '',
    '[Peer]', 'AllowedIPs = 10.42.3.0/24, 10.4.0.3/32', 'Endpoint = 198.51.100.8:51820', 'PersistentKeepalive = 15', `PublicKey = ${key(4)}`, '',
    '[Peer]', 'AllowedIPs = 10.5.0.1/32', 'Endpoint = laptop.example:4000', 'PersistentKeepalive = 15', `PresharedKey = ${key(10)}`, `PublicKey = ${key(9)}`, '',
  ].join('\n'));
  assert.ok(!renderINI(r.device!, true).includes(key(99)));
  // A non-leader applies nothing.
  const bravo = planFor(exampleNodes(), examplePeers(), 'bravo').json.wireguard;
  assert.deepEqual([bravo.applied, bravo.peers], [false, []]);
});

test('wireguard: listen port comes from the endpoint annotation (quirk 11 (design §16.11)) and MTU from --mtu', () => {
  const nodes = exampleNodes();
  nodes[0].metadata!.annotations!['kilo.squat.ai/endpoint'] = '203.0.113.10:51999';
  const p = plan(parseCluster(nodes, [], 'topology.kubernetes.io/region'), { ...options('alpha'), mtu: 1380 }).json;
  assert.equal(p.wireguard.listenPort, 51999);
  assert.equal(p.wireguard.mtu, 1380);
  assert.equal(planFor(exampleNodes(), [], 'alpha').json.wireguard.mtu, 1420, 'auto falls back to 1420 offline');
});

test('wireguard: a Peer’s configuration (§6.2) and a segment as a peer (§6.3)', () => {
  const r = planFor(specNodes(), [...specPeers(), peerObj('c', { allowedIPs: ['10.5.1.0/24'], publicKey: key(13), persistentKeepalive: 7, presharedKey: key(14) })], 'c');
  const conf = peerConf(r.topology!, 'c');
  const ini = renderINI(conf);
  assert.ok(ini.startsWith('[Peer]\nAllowedIPs = 10.2.1.0/24, 192.168.0.1/32, 10.4.0.1/32\nEndpoint = 10.1.0.1:51820\nPersistentKeepalive = 7\n'), ini);
  assert.equal(conf.peers.length, 3 + 2, 'every segment, then every other peer');
  assert.deepEqual(conf.peers.map((p) => p.presharedKey), [key(14), key(14), key(14), null, null]);
  assert.deepEqual(conf.peers[1].allowedIPs.map((a) => a.s).slice(-1), ['192.168.178.3/32'], 'allowed-location IPs included');
  const asPeer = segmentAsPeer(r.topology!)!;
  assert.deepEqual(asPeer.allowedIPs.map((a) => a.s), ['10.2.2.0/24', '192.168.0.1/32', '10.2.3.0/24', '192.168.0.2/32', '10.4.0.2/32']);
  assert.equal(asPeer.persistentKeepalive, 0);
});

test('wireguard: INI rendering rules (§6.4)', () => {
  assert.equal(renderINI({ iface: { privateKey: null, listenPort: 1 }, peers: [] }), '[Interface]\nListenPort = 1\n');
  const peer = { publicKey: key(1), endpoint: parseEndpoint('[fd00::1]:5'), allowedIPs: [parseCIDR('10.0.0.1/24')!], persistentKeepalive: 0, presharedKey: null };
  assert.equal(renderINI({ iface: null, peers: [peer, { ...peer, allowedIPs: [], endpoint: null }] }),
    `[Peer]\nAllowedIPs = 10.0.0.1/24\nEndpoint = [fd00::1]:5\nPersistentKeepalive = 0\nPublicKey = ${key(1)}\n\n[Peer]\nPersistentKeepalive = 0\nPublicKey = ${key(1)}\n`);
});

test('cni: the conflist kg writes (§10.2)', () => {
  const stock = JSON.stringify(STOCK_CONFLIST);
  const r = rewriteConflist(stock, '10.42.1.0/24');
  assert.ok('text' in r);
  assert.equal(r.text, '{"cniVersion":"0.4.0","name":"kilo","plugins":[{"bridge":"kube-bridge","forceAddress":true,"ipam":{"ranges":[[{"subnet":"10.42.1.0/24"}]],"type":"host-local"},"isDefaultGateway":true,"mtu":1420,"name":"kubernetes","type":"bridge"},{"capabilities":{"portMappings":true},"snat":true,"type":"portmap"}]}');
  assert.deepEqual(rewriteConflist(r.text!, '10.42.1.0/24'), { text: null }, 'unchanged → no write');
  assert.ok('text' in rewriteConflist(r.text!, '10.42.2.0/24'));
  assert.deepEqual(conflistRange('{"name":"k","plugins":[{"ipam":{"type":"host-local","subnet":"10.1.0.0/16","ranges":[[{"subnet":"10.2.0.0/16"}]]}}]}'), { cidr: '10.1.0.0/16' }, 'legacy subnet first');
  assert.ok('error' in conflistRange('{"plugins":[]}'));
  assert.ok('error' in rewriteConflist('{"name":"k","plugins":[{"type":"x"}]}', '10.0.0.0/24'), 'no ipam anywhere');
  assert.ok('error' in rewriteConflist('not json', '10.0.0.0/24'));
  assert.equal(sortedJSON({ b: [1, { d: 2, c: 1e21 }], a: 'x' }), '{"a":"x","b":[1,{"c":1e+21,"d":2}]}');
  assert.deepEqual(planFor(exampleNodes(), [], 'bravo').json.cni, JSON.parse(r.text!));
});
