// `kgctl graph` and `kgctl showconf` against the API simulator (HTTPS, token) holding the spec's
// worked example (§5.10: alpha, bravo in east; charlie in west; delta alone; Peer laptop). Every
// expected text below is derived by hand from design §5.10, §6.1–6.4, §14.2 and §14.3.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse } from 'yaml';
import { loadYamlObjects, startApiServer, type KubeObject } from '../../loadtest/apiserver/index.js';
import { parseCIDR } from '../../plan/addr.js';
import { validatePeer } from '../../plan/peer.js';
import { connectSubnet, inferSubnet, parseAllowedIPs, parseListed, peerObject, peerRoutes, resolveGranularity, topology, view } from '../../main/kgctl/model.js';
import { kubectlFor } from '../apiserver/helpers.js';

const KGCTL = new URL('../../main/kgctl.js', import.meta.url).pathname;
const ROOT = new URL('../../../', import.meta.url).pathname;
const KEY = {
  alpha: 'uhkkSPITynKlzJEdIMGJBhmaOmErfvsLXgkGzXpW8UA=',
  charlie: '6V5XlOAX3Vt0NhVMFp/b9It53ptCmeMfOtglOQ74wjc=',
  delta: 'tmlU76rE1CGQA9Y0WCojQzHeKZ/RlI1lF5mNR+GDbGQ=',
  laptop: 'mAvLUXGdBlXR+w0yn+DxwC6aqzRyFzpWurmPLSK2Ng4=',
};

/** The example cluster, with heartbeats from now so that every node is ready. */
function exampleObjects(): { nodes: KubeObject[]; peers: KubeObject[] } {
  const now = String(Math.floor(Date.now() / 1000));
  const items = (f: string) => loadYamlObjects(join(ROOT, 'examples', f)).flatMap((o) => ((o as { items?: KubeObject[] }).items ?? [o]));
  const nodes = items('nodes.yaml').map((n) => ({ ...n, metadata: { ...n.metadata, annotations: { ...n.metadata.annotations, 'kilo.squat.ai/last-seen': now } } }));
  return { nodes, peers: items('peers.yaml') };
}

/** Runs kgctl without blocking this process, which serves the simulator the child talks to. */
function kgctl(kubeconfig: string, args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [KGCTL, ...args, `--kubeconfig=${kubeconfig}`], { encoding: 'utf8', timeout: 30_000 }, (e, out, err) => {
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, out, err });
    });
  });
}

const EXPECTED_DOT = [
  'digraph kilo {',
  '\tlabel="10.4.0.0/16";',
  '\tlabelloc=t;',
  '\toutputorder=nodesfirst;',
  '\toverlap=false;',
  '\t"alpha"->"bravo"[ dir=both ];',
  '\t"alpha"->"charlie"[ dir=both ];',
  '\t"alpha"->"delta"[ dir=both ];',
  '\t"charlie"->"delta"[ dir=both ];',
  '\t"alpha"->"laptop"[ dir=both, style=dashed ];',
  '\t"charlie"->"laptop"[ dir=both, style=dashed ];',
  '\t"delta"->"laptop"[ dir=both, style=dashed ];',
  '\tsubgraph "cluster_location_location:east" {',
  '\tlabel="location:east";',
  '\tstyle="dashed,rounded";',
  '\t"alpha" [ label="location:east\\nalpha\\n10.42.0.0/24\\n10.0.1.10\\n10.4.0.1\\n203.0.113.10:51820", rank=1, shape=ellipse ];',
  '\t"bravo" [ label="location:east\\nbravo\\n10.42.1.0/24\\n10.0.1.11", shape=ellipse ];',
  '',
  '}',
  ';',
  '\tsubgraph "cluster_location_location:west" {',
  '\tlabel="location:west";',
  '\tstyle="dashed,rounded";',
  '\t"charlie" [ label="location:west\\ncharlie\\n10.42.2.0/24\\n172.16.5.4\\n10.4.0.2\\n198.51.100.7:51820", rank=1, shape=ellipse ];',
  '',
  '}',
  ';',
  '\tsubgraph "cluster_location_node:delta" {',
  '\tlabel="node:delta";',
  '\tstyle="dashed,rounded";',
  // delta's segment has no private IP, so its label has none (§14.2).
  '\t"delta" [ label="node:delta\\ndelta\\n10.42.3.0/24\\n10.4.0.3\\n198.51.100.8:51820", rank=1, shape=ellipse ];',
  '',
  '}',
  ';',
  '\tsubgraph "cluster_peers" {',
  '\tlabel="peers";',
  '\tstyle="dashed,rounded";',
  // Go's quirk: a real line feed before the closing quote of a peer's label.
  '\t"laptop" [ label="laptop\\n',
  '", shape=ellipse ];',
  '',
  '}',
  ';',
  '',
  '}',
  '',
].join('\n');

