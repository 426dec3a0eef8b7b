// The store's Kubernetes semantics, without HTTP: resourceVersions, conflicts, history, lists.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Store, jsonPatch, mergePatch, strategicMergePatch, type StoredEvent } from '../../loadtest/apiserver/index.js';
import { labelSelector, fieldSelector } from '../../loadtest/apiserver/selectors.js';

function node(name: string, labels: Record<string, string> = {}) {
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels, annotations: { a: '1' } }, spec: { podCIDR: '10.0.0.0/24' } };
}

test('store: every write gets a new, larger resourceVersion; no-op writes do not', () => {
  const s = new Store();
  const t = s.nodes();
  const a = s.create(t, node('a'));
  const rv1 = Number(a.obj.metadata.resourceVersion);
  const b = s.patchAnnotations(t, undefined, 'a', { a: '2' });
  assert.ok(Number(b.obj.metadata.resourceVersion) > rv1);
  const same = s.patchAnnotations(t, undefined, 'a', { a: '2' });
  assert.equal(same.obj.metadata.resourceVersion, b.obj.metadata.resourceVersion, 'unchanged object keeps its resourceVersion');
  assert.equal(s.rv, Number(b.obj.metadata.resourceVersion));
});

test('store: update with a stale resourceVersion is a 409 Conflict; without one it is unconditional', () => {
  const s = new Store();
  const t = s.nodes();
  const a = s.create(t, node('a'));
  const stale = structuredClone(a.obj);
  s.patchAnnotations(t, undefined, 'a', { a: 'x' });
  assert.throws(() => s.update(t, undefined, 'a', stale), (e: any) => e.code === 409 && e.reason === 'Conflict');
  const { resourceVersion: _, ...md } = stale.metadata;
  const upd = s.update(t, undefined, 'a', { ...stale, metadata: md, spec: { podCIDR: '10.9.0.0/24' } });
  assert.equal((upd.obj.spec as any).podCIDR, '10.9.0.0/24');
  assert.equal(upd.obj.metadata.uid, a.obj.metadata.uid, 'uid survives updates');
  assert.throws(() => s.create(t, node('a')), (e: any) => e.code === 409 && e.reason === 'AlreadyExists');
  assert.throws(() => s.get(t, undefined, 'zz'), (e: any) => e.code === 404);
});

test('store: watch history replays from a resourceVersion and answers 410 once it is compacted', () => {
  const s = new Store({ historySize: 5 });
  const t = s.nodes();
  const start = s.rv;
  for (let i = 0; i < 3; i++) s.create(t, node(`n${i}`));
  const got: StoredEvent[] = [];
  const w = s.watch(t, { deliver: (e) => got.push(e), close() {} }, start);
  assert.deepEqual(w.backlog.map((e) => e.type + ':' + e.name), ['ADDED:n0', 'ADDED:n1', 'ADDED:n2']);
  s.patchAnnotations(t, undefined, 'n1', { a: 'z' });
  s.delete(t, undefined, 'n0');
  assert.deepEqual(got.map((e) => e.type + ':' + e.name), ['MODIFIED:n1', 'DELETED:n0']);
  assert.equal(got[1].rv, s.rv, 'DELETED carries the deletion resourceVersion');
  assert.match(got[0].line.toString(), /^\{"type":"MODIFIED","object":\{.*\}\}\n$/);
  w.cancel();
  for (let i = 0; i < 5; i++) s.patchAnnotations(t, undefined, 'n2', { a: String(i) });
  assert.throws(() => s.watch(t, { deliver() {}, close() {} }, start), (e: any) => e.code === 410);
});

test('store: list resourceVersion rules (unset, 0, Exact, too large)', () => {
  const s = new Store();
  const t = s.nodes();
  s.create(t, node('a'));
  const rvA = s.rv;
  s.create(t, node('b'));
  s.patchAnnotations(t, undefined, 'a', { a: 'new' });
  s.delete(t, undefined, 'b');
  assert.deepEqual(s.list(t).items.map((i) => JSON.parse(i.json.toString()).metadata.name), ['a']);
  assert.equal(s.list(t, { resourceVersion: '0' }).items.length, 1);
  const exact = s.list(t, { resourceVersion: String(rvA), resourceVersionMatch: 'Exact' });
  assert.equal(exact.rv, rvA);
  const objs = exact.items.map((i) => JSON.parse(i.json.toString()));
  assert.deepEqual(objs.map((o) => [o.metadata.name, o.metadata.annotations.a]), [['a', '1']], 'state as it was at rvA');
  assert.throws(() => s.list(t, { resourceVersion: String(s.rv + 10) }), (e: any) => e.code === 504);
});

