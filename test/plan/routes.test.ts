// §18.2 TestRoutes scenarios, with expected values derived from design §7 by hand.
// kilo/priv/tunl devices are kilo0/eth0/tunl0. Peer allowed IPs carry host bits (10.5.0.1/24 …);
// routes go to the masked network, once (see plan/routes.ts on design §16.15).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { routeText, ruleText } from '../../plan/format-text.js';
import { planFor, specNodes, specPeers, type Opts } from './fixture.js';

const K = 'dev kilo0 proto static';
const viaWG = (dst: string, wg: string, src?: string) => `${dst} via ${wg} ${K}${src ? ` src ${src}` : ''} onlink`;
const peerRoute = (src?: string) => `10.5.0.0/24 ${K}${src ? ` src ${src}` : ''}`;
const viaPriv = (dst: string, gw: string) => `${dst} via ${gw} dev eth0 proto static onlink`;
const viaTunl = (dst: string, gw: string, src: string, table = '') => `${dst} via ${gw} dev tunl0${table ? ` table ${table}` : ''} proto static src ${src} onlink`;

function run(host: string, o: Opts) {
  const p = planFor(specNodes(), specPeers(), host, o).json;
  return { routes: p.routes.map(routeText), rules: p.rules.map(ruleText) };
}

const A = '192.168.0.1';
const logicalFromA = [
  viaWG('10.2.2.0/24', '10.4.0.2', A), viaWG('192.168.0.1/32', '10.4.0.2', A),
  viaWG('10.2.3.0/24', '10.4.0.2', A), viaWG('192.168.0.2/32', '10.4.0.2', A),
  viaWG('192.168.178.3/32', '10.4.0.2', A),
  viaWG('10.2.4.0/24', '10.4.0.3', A),
  peerRoute(A),
];
const logicalFromB = [
  viaWG('10.2.1.0/24', '10.4.0.1', A), viaWG('192.168.0.1/32', '10.4.0.1', A),
  viaWG('10.2.4.0/24', '10.4.0.3', A),
  peerRoute(A),
];
const logicalFromC = [
  viaPriv('10.4.0.1/32', A), viaPriv('10.2.1.0/24', A), viaPriv('192.168.0.1/32', A),
  viaPriv('10.4.0.2/32', A),
  viaPriv('10.4.0.3/32', A), viaPriv('10.2.4.0/24', A),
  viaPriv('10.5.0.0/24', A),
];
const fullFromA = [
  viaWG('10.2.2.0/24', '10.4.0.2', A), viaWG('192.168.0.1/32', '10.4.0.2', A), viaWG('192.168.178.3/32', '10.4.0.2', A),
  viaWG('10.2.3.0/24', '10.4.0.3', A), viaWG('192.168.0.2/32', '10.4.0.3', A),
  viaWG('10.2.4.0/24', '10.4.0.4', A),
  peerRoute(A),
];
const fullFromB = [
  viaWG('10.2.1.0/24', '10.4.0.1', A), viaWG('192.168.0.1/32', '10.4.0.1', A),
  viaWG('10.2.3.0/24', '10.4.0.3', A), viaWG('192.168.0.2/32', '10.4.0.3', A),
  viaWG('10.2.4.0/24', '10.4.0.4', A),
  peerRoute(A),
];
const C = '192.168.0.2';
const fullFromC = [
  viaWG('10.2.1.0/24', '10.4.0.1', C), viaWG('192.168.0.1/32', '10.4.0.1', C),
  viaWG('10.2.2.0/24', '10.4.0.2', C), viaWG('192.168.0.1/32', '10.4.0.2', C), viaWG('192.168.178.3/32', '10.4.0.2', C),
  viaWG('10.2.4.0/24', '10.4.0.4', C),
  peerRoute(C),
];

