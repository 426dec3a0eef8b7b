// Cross granularity (design §19) on the §5.10 cluster (alpha, bravo in east; charlie and delta,
// without an internal IP, in west; Peer laptop), with expectations derived by hand from §19.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeText, ruleText } from '../../plan/format-text.js';
import { ruleIdentity } from '../../plan/iptables.js';
import { parseCluster, plan } from '../../plan/plan.js';
import type { IptablesRule } from '../../plan/types.js';
import { examplePeers, exampleNodes } from './example.js';
import { key, NOW, options, planFor, specNodes, specPeers, type Opts } from './fixture.js';
import { Replanner, type ReplicaView } from '../../plan/replan.js';

const X: Opts = { granularity: 'cross' };
const XL: Opts = { granularity: 'cross', local: true, encapsulate: 'always' };
const K = 'dev kilo0 proto static';
const viaWG = (dst: string, wg: string, src?: string) => `${dst} via ${wg} ${K}${src ? ` src ${src}` : ''} onlink`;
const viaTunl = (dst: string, gw: string, src: string, table = '') => `${dst} via ${gw} dev tunl0${table ? ` table ${table}` : ''} proto static src ${src} onlink`;
const viaPriv = (dst: string, gw: string) => `${dst} via ${gw} dev eth0 proto static onlink`;
const laptop = (src?: string) => `10.5.0.1/32 ${K}${src ? ` src ${src}` : ''}`;
const ids = (rs: IptablesRule[]) => rs.map((r) => `${r.family} ${ruleIdentity(r)}`);
const ret = (d: string, what: string) => `ipv4 nat -A KILO-NAT -d ${d} -m comment --comment "Kilo: do not NAT packets destined for ${what}" -j RETURN`;
const ipip = (s: string) => `ipv4 filter -A KILO-IPIP -s ${s} -m comment --comment "Kilo: allow IPIP traffic" -j ACCEPT`;

const ex = (host: string, o: Opts) => planFor(exampleNodes(), examplePeers(), host, o).json;

// The segments every node sees: one per node, as in full granularity, each with its location group.
const SEGMENTS = [
  { location: 'node:alpha', wg: '10.4.0.1', allowed: ['10.42.0.0/24', '10.0.1.10/32', '10.4.0.1/32'], alips: [], group: 'location:east' },
  { location: 'node:bravo', wg: '10.4.0.2', allowed: ['10.42.1.0/24', '10.0.1.11/32', '10.4.0.2/32'], alips: [], group: 'location:east' },
  { location: 'node:charlie', wg: '10.4.0.3', allowed: ['10.42.2.0/24', '172.16.5.4/32', '10.4.0.3/32'], alips: ['172.16.9.0/24'], group: 'location:west' },
  { location: 'node:delta', wg: '10.4.0.4', allowed: ['10.42.3.0/24', '10.4.0.4/32'], alips: [], group: null },
];

