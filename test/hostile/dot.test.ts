// Hostile cluster strings in the DOT output (`kgctl graph`, the agent's /graph): a location,
// node or Peer name can never become a Graphviz statement. Every graph is read back by Graphviz
// and must be exactly the expected one, each hostile string whole in its label. The agent's
// /graph is tried the same way in http.test.ts, on a real kg.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer, type KubeObject } from '../../loadtest/apiserver/index.js';
import { parseCIDR } from '../../plan/addr.js';
import { clusterDOT, dotEscape, topologyDOT } from '../../plan/graph.js';
import { parseCluster } from '../../plan/plan.js';
import { key, nodeObj, NOW, peerObj, planFor } from '../plan/fixture.js';
import { assertGraph, HOSTILE, hostileNodes } from './graphviz.js';

const laptop = (name = 'laptop') => peerObj(name, { allowedIPs: ['10.5.0.1/32'], publicKey: key(90), endpoint: { dnsOrIP: { ip: '203.0.113.5' }, port: 51820 } });

test('DOT: hostile locations stay inside their labels', () => {
  const nodes = hostileNodes({ now: NOW, key: (i) => key(i + 1) });
  const dot = topologyDOT(planFor(nodes, [laptop()], 'h0').topology!);
  assertGraph(dot, { segments: HOSTILE.map((l, i) => [`h${i}`, l]), peers: ['laptop'] });
});

test('DOT: hostile node and Peer names are quoted IDs, distinct, and whole in their labels', () => {
  // The API server refuses such names; the DOT writer does not rely on it.
  const nodes = HOSTILE.map((name, i) => nodeObj(name, {
    'kilo.squat.ai/location': `l${i}`, 'kilo.squat.ai/endpoint': `198.51.100.${10 + i}:51820`, 'kilo.squat.ai/internal-ip': `172.20.${i}.1/24`,
    'kilo.squat.ai/key': key(i + 1), 'kilo.squat.ai/last-seen': String(NOW),
  }, `10.60.${i}.0/24`));
  const peers = HOSTILE.map((s, i) => ({ ...laptop(`peer ${s}`), spec: { ...laptop().spec, allowedIPs: [`10.5.${i}.1/32`], publicKey: key(60 + i) } }));
  const dot = topologyDOT(planFor(nodes, peers, HOSTILE[0]).topology!);
  assertGraph(dot, { segments: HOSTILE.map((n, i) => [n, `l${i}`]), peers: HOSTILE.map((s) => `peer ${s}`) });
});

test('DOT: escaping leaves ordinary names as Kilo writes them, and is one-to-one', () => {
  for (const s of ['alpha', 'location:east', 'node:a.b-c', '10.4.0.1', 'gcp-eu_1 x']) assert.equal(dotEscape(s), s);
  const tricky = ['a\nb', 'a\\nb', 'a\x01', 'a\\x01', 'a"', 'a\\"', 'a\\'];
  assert.equal(new Set(tricky.map(dotEscape)).size, tricky.length, 'distinct strings stay distinct');
  assert.equal(dotEscape('a"b\\c\nd\x7f'), 'a\\"b\\\\c\\nd\\x7f');
});

test('DOT: the size bound refuses a full mesh of 3,000 nodes before building it', () => {
  const nodes = Array.from({ length: 3000 }, (_, i) => nodeObj(`n${i}`, {
    'kilo.squat.ai/endpoint': `198.18.${i >> 8}.${i & 255}:51820`, 'kilo.squat.ai/key': key((i % 250) + 1), 'kilo.squat.ai/last-seen': String(NOW),
  }, `10.${64 + (i >> 8)}.${i & 255}.0/24`));
  const c = parseCluster(nodes, [], 'topology.kubernetes.io/region');
  const o = { hostname: 'n0', granularity: 'full' as const, subnet: parseCIDR('10.4.0.0/16')!, now: NOW };
  // 4.5 million edges: ~150 million characters unbounded (kgctl's choice), refused under 4 Mi.
  assert.throws(() => clusterDOT(c, o, 4 << 20), /the graph is too large: its DOT text would exceed 4194304 characters/);
  const small = clusterDOT(parseCluster(nodes.slice(0, 50), [], 'topology.kubernetes.io/region'), o, 4 << 20);
  assert.equal(small?.split('\n').filter((l) => l.includes('->')).length, (50 * 49) / 2);
  assert.equal(clusterDOT(c, { ...o, hostname: 'nobody' }, 4 << 20), null, 'no graph without the local node ready');
});

test('kgctl graph: hostile locations from the API stay inside their labels', { timeout: 60_000 }, async (t) => {
  const now = Math.floor(Date.now() / 1000);
  const nodes = hostileNodes({ now, key: (i) => key(i + 1) }).map((n) => ({ apiVersion: 'v1', kind: 'Node', ...n }) as KubeObject);
  const peers = [{ apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', ...laptop() } as KubeObject];
  const srv = await startApiServer({ https: true, nodes, peers });
  const dir = mkdtempSync(join(tmpdir(), 'kg-hostile-'));
  const kc = join(dir, 'kubeconfig');
  writeFileSync(kc, srv.kubeconfig, { mode: 0o600 });
  t.after(async () => {
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const kgctl = new URL('../../main/kgctl.js', import.meta.url).pathname;
  const out = await new Promise<string>((resolve, reject) => {
    execFile(process.execPath, [kgctl, 'graph', '--mesh-granularity', 'location', `--kubeconfig=${kc}`], { encoding: 'utf8', timeout: 30_000 }, (e, stdout, stderr) => (e ? reject(new Error(stderr)) : resolve(stdout)));
  });
  assertGraph(out, { segments: HOSTILE.map((l, i) => [`h${i}`, l]), peers: ['laptop'] });
});
