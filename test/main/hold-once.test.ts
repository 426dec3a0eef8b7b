// Each Node held once on the main thread: the planner pool takes its snapshots from the records
// the caller holds (holdNodesIn) and keeps no copy; replicas still plan like the planner itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseCluster, plan } from '../../plan/plan.js';
import type { NodeObject } from '../../plan/node.js';
import { PlanPool } from '../../workers/plan-pool.js';
import { exampleNodes, examplePeers } from '../plan/example.js';
import { options } from '../plan/fixture.js';

test('plan pool holding no nodes: snapshots come from the caller\'s records, deltas as before', async (t) => {
  const pool = new PlanPool({ threads: 2, topologyLabel: 'topology.kubernetes.io/region' });
  t.after(() => pool.close());
  const held = new Map<string, NodeObject>(exampleNodes().map((n) => [n.metadata!.name!, n]));
  pool.holdNodesIn(() => held.values());
  for (const p of examplePeers()) pool.setPeer(p.metadata!.name!, p);
  const direct = () => plan(parseCluster([...held.values()], examplePeers(), 'topology.kubernetes.io/region'), options('alpha')).json;
  // Nothing went through setNode: cold workers get every node from the snapshot.
  const cold = await Promise.all([0, 1, 2, 3].map(() => pool.plan({ options: options('alpha'), describe: true })));
  for (const a of cold) {
    assert.ok(a.ok, JSON.stringify(a));
    assert.deepEqual(JSON.parse(a.plan!), direct());
  }
  assert.ok(pool.stats.snapshots >= 1);
  // A change goes out as a delta; the caller's record is the only copy.
  const charlie = held.get('charlie')!;
  const moved = { ...charlie, metadata: { ...charlie.metadata!, labels: { 'topology.kubernetes.io/region': 'east' } } };
  held.set('charlie', moved);
  pool.setNode('charlie', moved);
  held.delete('delta');
  pool.deleteNode('delta');
  const warm = await Promise.all([0, 1, 2, 3].map(() => pool.plan({ options: options('alpha'), describe: true })));
  for (const a of warm) {
    assert.ok(a.ok);
    assert.deepEqual(JSON.parse(a.plan!), direct());
    assert.deepEqual(JSON.parse(a.plan!).nodes.map((n: { name: string }) => n.name), ['alpha', 'bravo', 'charlie']);
  }
  assert.equal((Reflect.get(pool, 'nodes') as Map<string, unknown>).size, 0, 'the pool keeps no copy of the nodes');
});
