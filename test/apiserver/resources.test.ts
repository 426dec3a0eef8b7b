// The stored-but-not-acted-on kinds: Leases (leader-election style), Namespaces, ConfigMaps,
// and discovery listing them, over HTTPS; custom kinds only with their CRD.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { startApiServer } from '../../loadtest/apiserver/index.js';
import { loadYamlObjects } from '../../loadtest/apiserver/server.js';
import { request } from './helpers.js';

test('resources: a Lease is created, renewed with optimistic concurrency, and listed per namespace', async (t) => {
  const srv = await startApiServer({ https: true });
  t.after(() => srv.stop());
  const base = '/apis/coordination.k8s.io/v1/namespaces/kube-system/leases';
  const lease = { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'kilo-leader' }, spec: { holderIdentity: 'a', leaseDurationSeconds: 15 } };
  const created = await request(srv, 'POST', base, { body: lease });
  assert.equal(created.status, 201);
  const cur = JSON.parse(created.body);
  assert.equal(cur.metadata.namespace, 'kube-system');
  // Two candidates renew from the same version: the first wins, the second gets 409.
  const mine = { ...cur, spec: { ...cur.spec, holderIdentity: 'b' } };
  const theirs = { ...cur, spec: { ...cur.spec, holderIdentity: 'c' } };
  assert.equal((await request(srv, 'PUT', `${base}/kilo-leader`, { body: mine })).status, 200);
  assert.equal((await request(srv, 'PUT', `${base}/kilo-leader`, { body: theirs })).status, 409);
  assert.equal(JSON.parse((await request(srv, 'GET', `${base}/kilo-leader`)).body).spec.holderIdentity, 'b');
  assert.equal(JSON.parse((await request(srv, 'GET', '/apis/coordination.k8s.io/v1/namespaces/default/leases')).body).items.length, 0);
  assert.equal(JSON.parse((await request(srv, 'GET', '/apis/coordination.k8s.io/v1/leases')).body).items.length, 1);
});

test('resources: namespaces gate namespaced objects, and deleting one deletes its objects', async (t) => {
  const srv = await startApiServer({ https: true });
  t.after(() => srv.stop());
  const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'kilo' }, data: { k: 'v' } };
  assert.equal((await request(srv, 'POST', '/api/v1/namespaces/kilo/configmaps', { body: cm })).status, 404);
  assert.equal((await request(srv, 'POST', '/api/v1/namespaces', { body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'kilo' } } })).status, 201);
  assert.equal((await request(srv, 'POST', '/api/v1/namespaces/kilo/configmaps', { body: cm })).status, 201);
  assert.equal((await request(srv, 'GET', '/api/v1/namespaces/kilo/configmaps/kilo')).status, 200);
  assert.equal((await request(srv, 'DELETE', '/api/v1/namespaces/kilo')).status, 200);
  assert.equal((await request(srv, 'GET', '/api/v1/namespaces/kilo/configmaps/kilo')).status, 404);
  assert.equal((await request(srv, 'GET', '/api/v1/nodes/x/proxy')).status, 404, 'unknown subresources do not exist');
});

test('discovery: groups, versions and resources as kubectl and client-node read them', async (t) => {
  const srv = await startApiServer({ https: true });
  t.after(() => srv.stop());
  const version = JSON.parse((await request(srv, 'GET', '/version', { token: null })).body);
  assert.equal(version.major, '1');
  assert.equal((await request(srv, 'GET', '/api', { token: null })).status, 401);
  const groups = JSON.parse((await request(srv, 'GET', '/apis')).body);
  const names = groups.groups.map((g: any) => g.name).sort();
  assert.deepEqual(names, ['admissionregistration.k8s.io', 'apiextensions.k8s.io', 'apps', 'batch', 'coordination.k8s.io', 'kilo.squat.ai', 'policy', 'rbac.authorization.k8s.io']);
  const core = JSON.parse((await request(srv, 'GET', '/api/v1')).body);
  const nodes = core.resources.find((r: any) => r.name === 'nodes');
  assert.deepEqual([nodes.kind, nodes.namespaced, nodes.verbs.includes('watch')], ['Node', false, true]);
  const kilo = JSON.parse((await request(srv, 'GET', '/apis/kilo.squat.ai/v1alpha1')).body);
  assert.deepEqual(kilo.resources.map((r: any) => [r.name, r.kind, r.namespaced]), [['peers', 'Peer', false]]);
  assert.equal((await request(srv, 'GET', '/apis/nope.example.com/v1')).status, 404);
  const v2 = await request(srv, 'GET', '/openapi/v2');
  assert.equal(JSON.parse(v2.body).swagger, '2.0');
});

test('strict kinds: a custom kind exists only with its CRD (discovery, REST), as on a real server', async (t) => {
  const srv = await startApiServer({ https: true, loadCrds: false });
  t.after(() => srv.stop());
  const groups = async () => JSON.parse((await request(srv, 'GET', '/apis')).body).groups.map((g: { name: string }) => g.name);
  const pm = { apiVersion: 'monitoring.coreos.com/v1', kind: 'PodMonitor', metadata: { name: 'kilo', namespace: 'kube-system' }, spec: {} };
  const base = '/apis/monitoring.coreos.com/v1/namespaces/kube-system/podmonitors';
  for (const g of ['monitoring.coreos.com', 'kilo.squat.ai']) assert.ok(!(await groups()).includes(g), `${g} is not served without its CRD`);
  assert.equal((await request(srv, 'GET', '/apis/monitoring.coreos.com/v1')).status, 404);
  assert.equal((await request(srv, 'POST', base, { body: pm })).status, 404);
  assert.equal((await request(srv, 'GET', '/apis/kilo.squat.ai/v1alpha1/peers')).status, 404);
  const [crd] = loadYamlObjects('test/manifests/fixtures/podmonitor-crd.yaml');
  assert.equal((await request(srv, 'POST', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions', { body: crd })).status, 201);
  assert.ok((await groups()).includes('monitoring.coreos.com'));
  assert.equal((await request(srv, 'POST', base, { body: pm })).status, 201);
  // Deleting the CRD takes its kind (and objects) away again.
  assert.equal((await request(srv, 'DELETE', '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/podmonitors.monitoring.coreos.com')).status, 200);
  assert.equal((await request(srv, 'GET', `${base}/kilo`)).status, 404);
  assert.ok(!(await groups()).includes('monitoring.coreos.com'));
});
