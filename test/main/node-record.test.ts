// The main thread reads a Node's readiness fields without the full parse; they must be what the
// planner's parseNode gives, whatever the annotations hold.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readinessOf, lastSeenOf } from '../../main/agent/node-record.js';
import { parseNode, type NodeObject } from '../../plan/node.js';
import { endpointReady } from '../../plan/endpoint.js';
import { exampleNodes } from '../plan/example.js';

const KEY = Buffer.alloc(32, 3).toString('base64');

/** The oracle: what the agent computed before, from a full parse. */
function fromParse(o: NodeObject) {
  const n = parseNode(o).value;
  return { lastSeen: n.lastSeen, window: n.readyWindow, static: endpointReady(n.endpoint) && n.key !== null && n.subnet !== null, dns: n.endpoint?.dns ?? '' };
}

const variants: Record<string, string | undefined>[] = [
  {},
  { 'kilo.squat.ai/endpoint': '192.0.2.1:51820', 'kilo.squat.ai/key': KEY, 'kilo.squat.ai/last-seen': '1700000000' },
  { 'kilo.squat.ai/endpoint': 'host.example.com:51820', 'kilo.squat.ai/key': KEY },
  { 'kilo.squat.ai/force-endpoint': 'bad', 'kilo.squat.ai/endpoint': '192.0.2.1:51820', 'kilo.squat.ai/key': KEY },
  { 'kilo.squat.ai/force-endpoint': '198.51.100.1:1', 'kilo.squat.ai/endpoint': 'bad', 'kilo.squat.ai/key': KEY },
  { 'kilo.squat.ai/force-endpoint': '', 'kilo.squat.ai/endpoint': 'x.example.com:2', 'kilo.squat.ai/key': KEY },
  { 'kilo.squat.ai/endpoint': '192.0.2.1:0', 'kilo.squat.ai/key': KEY },
  { 'kilo.squat.ai/endpoint': '[2001:db8::1]:51820', 'kilo.squat.ai/key': 'short' },
  { 'kilo.squat.ai/endpoint': '127.1:51820', 'kilo.squat.ai/key': '' },
  { 'kilo.squat.ai/last-seen': 'soon', 'kilo.squat.ai/check-in-period': '90' },
  { 'kilo.squat.ai/last-seen': '-5', 'kilo.squat.ai/check-in-period': '9' },
  { 'kilo.squat.ai/last-seen': '99999999999999999999', 'kilo.squat.ai/check-in-period': '1e3' },
  { 'kilo.squat.ai/check-in-period': '999999' },
];
const podCIDRs = ['10.2.0.0/24', '10.2.0.1/24', '', 'nonsense', 'fd00::/64'];

test('readinessOf: the readiness fields parseNode gives, for every combination tried', () => {
  let n = 0;
  for (const v of variants) {
    for (const podCIDR of podCIDRs) {
      const ann = Object.fromEntries(Object.entries(v).filter(([, x]) => x !== undefined)) as Record<string, string>;
      const o: NodeObject = { metadata: { name: 'n', annotations: ann, labels: {} }, spec: { podCIDR } };
      assert.deepEqual(readinessOf(o), fromParse(o), JSON.stringify(o));
      assert.equal(lastSeenOf(o), fromParse(o).lastSeen);
      n++;
    }
  }
  for (const o of exampleNodes()) assert.deepEqual(readinessOf(o), fromParse(o));
  // Raw objects too (slim records hold strings only, but nothing here relies on it).
  const odd = { metadata: { name: 'n', annotations: { 'kilo.squat.ai/key': 5, 'kilo.squat.ai/endpoint': {} } }, spec: { podCIDR: 7 } } as never;
  assert.deepEqual(readinessOf(odd), fromParse(odd));
  assert.ok(n > 60);
  assert.ok(variants.some((v) => readinessOf({ metadata: { annotations: v as Record<string, string> }, spec: { podCIDR: '10.2.0.0/24' } }).static), 'some are ready');
});
