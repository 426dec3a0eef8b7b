// §18.1 scenarios (TestNewTopology, TestFindLeader, TestDeduplicatePeerIPs, TestFilterAllowedIPs)
// with expected values derived from design §5.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCIDR } from '../../plan/addr.js';
import { parseEndpoint } from '../../plan/endpoint.js';
import { meshNode, type MeshNode } from '../../plan/node.js';
import type { MeshPeer } from '../../plan/peer.js';
import { deduplicatePeerIPs, findLeader, newTopology } from '../../plan/topology.js';
import { key, planFor, specNodes, specPeers } from './fixture.js';

function seg(location: string, hostnames: string[], wg: string, allowedIPs: string[], extra: Partial<{ leader: number; privateIPs: string[]; alips: string[]; cidrs: string[]; endpoint: string; key: string; pka: number }> = {}) {
  return { location, hostnames, wireGuardIP: wg, allowedIPs, leader: extra.leader ?? 0, privateIPs: extra.privateIPs, allowedLocationIPs: extra.alips ?? [], cidrs: extra.cidrs };
}
function pick(s: ReturnType<typeof planFor>['json']['segments'][number], e: ReturnType<typeof seg>) {
  return {
    location: s.location, hostnames: s.hostnames, wireGuardIP: s.wireGuardIP, allowedIPs: s.allowedIPs, leader: s.leader,
    privateIPs: e.privateIPs === undefined ? undefined : s.privateIPs, allowedLocationIPs: s.allowedLocationIPs, cidrs: e.cidrs === undefined ? undefined : s.cidrs,
  };
}

