// Heartbeat modes (plan/heartbeat.ts): the period each mode picks, the readiness window readers
// derive from an advertised period, and the API-server load arithmetic.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CHECK_IN_PERIOD_ANNOTATION, MAX_CHECK_IN_SECONDS, checkInPeriodSeconds, heartbeatLoad, nextAdvertised, periodChanged, readyWindowSeconds,
  type HeartbeatPolicy,
} from '../../plan/heartbeat.js';
import { nodeReady, parseNode } from '../../plan/node.js';
import { key, nodeObj, NOW } from './fixture.js';

const kilo: HeartbeatPolicy = { mode: 'kilo', minPeriodSeconds: 30, budget: 15 };
const adaptive: HeartbeatPolicy = { mode: 'adaptive', minPeriodSeconds: 30, budget: 15 };

test('check-in period: kilo is fixed; adaptive grows with the cluster between the minimum and the cap', () => {
  assert.deepEqual([10, 5000, 100_000].map((n) => checkInPeriodSeconds(kilo, n)), [30, 30, 30]);
  assert.equal(checkInPeriodSeconds(adaptive, 10), 30, 'small clusters keep the minimum');
  assert.equal(checkInPeriodSeconds(adaptive, 450), 30);
  assert.equal(checkInPeriodSeconds(adaptive, 451), 31);
  assert.equal(checkInPeriodSeconds(adaptive, 5000), 334, '5,000 nodes / 15 writes/s');
  assert.equal(checkInPeriodSeconds(adaptive, 100_000), MAX_CHECK_IN_SECONDS, 'capped');
  assert.equal(checkInPeriodSeconds({ ...adaptive, minPeriodSeconds: 2, budget: 0.5 }, 5), 10);
});

test('an advertised period is re-published only when it moves by more than 10 %', () => {
  assert.equal(periodChanged(0, 30), false, 'Kilo’s own period needs no annotation');
  assert.equal(periodChanged(0, 31), true);
  assert.equal(periodChanged(300, 330), false);
  assert.equal(periodChanged(300, 331), true);
  assert.equal(periodChanged(300, 269), true);
  // What a node advertises next: nothing in kilo mode or at Kilo's own period; sticky within 10 %.
  assert.equal(nextAdvertised(kilo, 0, 5000), 0);
  assert.equal(nextAdvertised(kilo, 334, 5000), 0, 'back in kilo mode the annotation goes');
  assert.equal(nextAdvertised(adaptive, 0, 10), 0);
  assert.equal(nextAdvertised(adaptive, 0, 5000), 334);
  assert.equal(nextAdvertised(adaptive, 334, 5200), 334, '347 s is within 10 %');
  assert.equal(nextAdvertised(adaptive, 334, 6000), 400);
});

test('readiness window: Kilo’s 60 s unless a longer period is advertised; bad values never shorten it', () => {
  assert.equal(readyWindowSeconds(undefined), 60);
  assert.equal(readyWindowSeconds('300'), 600);
  assert.equal(readyWindowSeconds('10'), 60, 'never below Kilo’s window');
  for (const bad of ['-5', '1e3', '', ' 300', '3000000']) assert.equal(readyWindowSeconds(bad), 60, bad);
  assert.equal(readyWindowSeconds('5000'), 2 * MAX_CHECK_IN_SECONDS, 'capped');
});

test('a node’s readiness follows its advertised window; a malformed period is a warning', () => {
  const ann = { 'kilo.squat.ai/endpoint': '10.0.0.1:51820', 'kilo.squat.ai/key': key(1), 'kilo.squat.ai/last-seen': String(NOW - 200) };
  assert.equal(nodeReady(parseNode(nodeObj('x', ann, '10.2.0.0/24')).value, NOW), false, '200 s old, Kilo window');
  const adv = parseNode(nodeObj('x', { ...ann, [CHECK_IN_PERIOD_ANNOTATION]: '300' }, '10.2.0.0/24'));
  assert.deepEqual([nodeReady(adv.value, NOW), adv.warnings], [true, []]);
  assert.equal(nodeReady(adv.value, NOW + 399), true);
  assert.equal(nodeReady(adv.value, NOW + 400), false, 'strictly less than the window');
  const bad = parseNode(nodeObj('x', { ...ann, [CHECK_IN_PERIOD_ANNOTATION]: 'soon' }, '10.2.0.0/24'));
  assert.deepEqual([nodeReady(bad.value, NOW), bad.warnings], [false, ['node x: kilo.squat.ai/check-in-period: invalid period (whole seconds) "soon"']]);
});

test('API load at 5,000 nodes: adaptive writes ≥ 10× less than kilo', () => {
  const k = heartbeatLoad(kilo, 5000, 5000, 2000);
  const a = heartbeatLoad(adaptive, 5000, 5000, 2000);
  assert.ok(Math.abs(k.writesPerSecond - 5000 / 30) < 1e-9);
  assert.equal(k.watchEventsPerSecond, k.writesPerSecond * 5000);
  assert.equal(k.watchBytesPerSecond, k.watchEventsPerSecond * 2000);
  assert.ok(k.writesPerSecond / a.writesPerSecond >= 10, `${k.writesPerSecond / a.writesPerSecond}×`);
  assert.deepEqual([k.detectionSeconds, a.detectionSeconds], [60, 668]);
});
