// The list+watch loop against the API simulator over HTTPS with a token: events, relists after
// 410 (HTTP and in-stream), restarts after dropped, stalled and throttled watches.
import { getEventListeners } from 'node:events';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer, type ApiServer } from '../../loadtest/apiserver/index.js';
import { KubeClient } from '../../watch/kube.js';
import { inProcessCredentials } from '../../workers/kube-config.js';
import { createLogger, silentLogger } from '../../main/log.js';
import { Reflector, type ReflectorEvent, type ReflectorOptions } from '../../watch/reflector.js';

const node = (name: string, ann: Record<string, string> = {}) => ({ apiVersion: 'v1', kind: 'Node', metadata: { name, annotations: ann }, spec: { podCIDR: '10.42.0.0/24' } });

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

type After = { after: (fn: () => Promise<void> | void) => void };
type Ann = { name: string; ann: Record<string, string> };

/** A reflector over Nodes of an HTTPS simulator, synced; by default records keep the annotations. */
async function setup<T = Ann>(t: After, nodes = 3, o: Partial<ReflectorOptions<T>> = {}) {
  const api: ApiServer = await startApiServer({ https: true, nodes: Array.from({ length: nodes }, (_, i) => node(`n${i}`)) });
  const dir = mkdtempSync(join(tmpdir(), 'kg-refl-'));
  const kc = join(dir, 'kubeconfig');
  writeFileSync(kc, api.kubeconfig);
  const client = new KubeClient(inProcessCredentials({ kubeconfig: kc, master: '' }));
  const events: ReflectorEvent<T>[] = [];
  const r = new Reflector<T>({
    client, path: '/api/v1/nodes', log: process.env.KG_TEST_LOG ? createLogger({ level: 'debug', write: (l) => process.stderr.write(l + '\n') }) : silentLogger, pageSize: 2, watchTimeoutSeconds: 30, backoffInitialMs: 20, backoffMaxMs: 200,
    slim: (x) => ({ name: x.metadata!.name!, ann: ((x.metadata as { annotations?: Record<string, string> }).annotations) ?? {} }) as T,
    onEvent: (e) => events.push(e),
    ...o,
  });
  t.after(async () => {
    await r.stop();
    client.close();
    await api.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  r.start();
  await until('sync', () => r.hasSynced);
  return { api, r, events, client };
}

test('reflector: lists in pages, then watches add, update and delete', async (t) => {
  const { api, r, events } = await setup(t, 5);
  assert.deepEqual(events.map((e) => `${e.type} ${e.name}`), ['add n0', 'add n1', 'add n2', 'add n3', 'add n4']);
  const nodes = api.store.nodes();
  api.store.create(nodes, node('n5'));
  api.store.patchAnnotations(nodes, undefined, 'n1', { 'kilo.squat.ai/last-seen': '5' });
  api.store.delete(nodes, undefined, 'n2');
  await until('three watch events', () => events.length === 8);
  assert.deepEqual(events.slice(5).map((e) => `${e.type} ${e.name}`), ['add n5', 'update n1', 'delete n2']);
  assert.equal(r.store.get('n1')!.ann['kilo.squat.ai/last-seen'], '5');
  assert.equal(r.stats.lists, 1);
});

test('reflector: the first list passes each page on before the next; a relist only once it is whole', async (t) => {
  const pages: number[] = [];
  const listsAtEvent: number[] = [];
  let held: Reflector<Ann> | undefined; // known once setup() returns: the first list's events record -1
  const { api, r } = await setup<Ann>(t, 5, { onPage: () => pages.push(listsAtEvent.length), onEvent: () => listsAtEvent.push(held?.stats.lists ?? -1) });
  held = r;
  // Pages of 2, 2 and 1: each page's adds were out when the page ended, before the next was fetched.
  assert.deepEqual(pages, [2, 4, 5]);
  assert.equal(listsAtEvent.length, 5);
  const nodes = api.store.nodes();
  api.faults.stall(true);
  await new Promise((res) => setTimeout(res, 100));
  api.store.delete(nodes, undefined, 'n0');
  api.store.patchAnnotations(nodes, undefined, 'n3', { x: '1' });
  api.store.clearHistory();
  api.faults.set({ goneCount: 1, goneMode: 'http' });
  api.faults.stall(false);
  api.faults.dropWatches();
  await until('the relist', () => r.stats.lists === 2 && !r.store.has('n0'));
  // The relist's events came after it was whole (lists already counted), and no page was passed on.
  assert.deepEqual(pages, [2, 4, 5]);
  assert.ok(listsAtEvent.length > 5 && listsAtEvent.slice(5).every((n) => n === 2), JSON.stringify(listsAtEvent));
});

test('reflector: a 410 relists and emits what changed while the watch was down, deletes included', async (t) => {
  const { api, r, events } = await setup(t, 3);
  const nodes = api.store.nodes();
  for (const mode of ['http', 'stream'] as const) {
    const before = r.stats.relists;
    api.faults.set({ goneCount: 1, goneMode: mode });
    api.faults.dropWatches();
    await until(`relist after 410 (${mode})`, () => r.stats.relists > before);
  }
  // Changes made while no watch can see them: the relist must still deliver them.
  api.faults.stall(true);
  await new Promise((res) => setTimeout(res, 100));
  api.store.delete(nodes, undefined, 'n0');
  api.store.create(nodes, node('n9'));
  api.store.clearHistory();
  api.faults.stall(false);
  api.faults.dropWatches();
  await until('n0 deleted and n9 added', () => r.store.has('n9') && !r.store.has('n0'));
  assert.ok(events.some((e) => e.type === 'delete' && e.name === 'n0'));
  assert.ok(events.some((e) => e.type === 'add' && e.name === 'n9'));
});

test('reflector: a silent (half-open) watch is restarted by the watchdog', async (t) => {
  const { api, r } = await setup(t, 1, { watchdogMs: 300 });
  api.faults.stall(true);
  await until('a stall detected', () => r.stats.stalls > 0);
  api.faults.stall(false);
  const nodes = api.store.nodes();
  api.store.create(nodes, node('late'));
  await until('events flow again', () => r.store.has('late'));
});

test('reflector: 429 and 500 are retried with backoff, and the watch resumes', async (t) => {
  const { api, r } = await setup(t, 1);
  api.faults.set({ throttleRate: 1, retryAfterSeconds: 1 });
  api.faults.dropWatches();
  await new Promise((res) => setTimeout(res, 300));
  const errorsWhileThrottled = r.stats.watchErrors;
  assert.ok(errorsWhileThrottled >= 1);
  assert.ok(errorsWhileThrottled <= 2, `Retry-After honoured: ${errorsWhileThrottled} attempts in 300 ms`);
  api.faults.set({ throttleRate: 0, errorRate: 1, errorStatus: 500 });
  await new Promise((res) => setTimeout(res, 1200));
  api.faults.clear();
  api.store.create(api.store.nodes(), node('after'));
  await until('recovered', () => r.store.has('after'), 15_000);
});

test('reflector: a metadata-only watch keeps what the list brought (merge) and takes amendments', async (t) => {
  type Rec = { name: string; podCIDR: string; x: string };
  const { api, r, events } = await setup<Rec>(t, 1, {
    watchAccept: 'application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1,application/json',
    slim: (o) => {
      const x = o as { kind?: string; metadata: { name: string; annotations?: Record<string, string> }; spec?: { podCIDR?: string } };
      return { name: x.metadata.name, podCIDR: x.spec?.podCIDR ?? '', x: `${x.kind}:${x.metadata.annotations?.x ?? ''}` };
    },
    merge: (fresh, old) => (fresh.podCIDR || !old ? fresh : { ...fresh, podCIDR: old.podCIDR }),
  });
  assert.deepEqual(r.store.get('n0'), { name: 'n0', podCIDR: '10.42.0.0/24', x: 'Node:' }, 'the list brings whole Nodes');
  await until('watch open', () => r.connected && r.stats.watches > 0);
  api.store.patchAnnotations(api.store.nodes(), undefined, 'n0', { x: '1' });
  api.store.create(api.store.nodes(), { apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1' }, spec: { podCIDR: '10.42.1.0/24' } });
  await until('two watch events', () => events.length === 3);
  assert.deepEqual(r.store.get('n0'), { name: 'n0', podCIDR: '10.42.0.0/24', x: 'PartialObjectMetadata:1' }, 'metadata event, pod CIDR kept');
  assert.deepEqual(r.store.get('n1'), { name: 'n1', podCIDR: '', x: 'PartialObjectMetadata:' }, 'a new Node arrives without its pod CIDR');
  r.amend('n1', (cur) => ({ ...cur, podCIDR: '10.42.1.0/24' }));
  assert.deepEqual(events.at(-1), { type: 'update', name: 'n1', obj: { name: 'n1', podCIDR: '10.42.1.0/24', x: 'PartialObjectMetadata:' }, old: { name: 'n1', podCIDR: '', x: 'PartialObjectMetadata:' } });
  r.amend('gone', () => { throw new Error('not called for an unknown name'); });
});

test('reflector: retries through a long outage leave no listener behind on its stop signal', async (t) => {
  const { api, r } = await setup(t, 1, { backoffInitialMs: 5, backoffMaxMs: 10 });
  api.faults.set({ errorRate: 1 });
  api.faults.dropWatches();
  await until('many failed attempts', () => r.stats.watchErrors >= 50);
  const signal = (r as unknown as { stopper: AbortController }).stopper.signal;
  // One at most: the sleep in progress. (It used to be one per retry, for ever.)
  assert.ok(getEventListeners(signal, 'abort').length <= 1, `${getEventListeners(signal, 'abort').length} abort listeners after ${r.stats.watchErrors} retries`);
  api.faults.clear();
});
