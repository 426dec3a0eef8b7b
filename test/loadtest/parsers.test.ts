// The load test's small parsers: `ip monitor route` lines, Prometheus text, percentiles.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { parseMonitorLine } from '../../loadtest/mesh/monitor.js';
import { parseMetrics, percentile } from '../../loadtest/metrics.js';

test('ip monitor route lines: additions, deletions, host routes; other lines ignored', () => {
  assert.deepEqual(parseMonitorLine('10.64.3.0/24 via 10.4.0.2 dev kilo0 proto static src 192.168.77.11 onlink ', 1), { at: 1, kind: 'add', dst: '10.64.3.0/24' });
  assert.deepEqual(parseMonitorLine('Deleted 10.64.3.0/24 via 10.4.0.2 dev kilo0 proto static onlink ', 2), { at: 2, kind: 'del', dst: '10.64.3.0/24' });
  assert.deepEqual(parseMonitorLine('10.6.0.1 dev kilo0 proto static scope link src 192.168.77.11 ', 3), { at: 3, kind: 'add', dst: '10.6.0.1/32' });
  assert.equal(parseMonitorLine('local 10.4.0.1 dev kilo0 table local proto kernel scope host src 10.4.0.1 ', 4), null);
  assert.equal(parseMonitorLine('fd00::/64 dev kilo0 proto static', 5), null);
  assert.equal(parseMonitorLine('', 6), null);
  // `ip -ts`: the kernel-side time wins over the arrival time (local time, microseconds).
  const at = new Date('2026-12-07T01:21:09').getTime() + 443.183;
  assert.deepEqual(parseMonitorLine('[2026-12-07T01:21:09.443183] Deleted 10.9.9.9 dev lo proto 107 scope link ', 7), { at, kind: 'del', dst: '10.9.9.9/32' });
  assert.equal(parseMonitorLine('[2026-12-07T01:21:09.443183] local ::1 dev lo table local proto kernel metric 0 pref medium', 8), null);
});

test('Prometheus text and percentiles', () => {
  const m = parseMetrics('# HELP x y\n# TYPE x counter\nkg_plans_total{result="ok"} 12\nkg_plans_total{result="error"} 1\nbad line\nkilo_nodes 5000\n');
  assert.equal(m.get('kg_plans_total{result="ok"}'), 12);
  assert.equal(m.get('kilo_nodes'), 5000);
  assert.equal(m.size, 3);
  assert.equal(percentile([], 99), null);
  assert.equal(percentile([5, 1, 3, 2, 4], 50), 3);
  assert.equal(percentile(Array.from({ length: 100 }, (_, i) => i + 1), 99), 99);
  assert.equal(percentile([7], 99), 7);
});
