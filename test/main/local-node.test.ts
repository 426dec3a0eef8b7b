// The local node in-process: a fake API client records the PATCHes, timers and clocks are the
// test's. What is published on an event, on a check-in, after a failed one, and at clean-up.
import { afterEach, beforeEach, mock, test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalNode } from '../../main/agent/local-node.js';
import { createMetrics } from '../../main/agent/metrics.js';
import { silentLogger } from '../../main/log.js';
import { AGENT_FLAGS, parseFlags, toConfig } from '../../main/flags.js';
import { parseCIDR } from '../../plan/addr.js';
import type { NodeObject } from '../../plan/node.js';
import { KubeError } from '../../watch/kube-error.js';
import { FakePool } from './fake-pool.js';

const KEY = Buffer.alloc(32, 9).toString('base64');
const T0 = 1_700_000_000;

beforeEach(() => mock.timers.enable({ apis: ['setTimeout', 'setInterval'] }));
afterEach(() => mock.timers.reset());

const settle = async () => {
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
};

function setup(flags: string[] = [], readCniCompatibilityIP?: () => Promise<ReturnType<typeof parseCIDR>>) {
  const clock = { s: T0 };
  const patches: { body: unknown; contentType?: string }[] = [];
  const fail: Error[] = [];
  const client = {
    request: async (_m: string, _p: string, o?: { body?: unknown; contentType?: string }) => {
      const f = fail.shift();
      if (f) throw f;
      patches.push({ body: o?.body, contentType: o?.contentType });
      return {};
    },
  };
  const pool = new FakePool();
  const reasons: string[] = [];
  const metrics = createMetrics();
  const config = toConfig(parseFlags(['--hostname', 'self', '--check-in-period', '30s', ...flags], AGENT_FLAGS).values);
  const local = new LocalNode({
    config, log: silentLogger, client: client as never, metrics, pool,
    host: { privateIP: parseCIDR('10.0.0.5/24'), publicIP: parseCIDR('203.0.113.7/24'), privateIface: 'eth0', defaultIface: 'eth0', autoMTU: 1420 },
    publicKey: KEY, checkInPeriodMs: 30_000, now: () => clock.s, clusterSize: () => 1, schedule: (r) => reasons.push(r), readCniCompatibilityIP,
  });
  const self = (ann: Record<string, string> = {}): NodeObject => ({ metadata: { name: 'self', annotations: ann, labels: {} }, spec: { podCIDR: '10.2.0.0/24' } });
  const heartbeats = async () => Object.fromEntries((await metrics.heartbeats.get()).values.map((v) => [v.labels.result, v.value]));
  return { clock, patches, fail, pool, reasons, local, self, heartbeats };
}

const annotations = (p: { body: unknown }) => (p.body as { metadata: { annotations: Record<string, string | null> } }).metadata.annotations;

test('local node: an event publishes what differs, once; the same annotations again publish nothing', async () => {
  const { patches, pool, reasons, local, self } = setup();
  assert.equal(local.known, false);
  await local.handle(self());
  assert.equal(patches.length, 1);
  const ann = annotations(patches[0]);
  assert.equal(ann['kilo.squat.ai/endpoint'], '203.0.113.7:51820', 'no endpoint annotated: the discovered public IP');
  assert.equal(ann['kilo.squat.ai/internal-ip'], '10.0.0.5/24');
  assert.equal(ann['kilo.squat.ai/key'], KEY);
  assert.equal(ann['kilo.squat.ai/last-seen'], String(T0));
  assert.equal(patches[0].contentType, 'application/merge-patch+json');
  assert.deepEqual([pool.calls, reasons, local.known, local.selfReady(T0)], [['setNode self'], ['local node'], true, true]);
  // The API echoes what was written: nothing to publish, nothing new to plan.
  await local.handle(self(ann as Record<string, string>));
  assert.equal(patches.length, 1);
  assert.deepEqual(reasons, ['local node']);
});

