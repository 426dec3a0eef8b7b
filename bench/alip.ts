// The allowed-location-IP case of bench/plan.ts (issue 15): one node's plan at 5,000 nodes when
// two nodes carry 10,000 allowed-location IPs each, in both granularities:
//   - this build with the cap at its default (1,024 per node) and with the cap lifted (all
//     20,000 reach the filter);
//   - optionally a baseline build (`--baseline-dist DIR`, e.g. a checkout of the previous commit
//     built with `npm run build`) loaded into the same process, which has no cap: given the same
//     20,000, and given the 1,024 per node this build's cap leaves;
//   - the same cluster without allowed-location IPs, and with 4 per node (the usual few), in both.
// Timed plan by plan (a quadratic filter takes seconds, too slow for mitata's sampling).
// Then the filter alone (plan/location-ips.ts) over 5,000 segments, from 2 to 80,000 claims:
// its time per claim shows the growth.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { limitsWith } from '../plan/claims.js';
import { nextIP, parseCIDR, type CIDR, type IP } from '../plan/addr.js';
import { filterAllowedLocationIPs } from '../plan/location-ips.js';
import { parseCluster, plan, type PlanOptions } from '../plan/plan.js';
import type { NodeObject } from '../plan/node.js';
import type { PeerObject } from '../plan/peer.js';
import type { Granularity } from '../plan/types.js';
import type { Measurement } from './compare.js';
import { syntheticName, syntheticNodes, syntheticPeers } from './synthetic.js';

type Planner = { parseCluster: typeof parseCluster; plan: typeof plan };

const LABEL = 'topology.kubernetes.io/region';

/** `count` one-address CIDRs from `a.b.0.0` on. */
function claims(a: number, b: number, count: number): string {
  return Array.from({ length: count }, (_, i) => `${a}.${b + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`).join(',');
}

/** The cluster: `nodes` synthetic nodes (50 locations), 100 Peers, two of the nodes claiming `each`. */
function cluster(nodes: number, each: number, now: number): { nodes: NodeObject[]; peers: PeerObject[] } {
  const ns = syntheticNodes({ nodes, locations: 50, peers: 0, now });
  if (each > 0) {
    ns[7].metadata!.annotations!['kilo.squat.ai/allowed-location-ips'] = claims(192, 168, each);
    ns[nodes - 3].metadata!.annotations!['kilo.squat.ai/allowed-location-ips'] = claims(100, 64, each);
  }
  return { nodes: ns, peers: syntheticPeers({ nodes, locations: 50, peers: 100, now }) };
}