// §14.3.3, keys filled in; the Peer's own keepalive (10) is not used: the node's (0) is.
const EXPECTED_NODE_ALPHA = `[Interface]
ListenPort = 51820

[Peer]
AllowedIPs = 10.42.2.0/24, 172.16.5.4/32, 10.4.0.2/32, 172.16.9.0/24
Endpoint = 198.51.100.7:51820
PersistentKeepalive = 0
PublicKey = ${KEY.charlie}

[Peer]
AllowedIPs = 10.42.3.0/24, 10.4.0.3/32
Endpoint = 198.51.100.8:51820
PersistentKeepalive = 0
PublicKey = ${KEY.delta}

[Peer]
AllowedIPs = 10.5.0.1/32
PersistentKeepalive = 0
PublicKey = ${KEY.laptop}
`;

// §6.2: every segment, with the peer's own keepalive (10); no interface section.
const EXPECTED_PEER_LAPTOP = `[Peer]
AllowedIPs = 10.42.0.0/24, 10.0.1.10/32, 10.42.1.0/24, 10.0.1.11/32, 10.4.0.1/32
Endpoint = 203.0.113.10:51820
PersistentKeepalive = 10
PublicKey = ${KEY.alpha}

[Peer]
AllowedIPs = 10.42.2.0/24, 172.16.5.4/32, 10.4.0.2/32, 172.16.9.0/24
Endpoint = 198.51.100.7:51820
PersistentKeepalive = 10
PublicKey = ${KEY.charlie}

[Peer]
AllowedIPs = 10.42.3.0/24, 10.4.0.3/32
Endpoint = 198.51.100.8:51820
PersistentKeepalive = 10
PublicKey = ${KEY.delta}
`;