const cases: { name: string; host: string; o: Opts; routes: string[]; rules?: string[] }[] = [
  { name: 'logical from a', host: 'a', o: {}, routes: logicalFromA },
  { name: 'logical from b', host: 'b', o: {}, routes: logicalFromB },
  { name: 'logical from c', host: 'c', o: {}, routes: logicalFromC },
  {
    name: 'logical from d',
    host: 'd',
    o: {},
    routes: [
      viaWG('10.2.1.0/24', '10.4.0.1'), viaWG('192.168.0.1/32', '10.4.0.1'),
      viaWG('10.2.2.0/24', '10.4.0.2'), viaWG('192.168.0.1/32', '10.4.0.2'),
      viaWG('10.2.3.0/24', '10.4.0.2'), viaWG('192.168.0.2/32', '10.4.0.2'),
      viaWG('192.168.178.3/32', '10.4.0.2'),
      peerRoute(),
    ],
  },
  { name: 'full from a', host: 'a', o: { granularity: 'full' }, routes: fullFromA },
  { name: 'full from b', host: 'b', o: { granularity: 'full' }, routes: fullFromB },
  { name: 'full from c', host: 'c', o: { granularity: 'full' }, routes: fullFromC },
  { name: 'logical from a local', host: 'a', o: { local: true }, routes: logicalFromA },
  { name: 'logical from a local always', host: 'a', o: { local: true, encapsulate: 'always' }, routes: logicalFromA },
  {
    name: 'logical from b local',
    host: 'b',
    o: { local: true },
    routes: [
      viaWG('10.2.1.0/24', '10.4.0.1', A), viaWG('192.168.0.1/32', '10.4.0.1', A),
      viaPriv('10.2.3.0/24', C),
      viaWG('10.2.4.0/24', '10.4.0.3', A),
      peerRoute(A),
    ],
  },
  {
    name: 'logical from b local always',
    host: 'b',
    o: { local: true, encapsulate: 'always' },
    routes: [
      viaWG('10.2.1.0/24', '10.4.0.1', A), viaWG('192.168.0.1/32', '10.4.0.1', A),
      viaTunl('10.2.3.0/24', C, A), viaTunl('192.168.0.2/32', C, A, '1107'),
      viaWG('10.2.4.0/24', '10.4.0.3', A),
      peerRoute(A),
    ],
    rules: ['from 10.2.2.0/24 to 192.168.0.2/32 lookup 1107', 'from all to 192.168.0.2/32 iif kilo0 lookup 1107'],
  },
  {
    name: 'logical from c local',
    host: 'c',
    o: { local: true },
    routes: [
      viaPriv('10.4.0.1/32', A), viaPriv('10.2.1.0/24', A), viaPriv('192.168.0.1/32', A),
      viaPriv('10.4.0.2/32', A), viaPriv('10.2.2.0/24', A),
      viaPriv('10.4.0.3/32', A), viaPriv('10.2.4.0/24', A),
      viaPriv('10.5.0.0/24', A),
    ],
  },
  {
    name: 'logical from c local always',
    host: 'c',
    o: { local: true, encapsulate: 'always' },
    routes: [
      viaTunl('10.4.0.1/32', A, C), viaTunl('10.2.1.0/24', A, C), viaTunl('192.168.0.1/32', A, C),
      viaTunl('10.4.0.2/32', A, C), viaTunl('10.2.2.0/24', A, C), viaTunl('192.168.0.1/32', A, C, '1107'),
      viaTunl('10.4.0.3/32', A, C), viaTunl('10.2.4.0/24', A, C),
      viaTunl('10.5.0.0/24', A, C),
    ],
    rules: ['from 10.2.3.0/24 to 192.168.0.1/32 lookup 1107'],
  },
  { name: 'full from a local', host: 'a', o: { granularity: 'full', local: true }, routes: fullFromA },
  { name: 'full from b local', host: 'b', o: { granularity: 'full', local: true }, routes: fullFromB },
  { name: 'full from c local', host: 'c', o: { granularity: 'full', local: true }, routes: fullFromC },
];

for (const c of cases) {
  test(`routes: ${c.name}`, () => {
    const got = run(c.host, c.o);
    assert.deepEqual(got.routes, c.routes);
    assert.deepEqual(got.rules, c.rules ?? []);
  });
}

