// Dataplane benchmark (a benchmark, not a test): a 5,000-node full-granularity plan on one leader
// (~5,000 WireGuard peers, ~15,000 routes, ~15,000 iptables rules) applied to a real kernel in a
// network namespace this program creates and deletes, with userspace WireGuard (wireguard-go).
//
//   node dist/bench/dataplane.js [--nodes=5000] [--reps=15] [--backend=nft|legacy] [--go-iptables-subset=1000] [--quick] [--json]
//
// Measures, in one run: cold apply; one-node-change apply (in-thread and through the real I/O
// worker); no-op resync; raw `ip -batch` and raw `iptables-restore` of the same content; and the
// same work done the Go agent's way (replace all peers; one iptables process per rule check and
// write; one process per route write). Explicit timing with repetitions; min / median reported.

import { spawnSync } from 'node:child_process';
import { Dataplane } from '../dataplane/dataplane.js';
import { Exec } from '../dataplane/exec.js';
import { IptablesReconciler, toolsFor } from '../dataplane/iptables.js';
import { RouteReconciler } from '../dataplane/routes.js';
import { uapiRequest } from '../dataplane/wireguard.js';
import { b64ToHex } from '../kernel/uapi.js';
import { replaceLine } from '../kernel/ip-format.js';
import { desiredRouteMap } from '../diff/routes.js';
import { quoteArg } from '../kernel/iptables-save.js';
import { DeltaTracker } from '../diff/desired.js';
import { KG_PROTO } from '../kernel/owner.js';
import { IoClient } from '../workers/io-client.js';
import type { DesiredState } from '../ipc/dataplane.js';
import { fixture, wgIP } from './plan-fixture.js';
import { commandFlags, type FlagDef } from '../main/flags.js';
import { stateApplier } from '../test/dataplane/deltas.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool } from '../test/dataplane/netns.js';

const FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '5000', usage: 'Nodes of the full-granularity plan applied on one leader.' },
  { name: 'reps', type: 'string', default: '15', usage: 'Repetitions of each measurement.' },
  { name: 'backend', type: 'string', default: 'nft', usage: 'iptables backend: nft or legacy.' },
  { name: 'go-iptables-subset', type: 'string', default: '1000', usage: 'Rules written the Go agent\'s way (one process per rule), then scaled.' },
  { name: 'join-leave-only', type: 'bool', default: false, usage: 'Only the one-node join/leave per iptables layout (sets against kilo, same run).' },
  { name: 'quick', type: 'bool', default: false, usage: 'Skip the Go-way cold measurements (per-route and per-rule processes take minutes).' },
  { name: 'json', type: 'bool', default: false, usage: 'Also print the results as one JSON line.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const cli = commandFlags(process.argv.slice(2), FLAGS, 'node dist/bench/dataplane.js [flags]',
  'A 5,000-node full-granularity plan applied to a real kernel in a scratch network namespace (needs\nroot, wireguard-go): cold apply, one-node change, no-op resync, raw tools, and the Go agent\'s way.');
const NODES = Number(cli.nodes);
const REPS = Number(cli.reps);
const BACKEND = cli.backend as 'nft' | 'legacy';
const GO_IPT_SUBSET = Number(cli['go-iptables-subset']);
const QUICK = cli.quick as boolean;
const JOIN_LEAVE_ONLY = cli['join-leave-only'] as boolean;