test('local node: a check-in writes last-seen alone each period; a failed one keeps the old last-seen and is retried soon', async () => {
  const { clock, patches, fail, pool, local, self, heartbeats } = setup();
  await local.handle(self());
  local.start();
  clock.s = T0 + 30;
  mock.timers.tick(30_000);
  await settle();
  assert.deepEqual(annotations(patches[1]), { 'kilo.squat.ai/last-seen': String(T0 + 30) });
  assert.deepEqual(pool.calls.at(-1), `setLastSeen self ${T0 + 30}`);
  fail.push(new KubeError('unavailable', 503));
  clock.s = T0 + 60;
  mock.timers.tick(30_000);
  await settle();
  assert.equal(patches.length, 2, 'the write failed');
  assert.deepEqual(await heartbeats(), { ok: 1, error: 1 });
  assert.equal(local.selfReady(T0 + 30 + 59), true, 'the in-memory last-seen is still the last written one');
  assert.equal(local.selfReady(T0 + 30 + 60), false);
  mock.timers.tick(1000);
  await settle();
  assert.deepEqual(annotations(patches[2]), { 'kilo.squat.ai/last-seen': String(T0 + 60) }, 'retried within a second, not a period later');
  local.stop();
  mock.timers.tick(120_000);
  await settle();
  assert.equal(patches.length, 3, 'stopped');
});

test('local node: becoming a leader publishes the WireGuard IP at once; clean-up removes kg\'s annotations', async () => {
  const { patches, pool, local, self } = setup();
  await local.handle(self());
  local.setWireGuardIP('10.4.0.1/16');
  await settle();
  assert.deepEqual(annotations(patches[1]), { 'kilo.squat.ai/wireguard-ip': '10.4.0.1/16' });
  local.setWireGuardIP('10.4.0.1/16');
  await settle();
  assert.equal(patches.length, 2, 'unchanged: nothing written');
  assert.deepEqual(pool.calls, ['setNode self', 'setNode self'], 'and nothing handled again');
  await local.removeAnnotations();
  assert.equal(patches[2].contentType, 'application/json-patch+json');
  assert.deepEqual((patches[2].body as { path: string }[]).map((x) => x.path), [
    '/metadata/annotations/kilo.squat.ai~1endpoint', '/metadata/annotations/kilo.squat.ai~1internal-ip', '/metadata/annotations/kilo.squat.ai~1key',
    '/metadata/annotations/kilo.squat.ai~1last-seen', '/metadata/annotations/kilo.squat.ai~1wireguard-ip', '/metadata/annotations/kilo.squat.ai~1discovered-endpoints',
    '/metadata/annotations/kilo.squat.ai~1granularity',
  ]);
});

test('local node: with --compatibility=cilium the cilium_host address is published as cni-compatibility-ip, and again when it changes', async () => {
  let ip = '10.0.9.1/32';
  let reads = 0;
  const { patches, local, self } = setup(['--compatibility', 'cilium'], async () => (reads++, parseCIDR(ip)));
  await local.handle(self());
  await settle();
  assert.ok(reads >= 1);
  assert.equal(annotations(patches.at(-1)!)['kilo.squat.ai/cni-compatibility-ip'], '10.0.9.1/32', 'published once read');
  const n = patches.length;
  ip = '10.0.9.7/32';
  await local.handle(self(annotations(patches.at(-1)!) as Record<string, string>));
  await settle();
  assert.ok(patches.length > n);
  assert.equal(annotations(patches.at(-1)!)['kilo.squat.ai/cni-compatibility-ip'], '10.0.9.7/32', 'a new address is published');
});

test('local node: without cilium compatibility nothing is read and cni-compatibility-ip stays empty', async () => {
  let reads = 0;
  const { patches, local, self } = setup([], async () => (reads++, parseCIDR('10.0.9.1/32')));
  await local.handle(self());
  await settle();
  assert.equal(reads, 0);
  assert.equal(annotations(patches[0])['kilo.squat.ai/cni-compatibility-ip'], '');
});

test('local node: an operator edit of the own node (location, leader) asks for a plan even when nothing kg owns moved', async () => {
  const { patches, reasons, local, self } = setup();
  await local.handle(self());
  const ann = annotations(patches[0]) as Record<string, string>;
  await local.handle(self(ann));
  assert.deepEqual(reasons, ['local node'], 'the echo of kg\'s own write plans nothing');
  await local.handle(self({ ...ann, 'kilo.squat.ai/location': 'edge' }));
  assert.equal(patches.length, 1, 'nothing of kg\'s to publish');
  assert.deepEqual(reasons, ['local node', 'local node'], 'a new location is a new plan');
  await local.handle(self({ ...ann, 'kilo.squat.ai/location': 'edge', 'kilo.squat.ai/leader': 'true' }));
  assert.deepEqual(reasons, ['local node', 'local node', 'local node'], 'so is volunteering as leader');
});
