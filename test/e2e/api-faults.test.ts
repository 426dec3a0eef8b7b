// Real kg agents through API faults a real kube-apiserver has (issue 15): a failed check-in is
// retried inside the period, so a short outage around a check-in never lets another observer see
// the node's last-seen reach the readiness window; and a restarting API server (old watches
// served through a grace, then 429 "storage is (re)initializing" with Retry-After, then 410 for
// the old resourceVersions) is ridden through with the dataplane untouched and no hot loop.
// Periods are shortened (--check-in-period 8s, window 16 s for the observer: Kilo's 30 s / 60 s
// ratio), so the whole file runs in about two minutes.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MAX_CHECK_IN_RETRIES } from '../../main/agent/checkin.js';
import { generateKeyPair } from '../../main/keys.js';
import { Mesh, waitFor } from '../../loadtest/mesh/harness.js';
import { maxLastSeenAge, type Observation } from './last-seen-observer.js';

const PREFIX = `kgf${process.pid % 10000}`;
const PERIOD = 8;
const WINDOW = 2 * PERIOD;
/** last-seen has whole seconds, and events take a moment to arrive. */
const MARGIN = 1;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, Math.max(0, ms)));

/** The observer (last-seen-observer.ts) in the API's namespace, its lines collected. */
function startObserver(mesh: Mesh): { obs: Observation[]; stop(): void } {
  const script = fileURLToPath(new URL('./last-seen-observer.js', import.meta.url));
  const p = spawn('ip', ['netns', 'exec', mesh.apiNs, process.execPath, script, mesh.kubeconfig], { stdio: ['pipe', 'pipe', 'inherit'] });
  const obs: Observation[] = [];
  let rest = '';
  p.stdout!.on('data', (c: Buffer) => {
    const lines = (rest + c.toString()).split('\n');
    rest = lines.pop()!;
    for (const l of lines) if (l.trim()) obs.push(JSON.parse(l) as Observation);
  });
  return { obs, stop: () => { p.stdin!.end(); p.kill('SIGTERM'); } };
}