// Per node: who it is, its WireGuard peers (by key number; 9 is laptop), routes and rules with
// --local and IPIP always.
const cases = [
  {
    host: 'alpha', location: 'node:alpha', group: 'location:east', cidr: '10.4.0.1/16', peers: [3, 4, 9],
    routes: [
      viaTunl('10.42.1.0/24', '10.0.1.11', '10.0.1.10'), viaTunl('10.0.1.11/32', '10.0.1.11', '10.0.1.10', '1107'),
      viaWG('10.42.2.0/24', '10.4.0.3', '10.0.1.10'), viaWG('172.16.5.4/32', '10.4.0.3', '10.0.1.10'), viaWG('172.16.9.0/24', '10.4.0.3', '10.0.1.10'),
      viaWG('10.42.3.0/24', '10.4.0.4', '10.0.1.10'),
      laptop('10.0.1.10'),
    ],
    rules: ['from 10.42.0.0/24 to 10.0.1.11/32 lookup 1107', 'from all to 10.0.1.11/32 iif kilo0 lookup 1107'],
    ipip: ['10.0.1.10/32', '10.0.1.11/32'],
  },
  {
    host: 'bravo', location: 'node:bravo', group: 'location:east', cidr: '10.4.0.2/16', peers: [3, 4, 9],
    routes: [
      viaTunl('10.42.0.0/24', '10.0.1.10', '10.0.1.11'), viaTunl('10.0.1.10/32', '10.0.1.10', '10.0.1.11', '1107'),
      viaWG('10.42.2.0/24', '10.4.0.3', '10.0.1.11'), viaWG('172.16.5.4/32', '10.4.0.3', '10.0.1.11'), viaWG('172.16.9.0/24', '10.4.0.3', '10.0.1.11'),
      viaWG('10.42.3.0/24', '10.4.0.4', '10.0.1.11'),
      laptop('10.0.1.11'),
    ],
    rules: ['from 10.42.1.0/24 to 10.0.1.10/32 lookup 1107', 'from all to 10.0.1.10/32 iif kilo0 lookup 1107'],
    ipip: ['10.0.1.10/32', '10.0.1.11/32'],
  },
  {
    // charlie's location group is charlie alone: delta has no internal IP (§19.1).
    host: 'charlie', location: 'node:charlie', group: 'location:west', cidr: '10.4.0.3/16', peers: [1, 2, 4, 9],
    routes: [
      viaWG('10.42.0.0/24', '10.4.0.1', '172.16.5.4'), viaWG('10.0.1.10/32', '10.4.0.1', '172.16.5.4'),
      // bravo's endpoint is its internal IP: no /32 route through it (§7.4d).
      viaWG('10.42.1.0/24', '10.4.0.2', '172.16.5.4'),
      viaWG('10.42.3.0/24', '10.4.0.4', '172.16.5.4'),
      laptop('172.16.5.4'),
    ],
    rules: [],
    ipip: ['172.16.5.4/32'],
  },
  {
    host: 'delta', location: 'node:delta', group: null, cidr: '10.4.0.4/16', peers: [1, 2, 3, 9],
    routes: [
      viaWG('10.42.0.0/24', '10.4.0.1'), viaWG('10.0.1.10/32', '10.4.0.1'),
      viaWG('10.42.1.0/24', '10.4.0.2'),
      viaWG('10.42.2.0/24', '10.4.0.3'), viaWG('172.16.5.4/32', '10.4.0.3'), viaWG('172.16.9.0/24', '10.4.0.3'),
      laptop(),
    ],
    rules: [],
    ipip: [],
  },
];

for (const c of cases) {
  test(`cross: ${c.host} (§19.1–§19.4)`, () => {
    const p = ex(c.host, XL);
    assert.equal(p.granularity, 'cross');
    assert.deepEqual([p.location, p.nodeLocation, p.leader, p.wireGuardCIDR], [c.location, c.group, true, c.cidr]);
    assert.deepEqual(
      p.segments.map((s) => ({ location: s.location, wg: s.wireGuardIP, allowed: s.allowedIPs, alips: s.allowedLocationIPs, group: s.nodeLocation })),
      SEGMENTS,
    );
    assert.deepEqual(p.wireguard.peers.map((x) => x.publicKey), c.peers.map(key));
    assert.equal(p.wireguard.applied, true);
    assert.deepEqual(p.routes.map(routeText), c.routes);
    assert.deepEqual(p.rules.map(ruleText), c.rules);
    assert.deepEqual(ids(p.iptables.prepend.filter((r) => r.chain === 'KILO-IPIP')), c.ipip.map(ipip));
  });
}

test('cross: the WireGuard peers carry each node’s own allowed IPs (§19.2)', () => {
  assert.deepEqual(ex('bravo', XL).wireguard.peers, [
    { publicKey: key(3), endpoint: '198.51.100.7:51820', allowedIPs: ['10.42.2.0/24', '172.16.5.4/32', '10.4.0.3/32', '172.16.9.0/24'], persistentKeepalive: 0, presharedKey: false },
    { publicKey: key(4), endpoint: '198.51.100.8:51820', allowedIPs: ['10.42.3.0/24', '10.4.0.4/32'], persistentKeepalive: 0, presharedKey: false },
    { publicKey: key(9), endpoint: null, allowedIPs: ['10.5.0.1/32'], persistentKeepalive: 0, presharedKey: false },
  ]);
});

