// Hostile watches and API responses, over a real TLS socket: a line without a newline of any
// size, lines in 1-byte chunks, events that do not decode, and response bodies without end.
// Memory stays bounded, every such watch restarts and relists, and what the bad line hid arrives
// through the relist; logs carry sizes, never the content.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import type http from 'node:http';
import { generateNodes } from '../../loadtest/apiserver/index.js';
import { INVALID_REASONS, InvalidResponseError, KubeError, type InvalidReason } from '../../watch/kube-error.js';
import type { KubeClient, KubeClientOptions } from '../../watch/kube.js';
import { createLogger } from '../../main/log.js';
import { Reflector, type ReflectorEvent } from '../../watch/reflector.js';
import { listBody, node, startHostileApi, until, watchHeaders, writeRepeated, type HostileApi } from './watch-server.js';

const MiB = 1024 * 1024;
type Rec = { name: string; a: string };
type After = { after: (fn: () => Promise<void> | void) => void };

/** A reflector over the hostile server's Nodes n0..n2, started after `configure`, synced. */
async function setup(t: After, configure: (api: HostileApi, client: KubeClient) => void = () => {}, clientOptions: KubeClientOptions = {}) {
  const api = await startHostileApi();
  for (const n of ['n0', 'n1', 'n2']) api.nodes.set(n, node(n));
  const client = api.client(clientOptions);
  configure(api, client);
  const logs: string[] = [];
  const events: ReflectorEvent<Rec>[] = [];
  const r = new Reflector<Rec>({
    client, path: '/api/v1/nodes', log: createLogger({ level: 'debug', write: (l) => logs.push(l) }),
    watchTimeoutSeconds: 30, backoffInitialMs: 20, backoffMaxMs: 200,
    slim: (o) => ({ name: o.metadata!.name!, a: (o.metadata as { annotations?: Record<string, string> }).annotations?.a ?? '' }),
    onEvent: (e) => events.push(e),
  });
  t.after(async () => {
    await r.stop();
    client.close();
    await api.stop();
  });
  r.start();
  await until('first sync', () => r.hasSynced);
  return { api, r, events, logs, client };
}

const invalidTotal = (r: Reflector<Rec>) => INVALID_REASONS.reduce((n, k) => n + r.stats.invalid[k], 0);

/** Every log line is short, and the ones about invalid responses name the reason and the size. */
function checkLogs(logs: string[], reason: InvalidReason, bytes?: number): void {
  for (const l of logs) assert.ok(l.length < 1024, `a log line of ${l.length} characters: ${l.slice(0, 200)}`);
  const hits = logs.map((l) => JSON.parse(l) as { reason?: string; bytes?: number }).filter((l) => l.reason === reason);
  assert.equal(hits.length, 1, `one log line for the ${reason} response`);
  if (bytes !== undefined) assert.equal(hits[0].bytes, bytes);
}

/** Peak of heap plus buffers above the level when it starts, sampled every 10 ms. */
function memoryPeak() {
  const level = () => {
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const base = level();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, level());
  }, 10);
  return { stop: () => (clearInterval(timer), Math.max(peak, level()) - base) };
}

