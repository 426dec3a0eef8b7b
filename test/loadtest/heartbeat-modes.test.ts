// The simulator's heartbeat driver in both modes: Kilo's 30 s period with Go-identical objects,
// and the adaptive period for the cluster's size with kilo.squat.ai/check-in-period advertised.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Store } from '../../loadtest/apiserver/index.js';
import { checkInAnnotations, modeHeartbeats } from '../../loadtest/apiserver/heartbeat.js';
import { CHECK_IN_PERIOD_ANNOTATION, type HeartbeatPolicy } from '../../plan/heartbeat.js';

const kilo: HeartbeatPolicy = { mode: 'kilo', minPeriodSeconds: 30, budget: 15 };
const adaptive: HeartbeatPolicy = { mode: 'adaptive', minPeriodSeconds: 30, budget: 15 };

function storeWith(n: number): { store: Store; names: string[] } {
  const store = new Store();
  const names = Array.from({ length: n }, (_, i) => `node-${i}`);
  for (const name of names) store.create(store.nodes(), { apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: { 'kilo.squat.ai/last-seen': '1' } } });
  return { store, names };
}

test('heartbeat modes: periods at 5,000 nodes, and the annotation only in adaptive mode', () => {
  const { store, names } = storeWith(1);
  const k = modeHeartbeats(store, { names, policy: kilo, nodeCount: 5000 });
  const a = modeHeartbeats(store, { names, policy: adaptive, nodeCount: 5000 });
  void k.stop();
  void a.stop();
  assert.equal(k.periodSeconds, 30);
  // 5,000 nodes under a budget of 15 writes/s: a 334 s period, 11.1× fewer writes than Kilo's.
  assert.equal(a.periodSeconds, 334);
  assert.ok(5000 / k.periodSeconds / (5000 / a.periodSeconds) >= 10);
  assert.deepEqual(checkInAnnotations(kilo, 5000), {});
  assert.deepEqual(checkInAnnotations(adaptive, 5000), { [CHECK_IN_PERIOD_ANNOTATION]: '334' });
});

test('heartbeat modes: a round patches last-seen (and the advertised period), skipping stopped nodes', async () => {
  const { store, names } = storeWith(20);
  const skip = new Set(['node-3']);
  const w0 = store.counters.writes;
  const hb = modeHeartbeats(store, { names, policy: adaptive, nodeCount: 5000, periodSeconds: 0.2, rounds: 1, tickMs: 5, skip });
  const end = Date.now() + 5000;
  while (hb.sent() < 19 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await hb.stop();
  assert.equal(hb.sent(), 19);
  assert.equal(store.counters.writes - w0, 19);
  for (const name of names) {
    const ann = store.get(store.nodes(), undefined, name).obj.metadata.annotations!;
    if (name === 'node-3') {
      assert.equal(ann['kilo.squat.ai/last-seen'], '1');
      assert.equal(ann[CHECK_IN_PERIOD_ANNOTATION], undefined);
    } else {
      assert.ok(Number(ann['kilo.squat.ai/last-seen']) > 1_700_000_000);
      assert.equal(ann[CHECK_IN_PERIOD_ANNOTATION], '334');
    }
  }
  // Back to Kilo's mode: the annotation goes (null deletes it in a merge patch).
  const back = modeHeartbeats(store, { names: ['node-0'], policy: kilo, periodSeconds: 0.1, rounds: 1, tickMs: 5, annotations: { [CHECK_IN_PERIOD_ANNOTATION]: null } });
  while (back.sent() < 1 && Date.now() < end + 5000) await new Promise((r) => setTimeout(r, 20));
  await back.stop();
  assert.equal(store.get(store.nodes(), undefined, 'node-0').obj.metadata.annotations![CHECK_IN_PERIOD_ANNOTATION], undefined);
});