test('routes: crosssubnet encapsulates only gateways outside the local internal-IP prefix', () => {
  // The §5.10/§7.6 example: bravo is inside alpha's /24, so crosssubnet routes go natively.
  const nodes = specNodes().map((n) => {
    const ann = n.metadata!.annotations!;
    if (n.metadata!.name === 'b') ann['kilo.squat.ai/internal-ip'] = '192.168.0.1/24';
    if (n.metadata!.name === 'c') ann['kilo.squat.ai/internal-ip'] = '192.168.0.2/24';
    return n;
  });
  const p = planFor(nodes, [], 'c', { local: true, encapsulate: 'crosssubnet' }).json;
  assert.deepEqual(p.routes.map(routeText).slice(0, 3), [viaPriv('10.4.0.1/32', A), viaPriv('10.2.1.0/24', A), viaPriv('192.168.0.1/32', A)]);
  assert.deepEqual(p.rules, []);
  // A /32 internal IP makes crosssubnet behave like always (design §7.2).
  const q = planFor(specNodes(), [], 'c', { local: true, encapsulate: 'crosssubnet' }).json;
  assert.equal(q.routes[0].dev, 'tunl0');
  assert.deepEqual(q.rules.map(ruleText), ['from 10.2.3.0/24 to 192.168.0.1/32 lookup 1107']);
});

test('routes: flannel and cilium gateways (design §9.4, §9.5) and the §7.4b return path', () => {
  const nodes = specNodes();
  nodes[2].metadata!.annotations!['kilo.squat.ai/cni-compatibility-ip'] = '10.9.0.3/24';
  // Non-leader c under flannel: the leader b is reached at its pod-CIDR network address.
  const f = planFor(nodes, [], 'c', { compatibility: 'flannel', encapsulate: 'always', local: false }).json;
  assert.equal(f.routes[0].gw, '10.2.2.0');
  assert.equal(f.routes[0].dev, 'flannel.1');
  // Leader b, --local=false, flannel: table-1107 return route to c through the overlay.
  const fb = planFor(nodes, [], 'b', { compatibility: 'flannel', encapsulate: 'always', local: false }).json;
  assert.deepEqual(fb.routes.filter((r) => r.table === 1107).map(routeText), ['192.168.0.2/32 via 10.2.3.0 dev flannel.1 table 1107 proto static onlink']);
  assert.deepEqual(fb.rules.map(ruleText), ['from all to 192.168.0.2/32 iif kilo0 lookup 1107']);
  // Cilium: the CNI compatibility IP wins over the pod CIDR.
  const cb = planFor(nodes, [], 'b', { compatibility: 'cilium', encapsulate: 'always', local: false }).json;
  assert.deepEqual(cb.routes.filter((r) => r.table === 1107).map((r) => r.gw), ['10.9.0.3']);
  // Plain IPIP has no such return path (its gateway is the private IP itself).
  const ib = planFor(nodes, [], 'b', { encapsulate: 'always', local: false }).json;
  assert.deepEqual(ib.routes.filter((r) => r.table === 1107), []);
});

test('routes: IPv6 mesh, internal IPs and peers', () => {
  const k = (i: number) => Buffer.alloc(32, i).toString('base64');
  const n = (name: string, i: number, loc: string) => ({
    metadata: {
      name,
      annotations: {
        'kilo.squat.ai/endpoint': `[2001:db8::${i}]:51820`,
        'kilo.squat.ai/internal-ip': `fd00::${i}/64`,
        'kilo.squat.ai/key': k(i),
        'kilo.squat.ai/last-seen': '1764160000',
        'kilo.squat.ai/location': loc,
      },
    },
    spec: { podCIDR: `fd10:${i}::/64` },
  });
  const p = planFor([n('x', 1, 'l1'), n('y', 2, 'l2')], [{ metadata: { name: 'p' }, spec: { allowedIPs: ['fd20::1/128'], publicKey: k(9) } }], 'x', { subnet: 'fd99::/64' }).json;
  assert.equal(p.wireGuardCIDR, 'fd99::1/64');
  assert.deepEqual(p.routes.map(routeText), [
    'fd10:2::/64 via fd99::2 dev kilo0 proto static src fd00::1 onlink',
    'fd00::2/128 via fd99::2 dev kilo0 proto static src fd00::1 onlink',
    'fd20::1/128 dev kilo0 proto static src fd00::1',
  ]);
  assert.deepEqual(p.wireguard.peers.map((x) => x.allowedIPs), [['fd10:2::/64', 'fd00::2/128', 'fd99::2/128'], ['fd20::1/128']]);
  assert.deepEqual(p.wireguard.peers[0].endpoint, '[2001:db8::2]:51820');
  assert.ok(p.iptables.prepend.some((r) => r.family === 'ipv6' && r.rule.includes('fd99::2/128')));
});
