// Watch and list semantics on the wire, as a real API server has them.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateNodes, startApiServer } from '../../loadtest/apiserver/index.js';
import { rawWatch, request, waitFor, within } from './helpers.js';

const small = (count: number) => generateNodes({ count, realistic: false });

test('watch: rv unset sends synthetic ADDED for the current state, then live events, as chunked NDJSON', async (t) => {
  const srv = await startApiServer({ nodes: small(3) });
  t.after(() => srv.stop());
  const w = rawWatch(srv, '/api/v1/nodes?watch=true');
  t.after(() => w.close());
  assert.equal(await w.status, 200);
  await waitFor('3 ADDED', () => w.events.length === 3);
  srv.store.patchAnnotations(srv.store.nodes(), undefined, 'node-00001', { x: '1' });
  srv.store.delete(srv.store.nodes(), undefined, 'node-00002');
  await waitFor('2 more events', () => w.events.length === 5);
  assert.deepEqual(w.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED node-00000', 'ADDED node-00001', 'ADDED node-00002', 'MODIFIED node-00001', 'DELETED node-00002']);
  assert.ok(Number(w.events[4].object.metadata.resourceVersion) > Number(w.events[3].object.metadata.resourceVersion));
  const r = await request(srv, 'GET', '/api/v1/nodes?watch=true&timeoutSeconds=1');
  assert.equal(r.headers['transfer-encoding'], 'chunked');
  assert.equal(r.headers['content-type'], 'application/json');
  assert.equal(r.body.split('\n').filter(Boolean).length, 2, 'two remaining nodes, one JSON object per line');
});

test('watch: rv=N resumes exactly after N; a compacted N gets an in-stream ERROR 410 and the stream ends', async (t) => {
  const srv = await startApiServer({ nodes: small(3), historySize: 4 });
  t.after(() => srv.stop());
  const nodes = srv.store.nodes();
  const list = JSON.parse((await request(srv, 'GET', '/api/v1/nodes')).body);
  const rv = list.metadata.resourceVersion;
  srv.store.patchAnnotations(nodes, undefined, 'node-00000', { a: '1' });
  srv.store.patchAnnotations(nodes, undefined, 'node-00001', { a: '1' });
  const w = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv}`);
  t.after(() => w.close());
  await waitFor('replayed events', () => w.events.length === 2);
  assert.deepEqual(w.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['MODIFIED node-00000', 'MODIFIED node-00001']);
  for (let i = 0; i < 6; i++) srv.store.patchAnnotations(nodes, undefined, 'node-00002', { a: String(i) });
  const old = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv}`);
  assert.equal(await old.status, 200);
  assert.equal(await within(5000, old.ended, 'stream end'), true);
  assert.equal(old.events.length, 1);
  assert.equal(old.events[0].type, 'ERROR');
  assert.equal(old.events[0].object.code, 410);
  assert.equal(old.events[0].object.reason, 'Expired');
  // A list at an exact, compacted resourceVersion is a plain HTTP 410.
  const exact = await request(srv, 'GET', `/api/v1/nodes?resourceVersion=${rv}&resourceVersionMatch=Exact`);
  assert.equal(exact.status, 410);
});

test('watch: BOOKMARKs with allowWatchBookmarks, and only then', async (t) => {
  const srv = await startApiServer({ nodes: small(1), bookmarkIntervalMs: 50 });
  t.after(() => srv.stop());
  const rv = srv.store.rv;
  const w = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv}&allowWatchBookmarks=true`);
  const plain = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${rv}`);
  t.after(() => {
    w.close();
    plain.close();
  });
  await waitFor('a bookmark', () => w.events.some((e) => e.type === 'BOOKMARK'));
  srv.store.patchAnnotations(srv.store.nodes(), undefined, 'node-00000', { a: '1' });
  await waitFor('a bookmark after the write', () => w.events.filter((e) => e.type === 'BOOKMARK').some((e) => Number(e.object.metadata.resourceVersion) === srv.store.rv));
  const bm = w.events.find((e) => e.type === 'BOOKMARK')!;
  assert.equal(bm.object.kind, 'Node');
  assert.equal(bm.object.apiVersion, 'v1');
  await waitFor('the MODIFIED on the plain watch', () => plain.events.length === 1);
  assert.ok(plain.events.every((e) => e.type !== 'BOOKMARK'));
});

test('watch: sendInitialEvents=true ends the initial ADDED burst with an initial-events-end BOOKMARK', async (t) => {
  const srv = await startApiServer({ nodes: small(4) });
  t.after(() => srv.stop());
  const bad = await request(srv, 'GET', '/api/v1/nodes?watch=1&sendInitialEvents=true&allowWatchBookmarks=true');
  assert.equal(bad.status, 422, 'sendInitialEvents requires resourceVersionMatch=NotOlderThan');
  const w = rawWatch(srv, '/api/v1/nodes?watch=1&sendInitialEvents=true&allowWatchBookmarks=true&resourceVersionMatch=NotOlderThan&resourceVersion=');
  t.after(() => w.close());
  await waitFor('4 ADDED and the bookmark', () => w.events.length === 5);
  assert.deepEqual(w.events.slice(0, 4).map((e) => e.type), ['ADDED', 'ADDED', 'ADDED', 'ADDED']);
  assert.equal(w.events[4].type, 'BOOKMARK');
  assert.equal(w.events[4].object.metadata.annotations['k8s.io/initial-events-end'], 'true');
  assert.equal(w.events[4].object.metadata.resourceVersion, String(srv.store.rv));
});

