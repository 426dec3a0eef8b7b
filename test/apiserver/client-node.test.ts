// @kubernetes/client-node (a client no one here wrote): informers over HTTPS with a token.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import * as k8s from '@kubernetes/client-node';
import { generateNodes, generatePeers, startApiServer, type ApiServer } from '../../loadtest/apiserver/index.js';
import { request, waitFor } from './helpers.js';

interface Seen {
  adds: string[];
  updates: string[];
  deletes: string[];
  errors: unknown[];
  lists: number;
}

function nodeInformer(srv: ApiServer) {
  const kc = new k8s.KubeConfig();
  kc.loadFromString(srv.kubeconfig);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const seen: Seen = { adds: [], updates: [], deletes: [], errors: [], lists: 0 };
  const inf = k8s.makeInformer(kc, '/api/v1/nodes', () => {
    seen.lists++;
    return core.listNode();
  });
  inf.on('add', (o) => seen.adds.push(o.metadata!.name!));
  inf.on('update', (o) => seen.updates.push(o.metadata!.name!));
  inf.on('delete', (o) => seen.deletes.push(o.metadata!.name!));
  inf.on('error', (e) => seen.errors.push(e));
  return { kc, core, inf, seen };
}

test('client-node: a Node informer receives add, update and delete', async (t) => {
  const srv = await startApiServer({ https: true, nodes: generateNodes({ count: 50 }) });
  const { core, inf, seen } = nodeInformer(srv);
  t.after(async () => {
    await inf.stop();
    await srv.stop();
  });
  await inf.start();
  await waitFor('50 adds', () => seen.adds.length === 50);
  // Writes through client-node itself: a merge patch of kg's heartbeat annotation, a create, a delete.
  await core.patchNode(
    { name: 'node-00003', body: { metadata: { annotations: { 'kilo.squat.ai/last-seen': '42' } } } },
    k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch),
  );
  await core.createNode({ body: generateNodes({ count: 1, namePrefix: 'extra' })[0] as k8s.V1Node });
  await core.deleteNode({ name: 'node-00010' });
  await waitFor('update, add and delete', () => seen.updates.length >= 1 && seen.adds.length === 51 && seen.deletes.length === 1);
  assert.deepEqual(seen.updates, ['node-00003']);
  assert.equal(seen.adds[50], 'extra-00000');
  assert.deepEqual(seen.deletes, ['node-00010']);
  assert.equal(inf.get('node-00003')!.metadata!.annotations!['kilo.squat.ai/last-seen'], '42');
  assert.equal(inf.list().length, 50);
  assert.equal(seen.lists, 1);
  assert.deepEqual(seen.errors, []);
});

