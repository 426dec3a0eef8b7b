// Parsing (§18.4 readiness, §18.5 endpoints, §18.6 translate node / peer) with the spec's rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ipBytes, parseIP } from '../../plan/addr.js';
import { endpointPort, endpointReady, endpointString, endpointStringOpt, newEndpoint, parseEndpoint } from '../../plan/endpoint.js';
import { parseKey } from '../../plan/key.js';
import { formatDiscoveredEndpoints, nodeJSON, nodeReady, parseDiscoveredEndpoints, parseNode } from '../../plan/node.js';
import { parsePeer, peerJSON, peerReady, validatePeer } from '../../plan/peer.js';
import { parseCluster } from '../../plan/plan.js';
import { key, nodeObj, NOW, peerObj } from './fixture.js';

test('parseEndpoint (§18.5 TestParseEndpoint, §2.1.1)', () => {
  const s = (x: string) => {
    const e = parseEndpoint(x);
    return e ? { ip: e.ip?.s ?? null, port: e.port, dns: e.dns } : null;
  };
  assert.equal(s(''), null);
  assert.equal(s(':51820'), null, 'only port');
  assert.equal(s('10.0.0.1'), null, 'only ipv4');
  assert.equal(s('ff50::10'), null, 'only ipv6');
  assert.deepEqual(s('10.0.0.1:51820'), { ip: '10.0.0.1', port: 51820, dns: '' });
  assert.deepEqual(s('[ff50::10]:51820'), { ip: 'ff50::10', port: 51820, dns: '' });
  assert.deepEqual(s('[::ffff:10.0.0.1]:1'), { ip: '10.0.0.1', port: 1, dns: '' });
  assert.deepEqual(s('example.com:51820'), { ip: null, port: 51820, dns: 'example.com:51820' });
  assert.deepEqual(s('127.1:51820'), { ip: null, port: 51820, dns: '127.1:51820' }, 'not an IP for Go, but a valid DNS name');
  assert.deepEqual(s('10.0.0.1:051820'), { ip: '10.0.0.1', port: 51820, dns: '' }, 'ParseUint takes leading zeros');
  for (const b of ['Example.com:51820', 'ex_ample.com:1', '10.0.0.1:0', '10.0.0.1:65536', '10.0.0.1:-1', '10.0.0.1:+1', 'ff50::10:51820',
    '[fe80::1%eth0]:1', '[10.0.0.1:1', 'a:b:c', '10.0.0.1:51820 ', '-a.com:1', `${'a'.repeat(254)}:1`]) {
    assert.equal(s(b), null, b);
  }
});

test('endpoint construction, readiness, strings and equality (§18.5)', () => {
  assert.equal(endpointReady(null), false);
  assert.equal(endpointReady(newEndpoint(null, 0)), false, 'no ip, no port');
  assert.equal(endpointReady(newEndpoint(null, 51820)), false, 'only port');
  assert.equal(endpointReady(newEndpoint(parseIP('10.0.0.1'), 0)), false, 'only ipv4');
  assert.equal(endpointReady(newEndpoint(parseIP('ff50::10'), 0)), false, 'only ipv6');
  assert.equal(endpointReady(newEndpoint(parseIP('10.0.0.1'), 51820)), true);
  assert.equal(endpointReady(newEndpoint(parseIP('ff50::10'), 51820)), true);
  assert.equal(ipBytes(newEndpoint(parseIP('10.0.0.1'), 1).ip!).length, 4);
  assert.equal(ipBytes(newEndpoint(parseIP('fc00:f853:ccd:e793::3'), 1).ip!).length, 16);
  assert.equal(endpointPort(newEndpoint(parseIP('10.0.0.1'), 0)), 0);
  const dns = parseEndpoint('example.com:1')!;
  assert.equal(endpointPort(dns), 1);
  // DNS-first vs IP-first (2.1.6/2.1.7): a resolved DNS endpoint keeps its DNS text DNS-first.
  const resolved = { ...dns, ip: parseIP('10.0.0.9') };
  assert.equal(endpointString(resolved), 'example.com:1');
  assert.equal(endpointStringOpt(resolved), '10.0.0.9:1');
  const other = { ...parseEndpoint('example.org:1')!, ip: parseIP('10.0.0.9') };
  assert.notEqual(endpointString(resolved), endpointString(other), 'unequal dns first');
  assert.equal(endpointStringOpt(resolved), endpointStringOpt(other), 'equal dns last');
  assert.equal(endpointStringOpt(dns), 'example.com:1', 'unresolved compares DNS');
  assert.equal(endpointString(null), '');
  assert.equal(endpointStringOpt(newEndpoint(parseIP('ff50::10'), 5)), '[ff50::10]:5');
});

