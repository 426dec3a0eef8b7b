// Dual stack (design §20): a small cluster of both families, its expected second-family routes,
// WireGuard allowed IPs, ip6tables rules and CNI ranges derived by hand from design §20.3 and §7.
// Cluster: location 1 = a (leader: first name, no public endpoint), b; location 2 = c (leader), d.
// Mesh subnets 10.4.0.0/16 and fd04::/64: segment location:1 gets 10.4.0.1 and fd04::1, location:2
// 10.4.0.2 and fd04::2. d has an IPv6 pod CIDR but no IPv6 internal IP: left out of the IPv6 half.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCIDR } from '../../plan/addr.js';
import { routeText } from '../../plan/format-text.js';
import { parseCluster, plan } from '../../plan/plan.js';
import { key, options, peerObj, planFor, specNodes, specPeers, type Opts } from './fixture.js';
import { dualNodes } from './dual-fixture.js';

const DUAL = parseCIDR('fd04::/64')!;
function dualPlan(host: string, nodes = dualNodes(), dual: typeof DUAL | null = DUAL) {
  const o = { ...options(host, { local: true }), ...(dual ? { dualStackSubnet: dual } : {}) };
  return plan(parseCluster(nodes, [], 'topology.kubernetes.io/region'), o);
}
const v6 = (xs: string[]) => xs.filter((x) => x.includes(':'));

test('dual stack: the leader a routes location 2 over WireGuard and b over the private network, in both families', () => {
  const r = dualPlan('a');
  const j = r.json;
  assert.deepEqual(v6(j.routes.map(routeText)), [
    'fd10:0:0:2::/64 via fd00:1::2 dev eth0 proto static onlink',
    'fd10:0:0:3::/64 via fd04::2 dev kilo0 proto static src fd00:1::1 onlink',
    'fd00:2::3/128 via fd04::2 dev kilo0 proto static src fd00:1::1 onlink',
  ]);
  // The IPv4 half is the single-stack plan, unchanged and first.
  const single = dualPlan('a', dualNodes(), null).json;
  assert.deepEqual(j.routes.slice(0, single.routes.length), single.routes);
  assert.equal(j.routes.length, single.routes.length + 3);
  assert.deepEqual(j.rules, single.rules, 'IPIP is IPv4-only: no IPv6 rules');
  assert.equal(j.dualStack?.wireGuardCIDR, 'fd04::1/64');
  assert.equal(j.dualStack?.podCIDR, 'fd10:0:0:1::/64');
  assert.equal(j.dualStack?.active, true);
  // One peer (location 2, leader c): IPv4 allowed IPs, then IPv6 ones.
  assert.deepEqual(j.wireguard.peers.map((p) => p.allowedIPs), [[
    '10.2.3.0/24', '192.168.1.3/32', '10.2.4.0/24', '192.168.1.4/32', '10.4.0.2/32',
    'fd10:0:0:3::/64', 'fd00:2::3/128', 'fd04::2/128',
  ]]);
  assert.deepEqual(r.device?.peers.map((p) => p.allowedIPs.map((a) => a.s)), j.wireguard.peers.map((p) => p.allowedIPs));
  const six = j.iptables.prepend.filter((x) => x.family === 'ipv6').map((x) => `${x.chain} ${x.rule.slice(0, 2).join(' ')} ${x.rule[x.rule.length - 1]}`);
  assert.deepEqual(six, [
    'POSTROUTING -s fd10:0:0:1::/64 KILO-NAT',
    'KILO-NAT -d fd04::1/128 RETURN',
    'KILO-NAT -d fd10:0:0:1::/64 RETURN', 'KILO-NAT -d fd00:1::1/128 RETURN', 'KILO-NAT -d fd10:0:0:2::/64 RETURN', 'KILO-NAT -d fd00:1::2/128 RETURN', 'KILO-NAT -d fd04::1/128 RETURN',
    'KILO-NAT -d fd04::2/128 RETURN',
    'KILO-NAT -d fd10:0:0:3::/64 RETURN', 'KILO-NAT -d fd00:2::3/128 RETURN', 'KILO-NAT -d fd04::2/128 RETURN',
  ]);
  assert.deepEqual(j.iptables.chains, single.iptables.chains);
  assert.deepEqual(j.iptables.append, single.iptables.append);
  assert.deepEqual((j.cni as { plugins: { ipam?: { ranges: unknown } }[] }).plugins[0].ipam?.ranges, [[{ subnet: '10.2.1.0/24' }], [{ subnet: 'fd10:0:0:1::/64' }]]);
  assert.deepEqual(j.dualStack?.segments.map((s) => [s.location, s.hostnames, s.wireGuardIP]), [['location:1', ['a', 'b'], 'fd04::1'], ['location:2', ['c'], 'fd04::2']]);
  assert.ok(j.warnings.some((w) => w.startsWith('node d: has an ipv6 pod CIDR but it has no ipv6 internal IP')));
});

