// Planner-visible quirks of design §16, one case each (others are covered beside their feature:
// 1, 2, 36, 37 in parse.test; 3 in addr.test; 6, 7 in topology.test; 8, 42 in parse.test;
// 11, 13 in wireguard.test; 20, 24, 25, 26 in iptables.test). Agent and dataplane quirks are
// tested with the agent and the dataplane.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { key, nodeObj, NOW, peerObj, planFor, specNodes, specPeers } from './fixture.js';

test('quirk 4 (design §16.4): a segment that sorts earlier renumbers the WireGuard IPs after it', () => {
  const before = planFor(specNodes(), [], 'a').json.segments.map((s) => [s.location, s.wireGuardIP]);
  const extra = nodeObj('aa', { 'kilo.squat.ai/endpoint': '10.1.0.9:51820', 'kilo.squat.ai/key': key(9), 'kilo.squat.ai/last-seen': String(NOW), 'kilo.squat.ai/internal-ip': '192.168.0.9/32', 'kilo.squat.ai/location': '0' }, '10.2.9.0/24');
  const after = planFor([...specNodes(), extra], [], 'a').json.segments.map((s) => [s.location, s.wireGuardIP]);
  assert.deepEqual(before, [['location:1', '10.4.0.1'], ['location:2', '10.4.0.2'], ['node:d', '10.4.0.3']]);
  assert.deepEqual(after, [['location:0', '10.4.0.1'], ['location:1', '10.4.0.2'], ['location:2', '10.4.0.3'], ['node:d', '10.4.0.4']]);
});

test('quirk 5 (design §16.5): a node without internal IP is a segment of its own, even in its location', () => {
  const p = planFor(specNodes(), [], 'd').json;
  assert.deepEqual(p.segments.map((s) => s.hostnames), [['a'], ['b', 'c'], ['d']]);
  assert.equal(p.location, 'node:d');
});

test('quirk 12 (design §16.12): the WireGuard CIDR carries the mesh prefix; non-leaders hold the mesh subnet', () => {
  assert.equal(planFor(specNodes(), [], 'b', { subnet: '10.10.0.0/20' }).json.wireGuardCIDR, '10.10.0.2/20');
  assert.equal(planFor(specNodes(), [], 'c', { subnet: '10.10.0.0/20' }).json.wireGuardCIDR, '10.10.0.0/20');
});

test('quirk 14 (design §16.14): peers always carry a keepalive value (0 when unset)', () => {
  assert.deepEqual(planFor(specNodes(), specPeers(), 'a').json.peers.map((p) => p.persistentKeepalive), [0, 0]);
});

test('quirk 15 (design §16.15): host bits stay in WireGuard and iptables, routes use the network', () => {
  const p = planFor(specNodes(), [peerObj('h', { allowedIPs: ['10.6.0.1/24'], publicKey: key(50) })], 'a').json;
  assert.deepEqual(p.wireguard.peers.at(-1)!.allowedIPs, ['10.6.0.1/24']);
  assert.ok(p.iptables.prepend.some((r) => r.rule.join(' ').includes('-d 10.6.0.1/24')));
  assert.ok(p.routes.some((r) => r.dst === '10.6.0.0/24'));
  assert.ok(!p.routes.some((r) => r.dst === '10.6.0.1/24'));
});

test('Peers with one public key collapse into one entry (design §11.2.2), with a warning', () => {
  const peers = [peerObj('x', { allowedIPs: ['10.7.0.0/24'], publicKey: key(60) }), peerObj('y', { allowedIPs: ['10.8.0.0/24'], publicKey: key(60) })];
  const p = planFor(specNodes(), peers, 'a').json;
  assert.deepEqual(p.peers.map((x) => x.name), ['y']);
  assert.match(p.warnings.join('\n'), /peer y: has the same public key as peer x/);
});

test('invalid Peers never reach the mesh (informer filter, §3.3.5)', () => {
  const p = planFor(specNodes(), [peerObj('bad', { allowedIPs: ['10.9.0.0/24'], publicKey: 'nope' })], 'a').json;
  assert.deepEqual(p.peers, []);
  assert.match(p.warnings[0], /^peer bad: invalid, ignored: failed to parse public key/);
});
