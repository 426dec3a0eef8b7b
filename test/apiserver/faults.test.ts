// Every fault, and what a client sees when it is on. Faults are driven through the library API
// and through the admin HTTP endpoint.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { generateNodes, startApiServer } from '../../loadtest/apiserver/index.js';
import { kubectlFor, rawWatch, request, waitFor, within } from './helpers.js';

const small = (count: number) => generateNodes({ count, realistic: false });

test('fault: drop all watches — streams end cleanly and a client-node informer re-watches without relisting', async (t) => {
  const srv = await startApiServer({ https: true, nodes: small(5) });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(srv.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  let lists = 0;
  const updates: string[] = [];
  const inf = k8s.makeInformer(kc, '/api/v1/nodes', () => {
    lists++;
    return core.listNode();
  });
  inf.on('update', (o) => updates.push(o.metadata!.name!));
  const raw = rawWatch(srv, '/api/v1/nodes?watch=1');
  t.after(async () => {
    raw.close();
    await inf.stop();
    await srv.stop();
  });
  await inf.start();
  await waitFor('two watches', () => srv.watchCount() === 2);
  const dropped = (await request(srv, 'POST', '/_sim/drop-watches')).body;
  assert.deepEqual(JSON.parse(dropped), { dropped: 2 });
  assert.equal(await within(5000, raw.ended, 'raw stream end'), true, 'a clean end, not a reset');
  await waitFor('informer re-watch', () => srv.watchCount() === 1);
  srv.store.patchAnnotations(srv.store.nodes(), undefined, 'node-00004', { a: 'b' });
  await waitFor('update after re-watch', () => updates.includes('node-00004'));
  assert.equal(lists, 1, 'resumed from its resourceVersion, no relist');
});

test('fault: 410 Gone on the next list/watch, as an HTTP status or an in-stream ERROR', async (t) => {
  const srv = await startApiServer({ nodes: small(2) });
  t.after(() => srv.stop());
  let r = await request(srv, 'POST', '/_sim/faults', { body: { goneCount: 2, goneMode: 'http' } });
  assert.equal(r.status, 200);
  r = await request(srv, 'GET', '/api/v1/nodes');
  assert.equal(r.status, 410);
  assert.equal(JSON.parse(r.body).reason, 'Expired');
  r = await request(srv, 'GET', '/api/v1/nodes?watch=1');
  assert.equal(r.status, 410);
  r = await request(srv, 'GET', '/api/v1/nodes?watch=1&timeoutSeconds=1');
  assert.equal(r.status, 200, 'the fault is used up');
  srv.faults.set({ goneCount: 1, goneMode: 'stream' });
  const w = rawWatch(srv, '/api/v1/nodes?watch=1');
  assert.equal(await w.status, 200);
  assert.equal(await within(5000, w.ended, 'stream end'), true);
  assert.deepEqual(w.events.map((e) => [e.type, e.object.code]), [['ERROR', 410]]);
  // (client-node's relist on both forms is in client-node.test.ts.)
});

test('fault: 429 with Retry-After — raw clients see it, kubectl (client-go) retries through it', async (t) => {
  const srv = await startApiServer({ https: true, nodes: small(2) });
  const k = kubectlFor(srv);
  t.after(async () => {
    k.cleanup();
    await srv.stop();
  });
  srv.faults.set({ throttleRate: 1, retryAfterSeconds: 2 });
  const r = await request(srv, 'GET', '/api/v1/nodes');
  assert.equal(r.status, 429);
  assert.equal(r.headers['retry-after'], '2');
  assert.equal(JSON.parse(r.body).reason, 'TooManyRequests');
  // Every other request is throttled; client-go honours Retry-After and retries.
  srv.faults.set({ throttleRate: 0.5, retryAfterSeconds: 1 });
  const before = srv.faults.injected.throttle;
  const out = await k(['get', 'nodes', '-o', 'name'], { timeoutMs: 60_000 });
  assert.equal(out.stdout.trim().split('\n').length, 2);
  assert.ok(srv.faults.injected.throttle > before, 'kubectl did meet a 429');
});

test('fault: 500s at a given rate — exactly that fraction fails, client-node surfaces the code, and a fault can hit chosen verbs only', async (t) => {
  const srv = await startApiServer({ https: true, nodes: small(2) });
  t.after(() => srv.stop());
  srv.faults.set({ errorRate: 0.25 });
  const codes: number[] = [];
  for (let i = 0; i < 8; i++) codes.push((await request(srv, 'GET', '/api/v1/nodes/node-00000')).status);
  assert.equal(codes.filter((c) => c === 500).length, 2);
  assert.equal(codes.filter((c) => c === 200).length, 6);
  srv.faults.set({ errorRate: 1, errorStatus: 503 });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(srv.kubeconfig);
  await assert.rejects(kc.makeApiClient(k8s.CoreV1Api).listNode(), (e: any) => e.code === 503);
  // Discovery is exempt, so clients can still find the API while resource calls fail.
  assert.equal((await request(srv, 'GET', '/api/v1')).status, 200);
  assert.equal((await request(srv, 'DELETE', '/_sim/faults')).status, 200);
  assert.equal((await request(srv, 'GET', '/api/v1/nodes')).status, 200);
  // Limited to some verbs: here only writes of last-seen fail, reads and watches go on.
  assert.equal((await request(srv, 'POST', '/_sim/faults', { body: { errorRate: 1, errorStatus: 503, verbs: ['patch'] } })).status, 200);
  assert.equal((await request(srv, 'GET', '/api/v1/nodes/node-00000')).status, 200);
  const patch = (await request(srv, 'PATCH', '/api/v1/nodes/node-00000', { body: { metadata: { annotations: { a: 'b' } } }, contentType: 'application/merge-patch+json' }));
  assert.deepEqual([patch.status, JSON.parse(patch.body).reason], [503, 'ServiceUnavailable']);
});

test('fault: added latency delays every API answer by at least that much', async (t) => {
  const srv = await startApiServer({ nodes: small(1) });
  t.after(() => srv.stop());
  srv.faults.set({ latencyMs: 300 });
  const t0 = Date.now();
  const r = await request(srv, 'GET', '/api/v1/nodes/node-00000');
  assert.equal(r.status, 200);
  assert.ok(Date.now() - t0 >= 295, `answered after ${Date.now() - t0} ms`);
});

test('fault: stalled watches stay open but silent (half-open); clearing the fault resets them', async (t) => {
  const srv = await startApiServer({ nodes: small(2) });
  t.after(() => srv.stop());
  const rv = srv.store.rv;
  const w = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv}`);
  t.after(() => w.close());
  assert.equal(await w.status, 200);
  await request(srv, 'POST', '/_sim/stall?on=true');
  srv.store.patchAnnotations(srv.store.nodes(), undefined, 'node-00000', { a: '1' });
  const fresh = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv}`);
  t.after(() => fresh.close());
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(w.events.length, 0, 'no event reached the stalled watch');
  assert.equal(fresh.headersSeen(), false, 'a new watch does not even get its headers');
  assert.equal(srv.watchCount(), 2, 'both connections are still open');
  await request(srv, 'POST', '/_sim/stall?on=false');
  assert.equal(await within(5000, w.ended, 'reset'), false, 'the stalled stream is reset, not ended');
  assert.equal(await within(5000, fresh.ended, 'reset'), false);
});