test('cross: iptables on bravo, every segment’s addresses exempt from NAT, own allowed-location IPs only (§19.4)', () => {
  const p = ex('bravo', XL);
  assert.deepEqual(ids(p.iptables.prepend.filter((r) => r.chain !== 'KILO-IPIP')), [
    'ipv4 nat -A POSTROUTING -s 10.42.1.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT',
    ret('10.4.0.1/32', 'WireGuared IPs'), ret('10.42.0.0/24', 'known IPs'), ret('10.0.1.10/32', 'known IPs'), ret('10.4.0.1/32', 'known IPs'),
    ret('10.4.0.2/32', 'WireGuared IPs'), ret('10.42.1.0/24', 'known IPs'), ret('10.0.1.11/32', 'known IPs'), ret('10.4.0.2/32', 'known IPs'),
    ret('10.4.0.3/32', 'WireGuared IPs'), ret('10.42.2.0/24', 'known IPs'), ret('172.16.5.4/32', 'known IPs'), ret('10.4.0.3/32', 'known IPs'),
    ret('10.4.0.4/32', 'WireGuared IPs'), ret('10.42.3.0/24', 'known IPs'), ret('10.4.0.4/32', 'known IPs'),
    'ipv4 nat -A POSTROUTING -s 10.5.0.1/32 -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT',
    ret('10.5.0.1/32', 'peers'),
  ]);
  const charlie = ex('charlie', XL);
  assert.ok(ids(charlie.iptables.prepend).includes('ipv4 nat -A POSTROUTING -d 172.16.9.0/24 -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT'));
  // Forward rules: the node's own segment, as in full granularity.
  const fwd = ex('bravo', { ...XL, forward: true }).iptables.prepend.filter((r) => r.chain === 'FORWARD');
  assert.deepEqual(fwd.map((r) => r.rule.join(' ')), [
    '-m comment --comment Kilo: forward packets from the pod subnet -s 10.42.1.0/24 -j ACCEPT',
    '-m comment --comment Kilo: forward packets to the pod subnet -d 10.42.1.0/24 -j ACCEPT',
    '-m comment --comment Kilo: forward packets from private IPs -s 10.0.1.11/32 -j ACCEPT',
    '-m comment --comment Kilo: forward packets to private IPs -d 10.0.1.11/32 -j ACCEPT',
  ]);
});

test('cross: without --local the location stays on the CNI; crosssubnet and never as in location granularity (§19.3)', () => {
  const noLocal = ex('bravo', { granularity: 'cross', encapsulate: 'always' });
  assert.deepEqual(noLocal.routes.map(routeText), [
    viaWG('10.42.2.0/24', '10.4.0.3', '10.0.1.11'), viaWG('172.16.5.4/32', '10.4.0.3', '10.0.1.11'), viaWG('172.16.9.0/24', '10.4.0.3', '10.0.1.11'),
    viaWG('10.42.3.0/24', '10.4.0.4', '10.0.1.11'),
    laptop('10.0.1.11'),
  ]);
  assert.deepEqual(noLocal.rules, []);
  // crosssubnet: alpha is inside bravo's 10.0.1.0/24, so the underlay route is plain.
  const cs = ex('bravo', { granularity: 'cross', local: true, encapsulate: 'crosssubnet' });
  assert.deepEqual(cs.routes.map(routeText).slice(0, 1), [viaPriv('10.42.0.0/24', '10.0.1.10')]);
  assert.deepEqual(cs.rules, []);
  // Flannel without --local: the §7.4b return path to the location's other nodes.
  const fl = ex('bravo', { granularity: 'cross', encapsulate: 'always', compatibility: 'flannel' });
  assert.deepEqual(fl.rules.map(ruleText), ['from all to 10.0.1.10/32 iif kilo0 lookup 1107']);
});

test('cross: the §18 fixture (a and b share an internal IP in different locations; d without one)', () => {
  const run = (host: string) => planFor(specNodes(), specPeers(), host, { ...X, local: true }).json;
  // a's group is a alone (d has no internal IP): the same peers and routes as full granularity.
  const full = planFor(specNodes(), specPeers(), 'a', { granularity: 'full', local: true }).json;
  const a = run('a');
  assert.deepEqual([a.routes, a.rules, a.wireguard.peers], [full.routes, full.rules, full.wireguard.peers]);
  // b and c share location 2: no tunnel between them, c's pod CIDR on the underlay.
  const b = run('b');
  assert.deepEqual(b.wireguard.peers.map((p) => p.publicKey), [key(1), key(4), key(11), key(12)]);
  assert.deepEqual(b.routes.map(routeText), [
    viaWG('10.2.1.0/24', '10.4.0.1', '192.168.0.1'), viaWG('192.168.0.1/32', '10.4.0.1', '192.168.0.1'),
    viaPriv('10.2.3.0/24', '192.168.0.2'),
    viaWG('10.2.4.0/24', '10.4.0.4', '192.168.0.1'),
    '10.5.0.0/24 dev kilo0 proto static src 192.168.0.1',
  ]);
  assert.deepEqual(run('c').wireguard.peers.map((p) => p.publicKey), [key(1), key(4), key(11), key(12)]);
  assert.deepEqual(run('d').wireguard.peers.map((p) => p.publicKey), [key(1), key(2), key(3), key(11), key(12)]);
});