test('hostile watch: a 64 MiB line without a newline keeps memory bounded, ends the watch, and the relist brings what it hid', async (t) => {
  let sent: Promise<number> = Promise.resolve(0);
  let mem: ReturnType<typeof memoryPeak> | undefined;
  const { api, r, logs } = await setup(t, (api) => {
    mem = memoryPeak();
    api.watch = (res, n) => {
      watchHeaders(res);
      if (n !== 1) return void res.flushHeaders();
      // A change the hostile watch never shows: only a relist can bring it.
      api.nodes.set('n9', node('n9', 'late'));
      api.rv++;
      sent = writeRepeated(res, '{"type":"MODIFIED","object":{"metadata":{"name":"n0","resourceVersion":"5","annotations":{"a":"', 64 * MiB);
    };
  });
  await until('the relist after the long line', () => r.stats.lists === 2 && r.store.get('n9')?.a === 'late', 30_000);
  const grew = mem!.stop();
  const wrote = await sent;
  assert.equal(r.stats.invalid.line_too_long, 1);
  assert.equal(invalidTotal(r), 1);
  assert.equal(r.store.get('n0')!.a, '', 'nothing of the long line was applied');
  // The client hung up once the line passed its limit (8 MiB), long before 64 MiB.
  assert.ok(wrote < 32 * MiB, `the server got to write ${(wrote / MiB).toFixed(1)} MiB`);
  assert.ok(grew < 48 * MiB, `heap + buffers grew by ${(grew / MiB).toFixed(1)} MiB while a 64 MiB line came in`);
  checkLogs(logs, 'line_too_long');
  await until('the watch again', () => api.counts.watch >= 2);
  t.diagnostic(`server wrote ${(wrote / MiB).toFixed(1)} MiB; heap + buffers grew by ${(grew / MiB).toFixed(1)} MiB`);
});

test('hostile watch: an event in 1-byte chunks, multi-byte characters split across them, still decodes', async (t) => {
  const value = 'ünïcødé 🚀 '.repeat(40);
  const line = JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'n1', resourceVersion: '7', annotations: { a: value } } } }) + '\n';
  const bytes = Buffer.from(line);
  let chunks = 0;
  const { r } = await setup(t, (api, client) => {
    countChunks(client, () => chunks++);
    api.watch = async (res, n) => {
      watchHeaders(res);
      res.flushHeaders();
      if (n !== 1) return;
      for (let i = 0; i < bytes.length && !res.destroyed; i++) {
        res.write(bytes.subarray(i, i + 1));
        await new Promise((ok) => setImmediate(ok));
      }
    };
  });
  await until('the event', () => r.store.get('n1')?.a === value);
  assert.equal(r.resourceVersion, '7');
  assert.equal(invalidTotal(r), 0);
  assert.equal(r.stats.lists, 1);
  assert.ok(chunks >= bytes.length / 2, `${chunks} chunks for ${bytes.length} bytes: the line did arrive in pieces`);
});

/** Counts the chunks the client's watch streams deliver (a pass-through around its handlers). */
function countChunks(client: KubeClient, onChunk: () => void): void {
  const stream = client.stream.bind(client);
  client.stream = (path, h, signal, accept) => stream(path, { ...h, onBytes: (n) => (onChunk(), h.onBytes?.(n)) }, signal, accept);
}

test('hostile watch: an undecodable event ends the watch, nothing after it is applied, and the relist brings the change it hid', async (t) => {
  const marker = 'MARKER-' + 'x'.repeat(64);
  const garbage = `{"type":"MODIFIED","object":{"metadata":{"name":"n2","annotations":{"a":"${marker}"`;
  const { api, r, events, logs } = await setup(t, (api) => {
    api.watch = (res, n) => {
      watchHeaders(res);
      if (n !== 1) return void res.flushHeaders();
      api.nodes.set('n2', node('n2', 'changed'));
      api.rv++;
      res.write(JSON.stringify({ type: 'MODIFIED', object: { metadata: { name: 'n1', resourceVersion: '3', annotations: { a: 'first' } } } }) + '\n');
      // The bad line and a good event after it, in one chunk: the event must not be applied.
      res.write(garbage + '\n' + JSON.stringify({ type: 'DELETED', object: { metadata: { name: 'n0', resourceVersion: '4' } } }) + '\n');
    };
  });
  await until('the relist', () => r.stats.lists === 2);
  assert.equal(r.stats.invalid.not_json, 1);
  assert.equal(r.store.get('n2')!.a, 'changed', 'the change the bad line hid came through the relist');
  assert.ok(r.store.has('n0'), 'the event after the bad line was not applied');
  assert.deepEqual(events.slice(3).map((e) => `${e.type} ${e.name}`), ['update n1', 'update n0', 'update n1', 'update n2'],
    'the good event before the bad line, in order, then the relist');
  assert.equal(events.filter((e) => e.type === 'delete').length, 0);
  assert.ok(!logs.some((l) => l.includes(marker)), 'the line itself is never logged');
  checkLogs(logs, 'not_json', Buffer.byteLength(garbage));
  await until('the watch again', () => api.counts.watch >= 2);
});