test('dual stack: the non-leader b sends IPv6 to its leader a at its IPv6 internal IP', () => {
  const j = dualPlan('b').json;
  assert.deepEqual(v6(j.routes.map(routeText)), [
    'fd04::1/128 via fd00:1::1 dev eth0 proto static onlink',
    'fd10:0:0:1::/64 via fd00:1::1 dev eth0 proto static onlink',
    'fd04::2/128 via fd00:1::1 dev eth0 proto static onlink',
    'fd10:0:0:3::/64 via fd00:1::1 dev eth0 proto static onlink',
    'fd00:2::3/128 via fd00:1::1 dev eth0 proto static onlink',
  ]);
  assert.equal(j.dualStack?.wireGuardCIDR, 'fd04::/64', 'a non-leader holds the subnet, as wireGuardCIDR');
  assert.deepEqual(j.wireguard.peers, []);
});

test('dual stack: d without an IPv6 internal IP keeps its IPv4 half only', () => {
  const j = dualPlan('d').json;
  assert.deepEqual(v6(j.routes.map(routeText)), []);
  assert.equal(j.dualStack?.active, false);
  assert.deepEqual((j.cni as { plugins: { ipam?: { ranges: unknown } }[] }).plugins[0].ipam?.ranges, [[{ subnet: '10.2.4.0/24' }]]);
  assert.ok(j.warnings.includes('node d: takes no part in the ipv6 half of the mesh'));
});

test('dual stack: a leader without an IPv6 internal IP keeps its other members out of the IPv6 half', () => {
  const nodes = dualNodes();
  delete nodes[0].metadata!.annotations!['kilo.squat.ai/dual-stack-internal-ip'];
  const j = dualPlan('c', nodes).json;
  assert.deepEqual(j.dualStack?.segments.map((s) => s.hostnames), [['a'], ['c']]);
  assert.ok(j.warnings.some((w) => w.startsWith('node b: has an ipv6 pod CIDR but its leader a has no ipv6 internal IP')));
  // c still reaches a's IPv6 pods through a.
  assert.ok(j.routes.map(routeText).includes('fd10:0:0:1::/64 via fd04::1 dev kilo0 proto static src fd00:2::3 onlink'));
});

test('single stack stays byte-identical: no --dual-stack-subnet, or no node with a second-family pod CIDR', () => {
  for (const host of ['a', 'b', 'c', 'd']) {
    for (const o of [{}, { local: true }, { granularity: 'full' }, { encapsulate: 'always', local: true }] as Opts[]) {
      const before = JSON.stringify(planFor(specNodes(), specPeers(), host, o).json);
      const withFlag = plan(parseCluster(specNodes(), specPeers(), 'topology.kubernetes.io/region'), { ...options(host, o), dualStackSubnet: DUAL });
      assert.equal(JSON.stringify(withFlag.json), before, `${host} ${JSON.stringify(o)}`);
    }
  }
});