test('cross: other nodes’ granularity annotations are ignored (§19.6), and other granularities print no nodeLocation', () => {
  const nodes = exampleNodes();
  nodes[0].metadata!.annotations!['kilo.squat.ai/granularity'] = 'location';
  nodes[3].metadata!.annotations!['kilo.squat.ai/granularity'] = 'full';
  const mixed = plan(parseCluster(nodes, examplePeers(), 'topology.kubernetes.io/region'), options('bravo', XL)).json;
  const plain = ex('bravo', XL);
  assert.deepEqual([mixed.routes, mixed.rules, mixed.wireguard, mixed.iptables], [plain.routes, plain.rules, plain.wireguard, plain.iptables]);
  assert.deepEqual(mixed.nodes.map((n) => n.granularity), ['location', '', '', 'full']);
  // The annotation value `cross` is parsed like the others, without a warning.
  nodes[1].metadata!.annotations!['kilo.squat.ai/granularity'] = 'cross';
  const parsed = parseCluster(nodes, [], 'topology.kubernetes.io/region');
  assert.equal(parsed.nodes[1].granularity, 'cross');
  assert.deepEqual(parsed.warnings, []);
  for (const granularity of ['location', 'full'] as const) {
    const p = ex('bravo', { granularity, local: true, encapsulate: 'always' });
    assert.ok(!('nodeLocation' in p), `${granularity}: no top-level nodeLocation`);
    assert.ok(p.segments.every((s) => !('nodeLocation' in s)), `${granularity}: no segment nodeLocation`);
  }
});

test('cross: incremental re-plans around the location group, equal to fresh plans (design §19.5)', () => {
  // b1 plans; z1 is its location neighbour; c1 joins and leaves between them in key order, which
  // moves z1's WireGuard IP; a2 changes elsewhere; then z1 itself changes (a fallback).
  const node = (name: string, loc: string, i: number) => ({
    metadata: { name, labels: { 'topology.kubernetes.io/region': loc } },
    spec: { podCIDR: `10.42.${i}.0/24` },
  });
  const ann = (i: number, extra: Record<string, string> = {}) => ({
    'kilo.squat.ai/endpoint': `198.51.100.${i}:51820`, 'kilo.squat.ai/internal-ip': `10.0.${i}.1/24`, 'kilo.squat.ai/key': key(i), 'kilo.squat.ai/last-seen': String(NOW), ...extra,
  });
  const obj = (name: string, loc: string, i: number, extra: Record<string, string> = {}) => ({ ...node(name, loc, i), metadata: { ...node(name, loc, i).metadata, annotations: ann(i, extra) } });
  const objects = new Map([
    ['a1', obj('a1', 'a', 1)], ['a2', obj('a2', 'a', 2)], ['b1', obj('b1', 'b', 3)], ['z1', obj('z1', 'b', 4)],
  ]);
  const parse = (o: ReturnType<typeof obj>) => parseCluster([o], [], 'topology.kubernetes.io/region').nodes[0];
  const records = new Map([...objects].map(([n, o]) => [n, parse(o)]));
  const view: ReplicaView = {
    nodes: records,
    cluster: () => ({ nodes: [...records.values()].sort((x, y) => (x.name < y.name ? -1 : 1)), peers: [], warnings: [] }),
    warnings: () => [],
  };
  const r = new Replanner();
  const o = options('b1', XL);
  const check = (what: string) => {
    const got = r.plan(view, o, { privateKey: null });
    const want = plan(parseCluster([...objects.values()], [], 'topology.kubernetes.io/region'), o, { describe: false }).json;
    assert.deepEqual(got.result.json, want, what);
    return got.fullReason;
  };
  const set = (name: string, o2: ReturnType<typeof obj> | null) => {
    r.noteNode(name, records.get(name));
    if (o2) {
      objects.set(name, o2);
      records.set(name, parse(o2));
    } else {
      objects.delete(name);
      records.delete(name);
    }
  };
  assert.equal(check('first plan'), 'replica reset');
  set('c1', obj('c1', 'c', 5));
  assert.equal(check('c1 joins before z1'), null);
  set('a2', obj('a2', 'a', 2, { 'kilo.squat.ai/allowed-location-ips': '172.16.0.0/24' }));
  assert.equal(check('a2 changes'), null);
  set('c1', null);
  assert.equal(check('c1 leaves'), null);
  set('z1', obj('z1', 'b', 4, { 'kilo.squat.ai/allowed-location-ips': '172.16.1.0/24' }));
  assert.equal(check('z1, a neighbour, changes'), 'cross: the local location');
  set('a1', obj('a1', 'b', 1));
  assert.equal(check('a1 moves into b1’s location'), 'cross: the local location');
  assert.ok(r.stats.incremental >= 3);
});
