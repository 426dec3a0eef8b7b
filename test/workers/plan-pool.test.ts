// The planner pool: replicas fed by deltas give the same plans as planning in-thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCluster, plan } from '../../plan/plan.js';
import { PlanPool } from '../../workers/plan-pool.js';
import { exampleNodes, examplePeers } from '../plan/example.js';
import { options, NOW, planFor } from '../plan/fixture.js';
import { topologyDOT } from '../../plan/graph.js';

test('plan pool: replicas fed by deltas plan like the planner itself', async (t) => {
  const pool = new PlanPool({ threads: 2, topologyLabel: 'topology.kubernetes.io/region' });
  t.after(() => pool.close());
  const nodes = exampleNodes();
  for (const n of nodes) pool.setNode(n.metadata!.name!, n);
  for (const p of examplePeers()) pool.setPeer(p.metadata!.name!, p);
  const direct = () => plan(parseCluster(nodes, examplePeers(), 'topology.kubernetes.io/region'), options('alpha', { encapsulate: 'always', local: true })).json;
  // Several tasks in parallel reach both workers.
  const answers = await Promise.all([0, 1, 2, 3].map(() => pool.plan({ options: options('alpha', { encapsulate: 'always', local: true }), describe: true })));
  for (const a of answers) {
    assert.ok(a.ok, JSON.stringify(a));
    assert.deepEqual(JSON.parse(a.plan!), direct());
  }
  const coldSnapshots = pool.stats.snapshots;
  // A delta: charlie moves to east (a new topology), bravo heartbeats only.
  nodes[2] = { ...nodes[2], metadata: { ...nodes[2].metadata!, labels: { 'topology.kubernetes.io/region': 'east' } } };
  pool.setNode('charlie', nodes[2]);
  nodes[1].metadata!.annotations!['kilo.squat.ai/last-seen'] = String(NOW + 3);
  pool.setLastSeen('bravo', NOW + 3, nodes[1]);
  const again = await Promise.all([0, 1, 2].map(() => pool.plan({ options: options('alpha', { encapsulate: 'always', local: true }), describe: true })));
  for (const a of again) {
    assert.ok(a.ok);
    assert.deepEqual(JSON.parse(a.plan!), direct());
    assert.deepEqual(JSON.parse(a.plan!).segments.map((s: { hostnames: string[] }) => s.hostnames), [['alpha', 'bravo', 'charlie'], ['delta']]);
  }
  // A delete and a re-add between two plans arrive as the re-add.
  pool.deleteNode('bravo');
  pool.setNode('bravo', nodes[1]);
  const readd = await pool.plan({ options: options('alpha'), describe: true });
  assert.ok(readd.ok);
  assert.ok(JSON.parse(readd.plan!).nodes.some((n: { name: string }) => n.name === 'bravo'));
  // Deletes reach the replicas too.
  pool.deleteNode('delta');
  nodes.pop();
  const del = await pool.plan({ options: options('alpha'), describe: true });
  assert.ok(del.ok);
  assert.deepEqual(JSON.parse(del.plan!).nodes.map((n: { name: string }) => n.name), ['alpha', 'bravo', 'charlie']);
  // Deltas do the work: a worker needs a snapshot only before its first replica (cold tasks in
  // parallel, or a worker that got no task yet), never again once it follows the deltas.
  assert.equal(pool.stats.deltas, 4);
  assert.ok(pool.stats.snapshots - coldSnapshots <= pool.threads, `snapshots after the cold start: ${pool.stats.snapshots - coldSnapshots}`);
  const warm = pool.stats.snapshots;
  for (let i = 0; i < 3; i++) {
    nodes[0].metadata!.annotations!['kilo.squat.ai/last-seen'] = String(NOW + 10 + i);
    pool.setLastSeen('alpha', NOW + 10 + i, nodes[0]);
    const batch = await Promise.all([0, 1, 2, 3].map(() => pool.plan({ options: options('alpha') })));
    assert.ok(batch.every((a) => a.ok));
  }
  assert.ok(pool.stats.snapshots - warm <= pool.threads);
  assert.equal(pool.stats.deltas, 7);
});

test('plan pool: the desired dataplane state carries the secrets the plan JSON redacts', async (t) => {
  const pool = new PlanPool({ threads: 1, topologyLabel: 'topology.kubernetes.io/region' });
  t.after(() => pool.close());
  for (const n of exampleNodes()) pool.setNode(n.metadata!.name!, n);
  const key = Buffer.alloc(32, 77).toString('base64');
  const a = await pool.plan({ options: options('alpha', { encapsulate: 'always', local: true }), privateKey: key, desired: { cniPath: '/tmp/x.conflist', tunnelPrivIface: 'eth0', baseSeq: null } });
  assert.ok(a.ok);
  assert.ok(a.full && a.seq !== undefined && !a.delta, 'no base: the whole state');
  const d = JSON.parse(a.full!);
  assert.equal(d.wireguard.privateKey, key);
  assert.equal(d.wireguard.address, '10.4.0.1/16');
  assert.deepEqual(d.tunnel, { dev: 'tunl0', address: '10.42.0.1/32', privIface: 'eth0' });
  assert.deepEqual(d.cni, { path: '/tmp/x.conflist', podCIDR: '10.42.0.0/24' });
  assert.equal(a.summary.leader, true);
  assert.equal(a.summary.natCandidates, 0, 'no keepalive node, no Peer: nothing NAT discovery could find');
  // With the base the I/O worker holds: nothing changed → noop; one change → a delta of that change.
  const same = await pool.plan({ options: options('alpha', { encapsulate: 'always', local: true }), privateKey: key, desired: { cniPath: '/tmp/x.conflist', tunnelPrivIface: 'eth0', baseSeq: a.seq! } });
  assert.ok(same.ok && same.noop && same.seq === a.seq);
  const delta = exampleNodes()[2];
  delta.metadata!.annotations!['kilo.squat.ai/allowed-location-ips'] = '172.16.77.0/24';
  pool.setNode('charlie', delta);
  const b = await pool.plan({ options: options('alpha', { encapsulate: 'always', local: true }), privateKey: key, desired: { cniPath: '/tmp/x.conflist', tunnelPrivIface: 'eth0', baseSeq: a.seq! } });
  assert.ok(b.ok && b.delta && b.seq === a.seq! + 1);
  assert.equal(b.delta.base, a.seq);
  assert.deepEqual(b.delta.routes!.items.map((r) => r.dst), ['172.16.77.0/24']);
  assert.equal(b.delta.peers!.items.length, 1, 'only charlie\'s segment peer changes');
  assert.equal(b.delta.prepend, null);
  // A stale base (the I/O worker holds something else): the whole state again.
  const c = await pool.plan({ options: options('alpha', { encapsulate: 'always', local: true }), privateKey: key, desired: { cniPath: '/tmp/x.conflist', tunnelPrivIface: 'eth0', baseSeq: 12345 } });
  assert.ok(c.ok && c.full);
  const missing = await pool.plan({ options: options('zulu') });
  assert.deepEqual(missing, { ok: false, error: 'node "zulu" is not in the cluster' });
});