test('watch: timeoutSeconds ends the stream from the server side', async (t) => {
  const srv = await startApiServer({ nodes: small(1) });
  t.after(() => srv.stop());
  const w = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${srv.store.rv}&timeoutSeconds=1`);
  t.after(() => w.close());
  assert.equal(await within(5000, w.ended, 'server-side timeout'), true);
  assert.equal(srv.watchCount(), 0);
});

test('watch: a label selector turns label changes into ADDED/DELETED for that watcher', async (t) => {
  const srv = await startApiServer({ nodes: small(3) });
  t.after(() => srv.stop());
  const w = rawWatch(srv, `/api/v1/nodes?watch=1&resourceVersion=${srv.store.rv}&labelSelector=${encodeURIComponent('role=gw')}`);
  const byName = rawWatch(srv, `/api/v1/watch/nodes/node-00002?resourceVersion=${srv.store.rv}`);
  t.after(() => {
    w.close();
    byName.close();
  });
  await w.status;
  const n = srv.store.nodes();
  srv.store.patch(n, undefined, 'node-00001', 'merge', { metadata: { labels: { role: 'gw' } } });
  srv.store.patchAnnotations(n, undefined, 'node-00001', { a: '1' });
  srv.store.patchAnnotations(n, undefined, 'node-00000', { a: '1' });
  srv.store.patch(n, undefined, 'node-00001', 'merge', { metadata: { labels: { role: null } } });
  srv.store.patchAnnotations(n, undefined, 'node-00002', { a: '1' });
  await waitFor('3 events', () => w.events.length === 3);
  assert.deepEqual(w.events.map((e) => `${e.type} ${e.object.metadata.name}`), ['ADDED node-00001', 'MODIFIED node-00001', 'DELETED node-00001']);
  await waitFor('the legacy /watch/ path event', () => byName.events.length === 1);
  assert.equal(byName.events[0].object.metadata.name, 'node-00002');
});

test('list: limit/continue over HTTP, with expired tokens answering 410', async (t) => {
  const srv = await startApiServer({ nodes: small(10), continueTtlMs: 300 });
  t.after(() => srv.stop());
  const p1 = JSON.parse((await request(srv, 'GET', '/api/v1/nodes?limit=4')).body);
  assert.equal(p1.items.length, 4);
  assert.equal(p1.metadata.remainingItemCount, 6);
  const p2 = JSON.parse((await request(srv, 'GET', `/api/v1/nodes?limit=100&continue=${p1.metadata.continue}`)).body);
  assert.equal(p2.items.length, 6);
  assert.equal(p2.metadata.continue, undefined);
  await new Promise((r) => setTimeout(r, 350));
  const late = await request(srv, 'GET', `/api/v1/nodes?limit=4&continue=${p1.metadata.continue}`);
  assert.equal(late.status, 410);
  assert.equal(JSON.parse(late.body).reason, 'Expired');
});

test('update: PUT with a stale resourceVersion is 409 over HTTP', async (t) => {
  const srv = await startApiServer({ nodes: small(1) });
  t.after(() => srv.stop());
  const cur = JSON.parse((await request(srv, 'GET', '/api/v1/nodes/node-00000')).body);
  srv.store.patchAnnotations(srv.store.nodes(), undefined, 'node-00000', { a: 'b' });
  const r = await request(srv, 'PUT', '/api/v1/nodes/node-00000', { body: cur });
  assert.equal(r.status, 409);
  assert.equal(JSON.parse(r.body).reason, 'Conflict');
  const ok = await request(srv, 'PUT', '/api/v1/nodes/node-00000', { body: JSON.parse((await request(srv, 'GET', '/api/v1/nodes/node-00000')).body) });
  assert.equal(ok.status, 200);
});

test('metadata only (as=PartialObjectMetadata): watch, list and get leave spec and status out', async (t) => {
  const srv = await startApiServer({ nodes: generateNodes({ count: 3 }) });
  t.after(() => srv.stop());
  const META = 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json';
  const w = rawWatch(srv, '/api/v1/nodes?watch=true', META);
  const full = rawWatch(srv, '/api/v1/nodes?watch=true');
  t.after(() => (w.close(), full.close()));
  await waitFor('3 + 3 ADDED', () => w.events.length === 3 && full.events.length === 3);
  srv.store.patchAnnotations(srv.store.nodes(), undefined, 'node-00001', { 'kilo.squat.ai/last-seen': '1' });
  await waitFor('MODIFIED on both', () => w.events.length === 4 && full.events.length === 4);
  const m = w.events[3];
  assert.deepEqual([m.type, m.object.kind, m.object.apiVersion, m.object.metadata.annotations['kilo.squat.ai/last-seen']], ['MODIFIED', 'PartialObjectMetadata', 'meta.k8s.io/v1', '1']);
  assert.equal(m.object.spec, undefined);
  assert.equal(m.object.status, undefined);
  assert.deepEqual(m.object.metadata, full.events[3].object.metadata, 'the same metadata as the whole object');
  assert.ok(JSON.stringify(m).length * 2 < JSON.stringify(full.events[3]).length, 'well under half the bytes');
  const list = JSON.parse((await request(srv, 'GET', '/api/v1/nodes', { headers: { accept: META.replace('PartialObjectMetadata', 'PartialObjectMetadataList') } })).body);
  assert.deepEqual([list.kind, list.items.length, list.items[0].kind, list.items[0].spec], ['PartialObjectMetadataList', 3, 'PartialObjectMetadata', undefined]);
  const one = JSON.parse((await request(srv, 'GET', '/api/v1/nodes/node-00002', { headers: { accept: META } })).body);
  assert.deepEqual([one.kind, one.metadata.name, one.spec], ['PartialObjectMetadata', 'node-00002', undefined]);
});
