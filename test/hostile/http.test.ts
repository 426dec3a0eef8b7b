// Hostile clients of the agent's HTTP endpoint (--listen, reachable from the network on
// host-network pods): formats named after Object.prototype, huge query strings, bursts of /graph,
// slow clients, bodies on GET endpoints, too many connections, hostile names in the graph. The
// server runs in-process over a fixed DOT text (the graph source is the one fake: what is tested
// is the server above it), with the real Graphviz behind a logging `dot` on PATH; the last test
// runs a real kg in a namespace against the API simulator.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { createHttpServer } from '../../main/agent/http.js';
import { generateKeyPair } from '../../main/keys.js';
import { topologyDOT } from '../../plan/graph.js';
import { Mesh, waitFor } from '../../loadtest/mesh/harness.js';
import { exampleNodes, examplePeers } from '../plan/example.js';
import { planFor } from '../plan/fixture.js';
import { assertGraph, HOSTILE, hostileNodes } from './graphviz.js';

const DOT = topologyDOT(planFor(exampleNodes(), examplePeers(), 'alpha').topology!);
const REAL_DOT = spawnSync('sh', ['-c', 'command -v dot'], { encoding: 'utf8' }).stdout.trim();

/**
 * A `dot` first on PATH that logs when each run starts and ends (a short sleep widens each run)
 * and then runs the real one: how many ran, and how many at once.
 */
function dotSpy(sleep = '0.2') {
  const dir = mkdtempSync(join(tmpdir(), 'kg-dot-spy-'));
  const log = join(dir, 'log');
  writeFileSync(log, '');
  writeFileSync(join(dir, 'dot'), `#!/bin/sh\necho "start $(date +%s%N)" >> ${log}\nsleep ${sleep}\n${REAL_DOT} "$@"\nrc=$?\necho "end $(date +%s%N)" >> ${log}\nexit $rc\n`);
  chmodSync(join(dir, 'dot'), 0o755);
  const path = process.env.PATH;
  process.env.PATH = `${dir}:${path}`;
  const events = () => readFileSync(log, 'utf8').trim().split('\n').filter(Boolean).map((l) => l.split(' ')).map(([k, t]) => [k, BigInt(t)] as const);
  return {
    runs: () => events().filter(([k]) => k === 'start').length,
    /** The most runs alive at one time. */
    maxAtOnce: () => {
      let n = 0;
      let max = 0;
      for (const [k] of events().sort((a, b) => (a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0))) max = Math.max(max, (n += k === 'start' ? 1 : -1));
      return max;
    },
    done: () => {
      process.env.PATH = path;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A graph source over a fixed DOT text counting its builds; also callable, the form older servers took. */
function source(dot = DOT) {
  const s = { builds: 0, v: 1 };
  const build = async () => {
    s.builds++;
    return dot;
  };
  return Object.assign(s, { graph: Object.assign(build, { version: () => s.v, dot: build }) });
}

async function serve(t: { after: (f: () => Promise<void>) => void }, graph: ReturnType<typeof source>['graph'], limits: Record<string, unknown> = {}) {
  const registry = new Registry();
  const server = createHttpServer({ registry, health: () => ({ ok: true, reason: 'ok' }), graph }, limits);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  t.after(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });
  const port = (server.address() as net.AddressInfo).port;
  // One connection per request, closed after it: each request is its own client.
  const get = (path: string) => new Promise<{ status: number; body: Buffer; type?: string; retryAfter?: string }>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, agent: false }, (r) => {
      const chunks: Buffer[] = [];
      r.on('data', (c: Buffer) => chunks.push(c));
      r.on('end', () => resolve({ status: r.statusCode!, body: Buffer.concat(chunks), type: r.headers['content-type'], retryAfter: r.headers['retry-after'] }));
    }).on('error', reject);
  });
  return { port, get, registry };
}