test('plan pool: NAT discovery candidates are the ready keepalive nodes and the ready Peers (§6.7)', async (t) => {
  const pool = new PlanPool({ threads: 1, topologyLabel: 'topology.kubernetes.io/region' });
  t.after(() => pool.close());
  const nodes = exampleNodes();
  nodes[1].metadata!.annotations!['kilo.squat.ai/persistent-keepalive'] = '25';
  for (const n of nodes) pool.setNode(n.metadata!.name!, n);
  const peers = examplePeers();
  for (const p of peers) pool.setPeer(p.metadata!.name!, p);
  const a = await pool.plan({ options: options('alpha') });
  assert.ok(a.ok);
  const c = parseCluster(nodes, peers, 'topology.kubernetes.io/region');
  assert.ok(c.peers.length > 0);
  assert.equal(a.summary.natCandidates, 1 + c.peers.length);
  // Without them the agent need not read the device.
  nodes[1].metadata!.annotations!['kilo.squat.ai/persistent-keepalive'] = '0';
  pool.setNode(nodes[1].metadata!.name!, nodes[1]);
  for (const p of peers) pool.deletePeer(p.metadata!.name!);
  const b = await pool.plan({ options: options('alpha') });
  assert.ok(b.ok);
  assert.equal(b.summary.natCandidates, 0);
});

test('plan pool: /graph tasks give the DOT of the replica, bounded, without a plan', async (t) => {
  const pool = new PlanPool({ threads: 1, topologyLabel: 'topology.kubernetes.io/region' });
  t.after(() => pool.close());
  for (const n of exampleNodes()) pool.setNode(n.metadata!.name!, n);
  for (const p of examplePeers()) pool.setPeer(p.metadata!.name!, p);
  assert.equal(pool.changes, 5, 'every record set counts as a change of the view');
  pool.setLastSeen('alpha', NOW + 1, exampleNodes()[0]);
  assert.equal(pool.changes, 5, 'a heartbeat does not');
  const want = topologyDOT(planFor(exampleNodes(), examplePeers(), 'alpha').topology!);
  assert.deepEqual(await pool.graph({ options: options('alpha'), maxLength: 1 << 20 }), { ok: true, dot: want });
  assert.deepEqual(await pool.graph({ options: options('alpha'), maxLength: 100 }), { ok: false, error: 'the graph is too large: its DOT text would exceed 100 characters', tooLarge: true });
  assert.deepEqual(await pool.graph({ options: { ...options('alpha'), now: NOW + 3600 }, maxLength: 1 << 20 }), { ok: true, dot: null }, 'no graph while the local node is not ready');
});

test('plan pool: a remote node\'s edit is re-planned incrementally through the pool (its deltas repeat the label and claims)', async (t) => {
  const pool = new PlanPool({ threads: 1, topologyLabel: 'topology.kubernetes.io/region' });
  t.after(() => pool.close());
  const nodes = exampleNodes();
  for (const n of nodes) pool.setNode(n.metadata!.name!, n);
  const o = options('alpha', { encapsulate: 'always', local: true });
  const desired = (baseSeq: number | null) => ({ cniPath: '/tmp/x.conflist', tunnelPrivIface: 'eth0', baseSeq });
  const a = await pool.plan({ options: o, desired: desired(null) });
  assert.ok(a.ok);
  assert.deepEqual(a.replan, { incremental: false, reason: 'replica reset' });
  // delta is a location of its own: an edit there touches one remote segment.
  const remote = nodes[3];
  assert.equal(remote.metadata!.name, 'delta');
  remote.metadata!.annotations!['kilo.squat.ai/allowed-location-ips'] = '172.16.78.0/24';
  pool.setNode('delta', remote);
  const b = await pool.plan({ options: o, desired: desired(a.seq!) });
  assert.ok(b.ok && b.delta);
  assert.deepEqual(b.replan, { incremental: true });
  assert.deepEqual(b.delta.routes!.items.map((r) => r.dst), ['172.16.78.0/24']);
  // A Peer change is outside the incremental path: a full plan, with its reason.
  for (const p of examplePeers()) pool.setPeer(p.metadata!.name!, p);
  const c = await pool.plan({ options: o, desired: desired(b.seq!) });
  assert.ok(c.ok);
  assert.deepEqual(c.replan, { incremental: false, reason: 'replica reset' });
});
