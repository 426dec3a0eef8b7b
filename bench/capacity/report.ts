// Renders a `kg bench` result as an aligned text table, markdown, or JSON.
import type { BenchResult } from './index.js';

export const ms = (x: number): string => (x >= 1000 ? `${(x / 1000).toFixed(2)} s` : x >= 10 ? `${x.toFixed(1)} ms` : `${x.toFixed(2)} ms`);
export const mib = (b: number): string => `${(b / 2 ** 20).toFixed(1)} MiB`;
export const num = (x: number): string => (Number.isInteger(x) ? x.toLocaleString('en-US') : x.toLocaleString('en-US', { maximumFractionDigits: 1 }));
export const bps = (b: number): string => (b >= 2 ** 30 ? `${(b / 2 ** 30).toFixed(2)} GiB/s` : b >= 2 ** 20 ? `${(b / 2 ** 20).toFixed(1)} MiB/s` : `${(b / 1024).toFixed(1)} KiB/s`);

interface Section { title: string; head: string[]; rows: string[][]; note?: string }

export function sections(r: BenchResult): Section[] {
  const out: Section[] = [];
  const d = r.dataplane;
  const sizeRow = (label: string, s: typeof d.leader) => [label, s.node, s.leader ? 'yes' : 'no', num(s.wireguardPeers), num(s.allowedIPs), num(s.routes), num(s.ipRules), num(s.iptablesRules)];
  out.push({
    title: 'Dataplane size (per node, from the planner)',
    head: ['node', 'name', 'leads', 'WireGuard peers', 'allowed IPs', 'routes', 'ip rules', 'iptables rules'],
    rows: [sizeRow('leader', d.leader), ...(d.nonLeader ? [sizeRow('non-leader', d.nonLeader)] : [])],
    note: d.nonLeader ? undefined : 'full granularity: every node leads its own segment, so there is no non-leader',
  });
  const c = r.compute;
  const t = (label: string, x: typeof c.fullPlan, target: number) => [label, ms(x.minMs), ms(x.p50Ms), ms(x.p99Ms), num(x.samples), `≤ ${target} ms: ${x.p50Ms <= target ? 'met' : 'MISSED'}`];
  out.push({
    title: `Plan compute time on ${c.node} (pool-worker code, mitata)`,
    head: ['plan', 'min', 'median', 'p99', 'samples', 'target (median)'],
    rows: [
      t('full plan (parse all Nodes and Peers + plan, as kg plan)', c.plannerPlan, r.targets.fullPlanP50Ms.target),
      [...t('agent\'s first plan (replica snapshot + plan + whole desired state)', c.fullPlan, 0).slice(0, 5), '–'],
      t('incremental (one node changed: replica delta + plan + desired-state delta)', c.incrementalPlan, r.targets.incrementalPlanP50Ms.target),
    ],
    note: `medians of the parts: full = replica snapshot (parse) ${ms(c.breakdown.full.applyDeltaMs)} + plan and desired state ${ms(c.breakdown.full.planMs)}; ` +
      `incremental = replica delta ${ms(c.breakdown.incremental.applyDeltaMs)} + plan and desired-state delta ${ms(c.breakdown.incremental.planMs)}`,
  });
  const k = r.kernel;
  if (k.ran) {
    const kt = (label: string, x: typeof k.coldApply, writes: number | string) => [label, ms(x.minMs), ms(x.medianMs), ms(x.maxMs), num(x.n), String(writes)];
    out.push({
      title: `Kernel write cost on ${k.node} (real I/O worker, scratch netns, userspace WireGuard, iptables ${k.iptablesBackend})`,
      head: ['operation', 'min', 'median', 'max', 'runs', 'writes'],
      rows: [kt('cold apply', k.coldApply, k.coldWrites), kt('one-change apply', k.oneChangeApply, k.oneChangeWrites), kt('no-op resync', k.noopResync, 0)],
      note: `desired: ${num(k.desired.wireguardPeers)} peers, ${num(k.desired.routes)} routes, ${num(k.desired.iptablesRules)} iptables rules${k.errors.length ? `; write errors: ${k.errors.join('; ')}` : ''}`,
    });
  } else {
    out.push({ title: 'Kernel write cost', head: ['status'], rows: [[`not measured: ${k.reason}`]] });
  }
  const m = r.memory;
  out.push({
    title: `Agent memory at ${num(m.nodes)} nodes (measured)`,
    head: ['piece', 'memory', 'per node', 'how'],
    rows: [
      ['slim Node records (main thread)', mib(m.slimRecordsHeapBytes), `${num(Math.round(m.slimRecordsHeapBytes / m.nodes))} B`, 'V8 heap after GC'],
      ['planner replica (+ sorted cluster, last desired state)', mib(m.replicaHeapBytes), `${num(Math.round(m.replicaHeapBytes / m.nodes))} B`, 'V8 heap after GC, plan-worker code in-thread'],
      ['PlanPool: 1 thread holding the replica', mib(m.poolRssBytes), '', 'process RSS delta (thread start-up included)'],
      k.ran
        ? ['I/O worker holding the plan', mib(k.ioWorkerRssBytes), '', 'process RSS delta (start + cold apply)']
        : ['I/O worker holding the plan', 'not measured', '', 'measured with the kernel part (needs root)'],
    ],
  });
  const a = r.apiServer;
  out.push({
    title: `API-server load per heartbeat mode (${num(a.watchers)} Node watchers; per Node watch event ${num(a.nodeMetadataEventBytes)} B metadata-only (kg), ${num(a.nodeWatchEventBytes)} B whole (Go agents); measured)`,
    head: ['mode', 'check-in period', 'Node writes/s', 'watch events/s', 'watch bytes/s (kg)', 'watch bytes/s (Go agents)', 'dead node detected after'],
    rows: a.modes.map((h) => [h.mode + (h.mode === a.selected ? ' *' : ''), `${h.periodSeconds} s`, num(h.writesPerSecond), num(Math.round(h.watchEventsPerSecond)), bps(h.watchBytesPerSecond), bps(h.watchEventsPerSecond * a.nodeWatchEventBytes), `${h.detectionSeconds} s`]),
    note: 'adaptive is for all-kg clusters only (Go agents ignore the advertised period); * = --heartbeat. kg watches Nodes metadata-only; Go agents watch whole Nodes',
  });
  const f = r.fleet;
  out.push(f.ran
    ? {
        title: `Fleet planning throughput (every node planned, ${num(f.nodesPlanned)} plans)`,
        head: ['planner', 'plans/s', 'wall time'],
        rows: [
          ['one thread (baseline)', num(Math.round(f.oneThreadPlansPerSecond)), ms(f.oneThreadMs)],
          [`pool (${f.threads} threads)`, num(Math.round(f.poolPlansPerSecond)), ms(f.poolMs)],
          ['pool / one thread', `${f.speedup.toFixed(2)}x`, ''],
        ],
        note: 'loadtest/fleet/planner.ts planFleet: each node\'s plan plus the fleet check\'s compile step',
      }
    : { title: 'Fleet planning throughput', head: ['status'], rows: [[`not measured: ${f.reason}`]] });
  return out;
}

