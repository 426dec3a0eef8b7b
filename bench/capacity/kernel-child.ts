// Runs inside the scratch network + mount namespace made by kernel.ts (never on the host): plans
// the leader with the pool worker's code, applies the plan with the real I/O worker, and prints
// one result line. Everything it creates lives in the namespace, which the parent deletes.
import { spawnSync } from 'node:child_process';
import run, { applyDelta } from '../../workers/plan-worker.js';
import { IoClient } from '../../workers/io-client.js';
import type { DesiredState } from '../../ipc/dataplane.js';
import type { PlanAnswer, PlanTask } from '../../ipc/planner.js';
import { A, type NodeObject } from '../../plan/node.js';
import { syntheticKey } from '../synthetic.js';
import { changedNode, loadCluster, planOptions } from './cluster.js';
import type { BenchConfig } from './options.js';
import { RESULT_MARK, stat, type KernelResult } from './kernel.js';
import { commandFlags } from '../../main/flags.js';

const ONE_CHANGE_REPS = 10;
const NOOP_REPS = 5;

function ip(...a: string[]): void {
  const r = spawnSync('ip', a, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${r.stderr.trim()}`);
}
function ok(a: PlanAnswer): Extract<PlanAnswer, { ok: true }> {
  if (!a.ok) throw new Error(`plan failed: ${'error' in a ? a.error : 'needs a snapshot'}`);
  return a;
}
async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

async function main(): Promise<KernelResult> {
  const cfg = JSON.parse(process.env.KG_BENCH_CONFIG ?? '') as BenchConfig;
  const bc = loadCluster(cfg);
  const self = bc.nodes.find((n) => n.metadata?.name === bc.leader)!;
  // The underlay: eth0 carrying the node's internal IP (routes use it as their source).
  ip('link', 'set', 'lo', 'up');
  ip('link', 'add', 'eth0', 'type', 'bridge'); // no dummy module on every kernel; a bridge carries an address as well
  const internal = self.metadata?.annotations?.[A.forceInternalIP] || self.metadata?.annotations?.[A.internalIP];
  if (internal) ip('addr', 'add', internal, 'dev', 'eth0');
  ip('link', 'set', 'eth0', 'up');

  const options = planOptions(cfg, bc.leader, bc.now);
  const privateKey = syntheticKey(0xffff, 7);
  let v = 1;
  applyDelta({ v, prev: 0, reset: true, nodes: bc.nodes, peers: bc.peers, topologyLabel: cfg.topologyLabel });
  const task = (baseSeq: number | null): PlanTask => ({ kind: 'plan', v, options, privateKey, desired: { cniPath: null, tunnelPrivIface: 'eth0', baseSeq } });
  const first = ok(await run(task(null)));
  const desired = JSON.parse(first.full!) as DesiredState;
  let seq = first.seq!;

  const io = new IoClient({ interface: 'kilo0', createInterface: true, resyncPeriodMs: 0, ipv6: false });
  const rss0 = process.memoryUsage().rss;
  await io.start();
  try {
    // Cold: the empty kernel takes the whole plan. Repeated after a clean-up while cheap.
    const cold: number[] = [];
    let coldWrites = 0;
    const errors = new Set<string>();
    for (let i = 0; i < 3; i++) {
      if (i > 0) {
        if (cold[0] > 5_000) break;
        await io.cleanUp({ interface: true });
      }
      const [ms, res] = await time(() => io.applyFull(desired, seq));
      cold.push(ms);
      coldWrites = res.writes;
      for (const e of res.errors) errors.add(`${e.kind}: ${e.message}`);
    }
    const ioWorkerRssBytes = process.memoryUsage().rss - rss0;

    // One node changes: the worker's delta against the state the I/O worker holds.
    const orig = bc.nodes.find((n) => n.metadata?.name === bc.changed) as NodeObject;
    const one: number[] = [];
    let oneChangeWrites = 0;
    for (let k = 1; k <= ONE_CHANGE_REPS; k++) {
      applyDelta({ v: v + 1, prev: v, nodes: [changedNode(orig, k)] });
      v++;
      const a = ok(await run(task(seq)));
      if (!a.delta) throw new Error('one-node change: the plan worker gave no delta');
      seq = a.seq!;
      const [ms, res] = await time(() => io.applyPrepared(a.delta!));
      if (res.needFullState) throw new Error('one-node change: the I/O worker lost its base state');
      one.push(ms);
      oneChangeWrites = res.writes;
    }

    const noop: number[] = [];
    for (let i = 0; i < NOOP_REPS; i++) noop.push((await time(() => io.resync()))[0]);

    const backend = /nf_tables/.test(spawnSync('iptables', ['--version'], { encoding: 'utf8' }).stdout ?? '') ? 'nft' : 'legacy';
    return {
      ran: true, node: bc.leader, namespace: process.env.KG_BENCH_NETNS ?? '', iptablesBackend: backend,
      desired: {
        wireguardPeers: desired.wireguard?.peers.length ?? 0, routes: desired.routes.length,
        iptablesRules: desired.iptables.prepend.length + desired.iptables.append.length,
      },
      coldApply: stat(cold), coldWrites, oneChangeApply: stat(one), oneChangeWrites, noopResync: stat(noop),
      ioWorkerRssBytes, errors: [...errors].slice(0, 3),
    };
  } finally {
    await io.cleanUp({ interface: true }).catch(() => undefined);
    await io.close();
  }
}

commandFlags(process.argv.slice(2), [{ name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' }],
  'KG_BENCH_CONFIG=JSON node dist/bench/capacity/kernel-child.js   (started by kg bench, inside its scratch namespaces)',
  'kg bench\'s kernel write cost, measured inside the scratch network namespace: plans the leader and\napplies it with the real I/O worker, then prints one result line.');
main().then(
  (r) => {
    process.stdout.write(RESULT_MARK + JSON.stringify(r) + '\n');
    process.exit(0);
  },
  (e: unknown) => {
    process.stderr.write(`kernel-child: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exit(1);
  },
);
