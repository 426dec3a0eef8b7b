// kubectl (a client no one here wrote) against the simulator over HTTPS with a token.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { parse } from 'yaml';
import { generateNodes, generatePeers, startApiServer } from '../../loadtest/apiserver/index.js';
import { kubectlFor, kubectlPath, waitFor } from './helpers.js';

const CRDS = 'manifests/crds.yaml';
const DS = 'test/apiserver/fixtures/kilo-daemonset.yaml';

test('kubectl: discovery, get (table and JSON) of Nodes and Peers', async (t) => {
  const srv = await startApiServer({ https: true, nodes: generateNodes({ count: 25 }), peers: generatePeers({ count: 3 }) });
  const k = kubectlFor(srv);
  t.after(async () => {
    k.cleanup();
    await srv.stop();
  });
  const table = (await k(['get', 'nodes'])).stdout.trim().split('\n');
  assert.match(table[0], /^NAME\s+STATUS\s+VERSION\s+AGE/);
  assert.equal(table.length, 26);
  const list = JSON.parse((await k(['get', 'nodes', '-o', 'json'])).stdout);
  assert.equal(list.items.length, 25);
  assert.match(list.items[0].metadata.annotations['kilo.squat.ai/key'], /^[A-Za-z0-9+/]{43}=$/);
  const sel = (await k(['get', 'nodes', '-l', 'topology.kubernetes.io/region=loc-000', '-o', 'name'])).stdout.trim().split('\n');
  assert.equal(sel.length, 25);
  const one = (await k(['get', 'nodes', '--field-selector', 'metadata.name=node-00007', '-o', 'name'])).stdout.trim();
  assert.equal(one, 'node/node-00007');
  const peers = (await k(['get', 'peers.kilo.squat.ai', '-o', 'name'])).stdout.trim().split('\n');
  assert.deepEqual(peers, ['peer.kilo.squat.ai/peer-00000', 'peer.kilo.squat.ai/peer-00001', 'peer.kilo.squat.ai/peer-00002']);
  const res = (await k(['api-resources', '--api-group=kilo.squat.ai'])).stdout;
  assert.match(res, /peers\s+kilo\.squat\.ai\/v1alpha1\s+false\s+Peer/);
  // Pagination through kubectl's own chunking (--chunk-size) returns every node once.
  const chunked = (await k(['get', 'nodes', '--chunk-size=7', '-o', 'name'])).stdout.trim().split('\n');
  assert.equal(new Set(chunked).size, 25);
});

