// The load test's quick profile (CI): 1,000 nodes (one real kg agent in its own namespaces, the
// rest simulated), churn, Peers and keys, a leader lost and back. Asserts correctness only: every
// change reaches the agent's kernel, the kernel equals the agent's plan, and the fleet check
// passes over every node and Peer. Speed is the full profile's business (npm run loadtest).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLoadTest } from '../../loadtest/loadtest.js';

test('load test, quick profile: 1,000 nodes converge and the fleet check passes', { timeout: 240_000 }, async () => {
  const lines: string[] = [];
  const r = await runLoadTest({
    nodes: 1000, locations: 10, peers: 20, agents: 1, scenarios: ['churn', 'peers-keys', 'leader-loss'], granularity: 'location',
    heartbeat: 'kilo', compareHeartbeat: false, heartbeatBudget: 15, durationS: 8, rate: 10, fleetEach: false, fleetThreads: 2,
    fleetBaseline: false, soakS: 0, prefix: 'kgltq', log: (l) => lines.push(l),
  });
  const failed = r.checks.filter((c) => !c.ok);
  assert.deepEqual(failed, [], lines.join('\n'));
  const names = r.checks.map((c) => c.name);
  for (const s of ['churn', 'peers-keys', 'leader-loss']) {
    assert.ok(names.includes(`${s}: every change programmed`), names.join(', '));
    assert.ok(names.includes(`${s}: kg-0 kernel equals plan`));
  }
  assert.ok(names.includes('final: fleet check'));
  const churn = r.phases.find((p) => p.scenario === 'churn')!;
  // 8 s at 10 changes/s plus the remaining nodes leaving: every one seen in the kernel.
  assert.ok(churn.changes >= 60, `churn made ${churn.changes} changes`);
  assert.equal(churn.latency.n, churn.changes);
  assert.equal(churn.latency.missed, 0);
  const leader = r.phases.find((p) => p.scenario === 'leader-loss')!;
  assert.ok(leader.latency.n >= 3, 'a leader lost: route removed, successor peered, route restored');
  // The agent saw the changes as watch events and planned them (some coalesced).
  assert.ok(churn.agent.plans > 0 && churn.agent.plans <= Object.values(churn.agent.eventsReceived).reduce((a, b) => a + b, 0));
  assert.ok(r.samples.length > 0 && r.samples.every((s) => s.rssMB > 0));
  // The fleet check walked every node's pod CIDR from every other node and every Peer.
  assert.ok(r.fleetTiming.pool && r.fleetTiming.pool.planMs > 0);
  assert.ok(r.ok);
});