function header(r: BenchResult): string {
  const c = r.cluster;
  return `kg bench: ${num(c.nodes)} nodes in ${num(c.locations)} locations, ${num(c.peers)} peers (${c.source}), granularity ${r.config.granularity}, encapsulate ${r.config.encapsulate}\n` +
    `machine: ${r.machine.cpus} × ${r.machine.cpuModel}, ${r.machine.memoryGiB} GiB, node ${r.machine.node}; measured ${r.date} in ${r.durationSeconds.toFixed(1)} s`;
}

export function textTable(head: string[], rows: string[][]): string {
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ').trimEnd();
  return [line(head), w.map((x) => '-'.repeat(x)).join('  '), ...rows.map(line)].join('\n');
}

export function mdTable(head: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  return [`| ${head.map(esc).join(' | ')} |`, `|${head.map((_, i) => (i === 0 ? '---' : '---:')).join('|')}|`, ...rows.map((r) => `| ${r.map(esc).join(' | ')} |`)].join('\n');
}

export function formatResult(r: BenchResult, output: 'table' | 'json' | 'markdown'): string {
  if (output === 'json') return JSON.stringify(r, null, 2) + '\n';
  const md = output === 'markdown';
  const parts = [md ? `## ${header(r).split('\n')[0]}\n\n${header(r).split('\n')[1]}` : header(r)];
  for (const s of sections(r)) {
    parts.push(md ? `### ${s.title}\n\n${mdTable(s.head, s.rows)}${s.note ? `\n\n${s.note}` : ''}` : `${s.title}\n${textTable(s.head, s.rows)}${s.note ? `\n(${s.note})` : ''}`);
  }
  return parts.join('\n\n') + '\n';
}