test('kgctl graph and showconf against the API simulator', { timeout: 120_000 }, async (t) => {
  const { nodes, peers } = exampleObjects();
  const srv = await startApiServer({ https: true, nodes, peers });
  const dir = mkdtempSync(join(tmpdir(), 'kgctl-'));
  const kc = join(dir, 'kubeconfig');
  writeFileSync(kc, srv.kubeconfig, { mode: 0o600 });
  t.after(async () => {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  await t.test('graph: Kilo\'s DOT, byte for byte (§14.2)', async () => {
    const r = await kgctl(kc, ['graph']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, EXPECTED_DOT);
    const dot = spawnSync('dot', ['-Tsvg'], { input: r.out, encoding: 'utf8' });
    assert.equal(dot.status, 0, `Graphviz accepts it: ${dot.stderr}`);
  });

  await t.test('showconf node alpha (a leader): §14.3.3', async () => {
    const r = await kgctl(kc, ['showconf', 'node', 'alpha']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, EXPECTED_NODE_ALPHA);
    const other = await kgctl(kc, ['showconf', 'node', 'alpha', '--port', '51999']);
    assert.match(other.out, /^\[Interface\]\nListenPort = 51999\n/);
  });

  await t.test('showconf node bravo (not a leader): a note on stderr, exit 0', async () => {
    const r = await kgctl(kc, ['showconf', 'node', 'bravo']);
    assert.equal(r.code, 0);
    assert.equal(r.out, '');
    assert.equal(r.err, 'Node "bravo" is not a leader node\n');
  });

  await t.test('showconf node alpha --as-peer: the segment as one peer, plus --allowed-ips de-duplicated', async () => {
    const r = await kgctl(kc, ['showconf', 'node', 'alpha', '--as-peer', '--allowed-ips', '10.96.0.5/12,10.42.0.0/24']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `[Peer]
AllowedIPs = 10.42.0.0/24, 10.0.1.10/32, 10.42.1.0/24, 10.0.1.11/32, 10.4.0.1/32, 10.96.0.0/12
Endpoint = 203.0.113.10:51820
PersistentKeepalive = 0
PublicKey = ${KEY.alpha}
`);
  });

  await t.test('showconf --as-peer -o json|yaml: a Peer object that kubectl applies and kg accepts', async () => {
    const j = await kgctl(kc, ['showconf', 'node', 'charlie', '--as-peer', '-o', 'json']);
    assert.equal(j.code, 0, j.err);
    const obj = JSON.parse(j.out);
    assert.deepEqual(obj, {
      apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'charlie' },
      spec: { allowedIPs: ['10.42.2.0/24', '172.16.5.4/32', '10.4.0.2/32'], endpoint: { dnsOrIP: { ip: '198.51.100.7' }, port: 51820 }, publicKey: KEY.charlie },
    });
    assert.equal(validatePeer(obj), null);
    const y = await kgctl(kc, ['showconf', 'peer', 'laptop', '--as-peer', '-o', 'yaml']);
    assert.equal(y.code, 0, y.err);
    assert.match(y.out, /^apiVersion: kilo.squat.ai\/v1alpha1\nkind: Peer\nmetadata:\n/, 'keys in alphabetical order');
    // keepalive in seconds (Go's nanoseconds quirk §16.10 fixed on purpose)
    assert.deepEqual(parse(y.out), { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'laptop' }, spec: { allowedIPs: ['10.5.0.1/32'], persistentKeepalive: 10, publicKey: KEY.laptop } });
    // Round trip: the printed object is a valid Peer for the API (kubectl apply) under another name.
    const k = kubectlFor(srv);
    try {
      await k(['apply', '-f', '-'], { input: j.out.replace('"name": "charlie"', '"name": "charlie-as-peer"') });
      const back = JSON.parse((await k(['get', 'peers.kilo.squat.ai', 'charlie-as-peer', '-o', 'json'])).stdout);
      assert.deepEqual(back.spec, obj.spec);
      await k(['delete', 'peers.kilo.squat.ai', 'charlie-as-peer']);
    } finally {
      k.cleanup();
    }
  });

  await t.test('showconf peer laptop: PeerConf (§6.2)', async () => {
    const r = await kgctl(kc, ['showconf', 'peer', 'laptop']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, EXPECTED_PEER_LAPTOP);
  });

  await t.test('errors: unknown node/peer, bad flags — one line, exit 1', async () => {
    const cases: [string[], RegExp][] = [
      [['showconf', 'node', 'echo'], /^Error: did not find any node named "echo" in the cluster\n$/],
      [['showconf', 'peer', 'phone'], /^Error: did not find any peer named "phone" in the cluster\n$/],
      [['showconf', 'node', 'alpha', '-o', 'xml'], /output format xml unknown; posible values are: wireguard, json, yaml/],
      [['showconf', 'node', 'alpha', '--allowed-ips', '10.0.0.1'], /allowed-ips must contain only valid CIDRs/],
      [['showconf', 'node'], /usage: kgctl showconf/],
      [['graph', '--mesh-granularity', 'site'], /mesh granularity site unknown; posible values are: location, full, cross, auto/],
      [['graph', '--port', '0'], /invalid port/],
      [['graph', '--nope'], /unknown flag: --nope/],
      [['frobnicate'], /unknown command "frobnicate"/],
    ];
    for (const [args, re] of cases) {
      const r = await kgctl(kc, args);
      assert.equal(r.code, 1, args.join(' '));
      assert.match(r.err, re, args.join(' '));
    }
    const missing = await kgctl(join(dir, 'nope'), ['graph']);
    assert.equal(missing.code, 1);
    assert.match(missing.err, /kubeconfig .*nope does not exist/);
  });

  await t.test('--mesh-granularity=cross: graph, showconf node and peer (design §19.7)', async () => {
    const g = await kgctl(kc, ['graph', '--mesh-granularity', 'cross']);
    assert.equal(g.code, 0, g.err);
    // Each node in a box of its own inside its location's; delta, without an internal IP, alone.
    assert.match(g.out, /\tsubgraph "cluster_location_location:east" \{\n\t\tlabel="location:east";\n\t\tstyle="dashed,rounded";\n\t\tsubgraph "cluster_location_node:alpha" \{\n/);
    assert.ok(g.out.includes('\tsubgraph "cluster_location_node:delta" {'));
    const edges = g.out.split('\n').filter((l) => l.includes('->') && !l.includes('laptop'));
    assert.deepEqual(edges, [
      '\t"alpha"->"bravo"[ arrowhead=none, arrowtail=none, dir=both, style=dotted ];',
      '\t"alpha"->"charlie"[ dir=both ];', '\t"alpha"->"delta"[ dir=both ];',
      '\t"bravo"->"charlie"[ dir=both ];', '\t"bravo"->"delta"[ dir=both ];',
      '\t"charlie"->"delta"[ dir=both ];',
    ]);
    const dot = spawnSync('dot', ['-Tsvg'], { input: g.out, encoding: 'utf8' });
    assert.equal(dot.status, 0, `Graphviz accepts it: ${dot.stderr}`);
    // bravo leads its own segment and peers with charlie, delta and the Peer, not with alpha.
    const b = await kgctl(kc, ['showconf', 'node', 'bravo', '--mesh-granularity', 'cross']);
    assert.equal(b.code, 0, b.err);
    assert.equal(b.out, `[Interface]
ListenPort = 51820

[Peer]
AllowedIPs = 10.42.2.0/24, 172.16.5.4/32, 10.4.0.3/32, 172.16.9.0/24
Endpoint = 198.51.100.7:51820
PersistentKeepalive = 0
PublicKey = ${KEY.charlie}

[Peer]
AllowedIPs = 10.42.3.0/24, 10.4.0.4/32
Endpoint = 198.51.100.8:51820
PersistentKeepalive = 0
PublicKey = ${KEY.delta}

[Peer]
AllowedIPs = 10.5.0.1/32
PersistentKeepalive = 0
PublicKey = ${KEY.laptop}
`);
    // A Peer tunnels to every node (§19.2).
    const p = await kgctl(kc, ['showconf', 'peer', 'laptop', '--mesh-granularity', 'cross']);
    assert.equal(p.code, 0, p.err);
    assert.equal(p.out.split('[Peer]').length - 1, 4);
    assert.ok(p.out.startsWith('[Peer]\nAllowedIPs = 10.42.0.0/24, 10.0.1.10/32, 10.4.0.1/32\n'), p.out);
  });

  await t.test('--mesh-granularity=full: one segment per node', async () => {
    const r = await kgctl(kc, ['graph', '--mesh-granularity', 'full']);
    assert.equal(r.code, 0, r.err);
    for (const n of ['alpha', 'bravo', 'charlie', 'delta']) assert.ok(r.out.includes(`subgraph "cluster_location_node:${n}" {`), n);
    assert.ok(r.out.includes('\t"alpha"->"bravo"[ dir=both ];'));
  });
});

test('kgctl without the Peer CRD and without ready nodes: clear errors', async (t) => {
  const srv = await startApiServer({ https: true, loadCrds: false });
  const dir = mkdtempSync(join(tmpdir(), 'kgctl-'));
  const kc = join(dir, 'kubeconfig');
  writeFileSync(kc, srv.kubeconfig, { mode: 0o600 });
  t.after(async () => {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  let r = await kgctl(kc, ['graph']);
  assert.equal(r.code, 1);
  assert.match(r.err, /CRD is not present/);
  const k = kubectlFor(srv);
  try {
    await k(['apply', '-f', join(ROOT, 'manifests/crds.yaml')]);
  } finally {
    k.cleanup();
  }
  r = await kgctl(kc, ['graph', '--mesh-granularity', 'location']);
  assert.equal(r.code, 1);
  assert.match(r.err, /did not find any valid Kilo nodes in the cluster/);
  r = await kgctl(kc, ['graph']);
  assert.match(r.err, /could not get any nodes/);
});

test('PeerRoutes (§7.8) for the example cluster, by hand', () => {
  const { nodes, peers } = exampleObjects();
  const v = view(parseListed(nodes, peers, 'topology.kubernetes.io/region'), { granularity: 'auto', now: Math.floor(Date.now() / 1000) });
  const t = topology(v, v.lastReady, 51820);
  const r = peerRoutes(t, 'kilo0', 'laptop', [parseCIDR('10.96.0.0/12')!]);
  const text = r.map((x) => `${x.dst}${x.gw ? ` via ${x.gw}` : ''} dev ${x.dev}${x.onlink ? ' onlink' : ''}`);
  assert.deepEqual(text, [
    '10.42.0.0/24 via 10.4.0.1 dev kilo0 onlink',
    '10.42.1.0/24 via 10.4.0.1 dev kilo0 onlink',
    '10.0.1.10/32 via 10.4.0.1 dev kilo0 onlink',
    '10.0.1.11/32 via 10.4.0.1 dev kilo0 onlink',
    '10.4.0.1/32 dev kilo0',
    '10.42.2.0/24 via 10.4.0.2 dev kilo0 onlink',
    '172.16.5.4/32 via 10.4.0.2 dev kilo0 onlink',
    '172.16.9.0/24 via 10.4.0.2 dev kilo0 onlink',
    '10.4.0.2/32 dev kilo0',
    '10.42.3.0/24 via 10.4.0.3 dev kilo0 onlink',
    '10.4.0.3/32 dev kilo0',
    '10.96.0.0/12 via 10.4.0.1 dev kilo0 onlink',
  ]);
  assert.ok(r.every((x) => x.protocol === 'static' && x.table === null && x.src === null));
});

test('PeerRoutes (§7.8) in cross granularity: every node through its own WireGuard IP (design §19.7)', () => {
  const { nodes, peers } = exampleObjects();
  const v = view(parseListed(nodes, peers, 'topology.kubernetes.io/region'), { granularity: 'cross', now: Math.floor(Date.now() / 1000) });
  const r = peerRoutes(topology(v, v.lastReady, 51820), 'kilo0', 'laptop', []);
  assert.deepEqual(r.map((x) => `${x.dst}${x.gw ? ` via ${x.gw}` : ''} dev ${x.dev}${x.onlink ? ' onlink' : ''}`), [
    '10.42.0.0/24 via 10.4.0.1 dev kilo0 onlink', '10.0.1.10/32 via 10.4.0.1 dev kilo0 onlink', '10.4.0.1/32 dev kilo0',
    '10.42.1.0/24 via 10.4.0.2 dev kilo0 onlink', '10.0.1.11/32 via 10.4.0.2 dev kilo0 onlink', '10.4.0.2/32 dev kilo0',
    '10.42.2.0/24 via 10.4.0.3 dev kilo0 onlink', '172.16.5.4/32 via 10.4.0.3 dev kilo0 onlink', '172.16.9.0/24 via 10.4.0.3 dev kilo0 onlink', '10.4.0.3/32 dev kilo0',
    '10.42.3.0/24 via 10.4.0.4 dev kilo0 onlink', '10.4.0.4/32 dev kilo0',
  ]);
});

test('kgctl model: granularity auto, subnet inference, --allowed-ips, Peer objects', () => {
  const now = Math.floor(Date.now() / 1000);
  const node = (name: string, ann: Record<string, string>) => ({ metadata: { name, labels: { 'topology.kubernetes.io/region': 'r' }, annotations: { 'kilo.squat.ai/last-seen': String(now), 'kilo.squat.ai/key': KEY.alpha, 'kilo.squat.ai/endpoint': '192.0.2.1:51820', ...ann } }, spec: { podCIDR: '10.42.0.0/24' } });
  const l = parseListed([
    node('b', { 'kilo.squat.ai/granularity': 'full', 'kilo.squat.ai/wireguard-ip': '10.9.0.1/16' }),
    node('a', { 'kilo.squat.ai/wireguard-ip': '10.7.0.3/24' }),
    node('c', { 'kilo.squat.ai/wireguard-ip': 'garbage' }),
  ], [], 'topology.kubernetes.io/region');
  // auto: the first listed node's annotation (b: full), whatever the names' order
  assert.equal(resolveGranularity('auto', l.nodes), 'full');
  assert.throws(() => resolveGranularity('auto', l.nodes.slice(1)), /mesh granularity auto is not supported/);
  assert.throws(() => resolveGranularity('auto', []), /could not get any nodes/);
  assert.equal(resolveGranularity('location', []), 'location');
  // auto detects cross from the annotation as it does the others.
  const crossed = parseListed([node('x', { 'kilo.squat.ai/granularity': 'cross' })], [], 'topology.kubernetes.io/region');
  assert.equal(resolveGranularity('auto', crossed.nodes), 'cross');
  // graph/showconf: the last parseable WireGuard IP wins, masked; connect: the first one
  assert.equal(inferSubnet(l.nodes).s, '10.7.0.0/24');
  assert.equal(inferSubnet([]).s, '10.4.0.0/16');
  assert.equal(connectSubnet(l.nodes).s, '10.9.0.0/16');
  assert.throws(() => connectSubnet(l.nodes.slice(2)), /did not find a valid Kilo subnet/);
  assert.equal(view(l, { granularity: 'auto', now }).lastReady, 'c', 'the last ready node in listing order');
  assert.deepEqual(parseAllowedIPs(['10.96.0.7/12', ' 192.168.0.0/16']).map((c) => c.s), ['10.96.0.0/12', '192.168.0.0/16']);
  assert.throws(() => parseAllowedIPs(['10.0.0.1']), /allowed-ips must contain only valid CIDRs/);
  const dns = peerObject('x', { publicKey: KEY.alpha, endpoint: { ip: null, port: 51820, dns: 'vpn.example.com:51820' }, allowedIPs: [parseCIDR('10.5.0.1/32')!], persistentKeepalive: 25, presharedKey: null });
  assert.deepEqual(dns.spec, { allowedIPs: ['10.5.0.1/32'], endpoint: { dnsOrIP: { dns: 'vpn.example.com' }, port: 51820 }, persistentKeepalive: 25, publicKey: KEY.alpha });
  assert.equal(validatePeer(dns as never), null);
});