const BAD: [InvalidReason, string][] = [
  ['not_json', '{"type":"ADDED","object":{"metadata":{"name":"x"'],
  ['not_json', 'ADDED n1'],
  ['not_object', '[{"type":"ADDED","object":{"metadata":{"name":"n1","resourceVersion":"9"}}}]'],
  ['not_object', 'null'],
  ['not_object', '{"type":"ADDED","object":[1,2]}'],
  ['not_object', '{"type":"MODIFIED"}'],
  ['unknown_type', '{"type":"SYNC","object":{"metadata":{"name":"n1","resourceVersion":"9"}}}'],
  ['unknown_type', '{"object":{"metadata":{"name":"n1","resourceVersion":"9"}}}'],
  ['no_name', '{"type":"MODIFIED","object":{"metadata":{"resourceVersion":"9"}}}'],
  ['no_name', '{"type":"DELETED","object":{"metadata":{"name":"","resourceVersion":"9"}}}'],
  ['no_name', '{"type":"ADDED","object":{"kind":"Node"}}'],
  ['no_resource_version', '{"type":"MODIFIED","object":{"metadata":{"name":"n1","annotations":{"a":"lost"}}}}'],
  ['no_resource_version', '{"type":"BOOKMARK","object":{"metadata":{}}}'],
  ['bad_status', '{"type":"ERROR","object":{"kind":"Status","message":"no code"}}'],
  ['bad_status', '{"type":"ERROR","object":{"kind":"Status","code":"410"}}'],
  ['bad_status', '{"type":"ERROR","object":null}'],
];

for (const [reason, line] of BAD) {
  test(`hostile watch: ${reason}: ${line.slice(0, 60)} restarts the watch and relists`, async (t) => {
    const { r, events } = await setup(t, (api) => {
      api.watch = (res, n) => {
        watchHeaders(res);
        if (n !== 1) return void res.flushHeaders();
        api.nodes.set('late', node('late', 'seen'));
        api.rv++;
        res.write(line + '\n');
      };
    });
    await until('the relist', () => r.stats.lists === 2);
    assert.equal(r.stats.invalid[reason], 1);
    assert.equal(invalidTotal(r), 1);
    assert.equal(r.store.get('late')?.a, 'seen');
    assert.equal(r.store.get('n1')!.a, '', 'the bad event was not applied');
    assert.deepEqual(events.slice(3).map((e) => `${e.type} ${e.name}`), ['update n0', 'update n1', 'update n2', 'add late']);
  });
}

test('hostile watch: an ERROR event with a huge message is a short error, and the watch resumes', async (t) => {
  const { r, logs } = await setup(t, (api) => {
    api.watch = (res, n) => {
      watchHeaders(res);
      if (n === 1) res.write(JSON.stringify({ type: 'ERROR', object: { kind: 'Status', code: 500, message: 'm'.repeat(MiB) } }) + '\n');
      else res.flushHeaders();
    };
  });
  await until('the watch again', () => r.stats.watches >= 2);
  for (const l of logs) assert.ok(l.length < 1024, `a log line of ${l.length} characters`);
  assert.equal(r.stats.watchErrors, 1);
  assert.equal(invalidTotal(r), 0, 'a well-formed ERROR is an error, not an invalid response');
});

/** A GET answered by `script`; resolves with what the client did. */
async function getWith(t: After, script: (res: http.ServerResponse) => void | Promise<number>, o: KubeClientOptions = {}) {
  const { api, client } = await setup(t, () => {}, o);
  let wrote: Promise<number> = Promise.resolve(0);
  api.get = (res) => {
    const w = script(res);
    if (w) wrote = w;
  };
  const err = await client.request('GET', '/api/v1/nodes/n1', { timeoutMs: 20_000 }).then(() => null, (e: Error) => e);
  return { err, wrote: await wrote };
}

