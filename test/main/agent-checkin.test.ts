// The Agent's check-in against the API simulator over HTTPS, with the real planner pool and a
// clock the test holds (AgentOptions.now). Only the I/O worker (the kernel writer, below what is
// tested here) is a stand-in that accepts every plan. Real kg agents through the same faults run
// in test/e2e/api-faults.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startApiServer } from '../../loadtest/apiserver/index.js';
import { Agent } from '../../main/agent/agent.js';
import { parseCIDR } from '../../plan/addr.js';
import { AGENT_FLAGS, parseFlags, toConfig } from '../../main/flags.js';
import { generateKeyPair } from '../../main/keys.js';
import { KubeClient } from '../../watch/kube.js';
import { inProcessCredentials } from '../../workers/kube-config.js';
import { silentLogger } from '../../main/log.js';
import { createMetrics } from '../../main/agent/metrics.js';
import { acceptingIo } from './fake-io.js';
import { PlanPool } from '../../workers/plan-pool.js';

const LAST_SEEN = 'kilo.squat.ai/last-seen';

async function until(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** An agent for node n1 with a 1 s check-in period, its clock held by the test. */
async function setup(t: { after: (f: () => Promise<void> | void) => void }) {
  const srv = await startApiServer({
    https: true,
    nodes: [{ apiVersion: 'v1', kind: 'Node', metadata: { name: 'n1', labels: { 'topology.kubernetes.io/region': 'a' } }, spec: { podCIDR: '10.42.1.0/24' } }],
  });
  const dir = mkdtempSync(join(tmpdir(), 'kg-checkin-'));
  writeFileSync(join(dir, 'kubeconfig'), srv.kubeconfig);
  const config = toConfig(parseFlags(['--hostname', 'n1', '--kubeconfig', join(dir, 'kubeconfig'), '--check-in-period', '1s', '--resync-period', '0'], AGENT_FLAGS).values);
  const client = new KubeClient(inProcessCredentials({ kubeconfig: join(dir, 'kubeconfig'), master: '' }));
  const pool = new PlanPool({ threads: 1, topologyLabel: config.topologyLabel });
  const io = acceptingIo();
  const keys = generateKeyPair();
  const clock = { s: Math.floor(Date.now() / 1000) };
  const agent = new Agent({
    config, log: silentLogger, client, metrics: createMetrics(), pool, io,
    host: { privateIP: parseCIDR('192.168.7.1/24'), publicIP: null, privateIface: 'eth0', defaultIface: 'eth0', autoMTU: 1420 },
    publicKey: keys.publicKey, privateKey: keys.privateKey, minSyncIntervalMs: 100, checkInPeriodMs: config.checkInPeriodMs,
    privateInterface: 'eth0', tunnelInterface: 'tunl0', now: () => clock.s,
  });
  agent.start();
  t.after(async () => {
    await agent.stop();
    await pool.close();
    client.close();
    await srv.stop();
    rmSync(dir, { recursive: true, force: true });
  });
  const nodes = srv.store.nodes();
  const lastSeen = () => srv.store.get(nodes, undefined, 'n1').obj.metadata.annotations?.[LAST_SEEN];
  await until('n1 published', () => lastSeen() === String(clock.s));
  return { srv, agent, clock, lastSeen, nodes };
}

test('agent check-in: an event for the own node just before a check-in does not swallow it', async (t) => {
  const { srv, clock, lastSeen, nodes } = await setup(t);
  clock.s += 10;
  await until('a check-in at the new time', () => lastSeen() === String(clock.s));
  // Someone else writes the Node (a label) and the clock moves on: the event reaches handleLocal,
  // which takes now() as the in-memory last-seen without writing it. The check-in at the same
  // second must still write it (it used to compare with that unwritten value and skip).
  clock.s += 5;
  srv.store.patch(nodes, undefined, 'n1', 'merge', { metadata: { labels: { team: 'x' } } });
  await until('the check-in after the event', () => lastSeen() === String(clock.s), 5000);
});

test('agent check-in: a failed one is retried within the period, and its Retry-After honoured', async (t) => {
  const { srv, clock, lastSeen } = await setup(t);
  const before = lastSeen();
  const failed = () => srv.faults.injected.error + srv.faults.injected.throttle;
  // Every PATCH fails for 2 s: the retries (250 ms, 500 ms, 1 s, … at a 4 s period; here the
  // period is 1 s, so 62 ms, 125 ms, 250 ms) keep coming and the first one after the outage lands.
  srv.faults.set({ errorRate: 1, errorStatus: 503, verbs: ['patch'] });
  clock.s += 3;
  await new Promise((r) => setTimeout(r, 2000));
  const n503 = failed();
  // A period is 1 s, so Go's schedule makes 2-3 attempts in 2 s; the retries make more, bounded
  // by MAX_CHECK_IN_RETRIES + 1 per window (2 s) and the one-per-period fallback after it.
  assert.ok(n503 >= 4 && n503 <= 12, `${n503} failed PATCHes in 2 s`);
  assert.equal(lastSeen(), before, 'nothing written meanwhile');
  // Throttled with Retry-After: 2 s: no attempt sooner than that.
  srv.faults.set({ errorRate: 0, throttleRate: 1, retryAfterSeconds: 2 });
  const t0 = Date.now();
  const throttledBefore = srv.faults.injected.throttle;
  await new Promise((r) => setTimeout(r, 3000));
  const throttled = srv.faults.injected.throttle - throttledBefore;
  assert.ok(throttled >= 1 && throttled <= 2, `${throttled} attempts in ${Date.now() - t0} ms with Retry-After 2 s`);
  srv.faults.clear();
  await until('the check-in once the API is back', () => lastSeen() === String(clock.s), 3000);
});
