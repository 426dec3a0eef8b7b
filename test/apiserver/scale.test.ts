// The generator's output, watch fan-out correctness at many watchers, and the command.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createPrivateKey, createPublicKey, diffieHellman } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { test } from 'node:test';
import { generateNodes, generatePeers, httpHeartbeats, startApiServer } from '../../loadtest/apiserver/index.js';
import { kubectlPath, rawWatch, waitFor, within } from './helpers.js';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

test('generateNodes: 5,000 kubelet-like ~10 KiB Nodes with valid, unique Kilo annotations', () => {
  const keys = new Map<string, string>();
  const nodes = generateNodes({ count: 5000, onKey: (n, k) => keys.set(n, k.privateKey) });
  assert.equal(nodes.length, 5000);
  const uniq = (f: (n: (typeof nodes)[0]) => string) => new Set(nodes.map(f)).size;
  assert.equal(uniq((n) => n.metadata.name!), 5000);
  assert.equal(uniq((n) => (n.spec as any).podCIDR), 5000);
  assert.equal(uniq((n) => n.metadata.annotations!['kilo.squat.ai/internal-ip']), 5000);
  assert.equal(uniq((n) => n.metadata.annotations!['kilo.squat.ai/key']), 5000);
  assert.equal(uniq((n) => n.metadata.labels!['topology.kubernetes.io/region']), 50, '~100 nodes per location');
  for (const n of nodes) {
    const a = n.metadata.annotations!;
    assert.equal(Buffer.from(a['kilo.squat.ai/key'], 'base64').length, 32);
    assert.match(a['kilo.squat.ai/endpoint'], /^\d+\.\d+\.\d+\.\d+:51820$/);
    assert.match(a['kilo.squat.ai/internal-ip'], /^172\.\d+\.\d+\.\d+\/20$/);
    assert.match(a['kilo.squat.ai/last-seen'], /^\d+$/);
    assert.match((n.spec as any).podCIDR, /^10\.\d+\.\d+\.0\/24$/);
  }
  const size = JSON.stringify(nodes[1234]).length;
  assert.ok(size > 9 * 1024 && size < 12 * 1024, `node is ${size} bytes`);
  assert.equal(keys.size, 5000);
  // The private keys match the published public keys: X25519 agreement is symmetric.
  const [a, b] = [nodes[0], nodes[4999]];
  const priv = (k: string) => createPrivateKey({ key: Buffer.concat([Buffer.from('302e020100300506032b656e04220420', 'hex'), Buffer.from(k, 'base64')]), format: 'der', type: 'pkcs8' });
  const pub = (k: string) => createPublicKey({ key: Buffer.concat([Buffer.from('302a300506032b656e032100', 'hex'), Buffer.from(k, 'base64')]), format: 'der', type: 'spki' });
  const keyOf = (n: (typeof nodes)[0]) => n.metadata.annotations!['kilo.squat.ai/key'];
  const ab = diffieHellman({ privateKey: priv(keys.get(a.metadata.name!)!), publicKey: pub(keyOf(b)) });
  const ba = diffieHellman({ privateKey: priv(keys.get(b.metadata.name!)!), publicKey: pub(keyOf(a)) });
  assert.ok(ab.equals(ba));
  const peers = generatePeers({ count: 10 });
  for (const p of peers) {
    const spec = p.spec as any;
    assert.equal(Buffer.from(spec.publicKey, 'base64').length, 32);
    assert.match(spec.allowedIPs[0], /^10\.5\.\d+\.\d+\/32$/);
  }
});

test('fan-out: 50 watchers each receive every heartbeat of 300 nodes, in resourceVersion order', async (t) => {
  // Small nodes: this checks correctness; the benchmark measures throughput with ~10 KiB ones.
  // last-seen 0, so that every heartbeat changes the object (an unchanged write makes no event).
  const srv = await startApiServer({ nodes: generateNodes({ count: 300, realistic: false, lastSeen: 0 }) });
  t.after(() => srv.stop());
  const rv = srv.store.rv;
  const watchers = Array.from({ length: 50 }, () => rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv}`));
  t.after(() => watchers.forEach((w) => w.close()));
  await Promise.all(watchers.map((w) => w.status));
  // Heartbeats through HTTP merge patches, spread over 1 s, as agents would send them.
  const hb = httpHeartbeats(srv, { names: generateNodes({ count: 300, kiloAnnotations: false, realistic: false }).map((n) => n.metadata.name!), periodMs: 1000, rounds: 1 });
  await waitFor('300 heartbeats', () => hb.sent() + hb.failed() >= 300, 30_000);
  await hb.stop();
  assert.equal(hb.failed(), 0);
  await waitFor('every watcher has every event', () => watchers.every((w) => w.events.length >= 300), 60_000).catch((e) => {
    const counts = watchers.map((w) => w.events.length);
    throw new Error(`${e.message}: events per watcher min ${Math.min(...counts)} max ${Math.max(...counts)}, slow closed ${srv.counters.slowWatchersClosed}, sent ${srv.counters.watchEventsSent}, writes ${hb.sent()}`);
  });
  for (const w of watchers) {
    assert.equal(w.events.length, 300);
    const rvs = w.events.map((e) => Number(e.object.metadata.resourceVersion));
    assert.ok(rvs.every((v, i) => i === 0 || v > rvs[i - 1]));
    assert.ok(w.events.every((e) => e.type === 'MODIFIED'));
  }
  assert.equal(srv.counters.slowWatchersClosed, 0);
  assert.equal(srv.counters.watchEventsSent, 300 * 50);
});

test('cli: starts with N nodes over HTTPS and writes a kubeconfig kubectl can use', async (t) => {
  const kubectl = kubectlPath();
  const dir = mkdtempSync(join(tmpdir(), 'kgsim-cli-'));
  const kubeconfig = join(dir, 'kubeconfig.yaml');
  const child = spawn(process.execPath, [new URL('../../loadtest/apiserver/cli.js', import.meta.url).pathname, '--nodes', '40', '--peers', '2', '--https', '--kubeconfig', kubeconfig, '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const killer = setTimeout(() => child.kill('SIGKILL'), 60_000);
  t.after(() => {
    clearTimeout(killer);
    if (child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const first = await within(
    30_000,
    new Promise<string>((ok) => createInterface({ input: child.stdout! }).once('line', ok)),
    'cli start-up line',
  );
  const info = JSON.parse(first);
  assert.match(info.url, /^https:\/\/127\.0\.0\.1:\d+$/);
  const run = promisify(execFile);
  const out = await run(kubectl, [`--kubeconfig=${kubeconfig}`, `--cache-dir=${join(dir, 'cache')}`, 'get', 'nodes,peers', '-o', 'name'], { timeout: 30_000, env: { ...process.env, HOME: dir } });
  assert.equal(out.stdout.trim().split('\n').length, 42);
  const exited = new Promise<number | null>((ok) => child.once('exit', (c) => ok(c)));
  child.kill('SIGTERM');
  assert.equal(await within(10_000, exited, 'cli exit'), 0);
});