test('e2e: API faults around check-ins and an API server restart', { timeout: 420_000 }, async (t) => {
  const mesh = new Mesh({
    prefix: PREFIX,
    nodes: [{ name: 'a1', location: 'a' }, { name: 'a2', location: 'a' }, { name: 'b1', location: 'b' }],
    flags: ['--encapsulate', 'never', '--check-in-period', `${PERIOD}s`],
  });
  t.after(() => mesh.down());
  await mesh.up();
  await Promise.all(mesh.nodes.map((n) => mesh.startKg(n.spec.name)));
  const observer = startObserver(mesh);
  t.after(() => {
    observer.stop();
    writeFileSync(join(mesh.state, 'observer.jsonl'), observer.obs.map((o) => JSON.stringify(o)).join('\n') + '\n');
  });
  const names = mesh.nodes.map((n) => n.spec.name);
  await waitFor('the observer has listed the nodes', () => observer.obs.some((o) => o.synced), 30_000, 50);

  /** Waits for a check-in of `node` seen after `after` (ms); returns when the observer saw it. */
  const checkIn = async (node: string, after: number): Promise<number> => {
    const held = Math.max(0, ...observer.obs.filter((o) => o.node === node && o.lastSeen !== undefined).map((o) => o.lastSeen!));
    const o = await waitFor(`a check-in of ${node}`, () => observer.obs.find((x) => x.node === node && x.t > after && (x.lastSeen ?? 0) > held), 3 * PERIOD * 1000, 50);
    return o.t;
  };
  const metric = (re: RegExp) => Number(re.exec(mesh.kubectl(['get', '--raw', '/metrics']))?.[1] ?? 0);
  const patch503 = () => metric(/^apisim_requests_total\{verb="patch",resource="nodes",code="503"\} (\d+)/m);
  /** After an outage: every node checked in again, a period went by, and no one's last-seen got near the window. */
  const assertFresh = async (from: number, what: string) => {
    const end = Date.now();
    for (const n of names) await checkIn(n, end);
    await sleep(PERIOD * 1000);
    const ages = maxLastSeenAge(observer.obs, from, Date.now());
    t.diagnostic(`${what}: oldest last-seen seen ${JSON.stringify(Object.fromEntries(ages))} s (window ${WINDOW} s)`);
    for (const n of names) assert.ok((ages.get(n) ?? Infinity) < WINDOW - MARGIN, `${what}: ${n}'s last-seen reached ${ages.get(n)} s`);
  };

  await t.test('503 on every Node PATCH for 3 s across a check-in: retried within the period', async () => {
    const d0 = await checkIn('a1', Date.now());
    const before = patch503();
    // The fault covers a1's next check-in (due one period after d0) and 2 s after it.
    await sleep(d0 + PERIOD * 1000 - 1000 - Date.now());
    mesh.simFaults({ errorRate: 1, errorStatus: 503, verbs: ['patch'] });
    await sleep(d0 + PERIOD * 1000 + 2000 - Date.now());
    mesh.simFaults(null);
    const failed = patch503() - before;
    t.diagnostic(`PATCHes answered 503 during the fault: ${failed}`);
    assert.ok(failed >= 2, `a1's check-in failed and was retried (${failed} failed PATCHes)`);
    assert.ok(failed <= names.length * (MAX_CHECK_IN_RETRIES + 1), `retries are bounded (${failed})`);
    await assertFresh(d0, '503 on PATCH');
  });

  await t.test('the API server down for 3 s across a check-in (connections refused)', async () => {
    const d0 = await checkIn('a1', Date.now());
    await sleep(d0 + PERIOD * 1000 - 1000 - Date.now());
    mesh.kubectl(['create', '--raw', '/_sim/restart?downMs=3000', '-f', '-'], { input: '{}' });
    await sleep(3500);
    await assertFresh(d0, 'server down');
  });

  await t.test('an API server restart (grace, 429 while initialising, 410): dataplane untouched, later changes applied, no hot loop', async () => {
    type Snap = { peers: string[]; routes: string[] };
    const snap = (n: string): Snap => ({
      // A node with no WireGuard peer (a non-leader) may have no device to show.
      peers: mesh.on(n, ['wg', 'show', 'kilo0', 'peers'], { allowFail: true }).split('\n').filter(Boolean).sort(),
      routes: mesh.on(n, ['ip', '-o', 'route', 'show', 'table', 'all', 'proto', 'static']).split('\n').filter(Boolean).sort(),
    });
    const before = new Map(names.map((n) => [n, snap(n)]));
    const leaders = names.filter((n) => before.get(n)!.peers.length > 0);
    assert.ok(leaders.length >= 2, `each location's leader has WireGuard peers (${leaders})`);
    // Sample every node's WireGuard peers and kg's routes all along: nothing may go missing.
    let sampling = true;
    const missing: string[] = [];
    const sampler = (async () => {
      while (sampling) {
        for (const n of names) {
          const s = snap(n);
          const b = before.get(n)!;
          for (const x of [...b.peers.filter((p) => !s.peers.includes(p)), ...b.routes.filter((r) => !s.routes.includes(r))]) missing.push(`${n}: ${x}`);
        }
        await sleep(300);
      }
    })();
    const peer = (name: string) => {
      const key = generateKeyPair().publicKey;
      const i = 10 + ['grace', 'initializing', 'after'].indexOf(name);
      mesh.kubectl(['apply', '-f', '-'], { input: JSON.stringify({ apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name }, spec: { allowedIPs: [`10.5.0.${i}/32`], publicKey: key } }) });
      return key;
    };
    const stats = () => JSON.parse(mesh.kubectl(['get', '--raw', '/_sim/stats'])) as { generation: number; initializing: boolean; injected: { initializing: number } };
    const refusedBefore = stats().injected.initializing;
    const graceMs = 2000;
    const initializingMs = 6000;
    const t0 = Date.now();
    mesh.kubectl(['create', '--raw', `/_sim/restart?graceMs=${graceMs}&initializingMs=${initializingMs}&retryAfterSeconds=1`, '-f', '-'], { input: '{}' });
    // During the grace the old server still serves the agents' watches; writes reach the new one.
    const keys = [peer('grace')];
    await sleep(t0 + graceMs + 1000 - Date.now());
    // The watches have been dropped and are refused with 429 now; a change meanwhile.
    assert.equal(stats().initializing, true, 'still initialising');
    keys.push(peer('initializing'));
    await sleep(t0 + initializingMs + 500 - Date.now());
    const refused = stats().injected.initializing - refusedBefore;
    // Three agents with two watches each and the observer's one, each retrying no sooner than
    // Retry-After (1 s) for the ~4 s between the end of the grace and the end of initialising.
    const streams = names.length * 2 + 1;
    const bound = streams * ((initializingMs - graceMs) / 1000 + 1);
    t.diagnostic(`requests refused with 429 while initialising: ${refused} (bound ${bound})`);
    assert.ok(refused >= names.length, `the agents met the 429 (${refused})`);
    assert.ok(refused <= bound, `no hot loop: ${refused} > ${bound}`);
    keys.push(peer('after'));
    // The 410 for the old resourceVersion made every agent relist: all three Peers reach the leaders.
    await waitFor('all three Peers on every leader', () => leaders.every((n) => keys.every((k) => snap(n).peers.includes(k))), 30_000, 500);
    sampling = false;
    await sampler;
    assert.deepEqual(missing, [], 'no WireGuard peer or route was torn down');
    for (const n of names) assert.equal(mesh.http(n, '/health').status, 200, `${n} healthy`);
    assert.ok(!observer.obs.some((o) => o.deleted), 'no node was deleted');
    // Readers could not see check-ins while their watches were refused (a reader's view, not the
    // node's writes); from here on every node is back on its schedule.
    await assertFresh(Date.now(), 'after the restart');
    for (const k of ['grace', 'initializing', 'after']) mesh.kubectl(['delete', 'peer', k]);
  });
});
