// The plan worker's incremental re-plans, end to end in this thread (as bench/capacity/compute.ts
// drives it): the replica fed by deltas, each plan answered with a whole state or a delta against
// the state the I/O worker holds. After every step of a long random sequence of changes, the
// state the I/O worker would hold (the previous one with the delta applied) equals the desired
// state of a fresh one-shot plan of the whole cluster.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import run, { applyDelta, replanStats } from '../../workers/plan-worker.js';
import { applySplice } from '../../diff/desired.js';
import { parseCluster, plan, type PlanOptions } from '../../plan/plan.js';
import type { DesiredDelta, DesiredState } from '../../ipc/dataplane.js';
import type { PlanAnswer } from '../../ipc/planner.js';
import { Model, scenario } from '../plan/sequence.js';
import { key, options } from '../plan/fixture.js';

const PRIVATE_KEY = key(250);

/** The desired state the worker builds from a plan (workers/plan-worker.ts desiredState). */
function freshDesired(m: Model, o: PlanOptions): DesiredState {
  const r = plan(parseCluster(m.objects(), m.peerObjects(), 'topology.kubernetes.io/region'), o, { describe: false, privateKey: PRIVATE_KEY });
  const j = r.json;
  return {
    interface: o.interface,
    wireguard: r.device
      ? {
          privateKey: PRIVATE_KEY, listenPort: j.wireguard.listenPort, mtu: o.mtu === 'auto' ? 0 : o.mtu, address: j.wireGuardCIDR,
          peers: j.wireguard.peers.map((p, i) => (r.device!.peers[i].presharedKey ? { ...p, presharedKeySecret: r.device!.peers[i].presharedKey! } : p)),
        }
      : null,
    routes: j.routes,
    rules: j.rules,
    iptables: j.iptables,
    tunnel: j.tunnel ? { dev: j.tunnel.dev, address: j.tunnel.address, privIface: 'eth0' } : null,
    cni: null,
  };
}

/** What the I/O worker does with a delta (dataplane/dataplane.ts applyDelta), on plain data. */
function receive(cur: DesiredState, d: DesiredDelta): void {
  cur.interface = d.interface;
  if (d.wireguard === null) cur.wireguard = null;
  else cur.wireguard = { ...d.wireguard, peers: cur.wireguard?.peers ?? [] };
  applySplice(cur.wireguard?.peers ?? [], d.peers);
  applySplice(cur.routes, d.routes);
  if (d.rules !== null) cur.rules = d.rules;
  if (d.chains !== null) cur.iptables.chains = d.chains;
  applySplice(cur.iptables.prepend, d.prepend);
  applySplice(cur.iptables.append, d.append);
  cur.tunnel = d.tunnel;
  cur.cni = d.cni;
}

let version = 1_000_000;
const plain = <T>(x: T): T => JSON.parse(JSON.stringify(x));

test('plan worker: incremental re-plans and their deltas equal fresh plans after long random sequences of changes', async (t) => {
  const before = replanStats();
  let deltas = 0;
  let incrementalAnswers = 0;
  await fc.assert(
    fc.asyncProperty(scenario, async (sc) => {
      const m = new Model(sc.nodes);
      let v = ++version;
      applyDelta({ v, prev: 0, reset: true, nodes: m.objects(), peers: m.peerObjects(), topologyLabel: 'topology.kubernetes.io/region' });
      let held: { seq: number; state: DesiredState } | null = null;
      for (const [i, op] of [{ kind: 'tick', seconds: 0 } as const, ...sc.ops].entries()) {
        const peersBefore = m.peerObjects().map((p) => p.metadata!.name!);
        const step = m.apply(op);
        const prev = v;
        v = ++version;
        const peers = step.peers ? { peers: step.peers, peerDeletes: peersBefore.filter((n) => !step.peers!.some((p) => p.metadata!.name === n)) } : {};
        applyDelta({ v, prev, nodes: step.nodes, nodeDeletes: step.deletes, lastSeen: step.lastSeen, ...peers });
        const o = { ...options('n00', { granularity: sc.granularity, encapsulate: sc.encapsulate, local: true }), now: m.now };
        const a: PlanAnswer = await run({ kind: 'plan', v, options: o, privateKey: PRIVATE_KEY, desired: { cniPath: null, tunnelPrivIface: 'eth0', baseSeq: (held as { seq: number } | null)?.seq ?? null } });
        let want: DesiredState | string;
        try {
          want = plain(freshDesired(m, o));
        } catch (e) {
          want = `error: ${(e as Error).message}`;
        }
        if (!a.ok) {
          assert.equal('error' in a ? `error: ${a.error}` : 'needs a snapshot', want, `step ${i}`);
          continue;
        }
        if (a.replan?.incremental) incrementalAnswers++;
        else assert.ok(a.replan && a.replan.reason.length > 0, `step ${i}: a full plan names its reason`);
        if (a.full !== undefined) held = { seq: a.seq!, state: JSON.parse(a.full) };
        else if (a.delta) {
          assert.ok(held && a.delta.base === held.seq, `step ${i}: a delta against a state the receiver holds`);
          receive(held.state, plain(a.delta));
          held.seq = a.seq!;
          deltas++;
        } else assert.ok(a.noop && held !== null && a.seq === held.seq, `step ${i}: a no-op keeps the held state`);
        assert.deepEqual(plain(held!.state), want, `step ${i} (${JSON.stringify(op)})`);
      }
    }),
    { numRuns: 60 },
  );
  const after = replanStats();
  t.diagnostic(`${deltas} deltas; ${after.incremental - before.incremental} incremental plans, ${after.full - before.full} full`);
  assert.ok(after.incremental - before.incremental > 300, 'many plans took the incremental path');
  assert.equal(incrementalAnswers, after.incremental - before.incremental, 'each answer says whether it was incremental');
});