test('dual stack: the second family must be the other family; spec.podCIDRs entries of the first family are skipped', () => {
  const nodes = dualNodes();
  nodes[0].spec = { podCIDR: '10.2.1.0/24', podCIDRs: ['fd10:0:0:1::/64', '10.2.1.0/24'] };
  const j = dualPlan('a', nodes).json;
  assert.equal(j.dualStack?.podCIDR, 'fd10:0:0:1::/64');
  assert.deepEqual(j.nodes[0].dualStack, { subnet: 'fd10:0:0:1::/64', internalIP: 'fd00:1::1/64' });
  assert.equal(j.nodes[0].subnet, '10.2.1.0/24', 'spec.podCIDR stays the first family');
  // Kubernetes allows two entries: a third is not read (bounded work on a hostile list).
  nodes[0].spec = { podCIDR: '10.2.1.0/24', podCIDRs: ['10.2.1.0/24', '10.9.0.0/24', 'fd10:0:0:1::/64'] };
  assert.deepEqual(dualPlan('a', nodes).json.nodes[0].dualStack, { subnet: null, internalIP: 'fd00:1::1/64' });
  // An IPv4 --dual-stack-subnet finds no second-family pod CIDR in this IPv4-first cluster: single stack.
  const v4 = dualPlan('a', dualNodes(), parseCIDR('10.5.0.0/16')!).json;
  assert.equal(v4.dualStack, undefined);
});

test('dual stack: the forced IPv6 internal IP wins, and "-" forces none', () => {
  const nodes = dualNodes();
  nodes[1].metadata!.annotations!['kilo.squat.ai/force-dual-stack-internal-ip'] = 'fd00:1::22/64';
  assert.ok(dualPlan('a', nodes).json.routes.map(routeText).includes('fd10:0:0:2::/64 via fd00:1::22 dev eth0 proto static onlink'));
  nodes[1].metadata!.annotations!['kilo.squat.ai/force-dual-stack-internal-ip'] = '-';
  assert.equal(dualPlan('b', nodes).json.dualStack?.active, false);
});

// Cross (design §19, §20.3) on the same cluster: every node is its own segment and leader, node:a..d
// get 10.4.0.1..4 and fd04::1..4; a, b (location 1) and c, d (location 2) are location groups with
// no WireGuard peer inside, reaching each other on the underlay at their IPv6 internal IPs.
function crossPlan(host: string) {
  const o = { ...options(host, { local: true, granularity: 'cross' }), dualStackSubnet: DUAL };
  return plan(parseCluster(dualNodes(), [], 'topology.kubernetes.io/region'), o).json;
}

test('dual stack in cross: a routes b on the underlay and c, d over their own tunnels, in both families', () => {
  const j = crossPlan('a');
  assert.deepEqual(v6(j.routes.map(routeText)), [
    'fd10:0:0:2::/64 via fd00:1::2 dev eth0 proto static onlink',
    'fd10:0:0:3::/64 via fd04::3 dev kilo0 proto static src fd00:1::1 onlink',
    'fd00:2::3/128 via fd04::3 dev kilo0 proto static src fd00:1::1 onlink',
    'fd10:0:0:4::/64 via fd04::4 dev kilo0 proto static src fd00:1::1 onlink',
  ]);
  assert.equal(j.dualStack?.wireGuardCIDR, 'fd04::1/64');
  // Two peers, c and d (b is in a's group): each with its IPv4 allowed IPs, then its IPv6 ones.
  assert.deepEqual(j.wireguard.peers.map((p) => p.allowedIPs), [
    ['10.2.3.0/24', '192.168.1.3/32', '10.4.0.3/32', 'fd10:0:0:3::/64', 'fd00:2::3/128', 'fd04::3/128'],
    ['10.2.4.0/24', '192.168.1.4/32', '10.4.0.4/32', 'fd10:0:0:4::/64', 'fd04::4/128'],
  ]);
  assert.deepEqual(j.rules, [], 'no encapsulation: no rules in either family');
});