/** Median and minimum of up to `max` plans within `budgetMs` (at least `min` plans). */
function time(f: () => void, budgetMs: number, min = 3, max = 200): { p50: number; min: number; n: number } {
  const t: number[] = [];
  const end = performance.now() + budgetMs;
  while (t.length < max && (t.length < min || performance.now() < end)) {
    const t0 = performance.now();
    f();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return { p50: t[t.length >> 1], min: t[0], n: t.length };
}

export async function measureALIPs(o: { nodes: number; each: number; baselineDist?: string; budgetMs: number; options: (host: string, g: Granularity) => PlanOptions; now: number }): Promise<Measurement[]> {
  let base: Planner | null = null;
  if (o.baselineDist) base = (await import(pathToFileURL(join(o.baselineDist, 'plan/plan.js')).href)) as Planner;
  const full = cluster(o.nodes, o.each, o.now);
  const capped = cluster(o.nodes, 1024, o.now);
  const none = cluster(o.nodes, 0, o.now);
  const few = cluster(o.nodes, 4, o.now);
  const lifted = limitsWith({ maxAllowedLocationIPs: Number.POSITIVE_INFINITY });
  const out: Measurement[] = [];
  const lines: string[] = [];
  for (const g of ['location', 'full'] as Granularity[]) {
    const opts = o.options(syntheticName(0), g);
    const cases: [string, Planner, { nodes: NodeObject[]; peers: PeerObject[] }, Parameters<typeof parseCluster>[3]?][] = [
      ['no allowed-location IPs', { parseCluster, plan }, none],
      ['2 × 4 (the usual few)', { parseCluster, plan }, few],
      [`2 × ${o.each}, cap at default (1,024)`, { parseCluster, plan }, full],
      [`2 × ${o.each}, cap lifted`, { parseCluster, plan }, full, lifted],
      ...(base ? [
        ['baseline build, no allowed-location IPs', base, none],
        ['baseline build, 2 × 4', base, few],
        [`baseline build, 2 × ${o.each} (no cap)`, base, full],
        ['baseline build, 2 × 1,024 (what the cap leaves)', base, capped],
      ] as [string, Planner, { nodes: NodeObject[]; peers: PeerObject[] }][] : []),
    ];
    for (const [name, p, c, limits] of cases) {
      // Parse included, as `kg plan` and the agent's first plan do; no description.
      const run = () => p.plan(p.parseCluster(c.nodes, c.peers, LABEL, limits), opts, { describe: false });
      const kept = run().topology!.segments.reduce((n, s) => n + s.allowedLocationIPs.length, 0);
      const r = time(run, o.budgetMs);
      out.push({ name: `alip/${g}/${name}`, unit: 'ms', p50: r.p50, min: r.min });
      lines.push(`| ${g} | ${name} | ${r.p50.toFixed(1)} | ${r.min.toFixed(1)} | ${r.n} | ${kept} |`);
      process.stderr.write(`allowed-location IPs, ${g}, ${name}: p50 ${r.p50.toFixed(1)} ms (${r.n} plans)\n`);
    }
  }
  console.log(`\nOne node's plan (parse + plan, no description) at ${o.nodes} nodes, 50 locations, 100 Peers, two nodes claiming ${o.each} allowed-location IPs each:`);
  console.log('| granularity | case | p50 ms | min ms | plans | allowed-location IPs kept |');
  console.log('|---|---|---:|---:|---:|---:|');
  for (const l of lines) console.log(l);
  out.push(...filterScaling(o.nodes, o.budgetMs));
  return out;
}

/** The filter alone: `segments` segments (a /24 and a /32 each), 100 Peers, two segments claiming c/2 each. */
function filterScaling(segments: number, budgetMs: number): Measurement[] {
  const segs: { allowedLocationIPs: CIDR[]; allowedIPs: CIDR[] }[] = Array.from({ length: segments }, (_, i) => ({
    allowedLocationIPs: [] as CIDR[], allowedIPs: [parseCIDR(`10.${64 + ((i >> 8) & 127)}.${i & 255}.0/24`)!, parseCIDR(`172.${16 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`)!],
  }));
  const subnet = parseCIDR('10.4.0.0/16')!;
  const wg: IP[] = [];
  for (let i = 0, ip = subnet.ip; i < segments; i++) wg.push((ip = nextIP(ip, subnet)!));
  const peers = Array.from({ length: 100 }, (_, j) => ({ allowedIPs: [parseCIDR(`10.250.0.${j}/32`)!] }));
  const out: Measurement[] = [];
  console.log(`\nThe allowed-location-IP filter alone, ${segments} segments (${2 * segments} allowed IPs), 100 Peers:`);
  console.log('| claims | p50 ms | min ms | µs per claim (min) |');
  console.log('|---:|---:|---:|---:|');
  for (const c of [2, 200, 2_000, 20_000, 80_000]) {
    const list = (a: number, b: number) => Array.from({ length: c / 2 }, (_, i) => parseCIDR(`${a}.${b + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32`)!).sort((x, y) => (x.s < y.s ? -1 : 1));
    segs[7].allowedLocationIPs = list(192, 168);
    segs[segments - 3].allowedLocationIPs = list(100, 64);
    const r = time(() => filterAllowedLocationIPs(segs, wg, peers), budgetMs / 3, 5);
    out.push({ name: `alip/filter/${c} claims`, unit: 'ms', p50: r.p50, min: r.min });
    console.log(`| ${c} | ${r.p50.toFixed(2)} | ${r.min.toFixed(2)} | ${((r.min * 1000) / c).toFixed(2)} |`);
  }
  return out;
}