test('store: limit/continue paginates one consistent snapshot and tokens expire', async () => {
  const s = new Store({ continueTtlMs: 200 });
  const t = s.nodes();
  for (let i = 0; i < 10; i++) s.create(t, node(`n${i}`));
  const p1 = s.list(t, { limit: 4 });
  assert.equal(p1.items.length, 4);
  assert.equal(p1.remainingItemCount, 6);
  // Writes between pages do not show up in later pages of the same list.
  s.delete(t, undefined, 'n7');
  s.create(t, node('n99'));
  const p2 = s.list(t, { limit: 4, continueToken: p1.continueToken });
  const p3 = s.list(t, { limit: 4, continueToken: p2.continueToken });
  assert.equal(p3.continueToken, undefined);
  const names = [...p1.items, ...p2.items, ...p3.items].map((i) => JSON.parse(i.json.toString()).metadata.name);
  assert.deepEqual(names, ['n0', 'n1', 'n2', 'n3', 'n4', 'n5', 'n6', 'n7', 'n8', 'n9']);
  assert.equal(p2.rv, p1.rv);
  await new Promise((r) => setTimeout(r, 250));
  assert.throws(() => s.list(t, { limit: 4, continueToken: p1.continueToken }), (e: any) => e.code === 410);
});

test('store: CRDs register their API; deleting the CRD removes it and its objects', () => {
  const s = new Store();
  const crds = s.typeFor('CustomResourceDefinition')!;
  s.create(crds, {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: 'widgets.example.com' },
    spec: { group: 'example.com', scope: 'Cluster', names: { plural: 'widgets', kind: 'Widget' }, versions: [{ name: 'v1', served: true, storage: true }] },
  });
  const w = s.type('example.com', 'v1', 'widgets');
  s.create(w, { apiVersion: 'example.com/v1', kind: 'Widget', metadata: { name: 'w1' } });
  assert.throws(() => s.patch(w, undefined, 'w1', 'strategic', {}), (e: any) => e.code === 415, 'custom resources take no strategic merge patch');
  s.delete(crds, undefined, 'widgets.example.com');
  assert.throws(() => s.type('example.com', 'v1', 'widgets'), (e: any) => e.code === 404);
});

test('store: namespaced objects need their namespace', () => {
  const s = new Store();
  const cm = s.type('', 'v1', 'configmaps');
  assert.throws(() => s.create(cm, { metadata: { name: 'x' } }, 'nope'), (e: any) => e.code === 404);
  const e = s.create(cm, { metadata: { name: 'x' } }, 'kube-system');
  assert.equal(e.obj.metadata.namespace, 'kube-system');
  assert.equal(s.list(cm, { namespace: 'default' }).items.length, 0);
  assert.equal(s.list(cm, { namespace: 'kube-system' }).items.length, 1);
});

test('patch: JSON merge, JSON patch and strategic merge behave as the API server does', () => {
  const doc = { metadata: { annotations: { a: '1', b: '2' } }, spec: { list: [1, 2] } };
  assert.deepEqual(mergePatch(doc, { metadata: { annotations: { a: null, c: '3' } } }), { metadata: { annotations: { b: '2', c: '3' } }, spec: { list: [1, 2] } });
  assert.deepEqual(doc.metadata.annotations, { a: '1', b: '2' }, 'inputs are not mutated');
  const p = jsonPatch(doc, [
    { op: 'remove', path: '/metadata/annotations/a' },
    { op: 'add', path: '/metadata/annotations/kilo.squat.ai~1key', value: 'k' },
    { op: 'add', path: '/spec/list/-', value: 3 },
    { op: 'test', path: '/spec/list/0', value: 1 },
  ]);
  assert.deepEqual(p, { metadata: { annotations: { b: '2', 'kilo.squat.ai/key': 'k' } }, spec: { list: [1, 2, 3] } });
  assert.throws(() => jsonPatch(doc, [{ op: 'remove', path: '/metadata/annotations/missing' }]), (e: any) => e.code === 422);
  const ds = { spec: { template: { spec: { containers: [{ name: 'a', image: 'a:1' }, { name: 'b', image: 'b:1' }] } } } };
  const sm = strategicMergePatch(ds, { spec: { template: { spec: { containers: [{ name: 'b', image: 'b:2' }, { name: 'c', image: 'c:1' }] } } } });
  assert.deepEqual(sm.spec.template.spec.containers, [{ name: 'a', image: 'a:1' }, { name: 'b', image: 'b:2' }, { name: 'c', image: 'c:1' }]);
  const del = strategicMergePatch(ds, { spec: { template: { spec: { containers: [{ name: 'a', $patch: 'delete' }] } } } });
  assert.deepEqual(del.spec.template.spec.containers.map((c: any) => c.name), ['b']);
});

test('selectors: label and field selector grammar', () => {
  const o = { metadata: { name: 'n1', labels: { env: 'prod', tier: 'web' } } };
  const yes = ['env=prod', 'env==prod', 'env!=dev', 'env in (prod,dev)', 'tier notin (db)', 'env', '!missing', 'env=prod,tier=web'];
  const no = ['env=dev', 'env in (dev)', '!env', 'missing', 'env=prod,tier=db'];
  for (const s of yes) assert.equal(labelSelector(s)!(o), true, s);
  for (const s of no) assert.equal(labelSelector(s)!(o), false, s);
  assert.equal(fieldSelector('metadata.name=n1')!(o), true);
  assert.equal(fieldSelector('metadata.name!=n1')!(o), false);
  assert.throws(() => fieldSelector('spec.foo=bar'), (e: any) => e.code === 400);
});
