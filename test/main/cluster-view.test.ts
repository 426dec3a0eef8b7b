// The cluster view in-process: watch events in, pool changes and plan requests out, with the
// clock held by the test. Heartbeats, readiness lapses, the outage freeze, Peers and DNS names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ClusterView } from '../../main/agent/cluster-view.js';
import { createMetrics } from '../../main/agent/metrics.js';
import { silentLogger } from '../../main/log.js';
import { mergeWatchedNode } from '../../main/agent/node-record.js';
import { DEFAULT_LIMITS } from '../../plan/claims.js';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import type { ReflectorEvent } from '../../watch/reflector.js';
import { FakePool } from './fake-pool.js';

const KEY = Buffer.alloc(32, 1).toString('base64');
const T0 = 1_700_000_000;

function node(name: string, lastSeen: number, extra: Record<string, string> = {}): NodeObject {
  return {
    metadata: { name, annotations: { 'kilo.squat.ai/key': KEY, 'kilo.squat.ai/endpoint': '192.0.2.1:51820', 'kilo.squat.ai/last-seen': String(lastSeen), ...extra }, labels: {} },
    spec: { podCIDR: '10.2.0.0/24' },
  };
}

function setup() {
  const clock = { s: T0 };
  const pool = new FakePool();
  const reasons: string[] = [];
  const local: NodeObject[] = [];
  const dnsWanted: string[][] = [];
  const probes = { seen: [] as string[], size: 0, seenNode(n: string) { this.seen.push(n); } };
  const held = new Map<string, NodeObject>();
  const view = new ClusterView({
    hostname: 'self', claims: DEFAULT_LIMITS, log: silentLogger, metrics: createMetrics(), pool,
    probes: { seen: (n) => probes.seenNode(n), forget: () => {}, run: () => {}, get size() { return probes.size; } },
    dns: { resolved: (want) => (dnsWanted.push([...want].sort()), []) },
    now: () => clock.s, schedule: (r) => reasons.push(r), onLocal: (o) => local.push(o), selfReady: () => null,
  });
  /** A watch event as the reflector emits it (merge included): the held record is kept on a heartbeat. */
  const watch = (obj: NodeObject) => {
    const name = obj.metadata!.name!;
    const old = held.get(name);
    const rec = mergeWatchedNode(obj, old);
    const oldCopy = old;
    held.set(name, rec);
    view.onNode(oldCopy === undefined ? { type: 'add', name, obj: rec } : { type: 'update', name, obj: rec, old: oldCopy });
  };
  const remove = (name: string) => {
    const old = held.get(name)!;
    held.delete(name);
    view.onNode({ type: 'delete', name, old });
  };
  return { clock, pool, reasons, local, dnsWanted, probes, view, watch, remove };
}

test('cluster view: a heartbeat is a last-seen for the pool and no plan; a change is a record and a plan', () => {
  const { pool, reasons, view, watch } = setup();
  watch(node('a', T0));
  assert.deepEqual([pool.calls, reasons], [['setNode a'], ['node add']]);
  view.markPlanned();
  watch(node('a', T0 + 30));
  assert.deepEqual([pool.calls, reasons], [['setNode a', `setLastSeen a ${T0 + 30}`], ['node add']], 'heartbeat: no re-parse, no plan');
  watch(node('a', T0 + 31, { 'kilo.squat.ai/location': 'x' }));
  assert.deepEqual([pool.calls.at(-1), reasons.at(-1)], ['setNode a', 'node update']);
  // The own node goes to the local node, never to the records.
  watch(node('self', T0));
  assert.equal(view.size, 1);
  assert.equal(pool.calls.length, 3);
});

test('cluster view: a lapsed heartbeat asks for one plan; a heartbeat that brings a node back asks at once', () => {
  const { clock, reasons, view, watch } = setup();
  watch(node('a', T0));
  view.markPlanned();
  reasons.length = 0;
  clock.s = T0 + 59;
  view.tick(true, true);
  assert.deepEqual(reasons, [], 'inside the 60 s window');
  clock.s = T0 + 60;
  view.tick(true, true);
  assert.deepEqual(reasons, ['readiness changed']);
  view.markPlanned();
  view.tick(true, true);
  assert.deepEqual(reasons, ['readiness changed'], 'planned with it: no second request');
  watch(node('a', T0 + 61));
  assert.deepEqual(reasons, ['readiness changed', 'node readiness']);
});

