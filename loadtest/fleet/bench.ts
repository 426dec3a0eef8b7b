#!/usr/bin/env node
// Fleet plan + verify on its own: one thread against the pool, on the simulator's generated
// cluster (the same nodes and Peers as the load test), alternating so both see the same machine.
//   node dist/loadtest/fleet/bench.js [--nodes 5000] [--locations 50] [--peers 100] [--granularity location|full|cross] [--threads 2] [--rounds 2]
import { loadavg } from 'node:os';
import { commandFlags, type FlagDef } from '../../main/flags.js';
import { generateNodes, generatePeers } from '../apiserver/generate.js';
import { fleetPlanOptions, planFleet } from './planner.js';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';

const FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '5000', usage: 'Nodes of the generated cluster.' },
  { name: 'locations', type: 'string', default: '50', usage: 'Locations the nodes are spread over.' },
  { name: 'peers', type: 'string', default: '100', usage: 'Peers of the generated cluster.' },
  { name: 'granularity', type: 'string', default: 'location', usage: 'Mesh granularity: location, full or cross.' },
  { name: 'threads', type: 'string', default: '2', usage: 'Threads of the pool measured against one thread (the calling thread and threads - 1 workers).' },
  { name: 'rounds', type: 'string', default: '2', usage: 'Rounds of (one thread, pool); the min and median of each are reported, and each round\'s ratio.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const values = commandFlags(process.argv.slice(2), FLAGS, 'node dist/loadtest/fleet/bench.js [flags]',
  'Fleet plan + fleet check of the simulator\'s generated cluster: one thread against the pool, alternating.') as Record<string, string>;
const n = Number(values.nodes);
const nodes = generateNodes({ count: n, locations: Number(values.locations), realistic: false }) as NodeObject[];
const peers = generatePeers({ count: Number(values.peers) }) as PeerObject[];
const o = fleetPlanOptions(['--mesh-granularity', values.granularity, '--encapsulate', 'never']);
const s = (ms: number) => (ms / 1000).toFixed(1);
const times = new Map<number, number[]>();
const ratios: number[] = [];
for (let r = 0; r < Number(values.rounds); r++) {
  const round: number[] = [];
  for (const threads of [1, Number(values.threads)]) {
    const c0 = process.cpuUsage();
    const res = await planFleet(nodes, peers, { threads, verify: true, ...o });
    const c = process.cpuUsage(c0); // every thread of this process, µs
    const cpuS = (c.user + c.system) / 1e6;
    if (!res.verify!.ok) throw new Error(`fleet check failed: ${res.verify!.examples.slice(0, 3).join('; ')}`);
    const total = res.ms.total;
    round.push(total);
    times.set(threads, [...(times.get(threads) ?? []), total]);
    const split = threads > 1 ? `; nodes planned per thread ${res.planned.join('/')} (calling thread first)` : '';
    console.log(`${n} nodes (${values.granularity}), ${threads} thread(s): parse ${s(res.ms.parse)} s + plan ${s(res.ms.plan)} s + verify ${s(res.ms.verify)} s = ${s(total)} s; ${res.verify!.paths} paths ok; CPU ${cpuS.toFixed(1)} s (${(cpuS / (total / 1000)).toFixed(2)} cores busy; load ${loadavg()[0].toFixed(1)})${split}`);
  }
  ratios.push(round[0] / round[1]);
}
const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const one = times.get(1)!;
const pool = times.get(Number(values.threads))!;
console.log(`min: 1 thread ${s(Math.min(...one))} s, pool of ${values.threads} ${s(Math.min(...pool))} s: ${(Math.min(...one) / Math.min(...pool)).toFixed(2)}×`);
console.log(`median: 1 thread ${s(med(one))} s, pool ${s(med(pool))} s: ${(med(one) / med(pool)).toFixed(2)}×; per round ${ratios.map((x) => x.toFixed(2) + '×').join(', ')}`);