test('kubectl: apply the Peer CRD and a whole DaemonSet manifest (validation on), re-apply, delete', async (t) => {
  const srv = await startApiServer({ https: true, loadCrds: false });
  const k = kubectlFor(srv);
  t.after(async () => {
    k.cleanup();
    await srv.stop();
  });
  await assert.rejects(k(['get', 'peers']), /doesn't have a resource type|the server could not find/);
  assert.match((await k(['apply', '-f', CRDS])).stdout, /customresourcedefinition.apiextensions.k8s.io\/peers.kilo.squat.ai created/);
  // The Peer API now comes from the CRD that was just applied.
  const peer = { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'laptop' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: 'GY5aT1N9dTR/nJnT1N2f4ClZWVj0jOAld0r8ysWLyjg=' } };
  assert.match((await k(['apply', '-f', '-'], { input: JSON.stringify(peer) })).stdout, /peer.kilo.squat.ai\/laptop created/);
  const out = (await k(['apply', '-f', DS])).stdout;
  for (const r of ['serviceaccount/kilo', 'clusterrole.rbac.authorization.k8s.io/kilo', 'clusterrolebinding.rbac.authorization.k8s.io/kilo', 'configmap/kilo', 'daemonset.apps/kilo']) {
    assert.match(out, new RegExp(`${r.replace(/\./g, '\\.')} created`));
  }
  const changed = readFileSync(DS, 'utf8').replace('squat/kilo:0.6.0', 'squat/kilo:0.6.1');
  const again = (await k(['apply', '-f', '-'], { input: changed })).stdout;
  assert.match(again, /daemonset.apps\/kilo configured/);
  assert.match(again, /configmap\/kilo unchanged/);
  const ds = JSON.parse((await k(['get', 'daemonset', '-n', 'kube-system', 'kilo', '-o', 'json'])).stdout);
  assert.equal(ds.spec.template.spec.containers[0].image, 'squat/kilo:0.6.1');
  assert.equal(ds.spec.template.spec.containers[0].env[0].name, 'NODE_NAME', 'strategic merge kept the rest of the container');
  assert.equal(ds.metadata.generation, 2);
  assert.ok(ds.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration']);
  await k(['delete', '-f', DS]);
  assert.equal(srv.store.list(srv.store.type('apps', 'v1', 'daemonsets')).items.length, 0);
  await k(['delete', '-f', CRDS]);
  assert.throws(() => srv.store.type('kilo.squat.ai', 'v1alpha1', 'peers'));
});

test('kubectl: annotate, label, patch (strategic, merge, json) and delete', async (t) => {
  const srv = await startApiServer({ https: true, nodes: generateNodes({ count: 3 }), peers: generatePeers({ count: 2 }) });
  const k = kubectlFor(srv);
  t.after(async () => {
    k.cleanup();
    await srv.stop();
  });
  const nodes = srv.store.nodes();
  await k(['annotate', 'node', 'node-00001', 'kilo.squat.ai/leader=true']);
  await k(['label', 'node', 'node-00001', 'env=prod']);
  let n = srv.store.get(nodes, undefined, 'node-00001').obj;
  assert.equal(n.metadata.annotations!['kilo.squat.ai/leader'], 'true');
  assert.equal(n.metadata.labels!.env, 'prod');
  await k(['annotate', 'node', 'node-00001', 'kilo.squat.ai/leader-']);
  await k(['patch', 'node', 'node-00001', '-p', '{"spec":{"taints":[{"key":"k","effect":"NoSchedule"}]}}']);
  await k(['patch', 'node', 'node-00001', '--type=merge', '-p', '{"metadata":{"labels":{"env":null}}}']);
  await k(['patch', 'node', 'node-00001', '--type=json', '-p', '[{"op":"replace","path":"/spec/podCIDR","value":"10.99.0.0/24"}]']);
  n = srv.store.get(nodes, undefined, 'node-00001').obj;
  assert.equal(n.metadata.annotations!['kilo.squat.ai/leader'], undefined);
  assert.equal(n.metadata.labels!.env, undefined);
  assert.deepEqual((n.spec as any).taints, [{ key: 'k', effect: 'NoSchedule' }]);
  assert.equal((n.spec as any).podCIDR, '10.99.0.0/24');
  await k(['patch', 'peer', 'peer-00001', '--type=merge', '-p', '{"spec":{"persistentKeepalive":7}}']);
  assert.equal((srv.store.get(srv.store.type('kilo.squat.ai', 'v1alpha1', 'peers'), undefined, 'peer-00001').obj.spec as any).persistentKeepalive, 7);
  // A JSON patch whose remove path is missing fails as a whole, as kg's clean-up patch relies on.
  await assert.rejects(k(['patch', 'node', 'node-00002', '--type=json', '-p', '[{"op":"remove","path":"/metadata/annotations/nope"}]']), /invalid|missing/i);
  await k(['delete', 'node', 'node-00002']);
  await k(['delete', 'peer', 'peer-00000']);
  assert.equal(srv.store.tryGet(nodes, undefined, 'node-00002'), undefined);
  await assert.rejects(k(['get', 'node', 'node-00002']), /NotFound|not found/);
});

test('kubectl: get -w shows ADDED, MODIFIED and DELETED as they happen', async (t) => {
  const srv = await startApiServer({ https: true, peers: generatePeers({ count: 2 }) });
  const k = kubectlFor(srv);
  const child = spawn(kubectlPath(), [`--kubeconfig=${k.kubeconfig}`, 'get', 'peers', '-w', '--output-watch-events', '-o', 'jsonpath={.type} {.object.metadata.name}{"\\n"}'], {
    env: { ...process.env, HOME: k.dir },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
  t.after(async () => {
    clearTimeout(timer);
    child.kill('SIGKILL');
    k.cleanup();
    await srv.stop();
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const lines = () => out.trim().split('\n').filter(Boolean);
  await waitFor('initial ADDED events', () => lines().length >= 2);
  const peers = srv.store.type('kilo.squat.ai', 'v1alpha1', 'peers');
  srv.store.patchAnnotations(peers, undefined, 'peer-00001', { x: '1' });
  srv.store.create(peers, generatePeers({ count: 1, namePrefix: 'new' })[0]);
  srv.store.delete(peers, undefined, 'peer-00000');
  await waitFor('watch events', () => lines().length >= 5);
  assert.deepEqual(lines(), ['ADDED peer-00000', 'ADDED peer-00001', 'MODIFIED peer-00001', 'ADDED new-00000', 'DELETED peer-00000']);
});

test('kubectl: client-certificate kubeconfig works, a wrong token is 401', async (t) => {
  const srv = await startApiServer({ https: true, nodes: generateNodes({ count: 1 }) });
  const cfg = parse(srv.kubeconfig);
  delete cfg.users[0].user.token;
  const certOnly = kubectlFor(srv, JSON.stringify(cfg));
  delete cfg.users[0].user['client-certificate-data'];
  delete cfg.users[0].user['client-key-data'];
  // (With no credentials at all kubectl prompts for a username, so use a wrong token.)
  cfg.users[0].user.token = 'wrong';
  const anonymous = kubectlFor(srv, JSON.stringify(cfg));
  t.after(async () => {
    certOnly.cleanup();
    anonymous.cleanup();
    await srv.stop();
  });
  assert.equal((await certOnly(['get', 'nodes', '-o', 'name'])).stdout.trim(), 'node/node-00000');
  await assert.rejects(anonymous(['get', 'nodes']), /Unauthorized|must be logged in/);
});