test('cluster view: an advertised check-in period stretches the window', () => {
  const { clock, reasons, view, watch } = setup();
  watch(node('a', T0, { 'kilo.squat.ai/check-in-period': '90' }));
  view.markPlanned();
  reasons.length = 0;
  clock.s = T0 + 179;
  view.tick(true, true);
  assert.deepEqual(reasons, []);
  clock.s = T0 + 180;
  view.tick(true, true);
  assert.deepEqual(reasons, ['readiness changed']);
});

test('cluster view: an API outage freezes the readiness clock until every node had a window to check in', () => {
  const { clock, reasons, view, watch } = setup();
  watch(node('a', T0));
  watch(node('b', T0));
  view.markPlanned();
  reasons.length = 0;
  clock.s = T0 + 10;
  view.tick(true, false);
  assert.equal(view.readinessNow(), T0 + 10, 'frozen at the outage start');
  clock.s = T0 + 310;
  assert.equal(view.readinessNow(), T0 + 10, 'still frozen 5 minutes later');
  view.tick(true, false);
  assert.deepEqual(reasons, [], 'no plan while the API is away');
  view.tick(true, true);
  assert.equal(view.readinessNow(), T0 + 10, 'back: the clock runs behind by the outage');
  assert.deepEqual(reasons, [], 'nobody looks stale on reconnection');
  // a checks in after the outage; b died during it: it drops out, late by the outage's length.
  clock.s = T0 + 330;
  watch(node('a', T0 + 330));
  view.tick(true, true);
  assert.deepEqual(reasons, []);
  clock.s = T0 + 360;
  view.tick(true, true);
  assert.deepEqual(reasons, ['readiness changed'], 'b lapsed: 60 s on the frozen clock');
  view.markPlanned();
  clock.s = T0 + 370;
  assert.equal(view.readinessNow(), T0 + 370, 'after the window the clock is the real one again');
  view.tick(true, true);
  assert.deepEqual(reasons, ['readiness changed'], 'a is still ready on the real clock');
});

test('cluster view: an outage before the first sync does not freeze the clock', () => {
  const { clock, view } = setup();
  view.tick(false, false);
  clock.s = T0 + 100;
  assert.equal(view.readinessNow(), T0 + 100);
});

test('cluster view: deletes, Peers (a bad update keeps the last valid version), DNS names wanted, pod-CIDR probes', () => {
  const { pool, reasons, dnsWanted, probes, view, watch, remove } = setup();
  watch(node('a', T0, { 'kilo.squat.ai/force-endpoint': 'a.example.com:51820' }));
  watch({ ...node('b', T0), spec: { podCIDR: '' } });
  assert.deepEqual(probes.seen, ['a', 'b'], 'every Node is shown to the probes (they skip those with a pod CIDR)');
  const peer = (endpoint: string, key = KEY): PeerObject => ({ metadata: { name: 'p' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: key, endpoint: { dnsOrIP: { dns: endpoint }, port: 51820 } } as never });
  const ev = (e: ReflectorEvent<PeerObject>) => view.onPeer(e);
  ev({ type: 'add', name: 'p', obj: peer('p.example.com') });
  ev({ type: 'update', name: 'p', obj: peer('q.example.com', 'not a key'), old: peer('p.example.com') });
  assert.deepEqual(pool.calls.filter((c) => c.includes('Peer')), ['setPeer p'], 'the bad update is not passed on');
  view.resolved();
  assert.deepEqual(dnsWanted.at(-1), ['a.example.com:51820', 'p.example.com:51820']);
  remove('a');
  ev({ type: 'delete', name: 'p', old: peer('p.example.com') });
  view.resolved();
  assert.deepEqual(dnsWanted.at(-1), []);
  assert.deepEqual(pool.calls.slice(-2), ['deleteNode a', 'deletePeer p']);
  assert.deepEqual(reasons.slice(-3), ['peer add', 'node deleted', 'peer deleted']);
});