test('parseKey: standard padded base64 of 32 bytes only', () => {
  const k = key(7);
  assert.equal(parseKey(k), k);
  assert.equal(parseKey(`${k}\n`), k, "Go's decoder skips newlines");
  assert.equal(parseKey(k.replace(/=$/, '')), null, 'padding required');
  assert.equal(parseKey(Buffer.alloc(31, 1).toString('base64')), null);
  assert.equal(parseKey(Buffer.alloc(32, 0xfb).toString('base64url') + '='), null, 'URL alphabet rejected');
  assert.equal(parseKey(Buffer.alloc(32, 0).toString('base64')), null, 'zero key');
  assert.equal(parseKey(''), null);
});

const n = (ann: Record<string, string>, pod?: string, labels?: Record<string, string>) => parseNode(nodeObj('x', ann, pod, labels));

test('translate node (§18.6 TestTranslateNode)', () => {
  const empty = n({}).value;
  assert.deepEqual([empty.endpoint, empty.internalIP, empty.subnet, empty.key, empty.location, empty.leader, empty.lastSeen], [null, null, null, null, '', false, 0]);
  assert.deepEqual(n({}).warnings, []);
  const invalid = n({ 'kilo.squat.ai/endpoint': '10.0.0.1', 'kilo.squat.ai/internal-ip': '10.0.0.2' });
  assert.equal(invalid.value.endpoint, null);
  assert.equal(invalid.value.internalIP, null);
  assert.deepEqual(invalid.warnings, ['node x: kilo.squat.ai/endpoint: invalid endpoint "10.0.0.1"', 'node x: kilo.squat.ai/internal-ip: invalid CIDR "10.0.0.2"']);
  const valid = n({ 'kilo.squat.ai/endpoint': '10.0.0.1:51820', 'kilo.squat.ai/internal-ip': '10.0.0.2/32' }).value;
  assert.equal(endpointString(valid.endpoint), '10.0.0.1:51820');
  assert.equal(valid.internalIP!.s, '10.0.0.2/32');
  const v6 = n({ 'kilo.squat.ai/endpoint': '[ff10::10]:51820', 'kilo.squat.ai/internal-ip': 'ff60::10/64' }).value;
  assert.equal(endpointString(v6.endpoint), '[ff10::10]:51820');
  assert.equal(v6.internalIP!.s, 'ff60::10/64');
  assert.equal(n({}, 'foo').value.subnet, null, 'invalid subnet');
  assert.equal(n({}, '10.2.0.1/24').value.subnet!.s, '10.2.0.0/24', 'normalize subnet');
  assert.equal(n({}, '10.2.0.0/24').value.subnet!.s, '10.2.0.0/24', 'valid subnet');
  assert.equal(n({}, undefined, { 'topology.kubernetes.io/region': 'a' }).value.location, 'a', 'region');
  assert.equal(n({ 'kilo.squat.ai/location': 'b' }, undefined, { 'topology.kubernetes.io/region': 'a' }).value.location, 'b', 'region override');
  assert.equal(parseNode(nodeObj('x', {}, undefined, { zone: 'z' }), 'zone').value.location, 'z', '--topology-label');
  assert.equal(endpointString(n({ 'kilo.squat.ai/endpoint': '10.0.0.1:51820', 'kilo.squat.ai/force-endpoint': '-10.0.0.2:51821' }).value.endpoint), '10.0.0.1:51820', 'invalid endpoint override');
  assert.equal(endpointString(n({ 'kilo.squat.ai/endpoint': '10.0.0.1:51820', 'kilo.squat.ai/force-endpoint': '10.0.0.2:51821' }).value.endpoint), '10.0.0.2:51821', 'endpoint override');
  assert.equal(n({ 'kilo.squat.ai/persistent-keepalive': '25' }).value.persistentKeepalive, 25);
  assert.equal(n({ 'kilo.squat.ai/internal-ip': '10.1.0.1/24', 'kilo.squat.ai/force-internal-ip': '-10.1.0.2/24' }).value.internalIP!.s, '10.1.0.1/24', 'invalid internal IP override');
  assert.equal(n({ 'kilo.squat.ai/internal-ip': '10.1.0.1/24', 'kilo.squat.ai/force-internal-ip': '10.1.0.2/24' }).value.internalIP!.s, '10.1.0.2/24', 'internal IP override');
  const badTime = n({ 'kilo.squat.ai/last-seen': 'foo' });
  assert.equal(badTime.value.lastSeen, 0);
  assert.deepEqual(badTime.warnings, ['node x: kilo.squat.ai/last-seen: invalid integer "foo"']);
  const complete = n({
    'kilo.squat.ai/endpoint': '10.0.0.1:51820', 'kilo.squat.ai/force-endpoint': '10.0.0.2:51821', 'kilo.squat.ai/force-internal-ip': '10.1.0.2/32',
    'kilo.squat.ai/internal-ip': '10.1.0.1/32', 'kilo.squat.ai/key': key(3), 'kilo.squat.ai/last-seen': '1000000000', 'kilo.squat.ai/leader': '',
    'kilo.squat.ai/location': 'b', 'kilo.squat.ai/persistent-keepalive': '25', 'kilo.squat.ai/wireguard-ip': '10.4.0.1/16',
    'kilo.squat.ai/granularity': 'full', 'kilo.squat.ai/discovered-endpoints': `{"${key(4)}":{"IP":"1.1.1.1","Port":1,"Zone":""}}`,
    'kilo.squat.ai/allowed-location-ips': '10.9.0.0/24,10.9.1.0/24',
  }, '10.2.1.0/24', { 'topology.kubernetes.io/region': 'a' });
  assert.deepEqual(complete.warnings, []);
  assert.deepEqual(nodeJSON(complete.value, 1000000001), {
    name: 'x', ready: true, location: 'b', endpoint: { host: '10.0.0.2', port: 51821, resolved: '10.0.0.2:51821' }, internalIP: '10.1.0.2/32',
    noInternalIP: false, subnet: '10.2.1.0/24', key: key(3), leader: true, lastSeen: 1000000000, persistentKeepalive: 25, wireGuardIP: '10.4.0.1/16',
    discoveredEndpoints: { [key(4)]: '1.1.1.1:1' }, allowedLocationIPs: ['10.9.0.0/24', '10.9.1.0/24'], granularity: 'full',
  });
  const completeV6 = n({ 'kilo.squat.ai/force-endpoint': '[1100::10]:51821', 'kilo.squat.ai/endpoint': '10.0.0.1:51820' }).value;
  assert.equal(endpointString(completeV6.endpoint), '[1100::10]:51821');
  const noIP = n({ 'kilo.squat.ai/internal-ip': '' }).value;
  assert.deepEqual([noIP.internalIP, noIP.noInternalIP], [null, false], 'no InternalIP');
  for (const v of ['', '-']) {
    const forced = n({ 'kilo.squat.ai/internal-ip': '10.1.0.1/24', 'kilo.squat.ai/force-internal-ip': v }).value;
    assert.deepEqual([forced.internalIP, forced.noInternalIP], [null, true], `Force no internal IP ${JSON.stringify(v)}`);
  }
});