test('client-node: a Peer informer works on the CRD-defined API', async (t) => {
  const srv = await startApiServer({ https: true, peers: generatePeers({ count: 5 }) });
  const kc = new k8s.KubeConfig();
  kc.loadFromString(srv.kubeconfig);
  const custom = kc.makeApiClient(k8s.CustomObjectsApi);
  const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
  // kg's start-up check (design §3.3.7).
  const crd = await ext.readCustomResourceDefinition({ name: 'peers.kilo.squat.ai' });
  assert.equal(crd.spec.scope, 'Cluster');
  const g = { group: 'kilo.squat.ai', version: 'v1alpha1', plural: 'peers' };
  const inf = k8s.makeInformer<k8s.KubernetesObject>(kc, '/apis/kilo.squat.ai/v1alpha1/peers', () => custom.listClusterCustomObject(g));
  const names: string[] = [];
  inf.on('add', (o) => names.push(`add ${o.metadata!.name}`));
  inf.on('update', (o) => names.push(`update ${o.metadata!.name}`));
  inf.on('delete', (o) => names.push(`delete ${o.metadata!.name}`));
  t.after(async () => {
    await inf.stop();
    await srv.stop();
  });
  await inf.start();
  await waitFor('5 adds', () => names.length === 5);
  await custom.patchClusterCustomObject({ ...g, name: 'peer-00002', body: { spec: { persistentKeepalive: 5 } } }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
  await custom.deleteClusterCustomObject({ ...g, name: 'peer-00004' });
  await waitFor('update and delete', () => names.length === 7);
  assert.deepEqual(names.slice(5), ['update peer-00002', 'delete peer-00004']);
});

for (const mode of ['stream', 'http'] as const) {
  test(`client-node: informer relists after a 410 (${mode === 'stream' ? 'in-stream ERROR event' : 'HTTP status'}) and stays consistent`, async (t) => {
    const srv = await startApiServer({ https: true, nodes: generateNodes({ count: 20 }) });
    const { inf, seen } = nodeInformer(srv);
    t.after(async () => {
      await inf.stop();
      await srv.stop();
    });
    await inf.start();
    await waitFor('20 adds', () => seen.adds.length === 20);
    // The next watch gets 410; closing the current one makes the informer re-watch.
    srv.faults.set({ goneCount: 1, goneMode: mode });
    srv.faults.dropWatches();
    await waitFor('relist', () => seen.lists === 2);
    const nodes = srv.store.nodes();
    srv.store.delete(nodes, undefined, 'node-00001');
    srv.store.patchAnnotations(nodes, undefined, 'node-00002', { x: 'y' });
    await waitFor('events after relist', () => seen.deletes.includes('node-00001') && inf.get('node-00002')?.metadata?.annotations?.x === 'y');
    assert.equal(srv.faults.injected.gone, 1);
    assert.equal(inf.list().length, 19);
    assert.deepEqual(seen.errors, []);
  });
}

test('client-node: a relist after a 410 reports objects deleted while the watch was away', async (t) => {
  // History of 3: a watch resumed after 5 writes is too old (410), so the informer must relist
  // and diff its cache against the new list.
  const srv = await startApiServer({ nodes: generateNodes({ count: 5, realistic: false }), historySize: 3, token: false });
  const { inf, seen } = nodeInformer(srv);
  t.after(async () => {
    await inf.stop();
    await srv.stop();
  });
  await inf.start();
  await waitFor('5 adds', () => seen.adds.length === 5);
  srv.faults.stall(); // the informer's watch stops seeing events
  const nodes = srv.store.nodes();
  srv.store.delete(nodes, undefined, 'node-00000');
  for (let i = 0; i < 4; i++) srv.store.patchAnnotations(nodes, undefined, 'node-00001', { n: String(i) });
  srv.faults.set({ stallWatches: false }); // resets the stalled watch
  await waitFor('informer error from the reset watch', () => seen.errors.length === 1);
  // client-node's informer stops on a connection error; restarting it resumes from its
  // resourceVersion, which is now compacted away: 410, relist, and the missed delete.
  await inf.start();
  await waitFor('relist with the delete', () => seen.lists === 2 && seen.deletes.includes('node-00000'));
  assert.equal(inf.get('node-00001')!.metadata!.annotations!.n, '3');
});

test('client-node: through a restart an informer sees the old watch to its end, 429 storage is (re)initializing, then relists on 410', async (t) => {
  const srv = await startApiServer({ https: true, nodes: generateNodes({ count: 5, realistic: false }) });
  const { core, inf, seen } = nodeInformer(srv);
  t.after(async () => {
    await inf.stop();
    await srv.stop();
  });
  await inf.start();
  await waitFor('5 adds', () => seen.adds.length === 5);
  await srv.restart({ graceMs: 800, initializingMs: 2500, retryAfterSeconds: 1 });
  const merge = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  // During the grace the informer's watch, on the old server, still delivers.
  await core.patchNode({ name: 'node-00001', body: { metadata: { annotations: { a: '1' } } } }, merge);
  await waitFor('the update through the old watch', () => seen.updates.includes('node-00001'));
  // A typed call sees the initialising cache's 429 with its Status and Retry-After.
  await assert.rejects(core.listNode(), (e: k8s.ApiException<string>) => {
    assert.equal(e.code, 429);
    assert.equal(e.headers['retry-after'], '1');
    assert.equal(JSON.parse(e.body).message, 'storage is (re)initializing');
    return true;
  });
  // The grace ends: the informer re-watches from its resourceVersion and meets the 429, which
  // stops client-node's informer (it retries only 410): its user must restart it.
  await waitFor('the informer error', () => seen.errors.length === 1, 5000);
  assert.equal((seen.errors[0] as { statusCode?: number }).statusCode, 429);
  await core.deleteNode({ name: 'node-00002' });
  await waitFor('the cache initialised', async () => (await request(srv, 'GET', '/api/v1/nodes')).status === 200);
  await inf.start();
  // Its resourceVersion is older than the new watch cache: ERROR 410, a relist, the missed delete.
  await waitFor('relist with the delete', () => seen.lists === 2 && seen.deletes.includes('node-00002'));
  await core.patchNode({ name: 'node-00003', body: { metadata: { annotations: { a: '2' } } } }, merge);
  await waitFor('events after the relist', () => inf.get('node-00003')?.metadata?.annotations?.a === '2');
  assert.equal(inf.list().length, 4);
});