test('dual stack in cross: d without an IPv6 internal IP takes part towards location 1 only', () => {
  const d = crossPlan('d');
  assert.equal(d.dualStack?.active, true, 'd is its own segment and leader');
  assert.deepEqual(v6(d.routes.map(routeText)), [
    'fd10:0:0:1::/64 via fd04::1 dev kilo0 proto static onlink',
    'fd00:1::1/128 via fd04::1 dev kilo0 proto static onlink',
    'fd10:0:0:2::/64 via fd04::2 dev kilo0 proto static onlink',
    'fd00:1::2/128 via fd04::2 dev kilo0 proto static onlink',
  ]);
  assert.deepEqual(d.wireguard.peers.map((p) => p.allowedIPs), [
    ['10.2.1.0/24', '192.168.0.1/32', '10.4.0.1/32', 'fd10:0:0:1::/64', 'fd00:1::1/128', 'fd04::1/128'],
    ['10.2.2.0/24', '192.168.0.2/32', '10.4.0.2/32', 'fd10:0:0:2::/64', 'fd00:1::2/128', 'fd04::2/128'],
  ]);
  assert.ok(d.warnings.includes('node d: has an ipv6 pod CIDR but no ipv6 internal IP; its ipv6 pods are reached only from other locations'));
  // c, in d's group, has no IPv6 route to d's pods (none on the underlay, and d is no peer of c).
  const c = crossPlan('c');
  assert.deepEqual(v6(c.routes.map(routeText)), [
    'fd10:0:0:1::/64 via fd04::1 dev kilo0 proto static src fd00:2::3 onlink',
    'fd00:1::1/128 via fd04::1 dev kilo0 proto static src fd00:2::3 onlink',
    'fd10:0:0:2::/64 via fd04::2 dev kilo0 proto static src fd00:2::3 onlink',
    'fd00:1::2/128 via fd04::2 dev kilo0 proto static src fd00:2::3 onlink',
  ]);
  assert.deepEqual(c.wireguard.peers.map((p) => p.allowedIPs.filter((a) => a.includes(':'))), [
    ['fd10:0:0:1::/64', 'fd00:1::1/128', 'fd04::1/128'],
    ['fd10:0:0:2::/64', 'fd00:1::2/128', 'fd04::2/128'],
  ]);
});

// A Peer's allowed IPs of both families (design §20.3): one WireGuard peer with both; each route
// takes the source or gateway of its own family (the first family's would be rejected by the
// kernel: an IPv6 route with an IPv4 `src` or `via`); NAT exemptions in each family's table.
test('dual stack: a Peer with allowed IPs of both families is routed in each family with that family\'s source and gateway', () => {
  const peers = [peerObj('laptop', { allowedIPs: ['10.5.0.1/32', 'fd05::1/128'], publicKey: key(21) })];
  const at = (host: string) => plan(parseCluster(dualNodes(), peers, 'topology.kubernetes.io/region'), { ...options(host, { local: true }), dualStackSubnet: DUAL }).json;
  const toPeer = (j: ReturnType<typeof at>) => j.routes.map(routeText).filter((r) => r.startsWith('10.5.0.1/') || r.startsWith('fd05::1/'));
  const a = at('a');
  assert.deepEqual(a.wireguard.peers.find((p) => p.publicKey === key(21))?.allowedIPs, ['10.5.0.1/32', 'fd05::1/128']);
  assert.deepEqual(toPeer(a), ['10.5.0.1/32 dev kilo0 proto static src 192.168.0.1', 'fd05::1/128 dev kilo0 proto static src fd00:1::1']);
  assert.deepEqual(toPeer(at('b')), ['10.5.0.1/32 via 192.168.0.1 dev eth0 proto static onlink', 'fd05::1/128 via fd00:1::1 dev eth0 proto static onlink']);
  const nat = a.iptables.prepend.filter((x) => x.chain === 'KILO-NAT' && x.rule.some((w) => w === '10.5.0.1/32' || w === 'fd05::1/128')).map((x) => `${x.family} ${x.rule[1]}`);
  assert.deepEqual(nat, ['ipv4 10.5.0.1/32', 'ipv6 fd05::1/128']);
  // Single stack keeps Go's plan exactly, whatever the family of a Peer's allowed IP.
  const single = plan(parseCluster(dualNodes(), peers, 'topology.kubernetes.io/region'), options('a', { local: true })).json;
  assert.deepEqual(toPeer(single), ['10.5.0.1/32 dev kilo0 proto static src 192.168.0.1', 'fd05::1/128 dev kilo0 proto static src 192.168.0.1']);
});