test('translate node: presence semantics, bad values, discovered endpoints', () => {
  assert.equal(n({ 'kilo.squat.ai/leader': 'false' }).value.leader, true, 'quirk 1 (design §16.1): presence means leader');
  assert.equal(n({ 'kilo.squat.ai/location': '' }, undefined, { 'topology.kubernetes.io/region': 'a' }).value.location, '', 'quirk 2 (design §16.2)');
  assert.equal(n({ 'kilo.squat.ai/persistent-keepalive': '-5' }).value.persistentKeepalive, -5, 'quirk 36 (design §16.36)');
  const spaced = n({ 'kilo.squat.ai/allowed-location-ips': '10.0.0.1/32, 10.0.0.2/32' });
  assert.deepEqual(spaced.value.allowedLocationIPs.map((c) => c.s), ['10.0.0.1/32'], 'quirk 37 (design §16.37): no trimming');
  assert.deepEqual(spaced.warnings, ['node x: kilo.squat.ai/allowed-location-ips: invalid CIDR " 10.0.0.2/32"']);
  assert.equal(n({ 'kilo.squat.ai/granularity': 'auto' }).value.granularity, '');
  assert.equal(n({ 'kilo.squat.ai/key': 'not a key' }).value.key, null);
  assert.equal(n({ 'kilo.squat.ai/last-seen': '99999999999999999999' }).value.lastSeen, 0, 'int64 overflow');
  assert.equal(n({ 'kilo.squat.ai/last-seen': '+12' }).value.lastSeen, 12);
  assert.equal(n({ 'kilo.squat.ai/discovered-endpoints': '{"k":' }).value.discoveredEndpoints, null, 'invalid JSON → absent');
  assert.equal(n({ 'kilo.squat.ai/discovered-endpoints': '{"k":{"IP":"nope"}}' }).value.discoveredEndpoints, null);
  const d = parseDiscoveredEndpoints('{"b":{"IP":"10.0.0.1","Port":5,"Zone":"","Extra":1},"a":{"Port":7},"c":null}')!;
  assert.deepEqual([...d.keys()], ['b', 'a']);
  assert.equal(formatDiscoveredEndpoints(d), '{"a":{"IP":"","Port":7,"Zone":""},"b":{"IP":"10.0.0.1","Port":5,"Zone":""}}');
  assert.equal(formatDiscoveredEndpoints(new Map()), '{}');
  assert.equal(formatDiscoveredEndpoints(null), '');
  // A node without annotations at all (not running kg) parses to an empty, non-ready record.
  assert.equal(parseNode({ metadata: { name: 'y' } }).value.key, null);
});