test('hostile response: a body without end is refused past the limit, and the connection dropped', async (t) => {
  const { err, wrote } = await getWith(t, (res) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    return writeRepeated(res, '{"metadata":{"name":"n1","annotations":{"a":"', 256 * MiB);
  }, { maxResponseBytes: 4 * MiB });
  assert.ok(err instanceof InvalidResponseError, `got ${err}`);
  assert.equal(err.reason, 'body_too_large');
  assert.match(err.message, /larger than 4194304 bytes/);
  assert.ok(wrote < 64 * MiB, `the server got to write ${(wrote / MiB).toFixed(1)} MiB`);
});

test('hostile response: a declared Content-Length over the limit is refused before reading', async (t) => {
  const { err } = await getWith(t, (res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(2 ** 40) });
    res.write('{');
  }, { maxResponseBytes: 4 * MiB });
  assert.ok(err instanceof InvalidResponseError, `got ${err}`);
  assert.equal(err.reason, 'body_too_large');
});

test('hostile response: an error answer with a huge or junk body keeps its status and a short message', async (t) => {
  const big = await getWith(t, (res) => {
    res.writeHead(500, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ kind: 'Status', code: 500, message: 'm'.repeat(10 * MiB) }));
  });
  assert.ok(big.err instanceof KubeError, `got ${big.err}`);
  assert.equal(big.err.status, 500);
  assert.ok(big.err.message.length < 512, `message of ${big.err.message.length} characters`);
  const junk = await getWith(t, (res) => {
    res.writeHead(410, { 'Content-Type': 'text/plain' });
    res.end('\u0000'.repeat(MiB));
  });
  assert.ok(junk.err instanceof KubeError);
  assert.equal(junk.err.status, 410);
  assert.ok(junk.err.message.length < 512);
});

test('hostile response: a list page over the limit is counted, and the reflector lists again until it fits', async (t) => {
  const { r, logs } = await setup(t, (api) => {
    api.list = (res, n) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      if (n === 1) res.end(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [{ metadata: { name: 'big', annotations: { a: 'x'.repeat(2 * MiB) } } }] }));
      else res.end(listBody(api));
    };
  }, { maxResponseBytes: MiB });
  assert.equal(r.stats.invalid.body_too_large, 1);
  assert.deepEqual([...r.store.keys()].sort(), ['n0', 'n1', 'n2']);
  checkLogs(logs, 'body_too_large');
});

test('hostile response: a list without a resourceVersion is refused (a watch from "" would skip changes)', async (t) => {
  const watchedFrom: string[] = [];
  const { r, api } = await setup(t, (api) => {
    api.list = (res, n) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(n === 1 ? JSON.stringify({ items: [] }) : listBody(api));
    };
    api.watch = (res, _n, req) => {
      watchedFrom.push(new URL(req.url!, 'https://x').searchParams.get('resourceVersion') ?? '');
      watchHeaders(res);
      res.flushHeaders();
    };
  });
  await until('a watch', () => api.counts.watch > 0);
  assert.deepEqual(watchedFrom, [String(api.rv)], 'the only watch starts from the good list');
  assert.equal(r.stats.invalid.no_resource_version, 1);
  assert.equal(r.store.size, 3);
});

test('hostile response: the default limits fit an unpaged list of 5,000 whole Nodes (a server that ignores limit)', async (t) => {
  const body = JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: '1' }, items: generateNodes({ count: 5000 }) });
  const { r } = await setup(t, (api) => {
    api.list = (res) => {
      res.writeHead(200, { 'Content-Type': 'application/json', 'Content-Length': String(Buffer.byteLength(body)) });
      res.end(body);
    };
  });
  assert.ok(Buffer.byteLength(body) > 40 * MiB, `the list is ${Buffer.byteLength(body)} bytes`);
  assert.equal(r.store.size, 5000);
  assert.equal(invalidTotal(r), 0);
});