test('fault: restart keeps the state; resumed watches get 410 unless history is kept', async (t) => {
  const srv = await startApiServer({ https: true, nodes: small(3) });
  const k = kubectlFor(srv);
  t.after(async () => {
    k.cleanup();
    await srv.stop();
  });
  const nodes = srv.store.nodes();
  const rvOld = srv.store.rv;
  srv.store.patchAnnotations(nodes, undefined, 'node-00000', { a: '1' });
  const rvBefore = srv.store.rv;
  const open = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rvBefore}`);
  assert.equal(await open.status, 200);
  const port = srv.port;
  assert.equal((await request(srv, 'POST', '/_sim/restart?downMs=200')).status, 202);
  assert.equal(await within(5000, open.ended, 'watch end at restart'), true, 'a terminating server ends streams cleanly');
  await waitFor('server back', async () => (await request(srv, 'GET', '/healthz').catch(() => ({ status: 0 }))).status === 200);
  assert.equal(srv.port, port);
  assert.equal((await k(['get', 'nodes', '-o', 'name'])).stdout.trim().split('\n').length, 3, 'objects kept');
  srv.store.patchAnnotations(nodes, undefined, 'node-00001', { a: '1' });
  assert.ok(srv.store.rv > rvBefore, 'resourceVersions keep increasing');
  // rvOld was fine before the restart (one event to replay); the new watch cache starts at rvBefore.
  const resumed = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rvOld}`);
  await within(5000, resumed.ended, 'resumed watch');
  assert.equal(resumed.events[0].type, 'ERROR');
  assert.equal(resumed.events[0].object.code, 410, 'the new watch cache does not reach back');
  const rv2 = srv.store.rv;
  srv.store.patchAnnotations(nodes, undefined, 'node-00002', { a: '1' });
  await srv.restart({ keepHistory: true });
  const kept = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv2}`);
  t.after(() => kept.close());
  await waitFor('replay', () => kept.events.length === 1);
  assert.equal(kept.events[0].object.metadata.name, 'node-00002');
  assert.equal(srv.faults.injected.restarts, 2);
});

test('fault: restart as a real server restarts — old watches served through the grace, 429 while the cache initialises, then 410', async (t) => {
  const srv = await startApiServer({ https: true, nodes: small(3) });
  t.after(() => srv.stop());
  const rv0 = srv.store.rv;
  const open = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv0}`);
  t.after(() => open.close());
  assert.equal(await open.status, 200);
  const t0 = Date.now();
  // Through the admin endpoint: it answers, then restarts.
  assert.equal((await request(srv, 'POST', '/_sim/restart?graceMs=1500&initializingMs=1500&retryAfterSeconds=2')).status, 202);
  await waitFor('the new server', async () => JSON.parse((await request(srv, 'GET', '/_sim/stats').catch(() => ({ body: '{}' }))).body).generation === 1);
  // A write reaches the new server (writes go to etcd), and the old server's open watch sees it.
  const patched = await request(srv, 'PATCH', '/api/v1/nodes/node-00000', { body: { metadata: { annotations: { a: '1' } } }, contentType: 'application/merge-patch+json' });
  assert.equal(patched.status, 200);
  await waitFor('the event on the old watch', () => open.events.length === 1);
  assert.equal(open.events[0].object.metadata.annotations.a, '1');
  // What the initialising watch cache refuses, and how: the Status and header a real one sends.
  const refused = await request(srv, 'GET', `/api/v1/nodes?watch=1&resourceVersion=${rv0}`);
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['retry-after'], '2');
  assert.deepEqual(JSON.parse(refused.body), {
    kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: 'storage is (re)initializing', reason: 'TooManyRequests', details: { retryAfterSeconds: 2 }, code: 429,
  });
  assert.equal((await request(srv, 'GET', '/api/v1/nodes')).status, 429, 'a list without a limit');
  assert.equal((await request(srv, 'GET', '/api/v1/nodes?limit=500&labelSelector=a%3Db')).status, 429, 'a list with a selector');
  assert.equal((await request(srv, 'GET', '/api/v1/nodes?limit=500')).status, 200, 'a paged list without a selector is handed to etcd');
  assert.equal((await request(srv, 'GET', '/api/v1/nodes/node-00001')).status, 200, 'a get is handed to etcd');
  assert.equal((await request(srv, 'GET', '/api/v1')).status, 200, 'discovery is served');
  assert.equal(srv.faults.injected.initializing, 3);
  // The grace ends the old watch cleanly.
  assert.equal(await within(5000, open.ended, 'the end of the grace'), true);
  assert.ok(Date.now() - t0 >= 1400, `old watch served for ${Date.now() - t0} ms`);
  // Initialised: the old resourceVersion is too old for the new cache (200 + in-stream 410).
  await waitFor('the cache initialised', async () => (await request(srv, 'GET', '/api/v1/nodes')).status === 200);
  const resumed = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv0}`);
  t.after(() => resumed.close());
  assert.equal(await resumed.status, 200);
  assert.equal(await within(5000, resumed.ended, 'the 410'), true);
  assert.deepEqual(resumed.events.map((e) => [e.type, e.object.code, e.object.reason]), [['ERROR', 410, 'Expired']]);
});

test('admin and metrics: /_sim/stats and Prometheus counters for requests, writes, events and bytes', async (t) => {
  const srv = await startApiServer({ https: true, nodes: small(3) });
  t.after(() => srv.stop());
  const w = rawWatch(srv, '/api/v1/nodes?watch=1');
  t.after(() => w.close());
  await waitFor('initial events', () => w.events.length === 3);
  srv.store.patchAnnotations(srv.store.nodes(), undefined, 'node-00000', { a: '1' });
  await waitFor('the event', () => w.events.length === 4);
  assert.equal((await request(srv, 'GET', '/metrics', { token: null })).status, 401, 'metrics need auth');
  const m = (await request(srv, 'GET', '/metrics')).body;
  const val = (name: string) => Number(m.match(new RegExp(`^${name} (\\d+)`, 'm'))?.[1]);
  assert.equal(val('apisim_watch_events_sent_total'), 4);
  assert.ok(val('apisim_watch_bytes_sent_total') > 0);
  assert.ok(val('apisim_writes_total') >= 4, 'namespaces, CRD, 3 nodes and a patch');
  assert.equal(val('apisim_watchers'), 1);
  assert.match(m, /apisim_requests_total\{verb="watch",resource="nodes",code="200"\} 1/);
  const stats = JSON.parse((await request(srv, 'GET', '/_sim/stats')).body);
  assert.equal(stats.watchers, 1);
  assert.equal(stats.objects['v1/nodes'], 3);
  const bad = await request(srv, 'POST', '/_sim/nope');
  assert.equal(bad.status, 404);
});