test('node readiness (§18.4 TestReady, §2.4.1)', () => {
  const full = {
    'kilo.squat.ai/endpoint': '10.0.0.1:51820', 'kilo.squat.ai/key': key(1), 'kilo.squat.ai/last-seen': String(NOW),
  };
  const ready = (ann: Record<string, string>, pod: string | undefined = '10.2.0.0/24', now = NOW) => nodeReady(n(ann, pod).value, now);
  assert.equal(nodeReady(null, NOW), false, 'nil');
  assert.equal(ready({}, ''), false, 'empty fields');
  assert.equal(ready({ ...full, 'kilo.squat.ai/endpoint': '' }), false, 'empty endpoint');
  assert.equal(nodeReady({ ...n(full, '10.2.0.0/24').value, endpoint: newEndpoint(null, 51820) }, NOW), false, 'empty endpoint IP');
  assert.equal(nodeReady({ ...n(full, '10.2.0.0/24').value, endpoint: newEndpoint(parseIP('10.0.0.1'), 0) }, NOW), false, 'empty endpoint port');
  assert.equal(ready({ ...full, 'kilo.squat.ai/key': '' }), false, 'empty key');
  assert.equal(ready(full, ''), false, 'empty subnet');
  assert.equal(ready(full), true, 'valid (no internal IP needed)');
  assert.equal(ready(full, '10.2.0.0/24', NOW + 59), true, '59 s old');
  assert.equal(ready(full, '10.2.0.0/24', NOW + 60), false, '60 s old: strictly less than 60');
  assert.equal(ready({ ...full, 'kilo.squat.ai/endpoint': 'host.example:51820' }), true, 'a DNS endpoint is ready');
});

test('translate peer (§18.6 TestTranslatePeer, §3.3.4)', () => {
  const p = (spec: Record<string, unknown>) => parsePeer(peerObj('p', spec));
  const empty = p({});
  assert.deepEqual([empty.allowedIPs, empty.endpoint, empty.publicKey, empty.persistentKeepalive, empty.presharedKey], [[], null, null, 0, null]);
  assert.deepEqual(p({ allowedIPs: ['10.0.0.1', 'foo'] }).allowedIPs, [], 'invalid ips');
  assert.deepEqual(p({ allowedIPs: ['10.0.0.1/24', '10.0.0.2/32'] }).allowedIPs.map((c) => c.s), ['10.0.0.1/24', '10.0.0.2/32'], 'host bits kept');
  assert.equal(p({ endpoint: { dnsOrIP: { ip: 'foo' }, port: 51820 } }).endpoint, null, 'invalid endpoint ip');
  assert.equal(p({ endpoint: { dnsOrIP: {}, port: 51820 } }).endpoint, null, 'only endpoint port');
  assert.equal(endpointString(p({ endpoint: { dnsOrIP: { ip: '10.0.0.1' }, port: 51820 } }).endpoint), '10.0.0.1:51820');
  assert.equal(endpointString(p({ endpoint: { dnsOrIP: { ip: 'ff60::2' }, port: 51820 } }).endpoint), '[ff60::2]:51820');
  assert.equal(endpointString(p({ endpoint: { dnsOrIP: { dns: 'example.com' }, port: 51820 } }).endpoint), 'example.com:51820');
  assert.equal(endpointString(p({ endpoint: { dnsOrIP: { dns: 'example.com', ip: '10.0.0.1' }, port: 51820 } }).endpoint), 'example.com:51820', 'quirk 8 (design §16.8): DNS wins');
  assert.equal(p({ endpoint: { dnsOrIP: { dns: 'Bad_Name', ip: '10.0.0.1' }, port: 51820 } }).endpoint, null, 'an unparsable DNS name still wins');
  assert.equal(p({ endpoint: { dnsOrIP: { ip: '10.0.0.1' }, port: 0 } }).endpoint, null);
  assert.equal(p({ publicKey: '' }).publicKey, null, 'empty key');
  assert.equal(p({ publicKey: key(5) }).publicKey, key(5), 'valid key');
  assert.equal(p({ persistentKeepalive: -1 }).persistentKeepalive, 0, 'invalid keepalive');
  assert.equal(p({ persistentKeepalive: 10 }).persistentKeepalive, 10, 'valid keepalive');
  assert.equal(p({ presharedKey: key(6) }).presharedKey, key(6), 'valid preshared key');
  assert.equal(peerJSON(p({ presharedKey: key(6), publicKey: key(5), allowedIPs: ['10.0.0.1/32'] })).presharedKey, true, 'presence only');
  assert.equal(peerReady(p({ allowedIPs: ['10.0.0.1/32'], publicKey: key(5) })), true);
  assert.equal(peerReady(p({ allowedIPs: [], publicKey: key(5) })), false);
  assert.equal(peerReady(p({ allowedIPs: ['10.0.0.1/32'] })), false);
});

