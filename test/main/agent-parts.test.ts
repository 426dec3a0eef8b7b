// Unit tests of the agent's main-thread parts: keys, logs, host discovery, HTTP, graph, slim records.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { Registry } from 'prom-client';
import { generateKeyPair, loadOrCreateKey, publicKeyOf } from '../../main/keys.js';
import { createLogger } from '../../main/log.js';
import { discover, type HostView } from '../../main/agent/discovery.js';
import { createHttpServer, parseListen } from '../../main/agent/http.js';
import { heartbeatInPlace, sameButLastSeen, slimNode } from '../../main/agent/node-record.js';
import { parseCIDR } from '../../plan/addr.js';
import { topologyDOT } from '../../plan/graph.js';
import { exampleNodes, examplePeers } from '../plan/example.js';
import { planFor } from '../plan/fixture.js';

test('keys: generated once, 0600, base64 without newline, stable across restarts; wg agrees on the public key', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-keys-'));
  try {
    const kd = join(dir, 'kilo');
    const a = loadOrCreateKey(kd);
    assert.equal(a.generated, true);
    const file = join(kd, 'key');
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(statSync(kd).mode & 0o777, 0o700);
    assert.equal(readFileSync(file, 'utf8'), a.privateKey);
    const b = loadOrCreateKey(kd);
    assert.deepEqual([b.generated, b.privateKey, b.publicKey], [false, a.privateKey, a.publicKey]);
    writeFileSync(file, `\n${a.privateKey}\n`);
    chmodSync(file, 0o644);
    assert.equal(loadOrCreateKey(kd).privateKey, a.privateKey, 'surrounding newlines are stripped');
    assert.equal(statSync(file).mode & 0o777, 0o600, 'a loose mode is tightened');
    writeFileSync(file, 'garbage');
    const c = loadOrCreateKey(kd);
    assert.equal(c.generated, true, 'an unparsable key is replaced');
    const wg = spawnSync('wg', ['pubkey'], { input: c.privateKey, encoding: 'utf8' });
    if (wg.status === 0) assert.equal(wg.stdout.trim(), c.publicKey);
    else assert.fail('wg (wireguard-tools) is needed to cross-check keys');
    assert.equal(publicKeyOf(generateKeyPair().privateKey).length, 44);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('logs: levels filter, JSON and logfmt, secrets redacted', () => {
  const lines: string[] = [];
  const log = createLogger({ level: 'warn', write: (l) => lines.push(l) });
  log.info('hidden');
  log.warn('shown', { privateKey: 'SECRET', presharedKey: 'S2', peer: 'p' });
  assert.equal(lines.length, 1);
  const rec = JSON.parse(lines[0]);
  assert.deepEqual([rec.level, rec.msg, rec.privateKey, rec.presharedKey, rec.peer], ['warn', 'shown', '(redacted)', '(redacted)', 'p']);
  assert.ok(!lines[0].includes('SECRET'));
  const lf: string[] = [];
  createLogger({ level: 'all', format: 'logfmt', write: (l) => lf.push(l) }).with({ node: 'a' }).debug('two words', { n: 1 });
  assert.match(lf[0], /level=debug msg="two words" node=a n=1$/);
  const none: string[] = [];
  createLogger({ level: 'none', write: (l) => none.push(l) }).error('x');
  assert.equal(none.length, 0);
});

const link = (ifindex: number, ifname: string, addrs: string[], mtu = 1500) => ({
  ifindex, ifname, mtu, addrs: addrs.map((a) => ({ local: a.split('/')[0], prefixlen: Number(a.split('/')[1]) })),
});

test('host discovery (design §4.2): hostname, then default route, then all; private before public', () => {
  const view: HostView = {
    links: [link(1, 'lo', ['127.0.0.1/8', '::1/128']), link(2, 'eth0', ['10.0.0.5/24', 'fe80::1/64'], 9001), link(3, 'eth1', ['203.0.113.7/24']),
      link(4, 'kilo0', ['10.4.0.1/16']), link(5, 'kube-bridge', ['10.42.0.1/24'])],
    routes: [{ dst: '10.0.0.0/24', dev: 'eth0' }, { dst: 'default', dev: 'eth0' }],
    hostnameIPs: [],
  };
  const d = discover(view, { ignore: ['kilo0', 'kube-bridge'], internalCIDRs: [] });
  assert.deepEqual([d.privateIP?.s, d.publicIP?.s, d.privateIface, d.defaultIface, d.autoMTU], ['10.0.0.5/24', '203.0.113.7/24', 'eth0', 'eth0', 8921]);
  const byHost = discover({ ...view, hostnameIPs: ['203.0.113.7'] }, { ignore: ['kilo0'], internalCIDRs: [] });
  assert.equal(byHost.publicIP?.s, '203.0.113.7/24');
  const onlyPrivate = discover({ ...view, links: view.links.filter((l) => l.ifname !== 'eth1') }, { ignore: ['kilo0', 'kube-bridge'], internalCIDRs: [] });
  assert.equal(onlyPrivate.publicIP?.s, '10.0.0.5/24', 'no public IP: the private one is the endpoint');
  const filtered = discover(view, { ignore: ['kilo0'], internalCIDRs: [parseCIDR('10.42.0.0/16')!] });
  assert.equal(filtered.privateIP?.s, '10.42.0.1/24', '--internal-cidr filters private candidates');
  assert.throws(() => discover({ links: [link(1, 'lo', ['127.0.0.1/8'])], routes: [], hostnameIPs: [] }, { ignore: [], internalCIDRs: [] }), /no valid IP was found/);
  const cgnat = discover({ links: [link(2, 'eth0', ['100.64.0.9/10'])], routes: [], hostnameIPs: [] }, { ignore: [], internalCIDRs: [] });
  assert.deepEqual([cgnat.privateIP, cgnat.publicIP?.s, cgnat.autoMTU], [null, '100.64.0.9/10', 1420], 'CGNAT is public (quirk 3 (design §16.3)); no default route: MTU 1420');
});

test('http: index, health, metrics, graph formats and layouts', async (t) => {
  const registry = new Registry();
  let healthy = { ok: false, reason: 'watches have not synced' };
  const dot = topologyDOT(planFor(exampleNodes(), examplePeers(), 'alpha').topology!);
  const server = createHttpServer({ registry, health: () => healthy, graph: { version: () => 1, dot: async () => dot } });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(() => new Promise<void>((r) => server.close(() => r())));
  const port = (server.address() as { port: number }).port;
  const get = async (p: string) => {
    const r = await fetch(`http://127.0.0.1:${port}${p}`, { redirect: 'manual' });
    return { status: r.status, type: r.headers.get('content-type'), body: await r.text(), location: r.headers.get('location') };
  };
  assert.match((await get('/')).body, /<title>Internal Kilo API<\/title>/);
  assert.match((await get('/anything')).type!, /text\/html/);
  assert.equal((await get('/health')).status, 503);
  healthy = { ok: true, reason: 'ok' };
  assert.deepEqual([(await get('/health')).status, (await get('/health')).body], [200, '']);
  assert.equal((await get('/metrics')).status, 200);
  assert.equal((await get('/debug/')).location, '/debug/pprof/');
  assert.equal((await get('/graph?format=dot')).body, dot);
  assert.equal((await get('/graph?format=gv')).status, 200);
  const svg = await get('/graph');
  assert.equal(svg.status, 200, 'graphviz renders svg with circo by default');
  assert.equal(svg.type, 'image/svg+xml');
  assert.match(svg.body, /<svg/);
  assert.deepEqual([(await get('/graph?format=exe')).status, (await get('/graph?format=exe')).body], [500, 'unsupported format\n']);
  assert.deepEqual([(await get('/graph?layout=sfdp')).status, (await get('/graph?layout=sfdp')).body], [500, 'unsupported layout\n']);
  assert.deepEqual(parseListen(':1107'), { host: undefined, port: 1107 });
  assert.deepEqual(parseListen('[::1]:8080'), { host: '::1', port: 8080 });
  assert.throws(() => parseListen('1107'), /missing port/);
});

test('graph: DOT as Kilo writes it (design §14.2)', () => {
  const dot = topologyDOT(planFor(exampleNodes(), examplePeers(), 'alpha').topology!);
  const lines = dot.split('\n');
  assert.deepEqual(lines.slice(0, 13), [
    'digraph kilo {', '\tlabel="10.4.0.0/16";', '\tlabelloc=t;', '\toutputorder=nodesfirst;', '\toverlap=false;',
    '\t"alpha"->"bravo"[ dir=both ];', '\t"alpha"->"charlie"[ dir=both ];', '\t"alpha"->"delta"[ dir=both ];', '\t"charlie"->"delta"[ dir=both ];',
    '\t"alpha"->"laptop"[ dir=both, style=dashed ];', '\t"charlie"->"laptop"[ dir=both, style=dashed ];', '\t"delta"->"laptop"[ dir=both, style=dashed ];',
    '\tsubgraph "cluster_location_location:east" {',
  ]);
  assert.ok(dot.includes('\t"alpha" [ label="location:east\\nalpha\\n10.42.0.0/24\\n10.0.1.10\\n10.4.0.1\\n203.0.113.10:51820", rank=1, shape=ellipse ];\n'));
  assert.ok(dot.includes('\t"bravo" [ label="location:east\\nbravo\\n10.42.1.0/24\\n10.0.1.11", shape=ellipse ];\n\n}\n;\n'));
  assert.ok(dot.includes('\t"laptop" [ label="laptop\\n\n", shape=ellipse ];'), 'the peer label quirk: a real line feed');
  assert.ok(dot.endsWith(';\n\n}\n'));
});

test('slim node records keep only what the planner reads', () => {
  const slim = slimNode({
    metadata: { name: 'n', resourceVersion: '7', annotations: { 'kilo.squat.ai/key': 'k', 'node.alpha.kubernetes.io/ttl': '0' }, labels: { 'topology.kubernetes.io/region': 'r', 'kubernetes.io/os': 'linux' } },
    spec: { podCIDR: '10.0.0.0/24' },
    status: { images: [{ names: ['x'], sizeBytes: 1 }] },
  } as never, 'topology.kubernetes.io/region');
  assert.deepEqual(slim, { metadata: { name: 'n', annotations: { 'kilo.squat.ai/key': 'k' }, labels: { 'topology.kubernetes.io/region': 'r' } }, spec: { podCIDR: '10.0.0.0/24' } });
  // Values that are not strings (a broken or hostile API server) are left out, never passed on.
  const odd = slimNode({
    metadata: { name: 'n', annotations: { 'kilo.squat.ai/key': 5, 'kilo.squat.ai/endpoint': { a: 1 }, 'kilo.squat.ai/location': 'x' }, labels: { 'topology.kubernetes.io/region': ['r'] } },
    spec: { podCIDR: 7 },
  } as never, 'topology.kubernetes.io/region');
  assert.deepEqual(odd, { metadata: { name: 'n', annotations: { 'kilo.squat.ai/location': 'x' }, labels: {} }, spec: { podCIDR: '' } });
});

/** A slim Node record as the agent holds it. */
const node = (ann: Record<string, string>, labels: Record<string, string> = { 'topology.kubernetes.io/region': 'a' }, podCIDR = '10.2.0.0/24') => ({
  metadata: { name: 'n', annotations: ann, labels }, spec: { podCIDR },
});

test('heartbeat detection: only a moved last-seen counts as a heartbeat', () => {
  const base = { 'kilo.squat.ai/key': 'K', 'kilo.squat.ai/endpoint': '1.1.1.1:51820', 'kilo.squat.ai/last-seen': '100' };
  assert.equal(sameButLastSeen(node(base), node({ ...base, 'kilo.squat.ai/last-seen': '130' })), true);
  // Key order does not matter; last-seen appearing or vanishing is still a heartbeat.
  assert.equal(sameButLastSeen(node(base), node({ 'kilo.squat.ai/last-seen': '1', 'kilo.squat.ai/endpoint': '1.1.1.1:51820', 'kilo.squat.ai/key': 'K' })), true);
  assert.equal(sameButLastSeen(node(base), node({ 'kilo.squat.ai/key': 'K', 'kilo.squat.ai/endpoint': '1.1.1.1:51820' })), true);
  // Anything else the planner reads is a change.
  assert.equal(sameButLastSeen(node(base), node({ ...base, 'kilo.squat.ai/endpoint': '1.1.1.2:51820' })), false);
  assert.equal(sameButLastSeen(node(base), node({ ...base, 'kilo.squat.ai/leader': '' })), false);
  const { ['kilo.squat.ai/key']: _k, ...noKey } = base;
  assert.equal(sameButLastSeen(node(base), node(noKey)), false);
  assert.equal(sameButLastSeen(node(base), node(base, { 'topology.kubernetes.io/region': 'b' })), false);
  assert.equal(sameButLastSeen(node(base), node(base, {})), false);
  assert.equal(sameButLastSeen(node(base), node(base, undefined, '10.2.1.0/24')), false);
});

test('heartbeatInPlace: a heartbeat updates the held record and keeps it; a change returns the fresh one and leaves the held alone', () => {
  const base = { 'kilo.squat.ai/endpoint': '1.1.1.1:51820', 'kilo.squat.ai/key': 'K', 'kilo.squat.ai/last-seen': '100' };
  const held = node(base);
  const kept = heartbeatInPlace(held, node({ ...base, 'kilo.squat.ai/last-seen': '130' }));
  assert.equal(kept, held);
  assert.equal(held.metadata?.annotations?.['kilo.squat.ai/last-seen'], '130');
  const { ['kilo.squat.ai/last-seen']: _s, ...gone } = base;
  assert.equal(heartbeatInPlace(held, node(gone)), held);
  assert.equal('kilo.squat.ai/last-seen' in (held.metadata?.annotations ?? {}), false, 'a vanished last-seen is removed from the held record');
  const moved = node({ ...base, 'kilo.squat.ai/endpoint': '1.1.1.2:51820', 'kilo.squat.ai/last-seen': '160' });
  assert.equal(heartbeatInPlace(held, moved), moved);
  assert.equal(held.metadata?.annotations?.['kilo.squat.ai/endpoint'], '1.1.1.1:51820');
  assert.equal('kilo.squat.ai/last-seen' in (held.metadata?.annotations ?? {}), false, 'the held record is untouched by a real change');
});
