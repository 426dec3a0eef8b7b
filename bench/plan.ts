// Benchmark: one node's full plan (parse + topology + routes + rules + WireGuard + iptables) at
// N = 100 … 10,000 nodes, in 1 and 100 locations, for the three granularities. Measured with mitata,
// twice: as `kg plan` runs it (with the plan-format description of every node and segment), and
// without the description (the stages the planner issue names, nothing else).
// Baseline in the same run: structuredClone of the same Node objects, i.e. what merely handing
// the cluster to a worker thread would cost. Also measured: a plan from records already parsed
// (as the pool's replica holds them), without the description and with memoisation off, i.e. a
// re-plan in which every segment changed (JSON name `plan/agent-replan/…`, kept for comparisons).
//
// Also (bench/replan.ts): the agent's one-node re-plan in the plan worker at 1k, 5k and 10k
// nodes, both granularities, incremental against the memoised full re-plan in the same run.
//
// Also (bench/alip.ts): the plan at 5,000 nodes when two nodes claim 10,000 allowed-location
// IPs each, with the cap at its default and lifted, and against a baseline build if given.
//
//   node dist/bench/plan.js [--sizes 100,1000,5000,10000] [--json bench-results.json] [--quick]
//                           [--baseline-dist OTHER/dist] [--alip-only] [--replan-sizes 1000,5000,10000] [--replan-only]
//                           [--dual-stack-subnet fd04::/64] [--alip=false]
// With --dual-stack-subnet (design §20), every size is also measured dual-stack (each node with an
// IPv6 pod CIDR and internal IP, bench/synthetic.ts), in the same run, after its single-stack rows.
//
// Always writes a results file (default bench-results.json) in the comparable format of
// bench/compare.ts; `node dist/bench/compare.js old.json new.json` flags regressions.
import { writeFileSync } from 'node:fs';
import { resultsFile, type Measurement } from './compare.js';
import { loadCluster } from './capacity/cluster.js';
import { measureCompute } from './capacity/compute.js';
import { parseBenchFlags } from './capacity/options.js';
import { measure } from 'mitata';
import { parseCIDR } from '../plan/addr.js';
import { parseCluster, plan, type PlanOptions } from '../plan/plan.js';
import type { Granularity } from '../plan/types.js';
import { syntheticName, syntheticNodes, syntheticPeers } from './synthetic.js';
import { measureALIPs } from './alip.js';
import { measureReplans } from './replan.js';
import { commandFlags, type FlagDef } from '../main/flags.js';