const logical = [
  seg('location:1', ['a'], '10.4.0.1', ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32'], { privateIPs: ['192.168.0.1'], cidrs: ['10.2.1.0/24'] }),
  seg('location:2', ['b', 'c'], '10.4.0.2', ['10.2.2.0/24', '192.168.0.1/32', '10.2.3.0/24', '192.168.0.2/32', '10.4.0.2/32'], { privateIPs: ['192.168.0.1', '192.168.0.2'], alips: ['192.168.178.3/32'], cidrs: ['10.2.2.0/24', '10.2.3.0/24'] }),
  seg('node:d', ['d'], '10.4.0.3', ['10.2.4.0/24', '10.4.0.3/32'], { privateIPs: [], cidrs: ['10.2.4.0/24'] }),
];
const full = [
  seg('node:a', ['a'], '10.4.0.1', ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32']),
  seg('node:b', ['b'], '10.4.0.2', ['10.2.2.0/24', '192.168.0.1/32', '10.4.0.2/32'], { alips: ['192.168.178.3/32'] }),
  seg('node:c', ['c'], '10.4.0.3', ['10.2.3.0/24', '192.168.0.2/32', '10.4.0.3/32']),
  seg('node:d', ['d'], '10.4.0.4', ['10.2.4.0/24', '10.4.0.4/32'], { privateIPs: [] }),
];

const topologyCases = [
  { name: 'logical from a', host: 'a', granularity: 'location' as const, segments: logical, leader: true, location: 'location:1', cidr: '10.4.0.1/16' },
  { name: 'logical from b', host: 'b', granularity: 'location' as const, segments: logical, leader: true, location: 'location:2', cidr: '10.4.0.2/16' },
  { name: 'logical from c', host: 'c', granularity: 'location' as const, segments: logical, leader: false, location: 'location:2', cidr: '10.4.0.0/16' },
  { name: 'full from a', host: 'a', granularity: 'full' as const, segments: full, leader: true, location: 'node:a', cidr: '10.4.0.1/16' },
  { name: 'full from b', host: 'b', granularity: 'full' as const, segments: full, leader: true, location: 'node:b', cidr: '10.4.0.2/16' },
  { name: 'full from c', host: 'c', granularity: 'full' as const, segments: full, leader: true, location: 'node:c', cidr: '10.4.0.3/16' },
  { name: 'full from d', host: 'd', granularity: 'full' as const, segments: full, leader: true, location: 'node:d', cidr: '10.4.0.4/16' },
];

for (const c of topologyCases) {
  test(`topology: ${c.name}`, () => {
    const r = planFor(specNodes(), specPeers(), c.host, { granularity: c.granularity });
    const p = r.json;
    assert.equal(p.leader, c.leader);
    assert.equal(p.location, c.location);
    assert.equal(p.wireGuardCIDR, c.cidr);
    assert.deepEqual(p.segments.map((s, i) => pick(s, c.segments[i])), c.segments);
    // Peers keep their host bits; peer a has no endpoint, b has one.
    assert.deepEqual(p.peers.map((x) => [x.name, x.allowedIPs, x.endpoint?.resolved ?? null]), [
      ['a', ['10.5.0.1/24', '10.5.0.2/24'], null],
      ['b', ['10.5.0.3/24'], '192.168.0.1:51820'],
    ]);
    if (c.host === 'd') assert.equal(r.topology!.privateIP, null);
  });
}

function member(name: string, endpoint: string, leader = false): MeshNode {
  return meshNode({
    name, endpoint: parseEndpoint(endpoint), key: key(1), internalIP: null, noInternalIP: false, cniCompatibilityIP: null,
    lastSeen: 0, leader, location: '', persistentKeepalive: 0, subnet: null, wireGuardIP: null, discoveredEndpoints: null,
    allowedLocationIPs: [], granularity: '',
  });
}

test('findLeader (design §5.3)', () => {
  const cases: [string, MeshNode[], number][] = [
    ['nil', [], 0],
    ['one', [member('a', '10.0.0.1:1')], 0],
    ['non-leaders', [member('a', '10.0.0.1:1'), member('b', '1.1.1.1:1'), member('c', '2.2.2.2:1')], 1],
    ['leaders', [member('a', '10.0.0.1:1', true), member('b', '1.1.1.1:1', true), member('c', '2.2.2.2:1', true)], 1],
    ['public', [member('a', '1.1.1.1:1'), member('b', '2.2.2.2:1'), member('c', '3.3.3.3:1', true)], 2],
    ['private', [member('a', '10.0.0.1:1'), member('b', '10.0.0.2:1', true), member('c', '10.0.0.3:1')], 1],
    ['all', [member('d', '3.3.3.3:1'), member('b', '10.0.0.2:1', true), member('a', '10.0.0.1:1'), member('c', '4.4.4.4:1', true)], 3],
  ];
  for (const [name, members, want] of cases) assert.equal(findLeader(members), want, name);
});

function peer(name: string, ips: string[]): MeshPeer {
  return { name, publicKey: key(name.charCodeAt(0)), allowedIPs: ips.map((i) => parseCIDR(i)!), endpoint: null, persistentKeepalive: 0, presharedKey: null };
}
const ipsOf = (ps: MeshPeer[]) => ps.map((p) => [p.name, p.allowedIPs.map((a) => a.s)]);

test('deduplicatePeerIPs (design §5.6)', () => {
  assert.deepEqual(deduplicatePeerIPs([]), []);
  assert.deepEqual(ipsOf(deduplicatePeerIPs([peer('a', ['10.0.0.1/32', '10.0.0.2/32']), peer('b', ['10.0.0.2/32', '10.0.0.3/32'])])), [
    ['a', ['10.0.0.1/32', '10.0.0.2/32']], ['b', ['10.0.0.3/32']],
  ]);
  assert.deepEqual(ipsOf(deduplicatePeerIPs([peer('b', ['10.0.0.2/32', '10.0.0.3/32']), peer('a', ['10.0.0.1/32', '10.0.0.2/32'])])), [
    ['b', ['10.0.0.2/32', '10.0.0.3/32']], ['a', ['10.0.0.1/32']],
  ]);
  assert.deepEqual(ipsOf(deduplicatePeerIPs([peer('a', ['10.0.0.1/32', '10.0.0.2/32']), peer('b', ['10.0.0.1/32']), peer('c', ['10.0.0.2/32'])])), [
    ['a', ['10.0.0.1/32', '10.0.0.2/32']], ['b', []], ['c', []],
  ]);
  assert.deepEqual(ipsOf(deduplicatePeerIPs([peer('a', ['10.0.0.1/32', '10.0.0.1/32'])])), [['a', ['10.0.0.1/32']]]);
  // The planner sorts peers by name before de-duplicating (design §5.4).
  const t = newTopology({
    nodes: [meshNode({ ...member('n', '1.1.1.1:1'), subnet: parseCIDR('10.2.0.0/24')! })],
    peers: [peer('b', ['10.0.0.1/32']), peer('a', ['10.0.0.1/32'])],
    granularity: 'location', hostname: 'n', port: 51820, subnet: parseCIDR('10.4.0.0/16')!,
  });
  assert.ok(t.ok);
  assert.deepEqual(ipsOf(t.value.peers), [['a', ['10.0.0.1/32']], ['b', []]]);
});

function alipTopology(alips: Record<string, string[]>, peers: MeshPeer[] = []) {
  const nodes = Object.entries(alips).map(([name, ips], i) => meshNode({
    ...member(name, `1.1.1.${i + 1}:51820`),
    internalIP: parseCIDR(`192.168.0.${i + 1}/32`)!,
    subnet: parseCIDR(`10.2.${i + 1}.0/24`)!,
    location: name,
    allowedLocationIPs: ips.map((x) => parseCIDR(x)!),
  }));
  const t = newTopology({ nodes, peers, granularity: 'location', hostname: nodes[0].name, port: 51820, subnet: parseCIDR('10.4.0.0/16')! });
  assert.ok(t.ok);
  return Object.fromEntries(t.value.segments.map((s) => [s.location, s.allowedLocationIPs.map((a) => a.s)]));
}

test('filterAllowedLocationIPs (design §5.8)', () => {
  assert.deepEqual(alipTopology({ a: ['10.9.1.0/24'], b: ['10.9.2.0/24'] }), { 'location:a': ['10.9.1.0/24'], 'location:b': ['10.9.2.0/24'] }, 'nothing to filter');
  assert.deepEqual(alipTopology({ a: ['10.9.1.0/24', '10.9.3.1/32'], b: ['10.9.3.1/32'] }), { 'location:a': ['10.9.1.0/24'], 'location:b': ['10.9.3.1/32'] }, 'intersections between segments: the later segment keeps it');
  assert.deepEqual(alipTopology({ a: ['10.4.0.2/32'], b: ['10.9.2.0/24', '10.4.0.1/32'] }), { 'location:a': ['10.4.0.2/32'], 'location:b': ['10.9.2.0/24'] }, 'intersections with wireGuardCIDR: only WireGuard IPs already allocated count');
  assert.deepEqual(alipTopology({ a: ['10.9.1.1/32', '10.9.1.2/32'], b: ['10.9.3.3/32'], c: ['10.9.0.0/16'] }), { 'location:a': [], 'location:b': [], 'location:c': ['10.9.0.0/16'] }, 'a wide prefix evicts earlier single IPs');
  // An ALIP covered by a pod CIDR or a peer's allowed IP is dropped; one that merely contains an allowed IP is kept.
  assert.deepEqual(alipTopology({ a: ['10.2.2.7/32', '10.0.0.0/8'], b: [] }), { 'location:a': ['10.0.0.0/8'], 'location:b': [] });
  assert.deepEqual(alipTopology({ a: ['10.7.0.0/16'] }, [peer('p', ['10.7.1.0/24'])]), { 'location:a': [] });
});

test('topology: allocation exhausts the mesh subnet with an error (design §5.5, quirk 7 (design §16.7) fixed)', () => {
  assert.throws(() => planFor(specNodes(), [], 'a', { subnet: '10.4.0.0/31' }), /ran out of IP addresses/);
  const p = planFor(specNodes().slice(0, 1), [], 'a', { subnet: '10.4.0.0/31' }).json;
  assert.equal(p.wireGuardCIDR, '10.4.0.1/31');
});

test('topology: discovered endpoints (design §5.7) replace keepalive leaders’ endpoints', () => {
  const nodes = specNodes();
  // b leads location:2 and asks for keepalive; a has seen b behind NAT at 203.0.113.9:40000.
  nodes[1].metadata!.annotations!['kilo.squat.ai/persistent-keepalive'] = '10';
  nodes[0].metadata!.annotations!['kilo.squat.ai/discovered-endpoints'] = JSON.stringify({ [key(2)]: { IP: '203.0.113.9', Port: 40000, Zone: '' } });
  // c has a different observation: a's (local) observation wins over later segments.
  nodes[2].metadata!.annotations!['kilo.squat.ai/discovered-endpoints'] = JSON.stringify({ [key(2)]: { IP: '198.51.100.1', Port: 1 } });
  const p = planFor(nodes, [], 'a').json;
  assert.equal(p.wireguard.peers.find((x) => x.publicKey === key(2))!.endpoint, '203.0.113.9:40000');
  // Without the leader's keepalive, the discovered endpoint is recorded but not used.
  delete nodes[1].metadata!.annotations!['kilo.squat.ai/persistent-keepalive'];
  assert.equal(planFor(nodes, [], 'a').json.wireguard.peers.find((x) => x.publicKey === key(2))!.endpoint, '10.1.0.2:51820');
});