test('formats and layouts come from own-property lists: Object.prototype names are unsupported, nothing runs', async (t) => {
  const spy = dotSpy('0');
  t.after(() => spy.done());
  const s = source();
  const { get } = await serve(t, s.graph);
  for (const f of ['constructor', '__proto__', 'toString', 'hasOwnProperty', 'valueOf', '__defineGetter__', 'isPrototypeOf']) {
    const r = await get(`/graph?format=${f}`);
    assert.deepEqual([r.status, r.body.toString()], [500, 'unsupported format\n'], f);
    const l = await get(`/graph?format=svg&layout=${f}`);
    assert.deepEqual([l.status, l.body.toString()], [500, 'unsupported layout\n'], `layout ${f}`);
  }
  assert.equal(spy.runs(), 0, 'Graphviz never ran');
  assert.equal(s.builds, 0, 'no graph was built');
});

test('request targets that do not parse (absolute form `http://[`) get an answer and the server lives on', async (t) => {
  const s = source();
  const { port, get } = await serve(t, s.graph);
  for (const target of ['http://[', 'https://[::1/graph', 'http://%zz']) {
    const answer = await new Promise<string>((resolve) => {
      const sock = net.connect({ host: '127.0.0.1', port });
      let b = '';
      sock.on('data', (c: Buffer) => {
        b += c.toString();
        if (b.includes('\r\n\r\n')) sock.destroy();
      });
      sock.on('close', () => resolve(b));
      sock.write(`GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    });
    assert.match(answer, /^HTTP\/1.1 200/, target);
  }
  assert.equal((await get('/health')).status, 200, 'the server still answers');
});

test('huge query strings: past the header limit a 431; under it, unique junk costs no second build', async (t) => {
  const s = source();
  const { get } = await serve(t, s.graph);
  const huge = await get(`/graph?format=dot&x=${'a'.repeat(64 << 10)}`);
  assert.equal(huge.status, 431);
  // 100 requests, each ~12 KiB of unique parameters: one DOT text built, the rest from the cache.
  const junk = (i: number) => Array.from({ length: 1500 }, (_, k) => `k${k}=${i}`).join('&');
  const replies = await Promise.all(Array.from({ length: 100 }, (_, i) => get(`/graph?${junk(i)}&format=dot`)));
  assert.ok(replies.every((r) => r.status === 200 && r.body.toString() === DOT));
  assert.equal(s.builds, 1);
  assert.equal((await get('/health')).status, 200, 'the server still answers');
});

test('a burst of 200 concurrent /graph requests: one Graphviz at a time, every request answered', { timeout: 120_000 }, async (t) => {
  const spy = dotSpy();
  t.after(() => spy.done());
  const s = source();
  const { get, registry } = await serve(t, s.graph);
  // The same graph under 200 unique query strings: one build, one render, shared by all.
  const same = await Promise.all(Array.from({ length: 200 }, (_, i) => get(`/graph?format=svg&nonce=${i}`)));
  assert.deepEqual([...new Set(same.map((r) => r.status))], [200]);
  assert.ok(same.every((r) => r.type === 'image/svg+xml' && r.body.toString().includes('<svg')));
  assert.deepEqual([s.builds, spy.runs()], [1, 1]);
  // Every format and layout at once, after the cluster changed: one render at a time, a short
  // queue, and a 503 with Retry-After for the rest.
  s.v++;
  const formats = ['svg', 'png', 'json', 'ps', 'gif', 'bmp', 'fig'];
  const layouts = ['circo', 'dot', 'neato', 'twopi', 'fdp'];
  const mixed = await Promise.all(Array.from({ length: 200 }, (_, i) => get(`/graph?format=${formats[i % 7]}&layout=${layouts[Math.floor(i / 7) % 5]}&n=${i}`)));
  const statuses = mixed.map((r) => r.status);
  assert.ok(statuses.every((x) => x === 200 || x === 503), `only 200 and 503: ${[...new Set(statuses)]}`);
  assert.ok(statuses.includes(503) && mixed.filter((r) => r.status === 503).every((r) => Number(r.retryAfter) > 0), 'the rest are told when to come back');
  assert.equal(spy.maxAtOnce(), 1, 'never two Graphviz processes at once');
  assert.ok(spy.runs() <= 1 + 3, `one running and a queue of 2 at most: ${spy.runs()} renders`);
  assert.equal(s.builds, 2, 'one DOT text per version of the cluster');
  // Cached per version: asking again for a graph that was rendered renders nothing.
  const served = mixed.findIndex((r) => r.status === 200);
  const runs = spy.runs();
  assert.equal((await get(`/graph?format=${formats[served % 7]}&layout=${layouts[Math.floor(served / 7) % 5]}`)).status, 200);
  assert.equal(spy.runs(), runs);
  assert.match(await registry.metrics(), /kg_graph_requests_total\{result="busy"\} [1-9]/);
});

test('renders are bounded: output past the cap and time past the limit kill Graphviz', async (t) => {
  const spy = dotSpy('0.5');
  t.after(() => spy.done());
  const s = source();
  const { get } = await serve(t, s.graph, { graph: { maxDotLength: 1 << 20, maxOutputBytes: 2000, renderTimeoutMs: 5_000, maxQueued: 2, maxCacheBytes: 1 << 20 } });
  const big = await get('/graph?format=svg');
  assert.deepEqual([big.status, big.body.toString()], [500, 'unable to render graph: output over 2000 bytes\n']);
  const { get: getSlow } = await serve(t, source().graph, { graph: { maxDotLength: 1 << 20, maxOutputBytes: 1 << 20, renderTimeoutMs: 100, maxQueued: 2, maxCacheBytes: 1 << 20 } });
  const slow = await getSlow('/graph?format=png');
  assert.deepEqual([slow.status, slow.body.toString()], [500, 'unable to render graph: timed out after 100 ms\n']);
});

/** Opens a raw connection, runs `f` on it, and resolves with when it closed and what came back. */
function raw(port: number, f: (s: net.Socket) => (() => void) | void, limitMs = 8_000): Promise<{ closedAfterMs: number; data: string }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let data = '';
    let stop: (() => void) | void;
    s.on('connect', () => (stop = f(s)));
    s.on('data', (c) => (data += c.toString()));
    s.on('error', () => {});
    const guard = setTimeout(() => s.destroy(), limitMs);
    s.on('close', () => {
      clearTimeout(guard);
      stop?.();
      resolve({ closedAfterMs: Date.now() - t0, data });
    });
  });
}

test('slow clients are cut off: slowloris, a silent socket, a body to a GET endpoint, too many connections', { timeout: 60_000 }, async (t) => {
  const { port } = await serve(t, source().graph, { headersTimeoutMs: 500, requestTimeoutMs: 1000, checkIntervalMs: 100, maxConnections: 4 });
  // Within the limits above plus the check interval; the guard closes at 8 s.
  const BOUND = 3_000;
  const slowloris = await raw(port, (s) => {
    s.write('GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ');
    const i = setInterval(() => s.write('a'), 200);
    return () => clearInterval(i);
  });
  assert.ok(slowloris.closedAfterMs < BOUND, `slowloris closed after ${slowloris.closedAfterMs} ms`);
  assert.match(slowloris.data, /^HTTP\/1.1 408/);
  const silent = await raw(port, () => {});
  assert.ok(silent.closedAfterMs < BOUND, `silent socket closed after ${silent.closedAfterMs} ms`);
  // A body is never read: the reply comes, then the connection closes while the client still sends.
  const body = await raw(port, (s) => {
    s.write('POST /health HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000\r\n\r\n');
    const i = setInterval(() => s.write('x'.repeat(16 << 10)), 20);
    return () => clearInterval(i);
  });
  assert.ok(body.closedAfterMs < BOUND, `body sender closed after ${body.closedAfterMs} ms`);
  assert.match(body.data, /^HTTP\/1.1 200 OK\r\n(.*\r\n)*Connection: close\r\n/);
  // Past maxConnections a connection is closed at once; the others time out as above.
  const many = await Promise.all(Array.from({ length: 8 }, () => raw(port, () => {})));
  assert.ok(many.every((c) => c.closedAfterMs < BOUND));
  assert.ok(many.filter((c) => c.data === '').length >= 4, 'the connections past the cap got nothing');
});

test('through a real kg: hostile locations in /graph, Object.prototype formats, and a burst of 200 while the mesh changes', { timeout: 300_000 }, async (t) => {
  const spy = dotSpy();
  t.after(() => spy.done());
  const mesh = new Mesh({ prefix: `kgx${process.pid % 10000}`, nodes: [{ name: 'k1', location: 'home' }], flags: ['--encapsulate', 'never'] });
  t.after(async () => {
    await mesh.down();
    rmSync(mesh.state, { recursive: true, force: true });
  });
  await mesh.up();
  // Heartbeats from the future: the hostile nodes stay ready for the whole test.
  const later = Math.floor(Date.now() / 1000) + 3600;
  const apply = (o: object) => mesh.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'v1', kind: 'Node', ...o }) });
  for (const n of hostileNodes({ now: later, key: () => generateKeyPair().publicKey })) apply(n);
  await mesh.startKg('k1', ['--clean-up=false']);
  const wgPeers = () => mesh.on('k1', ['wg', 'show', 'kilo0', 'peers']).split('\n').filter(Boolean).length;
  await waitFor('a WireGuard peer per hostile location', () => wgPeers() === HOSTILE.length, 30_000, 300);

  const dot = mesh.http('k1', '/graph?format=dot');
  assert.equal(dot.status, 200);
  assertGraph(dot.body, { segments: [['k1', 'home'], ...HOSTILE.map((l, i) => [`h${i}`, l] as [string, string])], peers: [] });
  assert.deepEqual(mesh.http('k1', '/graph?format=constructor'), { status: 500, body: 'unsupported format\n' });

  // 200 requests at once from the node's namespace, and a node joins meanwhile.
  const burst = `Promise.all(Array.from({ length: 200 }, (_, i) => fetch('http://127.0.0.1:1107/graph?format=svg&nonce=' + i)
    .then(async (r) => r.status + ':' + (await r.text()).includes('<svg')).catch((e) => 'error:' + e.message)))
    .then((r) => process.stdout.write(JSON.stringify(r)))`;
  const k1 = mesh.node('k1');
  const replies = new Promise<string[]>((resolve, reject) => {
    execFile('nsenter', [`--mount=${k1.mnt}`, `--net=/run/netns/${k1.netns}`, '--', process.execPath, '-e', burst], { encoding: 'utf8', timeout: 120_000 },
      (e, out, err) => (e ? reject(new Error(`${e.message} ${err}`)) : resolve(JSON.parse(out) as string[])));
  });
  await new Promise((r) => setTimeout(r, 200));
  apply({ metadata: { name: 'joiner', annotations: { 'kilo.squat.ai/location': 'new', 'kilo.squat.ai/endpoint': '198.51.100.99:51820', 'kilo.squat.ai/internal-ip': '172.21.0.1/24', 'kilo.squat.ai/key': generateKeyPair().publicKey, 'kilo.squat.ai/last-seen': String(later) } }, spec: { podCIDR: '10.61.0.0/24' } });
  const all = await replies;
  assert.equal(all.length, 200);
  assert.deepEqual([...new Set(all)], ['200:true'], 'every request got the graph');
  assert.equal(spy.maxAtOnce(), 1, 'never two Graphviz processes at once');
  await waitFor('the joining node programmed', () => wgPeers() === HOSTILE.length + 1, 30_000, 300);
});