test('validatePeer (§3.3.3), in order', () => {
  const v = (spec: Record<string, unknown>) => validatePeer(peerObj('p', spec));
  const good = { allowedIPs: ['10.5.0.1/32'], publicKey: key(1) };
  assert.equal(v(good), null);
  assert.equal(v({ ...good, allowedIPs: [] }), null, 'an empty list passes (never ready)');
  assert.match(v({ ...good, allowedIPs: ['10.5.0.1'] })!, /10\.5\.0\.1/);
  assert.match(v({ ...good, endpoint: { dnsOrIP: {}, port: 1 } })!, /either/);
  assert.match(v({ ...good, endpoint: { dnsOrIP: { dns: 'UPPER.case' }, port: 1 } })!, /RFC 1123/);
  assert.match(v({ ...good, endpoint: { dnsOrIP: { ip: '300.1.1.1' }, port: 1 } })!, /300\.1\.1\.1/);
  assert.match(v({ ...good, endpoint: { dnsOrIP: { ip: '1.1.1.1' }, port: 70000 } })!, /port/);
  assert.match(v({ ...good, persistentKeepalive: -1 })!, /keepalive/);
  assert.match(v({ ...good, publicKey: 'abc' })!, /public key/);
  assert.match(validatePeer({ metadata: { name: 'p' } })!, /spec/);
});

test('translate node: malformed API objects never throw', () => {
  const weird = [
    { metadata: { name: 'w', annotations: { 'kilo.squat.ai/endpoint': null, 'kilo.squat.ai/key': 5 }, labels: 'x' }, spec: { podCIDR: 7 } },
    { metadata: { name: 'w', annotations: 'nope' }, spec: null },
    { metadata: { name: 'w', annotations: null, labels: null } },
    {},
  ];
  for (const o of weird) {
    const r = parseNode(o as never);
    assert.equal(r.value.endpoint, null);
    assert.equal(r.value.subnet, null);
  }
  assert.deepEqual(parseNode(weird[0] as never).warnings, ['node w: kilo.squat.ai/endpoint: not a string, ignored', 'node w: kilo.squat.ai/key: not a string, ignored']);
});

test('parseCluster: list items that are not objects, and names that are not strings, are reported and ignored', () => {
  const good = nodeObj('a', { 'kilo.squat.ai/key': key(1) });
  const items = [null, 5, 'x', { metadata: { name: 7 } }, good] as never[];
  const peers = [null, { metadata: 3, spec: { allowedIPs: ['10.5.0.0/24'], publicKey: key(9) } }, peerObj('p', { allowedIPs: ['10.6.0.0/24'], publicKey: key(8) })] as never[];
  const c = parseCluster(items, peers, 'topology.kubernetes.io/region');
  assert.deepEqual(c.nodes.map((n) => n.name), ['a']);
  assert.equal(c.warnings.filter((w) => w === 'node without metadata.name ignored').length, 4);
  // A null Peer is invalid (the informer would drop it); a Peer without a usable name keeps ''.
  assert.ok(c.warnings.includes('peer : invalid, ignored: not an object'), c.warnings.join('\n'));
  assert.deepEqual(c.peers.map((p) => p.name).sort(), ['', 'p']);
  assert.equal(validatePeer(null as never), 'not an object');
});