interface Stat {
  min: number;
  median: number;
  max: number;
  n: number;
}
function stat(xs: number[]): Stat {
  const s = [...xs].sort((a, b) => a - b);
  return { min: s[0], median: s[Math.floor(s.length / 2)], max: s[s.length - 1], n: s.length };
}
const f = (ms: number): string => (ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${ms.toFixed(1)} ms`);
const fs = (s: Stat): string => `min ${f(s.min)}  median ${f(s.median)}  max ${f(s.max)}  (n=${s.n})`;
const results: Record<string, unknown> = {};
function report(name: string, v: Stat | number, note = ''): void {
  results[name] = v;
  console.log(`${name.padEnd(48)} ${typeof v === 'number' ? f(v) : fs(v)}${note ? '  ' + note : ''}`);
}

async function time<T>(fn: () => Promise<T>): Promise<[number, T]> {
  const t0 = performance.now();
  const r = await fn();
  return [performance.now() - t0, r];
}

function check(cond: boolean, msg: string): void {
  if (!cond) throw new Error(`benchmark sanity check failed: ${msg}`);
}

/**
 * The benchmark runs inside the node's network and mount namespaces (it re-executes itself under
 * nsenter), so that, as in production, every command and the worker act on the process's own
 * namespace: no nsenter per command.
 */
async function outer(): Promise<number> {
  requireTool('wireguard-go', 'wg', 'ip', 'nsenter', `iptables-${BACKEND}-restore`);
  const node = TestNode.create('bench');
  try {
    const r = spawnSync('nsenter', [`--net=${node.netPath}`, `--mount=${node.mountPath}`, '--', process.execPath, ...process.execArgv, process.argv[1], ...process.argv.slice(2)], {
      stdio: 'inherit',
      env: { ...process.env, KG_BENCH_INNER: '1' },
    });
    return r.status ?? 1;
  } finally {
    node.destroy(); // kills any wireguard-go left in the namespace by pid, then deletes it
    cleanupMntRoot();
  }
}

async function main(): Promise<void> {
  const exec = new Exec(null);
  const ip = (...a: string[]): string => {
    const r = spawnSync('ip', a, { encoding: 'utf8', maxBuffer: 256 << 20 });
    if (r.status !== 0) throw new Error(`ip ${a.join(' ')}: ${r.stderr}`);
    return r.stdout;
  };
  const node = { ip };
  const uapiDir = '/var/run/wireguard';
  const opts = { nsenter: null, uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: BACKEND, ipv6: false } as const;
  let dp: Dataplane | null = null;
  try {
    ip('link', 'set', 'lo', 'up');
    node.ip('link', 'add', 'eth0', 'type', 'bridge');
    node.ip('addr', 'add', '172.16.0.1/16', 'dev', 'eth0');
    node.ip('link', 'set', 'eth0', 'up');
    const { privateKey } = keyPair();
    const plan = (changed = 0): DesiredState => fixture({ nodes: NODES, privateKey, changed });
    const base = plan();
    const nRoutes = base.routes.length;
    const nRules = base.iptables.prepend.length + base.iptables.append.length;
    console.log(`workload: ${NODES} nodes: ${base.wireguard!.peers.length} peers, ${nRoutes} routes, ${nRules} iptables rules; backend ${BACKEND}; userspace WireGuard`);

    await joinLeave(base, exec);
    if (JOIN_LEAVE_ONLY) {
      if (cli.json) console.log(JSON.stringify(results));
      return;
    }

    // ---- cold apply (fresh Dataplane, empty kernel) -----------------------------------------
    const cold: number[] = [];
    const coldParts: Record<string, number[]> = {};
    let applyState: ReturnType<typeof stateApplier> | null = null;
    for (let i = 0; i < 3; i++) {
      if (dp) {
        await dp.cleanUp({ interface: true });
        await dp.close();
      }
      const d = new Dataplane(opts);
      dp = d;
      const apply = (applyState = stateApplier(d));
      const [ms, res] = await time(() => apply(base));
      check(res.ok, JSON.stringify(res.errors.slice(0, 3)));
      cold.push(ms);
      for (const r of res.reports) (coldParts[r.kind] ??= []).push(r.durationMs);
    }
    report('cold apply (in-thread)', stat(cold));
    for (const k of ['wireguard', 'routes', 'iptables']) report(`  cold: ${k}`, stat(coldParts[k]));
    const held = (JSON.parse(node.ip('-4', '-j', 'route', 'show', 'proto', String(KG_PROTO))) as unknown[]).length;
    check(held === nRoutes, `kernel holds ${held} routes, want ${nRoutes}`);

    const live: Dataplane = dp!;
    const liveApply = applyState!;
    // ---- no-op resync ---------------------------------------------------------------------------
    const noop: number[] = [];
    for (let i = 0; i < 5; i++) {
      const [ms, res] = await time(() => live.resync());
      check(res.ok && res.writes === 0, `no-op resync wrote ${res.writes}`);
      noop.push(ms);
    }
    report('no-op resync (re-read everything, 0 writes)', stat(noop));

    // ---- one-node change --------------------------------------------------------------------------
    const plans = Array.from({ length: REPS + 1 }, (_, i) => plan(i + 1));
    const one: number[] = [];
    const oneParts: Record<string, number[]> = {};
    for (let i = 0; i <= REPS; i++) {
      const [ms, res] = await time(() => liveApply(plans[i]));
      check(res.ok, JSON.stringify(res.errors.slice(0, 3)));
      if (i === 0) continue; // the first adds; the rest each change node 2's extra address
      check(res.writes <= 8, `one-node change wrote ${res.writes}`);
      one.push(ms);
      for (const r of res.reports) (oneParts[r.kind] ??= []).push(r.durationMs);
    }
    report('one-node change (in-thread)', stat(one));
    for (const k of ['wireguard', 'routes', 'iptables']) report(`  one-node: ${k}`, stat(oneParts[k]));
    const afterRes = await live.resync();
    check(afterRes.writes === 0, 'kernel matches after the deltas');
    await live.close();

    // ---- the same through the real I/O worker (structured clone + comlink included) -----------
    const client = new IoClient(opts);
    await client.start();
    let last = plans[REPS];
    // The sender's side of the delta (the plan worker's DeltaTracker), here on the main thread.
    const tracker = new DeltaTracker();
    tracker.full(last);
    let r0 = await client.applyFull(last, tracker.seq);
    check(r0.ok && r0.writes === 0, `worker adopt: ${r0.writes} writes`);
    const viaWorker: number[] = [];
    const inWorker: number[] = [];
    const workerPlans = Array.from({ length: REPS }, (_, i) => plan(100 + i));
    for (let i = 0; i < REPS; i++) {
      last = workerPlans[i];
      const [ms, res] = await time(() => client.applyPrepared(tracker.delta(last)));
      check(res.ok && !res.needFullState, JSON.stringify(res.errors.slice(0, 3)));
      viaWorker.push(ms);
      inWorker.push(res.durationMs);
    }
    report('one-node change: worker pass (delta in -> kernel)', stat(inWorker));
    report('one-node change: client call end to end', stat(viaWorker), 'key diff on main thread + IPC + worker pass');
    r0 = await client.resync();
    check(r0.writes === 0, 'worker: kernel matches');

    // floors of a one-node change: a process spawn, and one 2-line iptables-restore into the big chain
    const spawnFloor: number[] = [];
    for (let i = 0; i < 10; i++) spawnFloor.push((await time(() => exec.run('true', [])))[0]);
    report('floor: spawn one process (true)', stat(spawnFloor));
    const restoreTool = toolsFor(BACKEND, 'ipv4').restore;
    const rawDelta: number[] = [];
    for (let i = 0; i < 10; i++) {
      // Inside the chain (about two rules per node): 7001 at 5,000 nodes, as before; it was fixed
      // at 7001 and failed below ~3,500 nodes.
      const at = Math.round(NODES * 1.4) + 1;
      const [ms, r] = await time(() => exec.run(restoreTool, ['--noflush'], `*nat\n-I KILO-NAT ${at} -d 10.252.0.0/24 -j RETURN\n-D KILO-NAT ${at}\nCOMMIT\n`));
      check(r.code === 0, r.stderr);
      rawDelta.push(ms);
    }
    report('floor: raw 2-line iptables-restore in the big chain', stat(rawDelta), `one-node worker pass / this = ${(stat(inWorker).median / stat(rawDelta).median).toFixed(2)}x`);
    await client.close();
    dp = new Dataplane(opts); // adopts the interface for the Go-way and clean-up below
    await dp.apply(last);

    // ---- raw baselines of the same content -------------------------------------------------------
    const routeLines = [...desiredRouteMap(last.routes).values()].map(replaceLine).join('\n') + '\n';
    const flushRoutes = (): void => void node.ip('route', 'flush', 'proto', String(KG_PROTO));
    const rawIp: number[] = [];
    const ourRoutes: number[] = [];
    for (let i = 0; i < 3; i++) {
      flushRoutes();
      const [ms, r] = await time(() => exec.run('ip', ['-batch', '-'], routeLines));
      check(r.code === 0, r.stderr);
      rawIp.push(ms);
      flushRoutes();
      const rr = new RouteReconciler(exec, 1107);
      rr.setDesired(last.routes);
      const [ms2, rep] = await time(() => rr.reconcile(false));
      check(rep.errors.length === 0 && rep.writes === nRoutes + 1, `route cold ${rep.writes}`);
      ourRoutes.push(ms2);
    }
    report('raw ip -batch (same routes)', stat(rawIp));
    report('route reconciler cold (read+diff+batch)', stat(ourRoutes), `ratio ${(stat(ourRoutes).median / stat(rawIp).median).toFixed(2)}x`);

    const t = toolsFor(BACKEND, 'ipv4');
    const rawRestore = '*filter\n' + last.iptables.prepend.filter((r) => r.table === 'filter').map((r) => `-I ${r.chain} 1 ${r.rule.map(quoteArg).join(' ')}`).join('\n') + '\nCOMMIT\n*nat\n:KILO-NAT - [0:0]\n' +
      [...last.iptables.prepend, ...last.iptables.append].filter((r) => r.table === 'nat').map((r) => `-A ${r.chain} ${r.rule.map(quoteArg).join(' ')}`).join('\n') + '\nCOMMIT\n';
    const rawIpt: number[] = [];
    const ourIpt: number[] = [];
    for (let i = 0; i < 3; i++) {
      await new IptablesReconciler(exec, { backend: BACKEND, ipv6: false, layout: 'kilo' }).cleanUp();
      const [ms, r] = await time(() => exec.run(t.restore, ['--noflush'], rawRestore));
      check(r.code === 0, r.stderr);
      rawIpt.push(ms);
      await new IptablesReconciler(exec, { backend: BACKEND, ipv6: false, layout: 'kilo' }).cleanUp();
      const ir = new IptablesReconciler(exec, { backend: BACKEND, ipv6: false, layout: 'kilo' });
      ir.setDesired(last.iptables);
      const [ms2, rep] = await time(() => ir.reconcile(false));
      check(rep.errors.length === 0, JSON.stringify(rep.errors));
      ourIpt.push(ms2);
    }
    report('raw iptables-restore (same rules)', stat(rawIpt));
    report('iptables reconciler cold (save+diff+restore)', stat(ourIpt), `ratio ${(stat(ourIpt).median / stat(rawIpt).median).toFixed(2)}x`);
    await dp.resync(); // back in step

    // ---- the Go agent's way ----------------------------------------------------------------------
    const sock = `${uapiDir}/kilo0.sock`;
    const fullSet = (): string => {
      const out = ['set=1', `private_key=${b64ToHex(privateKey)}`, 'listen_port=51820', 'replace_peers=true'];
      for (const p of last.wireguard!.peers) {
        out.push(`public_key=${b64ToHex(p.publicKey)}`, 'replace_allowed_ips=true', 'persistent_keepalive_interval=0');
        if (p.endpoint) out.push(`endpoint=${p.endpoint}`);
        for (const a of p.allowedIPs) out.push(`allowed_ip=${a}`);
      }
      return out.join('\n') + '\n\n';
    };
    const goWg: number[] = [];
    for (let i = 0; i < 5; i++) goWg.push((await time(() => uapiRequest(sock, fullSet(), 60_000)))[0]);
    report('Go way: replace all peers (one UAPI set)', stat(goWg));

    // one-node change, Go way: replace all peers + per-rule iptables (-C,-I,-D) + per-route ip processes
    const ipt = `iptables-${BACKEND}`;
    const goChange: number[] = [];
    for (let i = 0; i < 5; i++) {
      const v = 200 + i;
      const newRule = ['-d', `10.201.0.${v}/32`, '-m', 'comment', '--comment', 'Kilo: do not NAT packets destined for known IPs', '-j', 'RETURN'];
      const [ms] = await time(async () => {
        await uapiRequest(sock, fullSet(), 60_000);
        const c = await exec.run(ipt, ['-w', '-t', 'nat', '-C', 'KILO-NAT', ...newRule]);
        if (c.code !== 0) await exec.run(ipt, ['-w', '-t', 'nat', '-I', 'KILO-NAT', '1', ...newRule]);
        await exec.run(ipt, ['-w', '-t', 'nat', '-D', 'KILO-NAT', ...newRule]);
        await exec.run('ip', ['route', 'replace', `10.201.0.${v}/32`, 'via', wgIP(2), 'dev', 'kilo0', 'onlink', 'proto', 'static']);
        await exec.run('ip', ['route', 'del', `10.201.0.${v}/32`, 'proto', 'static']);
      });
      goChange.push(ms);
    }
    report('Go way: one-node change', stat(goChange), `ratio vs ours ${(stat(goChange).median / stat(one).median).toFixed(1)}x`);

    if (QUICK) {
      console.log('(--quick: Go-way cold measurements skipped)');
      printTargets();
      return;
    }
    // cold, Go way: per-route processes for all routes (measured in full) ...
    flushRoutes();
    const routes = [...desiredRouteMap(last.routes).values()];
    const [goRoutesMs] = await time(async () => {
      for (const r of routes) await exec.run('ip', replaceLine(r).split(' '));
    });
    check((JSON.parse(node.ip('-4', '-j', 'route', 'show', 'proto', String(KG_PROTO))) as unknown[]).length === routes.length, 'Go-way routes all installed');
    report(`Go way: ${routes.length} routes, one process each`, goRoutesMs, `ratio vs raw batch ${(goRoutesMs / stat(rawIp).median).toFixed(0)}x`);
    // ... and per-rule iptables (-C then -A) on a documented subset, extrapolated linearly
    await new IptablesReconciler(exec, { backend: BACKEND, ipv6: false, layout: 'kilo' }).cleanUp();
    await exec.run(ipt, ['-w', '-t', 'nat', '-N', 'KILO-NAT']);
    const subset = last.iptables.prepend.filter((r) => r.chain === 'KILO-NAT').slice(0, GO_IPT_SUBSET);
    const [goIptMs] = await time(async () => {
      for (const r of subset) {
        const c = await exec.run(ipt, ['-w', '-t', 'nat', '-C', 'KILO-NAT', ...r.rule]);
        if (c.code !== 0) await exec.run(ipt, ['-w', '-t', 'nat', '-A', 'KILO-NAT', ...r.rule]);
      }
    });
    report(`Go way: ${subset.length} iptables rules (-C + -A each), measured`, goIptMs);
    const extrapolated = (goIptMs / subset.length) * nRules;
    report(`Go way: ${nRules} iptables rules, EXTRAPOLATED (linear, a lower bound)`, extrapolated, `ratio vs raw restore ${(extrapolated / stat(rawIpt).median).toFixed(0)}x`);
    const goCold = stat(goWg).median + goRoutesMs + extrapolated;
    report('Go way: cold total (peers + routes measured, iptables extrapolated)', goCold, `ratio vs ours ${(goCold / stat(cold).median).toFixed(0)}x`);

    printTargets();
    function printTargets(): void {
    console.log('\ntargets: one-node change <= 50 ms in the worker; cold apply <= 2 s; reconcilers within 1.5x of raw ip -batch / iptables-restore');
    console.log(
      `  one-node (worker pass, median) ${f(stat(inWorker).median)}, client end to end ${f(stat(viaWorker).median)}; cold (median) ${f(stat(cold).median)}; routes ${(stat(ourRoutes).median / stat(rawIp).median).toFixed(2)}x raw; iptables ${(stat(ourIpt).median / stat(rawIpt).median).toFixed(2)}x raw`,
    );
    if (cli.json) console.log(JSON.stringify(results));
    }
  } finally {
    if (dp) {
      await dp.cleanUp({ interface: true }).catch(() => undefined);
      await dp.close();
      await dp.wireguard.stopChild();
    }
  }
}

/**
 * One node leaves, then joins again, at NODES nodes, in each iptables layout (design §8.10): the
 * agent's kernel work per change (the worker pass: WireGuard, routes, iptables/ipset), each
 * layout on a fresh kernel state in the same run. Then the floors of one element write: `ipset
 * restore` against `nft -f` into a native nftables set of the same size.
 */
async function joinLeave(base: DesiredState, exec: Exec): Promise<void> {
  const leave = fixture({ nodes: NODES, privateKey: base.wireguard!.privateKey, omit: Math.floor(NODES / 2) });
  const medians: Record<string, number> = {};
  for (const layout of ['kilo', 'sets'] as const) {
    const d = new Dataplane({ nsenter: null, uapiDir: '/var/run/wireguard', resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: BACKEND, ipv6: false, iptablesLayout: layout });
    try {
      const apply = stateApplier(d);
      check((await apply(base)).ok, `${layout}: cold apply`);
      const pass: number[] = [];
      const ipt: number[] = [];
      for (let i = 0; i < REPS; i++) {
        for (const next of [leave, base]) {
          const res = await apply(next);
          check(res.ok && !res.needFullState, `${layout}: ${JSON.stringify(res.errors.slice(0, 3))}`);
          check(res.writes <= 12, `${layout}: one node change wrote ${res.writes}`);
          pass.push(res.durationMs);
          ipt.push(res.reports.find((r) => r.kind === 'iptables')!.durationMs);
        }
      }
      const noop = await d.resync();
      check(noop.writes === 0, `${layout}: resync after the changes wrote ${noop.writes}`);
      report(`join/leave, ${layout} layout: worker pass`, stat(pass));
      report(`join/leave, ${layout} layout: iptables part`, stat(ipt));
      medians[layout] = stat(pass).median;
    } finally {
      await d.cleanUp({ interface: true });
      await d.close();
      await d.wireguard.stopChild();
    }
  }
  console.log(`join/leave at ${NODES} nodes: sets ${f(medians.sets)} vs kilo ${f(medians.kilo)} (ratio kilo/sets ${(medians.kilo / medians.sets).toFixed(1)}x); target sets <= 15 ms`);
  await elementFloors(exec, base);
}

/** One element added and deleted: `ipset restore` vs `nft -f`, into sets holding the plan's NAT addresses. */
async function elementFloors(exec: Exec, base: DesiredState): Promise<void> {
  const addrs = base.iptables.prepend.filter((r) => r.chain === 'KILO-NAT').map((r) => r.rule[1]);
  const ipsetIn = ['create kgbench hash:net family inet maxelem 262144', ...addrs.map((a) => `add kgbench ${a}`)];
  check((await exec.batch('ipset', ['restore', '-exist'], ipsetIn)).code === 0, 'ipset fill');
  const nftIn = ['table ip kgbench {', ' set s { type ipv4_addr; flags interval; auto-merge; }', '}', `add element ip kgbench s { ${addrs.join(', ')} }`];
  const nftFill = await exec.batch('nft', ['-f', '-'], nftIn);
  check(nftFill.code === 0, `nft fill: ${nftFill.stderr}`);
  const ipsetOne: number[] = [];
  const nftOne: number[] = [];
  for (let i = 0; i < 2 * REPS; i++) {
    const [a] = await time(() => exec.batch('ipset', ['restore', '-exist'], ['add kgbench 10.252.0.0/24', 'del kgbench 10.252.0.0/24']));
    ipsetOne.push(a);
    const [b, r] = await time(() => exec.batch('nft', ['-f', '-'], ['add element ip kgbench s { 10.252.0.0/24 }', 'delete element ip kgbench s { 10.252.0.0/24 }']));
    check(r.code === 0, `nft element: ${r.stderr}`);
    nftOne.push(b);
  }
  report(`floor: ipset restore, one element add+del (${addrs.length} in the set)`, stat(ipsetOne));
  report(`floor: nft -f, one element add+del (${addrs.length} in the set)`, stat(nftOne), `nft/ipset ${(stat(nftOne).median / stat(ipsetOne).median).toFixed(2)}x`);
  await exec.run('ipset', ['destroy', 'kgbench']);
  await exec.run('nft', ['delete', 'table', 'ip', 'kgbench']);
}

if (process.env.KG_BENCH_INNER === '1') {
  main().then(
    () => process.exit(0),
    (e) => {
      console.error(e);
      process.exit(1);
    },
  );
} else {
  outer().then((code) => process.exit(code));
}