const FLAGS: FlagDef[] = [
  { name: 'sizes', type: 'string', default: '100,1000,5000,10000', usage: 'Comma-separated cluster sizes (nodes).' },
  { name: 'json', type: 'string', default: 'bench-results.json', usage: 'Results file, in the format bench/compare.ts reads.' },
  { name: 'quick', type: 'bool', default: false, usage: 'A smaller time budget per measurement (a smoke run, not numbers to compare).' },
  { name: 'baseline-dist', type: 'string', default: '', usage: 'Another build\'s dist/ to measure the allowed-location-IP plan against.' },
  { name: 'alip-only', type: 'bool', default: false, usage: 'Only the allowed-location-IP measurements (bench/alip.ts).' },
  { name: 'replan-sizes', type: 'string', default: '1000,5000,10000', usage: 'Cluster sizes for the one-node re-plan measurements (bench/replan.ts); empty: none.' },
  { name: 'replan-only', type: 'bool', default: false, usage: 'Only the one-node re-plan measurements (bench/replan.ts).' },
  { name: 'alip', type: 'bool', default: true, usage: 'The allowed-location-IP measurements at 5,000 nodes (bench/alip.ts); --alip=false: without them.' },
  { name: 'dual-stack-subnet', type: 'string', default: '', usage: 'An IPv6 mesh subnet (e.g. fd04::/64): every size of the plan and re-plan tables is also measured dual-stack (design §20), in the same run.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const args = commandFlags(process.argv.slice(2), FLAGS, 'node dist/bench/plan.js [flags]',
  'One node\'s full plan at each size, in 1 and 100 locations, for the three granularities (mitata), with a\nstructuredClone baseline; writes a results file for bench/compare.js.');
const sizes = (args.sizes as string).split(',').map(Number);
const quick = args.quick as boolean;
const replanOnly = args['replan-only'] as boolean;
const alipOnly = (args['alip-only'] as boolean) || replanOnly;
const replanSizes = (args['replan-sizes'] as string).split(',').filter((x) => x.trim() !== '').map(Number);
const NOW = 1_764_160_000;
const dualStackSubnet = (args['dual-stack-subnet'] as string) ? parseCIDR(args['dual-stack-subnet'] as string) : null;
if ((args['dual-stack-subnet'] as string) && (dualStackSubnet === null || !dualStackSubnet.ip.v6)) {
  process.stderr.write(`invalid --dual-stack-subnet ${JSON.stringify(args['dual-stack-subnet'])}: an IPv6 CIDR (the fixture's first family is IPv4)\n`);
  process.exit(1);
}
/** Single stack, then dual stack when asked for. */
const stacks = dualStackSubnet ? [false, true] : [false];

function options(hostname: string, granularity: Granularity, dualStack = false): PlanOptions {
  return {
    hostname, granularity, subnet: parseCIDR('10.4.0.0/16')!, encapsulate: 'always', local: true, cni: true, compatibility: '',
    iptablesForwardRules: false, serviceCIDRs: [], interface: 'kilo0', mtu: 1420, privateInterface: 'eth0', tunnelInterface: 'tunl0', now: NOW + 1,
    ...(dualStack ? { dualStackSubnet } : {}),
  };
}
/** The granularity column: `full`, or `full, dual stack`. */
const shown = (granularity: Granularity, dualStack: boolean) => (dualStack ? `${granularity}, dual stack` : granularity);

const ms = (ns: number) => ns / 1e6;
interface Row { nodes: number; locations: number; granularity: Granularity; dualStack: boolean; p50: number; p99: number; min: number; perNodeUs: number; bareP50: number; bareP99: number; cloneP50: number; parsedP50: number; wgPeers: number; routes: number; iptables: number }
const rows: Row[] = [];

for (const n of alipOnly ? [] : sizes) {
  for (const [locations, dualStack] of stacks.flatMap((d) => [1, 100].map((l) => [l, d] as const))) {
    const nodes = syntheticNodes({ nodes: n, locations, peers: 0, now: NOW, dualStack });
    const peers = syntheticPeers({ nodes: n, locations, peers: 100, now: NOW });
    for (const granularity of ['location', 'full', 'cross'] as Granularity[]) {
      const o = options(syntheticName(0), granularity, dualStack);
      const shape = plan(parseCluster(nodes, peers, 'topology.kubernetes.io/region'), o).json;
      const budget = { min_cpu_time: quick ? 100e6 : 800e6, max_samples: quick ? 30 : 500 };
      const s = await measure(() => plan(parseCluster(nodes, peers, 'topology.kubernetes.io/region'), o), budget);
      const b = await measure(() => plan(parseCluster(nodes, peers, 'topology.kubernetes.io/region'), o, { describe: false }), budget);
      const c = await measure(() => structuredClone(nodes), budget);
      const parsed = parseCluster(nodes, peers, 'topology.kubernetes.io/region');
      const a = await measure(() => plan(parsed, o, { describe: false }), budget);
      rows.push({
        nodes: n, locations, granularity, dualStack, p50: ms(s.p50), p99: ms(s.p99), min: ms(s.min), perNodeUs: (s.p50 / 1e3) / n, bareP50: ms(b.p50), bareP99: ms(b.p99), cloneP50: ms(c.p50), parsedP50: ms(a.p50),
        wgPeers: shape.wireguard.peers.length, routes: shape.routes.length, iptables: shape.iptables.prepend.length + shape.iptables.append.length,
      });
      const r = rows.at(-1)!;
      process.stderr.write(`${n} nodes, ${locations} loc, ${shown(granularity, dualStack)}: p50 ${r.p50.toFixed(2)} ms\n`);
    }
  }
}

const f = (x: number) => x.toFixed(2);
console.log('| nodes | locations | granularity | full plan p50 ms | p99 ms | µs/node | without description p50 / p99 ms | from parsed records p50 ms | clone p50 ms | plan/clone | WG peers | routes | iptables rules |');
console.log('|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const r of rows) {
  console.log(`| ${r.nodes} | ${r.locations} | ${shown(r.granularity, r.dualStack)} | ${f(r.p50)} | ${f(r.p99)} | ${f(r.perNodeUs)} | ${f(r.bareP50)} / ${f(r.bareP99)} | ${f(r.parsedP50)} | ${f(r.cloneP50)} | ${f(r.p50 / r.cloneP50)} | ${r.wgPeers} | ${r.routes} | ${r.iptables} |`);
}
// Linearity: time per node at the largest size over the smallest (1.0 = perfectly linear), for
// both plans and for the baseline, whose own growth shows what copying the same Node objects
// costs once they outgrow the caches and V8's young generation.
const perNode = (msOf: (r: Row) => number) => (r: Row) => msOf(r) / r.nodes;
const [kgPlan, bare, clone] = [perNode((r) => r.p50), perNode((r) => r.bareP50), perNode((r) => r.cloneP50)];
for (const [g, dualStack] of (['location', 'full', 'cross'] as Granularity[]).flatMap((g) => stacks.map((d) => [g, d] as const))) {
  for (const locations of [1, 100]) {
    const sel = rows.filter((r) => r.granularity === g && r.locations === locations && r.dualStack === dualStack);
    if (sel.length < 2) continue;
    const [a, z] = [sel[0], sel.at(-1)!];
    console.log(`linearity ${shown(g, dualStack)}, ${locations} loc: µs/node at ${z.nodes} ÷ at ${a.nodes} = ${f(kgPlan(z) / kgPlan(a))} (kg plan), ${f(bare(z) / bare(a))} (without description); structuredClone baseline ${f(clone(z) / clone(a))}`);
  }
}
// The agent's pool-worker path (kg bench's plan-time measurement): snapshot + plan, and a
// one-node change, in location granularity with 50 locations and 100 Peers.
const worker: Measurement[] = [];
for (const n of alipOnly ? [] : sizes) {
  const cfg = { ...parseBenchFlags([]), nodes: n, locations: Math.min(50, n), peers: 100, timeBudgetMs: quick ? 100 : 800 };
  const w = await measureCompute(cfg, loadCluster(cfg));
  const key = `${n} nodes/${cfg.locations} loc/location`;
  worker.push({ name: `worker/full/${key}`, unit: 'ms', p50: w.fullPlan.p50Ms, p99: w.fullPlan.p99Ms, min: w.fullPlan.minMs });
  worker.push({ name: `worker/incremental/${key}`, unit: 'ms', p50: w.incrementalPlan.p50Ms, p99: w.incrementalPlan.p99Ms, min: w.incrementalPlan.minMs });
  console.log(`pool-worker path, ${key}: full p50 ${f(w.fullPlan.p50Ms)} ms, one-node change p50 ${f(w.incrementalPlan.p50Ms)} ms`);
}

// The one-node re-plan (bench/replan.ts): incremental against the memoised full re-plan.
const replans = args['alip-only'] as boolean ? null : await measureReplans(replanSizes, quick ? 100 : 800, parseCIDR('10.4.0.0/16')!, NOW, dualStackSubnet);
if (replans) worker.push(...replans.measurements);

if (!replanOnly && (args.alip as boolean)) worker.push(...await measureALIPs({ nodes: 5000, each: 10_000, baselineDist: (args['baseline-dist'] as string) || undefined, budgetMs: quick ? 300 : 3000, options, now: NOW }));

const out = args.json as string;
const measurements: Measurement[] = rows.flatMap((r): Measurement[] => {
  const key = `${r.nodes} nodes/${r.locations} loc/${r.granularity}${r.dualStack ? '/dual-stack' : ''}`;
  return [
    { name: `plan/full/${key}`, unit: 'ms', p50: r.p50, p99: r.p99, min: r.min },
    { name: `plan/without-description/${key}`, unit: 'ms', p50: r.bareP50, p99: r.bareP99 },
    { name: `plan/agent-replan/${key}`, unit: 'ms', p50: r.parsedP50 },
    { name: `baseline/structuredClone/${key}`, unit: 'ms', p50: r.cloneP50 },
  ];
}).concat(worker);
writeFileSync(out, JSON.stringify(resultsFile('plan', measurements, { rows, replans: replans?.rows ?? [] }), null, 2) + '\n');
process.stderr.write(`results written to ${out}\n`);
