// The load test: real kg agents (each in its own network and mount namespace, programming a real
// kernel through wireguard-go) in a simulated cluster of N nodes and P Peers served by the API
// simulator, driven through scenarios. Per scenario it measures event → programmed latency (from
// the change's commit in the simulator's store to the kernel route change seen by
// `ip monitor route`, or the WireGuard peer seen on the device), agent CPU and RSS, events against
// plans, kernel operations by kind, API requests and watch bytes, and the heartbeat write rate and
// fan-out; after each scenario it plans every node (workers/fleet.ts) and runs the fleet check
// (loadtest/fleet/verify.ts), and compares each agent's kernel with its plan.
// CLI: loadtest/run.ts. Everything is bounded: per-change waits, phases, and a hard timeout.
import { readFileSync } from 'node:fs';
import { Mesh } from './mesh/harness.js';
import { RouteMonitor } from './mesh/monitor.js';
import { readKernel } from './fleet/kernel.js';
import { compareKernel, type VerifyReport } from './fleet/verify.js';
import { fleetPlanOptions, planFleet } from '../workers/fleet.js';
import { parseCluster, plan } from '../plan/plan.js';
import { findLeader } from '../plan/topology.js';
import { checkInPeriodSeconds, heartbeatLoad, readyWindowSeconds, type HeartbeatMode } from '../plan/heartbeat.js';
import { uapiRequest } from '../dataplane/wireguard.js';
import { b64ToHex } from '../dataplane/uapi.js';
import type { NodeObject } from '../plan/node.js';
import type { PeerObject } from '../plan/peer.js';
import type { SimCommand, SimReply, SimStats } from './sim/protocol.js';

export const SCENARIOS = ['steady', 'churn', 'leader-loss', 'peers-keys', 'api-faults'] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface LoadTestOptions {
  nodes: number;
  locations: number;
  peers: number;
  agents: number;
  scenarios: Scenario[];
  granularity: 'location' | 'full';
  heartbeat: HeartbeatMode;
  /** Also measure the other heartbeat mode's API load in a steady phase (simulated nodes). */
  compareHeartbeat: boolean;
  heartbeatBudget: number;
  /** Seconds per scenario. */
  durationS: number;
  /** Node changes per second in churn. */
  rate: number;
  /** Fleet check after every scenario (else only at the end). */
  fleetEach: boolean;
  fleetThreads: number;
  /** Also time the fleet plan with one thread (the baseline). */
  fleetBaseline: boolean;
  /** Extra steady soak (seconds) for the RSS trend; 0 = none. */
  soakS: number;
  prefix: string;
  log: (line: string) => void;
}

export interface LatencySample {
  scenario: string;
  what: string;
  ms: number;
}

export interface PhaseResult {
  scenario: string;
  heartbeat: HeartbeatMode;
  seconds: number;
  changes: number;
  latency: { n: number; missed: number; p50: number | null; p95: number | null; p99: number | null; max: number | null };
  agent: { cpuPercent: number; rssStartMB: number; rssEndMB: number; eventsReceived: Record<string, number>; plans: number; coalescing: number | null; kernelOps: Record<string, number>; watchBytes: number; relists: number };
  api: { requests: number; requestsPerAgent: number; writes: number; writesPerSecond: number; heartbeatWritesPerSecond: number; watchEvents: number; watchEventsPerSecond: number; watchBytesPerSecond: number; watchers: number; heartbeatPeriodSeconds: number; faults: Record<string, number> };
  fleet: FleetCheck | null;
  kernelEqualsPlan: { agent: string; ok: boolean; diffs: string[]; waitedMs: number }[];
}

export interface FleetCheck {
  ok: boolean;
  threads: number;
  planMs: number;
  verifyMs: number;
  report: Omit<VerifyReport, 'examples'> & { examples: string[] };
}

export interface Results {
  version: 1;
  startedAt: string;
  options: Omit<LoadTestOptions, 'log'>;
  machine: { cpus: number; loadAvg: number[] };
  coldStartMs: number[];
  phases: PhaseResult[];
  heartbeatModes: { mode: HeartbeatMode; periodSeconds: number; writesPerSecond: number; watchEventsPerSecond: number; watchBytesPerSecond: number; watchers: number; perWatcherEventsPerSecond: number; modelWritesPerSecond: number; fanOutAt5000: { watchEventsPerSecond: number; watchBytesPerSecond: number } }[];
  fleetTiming: { threads1: { planMs: number; verifyMs: number } | null; pool: { threads: number; planMs: number; verifyMs: number } | null; speedup: number | null };
  samples: { t: number; agent: string; cpuPercent: number; rssMB: number }[];
  rates: { t: number; events: number; plans: number; kernelWrites: number; apiWrites: number }[];
  latencies: LatencySample[];
  /** Changes never seen in an agent's kernel within 30 s. */
  missed: { scenario: string; what: string; agent: string; change: string }[];
  /** Every assertion the run makes about correctness; `ok` is their conjunction. */
  checks: { name: string; ok: boolean; detail: string }[];
  ok: boolean;
}

const clock = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function percentile(xs: readonly number[], p: number): number | null {
  if (xs.length === 0) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))];
}

/** Prometheus text → "name{labels}" → value. */
export function parseMetrics(text: string): Map<string, number> {
  const m = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line[0] === '#') continue;
    const i = line.lastIndexOf(' ');
    const v = Number(line.slice(i + 1));
    if (Number.isFinite(v)) m.set(line.slice(0, i), v);
  }
  return m;
}

function sumOf(m: Map<string, number>, name: string, filter?: (labels: string) => boolean): number {
  let s = 0;
  for (const [k, v] of m) {
    const b = k.indexOf('{');
    const n = b < 0 ? k : k.slice(0, b);
    if (n === name && (!filter || filter(b < 0 ? '' : k.slice(b)))) s += v;
  }
  return s;
}

/** Per-label deltas of one counter between two scrapes. */
function deltaByLabels(a: Map<string, number>, b: Map<string, number>, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) {
    if (!k.startsWith(name + '{') && k !== name) continue;
    const d = v - (a.get(k) ?? 0);
    if (d !== 0) out[k.slice(name.length) || '{}'] = d;
  }
  return out;
}

class Sim {
  private id = 0;
  private readonly pending = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();
  constructor(private readonly mesh: Mesh) {
    mesh.api!.on('message', (raw) => {
      const r = raw as SimReply;
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.value);
      else p.reject(new Error(r.error));
    });
  }

  call<T = { at: number }>(c: SimCommand, timeoutMs = 60_000): Promise<T> {
    const id = ++this.id;
    return new Promise<T>((resolve, reject) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`simulator: ${c.op} timed out`));
      }, timeoutMs);
      this.pending.set(id, { resolve: (v) => (clearTimeout(t), resolve(v as T)), reject: (e) => (clearTimeout(t), reject(e)) });
      this.mesh.api!.send({ ...c, id });
    });
  }
}

/** utime + stime of all threads, in ticks; NaN once the process is gone. */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}
function rssMB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
}

/** Unique, non-overlapping addresses for nodes and Peers the load test adds. */
const churnCIDR = (k: number) => `10.${200 + ((k >> 8) & 31)}.${k & 255}.0/24`;
const churnInternal = (k: number) => `172.30.${(k >> 8) & 255}.${k & 255}/16`;
const churnEndpoint = (k: number) => `198.19.${(k >> 8) & 255}.${k & 255}:51820`;
const peerIP = (k: number) => `10.6.${(k >> 8) & 255}.${k & 255}/32`;
const locName = (i: number) => `loc-${String(i).padStart(3, '0')}`;

export async function runLoadTest(o: LoadTestOptions): Promise<Results> {
  const log = o.log;
  const simNodes = o.nodes - o.agents;
  if (simNodes < o.locations) throw new Error(`--nodes ${o.nodes} leaves fewer simulated nodes than --locations ${o.locations}`);
  const agentNames = Array.from({ length: o.agents }, (_, i) => `kg-${i}`);
  const kgFlags = ['--encapsulate', 'never', '--mesh-granularity', o.granularity];
  const mesh = new Mesh({
    prefix: o.prefix,
    // Each agent leads a location of its own: it holds the WireGuard device and the mesh routes.
    nodes: agentNames.map((name, i) => ({ name, location: `agents-${i}` })),
    flags: [...kgFlags, '--log-level', 'warn', '--resync-period', '5m', '--heartbeat', o.heartbeat, '--heartbeat-budget', String(o.heartbeatBudget)],
    apiScript: 'loadtest/sim/driver.js',
    apiArgs: ['--nodes', String(simNodes), '--peers', String(o.peers), '--locations', String(o.locations), '--heartbeat', o.heartbeat, '--heartbeat-budget', String(o.heartbeatBudget), '--history-size', '20000'],
    log,
  });
  const res: Results = {
    version: 1, startedAt: new Date().toISOString(), options: { ...o, log: undefined } as unknown as Omit<LoadTestOptions, 'log'>,
    machine: { cpus: (await import('node:os')).availableParallelism(), loadAvg: (await import('node:os')).loadavg() },
    coldStartMs: [], phases: [], heartbeatModes: [], fleetTiming: { threads1: null, pool: null, speedup: null },
    samples: [], rates: [], latencies: [], missed: [], checks: [], ok: false,
  };
  const check = (name: string, ok: boolean, detail: string) => {
    res.checks.push({ name, ok, detail });
    log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
  };
  const timers: NodeJS.Timeout[] = [];
  const monitors: RouteMonitor[] = [];
  let tearingDown = false;
  try {
    await mesh.down();
    await mesh.up();
    const sim = new Sim(mesh);
    log(`simulator up: ${simNodes} simulated nodes in ${o.locations} locations, ${o.peers} Peers, heartbeat ${o.heartbeat}`);
    for (const name of agentNames) {
      const t0 = clock();
      await mesh.startKg(name, [], false);
      await mesh.waitHealthy(name, 300_000);
      res.coldStartMs.push(clock() - t0);
      log(`${name}: programmed ${(res.coldStartMs.at(-1)! / 1000).toFixed(1)} s after start`);
    }
    const pids = agentNames.map((n) => mesh.node(n).kg!.pid!);
    // An agent that exits mid-run fails the run, with its exit code or signal on record.
    for (const name of agentNames) {
      mesh.node(name).kg!.on('exit', (code, signal) => {
        if (!tearingDown) check(`${name} keeps running`, false, `exited during the run (code ${code}, signal ${signal}); log: ${mesh.state}/kg-${name}.log`);
      });
    }
    for (const name of agentNames) {
      const m = new RouteMonitor(mesh.node(name).netns);
      await m.start();
      monitors.push(m);
    }
    const t0 = clock();
    // CPU and RSS once a second; event rates every 5 s (a scrape spawns a process in the netns).
    const lastTicks = pids.map(cpuTicks);
    let lastAt = clock();
    timers.push(setInterval(() => {
      const at = clock();
      pids.forEach((pid, i) => {
        try {
          const tk = cpuTicks(pid);
          if (Number.isNaN(tk)) return;
          res.samples.push({ t: (at - t0) / 1000, agent: agentNames[i], cpuPercent: ((tk - lastTicks[i]) / 100 / ((at - lastAt) / 1000)) * 100, rssMB: rssMB(pid) });
          lastTicks[i] = tk;
        } catch {
          /* the agent exited; the phase reports it */
        }
      });
      lastAt = at;
    }, 1000));
    let prevScrape: { m: Map<string, number>; s: SimStats } | null = null;
    const scrapeRates = async () => {
      const m = parseMetrics(mesh.http(agentNames[0], '/metrics').body);
      const s = await sim.call<SimStats>({ op: 'stats' });
      if (prevScrape) {
        const dt = (s.at - prevScrape.s.at) / 1000;
        res.rates.push({
          t: (s.at - t0) / 1000,
          events: (sumOf(m, 'kg_watch_events_total') - sumOf(prevScrape.m, 'kg_watch_events_total')) / dt,
          plans: (sumOf(m, 'kg_plans_total') - sumOf(prevScrape.m, 'kg_plans_total')) / dt,
          kernelWrites: (sumOf(m, 'kg_dataplane_writes_total') - sumOf(prevScrape.m, 'kg_dataplane_writes_total')) / dt,
          apiWrites: (s.writes - prevScrape.s.writes) / dt,
        });
      }
      prevScrape = { m, s };
    };
    let scraping = false;
    timers.push(setInterval(() => {
      if (scraping) return;
      scraping = true;
      scrapeRates().catch(() => {}).finally(() => (scraping = false));
    }, 5000));

    /** Waits for a route change on every agent; records one sample per agent. */
    const expectRoute = async (scenario: string, what: string, at: number, kind: 'add' | 'del', dst: string, lat: number[], missed: { n: number }) => {
      await Promise.all(monitors.map(async (m, i) => {
        const seen = await m.wait(kind, dst, 30_000);
        if (seen === null) {
          missed.n++;
          res.missed.push({ scenario, what, agent: agentNames[i], change: `route ${kind} ${dst}` });
        }
        else {
          lat.push(Math.max(0, seen - at));
          res.latencies.push({ scenario, what, ms: Math.max(0, seen - at) });
        }
      }));
    };
    /** Waits (polling the device, 20 ms) until every agent's WireGuard device holds `key`. */
    const expectWgKey = async (scenario: string, what: string, at: number, key: string, lat: number[], missed: { n: number }) => {
      const hex = b64ToHex(key);
      await Promise.all(pids.map(async (pid, i) => {
        const sock = `/proc/${pid}/root/run/wireguard/kilo0.sock`;
        const end = Date.now() + 30_000;
        while (Date.now() < end) {
          const txt = await uapiRequest(sock, 'get=1\n\n', 5000).catch(() => '');
          if (txt.includes(`public_key=${hex}`)) {
            const ms = Math.max(0, clock() - at);
            lat.push(ms);
            res.latencies.push({ scenario, what, ms });
            return;
          }
          await sleep(20);
        }
        missed.n++;
        res.missed.push({ scenario, what, agent: agentNames[i], change: `WireGuard peer ${key}` });
      }));
    };

    const snapshot = () => sim.call<{ nodes: NodeObject[]; peers: PeerObject[] }>({ op: 'snapshot' });
    const fleetCheck = async (threads: number): Promise<FleetCheck> => {
      const snap = await snapshot();
      // The check runs on the same threads as the plans (destination ranges in the pool's workers).
      const r = await planFleet(snap.nodes, snap.peers, { threads, verify: true, ...fleetPlanOptions(kgFlags) });
      const v = r.verify!;
      return { ok: v.ok, threads, planMs: r.ms.parse + r.ms.plan, verifyMs: r.ms.verify, report: v };
    };
    /** Each agent's kernel against its own plan from the current API state, until equal (bounded). */
    const kernelEqualsPlan = async (): Promise<PhaseResult['kernelEqualsPlan']> => {
      const out: PhaseResult['kernelEqualsPlan'] = [];
      for (const name of agentNames) {
        const w0 = Date.now();
        let diffs: string[] = ['not compared'];
        while (Date.now() - w0 < 60_000) {
          const snap = await snapshot();
          const po = fleetPlanOptions(kgFlags);
          const j = plan(parseCluster(snap.nodes, snap.peers, po.topologyLabel), { ...po.plan, hostname: name }, { describe: false }).json;
          const n = mesh.node(name);
          diffs = compareKernel(j, await readKernel({ net: `/run/netns/${n.netns}`, mount: n.mnt }));
          if (diffs.length === 0) break;
          await sleep(2000);
        }
        out.push({ agent: name, ok: diffs.length === 0, diffs: diffs.slice(0, 20), waitedMs: Date.now() - w0 });
      }
      return out;
    };

    let churnK = 0;
    let peerK = 0;
    /** Node changes at `rate`/s: adds, each deleted again ~5 s later; returns the number of changes. */
    const churn = async (scenario: string, seconds: number, rate: number, lat: number[], missed: { n: number }, during?: (elapsedS: number) => Promise<void>) => {
      const live: { name: string; cidr: string; bornAt: number }[] = [];
      const waits: Promise<void>[] = [];
      let changes = 0;
      const start = Date.now();
      let next = start;
      let lastSecond = -1;
      while (Date.now() - start < seconds * 1000) {
        const el = Math.floor((Date.now() - start) / 1000);
        if (during && el !== lastSecond) {
          lastSecond = el;
          await during(el);
        }
        const old = live[0];
        if (old && Date.now() - old.bornAt > 5000) {
          live.shift();
          const r = await sim.call({ op: 'deleteNode', name: old.name });
          waits.push(expectRoute(scenario, 'node leaves', r.at, 'del', old.cidr, lat, missed));
        } else {
          const k = churnK++;
          const name = `zz-churn-${String(k).padStart(5, '0')}`;
          const cidr = churnCIDR(k);
          for (const m of monitors) m.clear('add', cidr), m.clear('del', cidr);
          const r = await sim.call({ op: 'addNode', name, location: locName(k % o.locations), podCIDR: cidr, endpoint: churnEndpoint(k), internalIP: churnInternal(k) });
          live.push({ name, cidr, bornAt: Date.now() });
          waits.push(expectRoute(scenario, 'node joins', r.at, 'add', cidr, lat, missed));
        }
        changes++;
        next += 1000 / rate;
        await sleep(Math.max(0, next - Date.now()));
      }
      // Leave the cluster as it was: the remaining churn nodes leave too.
      for (const l of live) {
        const r = await sim.call({ op: 'deleteNode', name: l.name });
        waits.push(expectRoute(scenario, 'node leaves', r.at, 'del', l.cidr, lat, missed));
        changes++;
      }
      await Promise.all(waits);
      return changes;
    };

    const runPhase = async (scenario: string, mode: HeartbeatMode, body: (lat: number[], missed: { n: number }) => Promise<number>): Promise<PhaseResult> => {
      log(`— ${scenario} (${mode} heartbeats), ${scenario === 'soak' ? o.soakS : o.durationS} s`);
      const m0 = agentNames.map((n) => parseMetrics(mesh.http(n, '/metrics').body));
      const s0 = await sim.call<SimStats>({ op: 'stats' });
      const rss0 = pids.map(rssMB);
      const c0 = pids.map(cpuTicks);
      const w0 = clock();
      const lat: number[] = [];
      const missed = { n: 0 };
      const changes = await body(lat, missed);
      const wall = (clock() - w0) / 1000;
      const c1 = pids.map(cpuTicks);
      const s1 = await sim.call<SimStats>({ op: 'stats' });
      const m1 = agentNames.map((n) => parseMetrics(mesh.http(n, '/metrics').body));
      const a = 0; // per-agent figures from the first agent; the others are in the samples
      // A scrape that failed (the agent gone) must not read as negative counts.
      if (m1[a].size === 0) m1[a] = new Map([...m0[a]].map(([k]) => [k, NaN]));
      const events = deltaByLabels(m0[a], m1[a], 'kg_watch_events_total');
      const evTotal = Object.values(events).reduce((x, y) => x + y, 0);
      const plans = sumOf(m1[a], 'kg_plans_total') - sumOf(m0[a], 'kg_plans_total');
      const kernelOps = { ...deltaByLabels(m0[a], m1[a], 'kg_dataplane_writes_total'), ...deltaByLabels(m0[a], m1[a], 'kilo_iptables_operations_total') };
      const dtS = (s1.at - s0.at) / 1000;
      const faults: Record<string, number> = {};
      for (const [k, v] of Object.entries(s1.faults)) if (v - (s0.faults[k] ?? 0)) faults[k] = v - (s0.faults[k] ?? 0);
      const ph: PhaseResult = {
        scenario, heartbeat: mode, seconds: wall, changes,
        latency: { n: lat.length, missed: missed.n, p50: percentile(lat, 50), p95: percentile(lat, 95), p99: percentile(lat, 99), max: lat.length ? Math.max(...lat) : null },
        agent: {
          cpuPercent: ((c1[a] - c0[a]) / 100 / wall) * 100, rssStartMB: rss0[a], rssEndMB: rssMB(pids[a]), eventsReceived: events, plans,
          coalescing: plans > 0 ? evTotal / plans : null, kernelOps,
          watchBytes: sumOf(m1[a], 'kg_watch_bytes_total') - sumOf(m0[a], 'kg_watch_bytes_total'),
          relists: sumOf(m1[a], 'kg_watch_relists_total') - sumOf(m0[a], 'kg_watch_relists_total'),
        },
        api: {
          requests: s1.totalRequests - s0.totalRequests, requestsPerAgent: (s1.totalRequests - s0.totalRequests) / o.agents,
          writes: s1.writes - s0.writes, writesPerSecond: (s1.writes - s0.writes) / dtS, heartbeatWritesPerSecond: (s1.heartbeatsSent - s0.heartbeatsSent) / dtS,
          watchEvents: s1.watchEventsSent - s0.watchEventsSent, watchEventsPerSecond: (s1.watchEventsSent - s0.watchEventsSent) / dtS,
          watchBytesPerSecond: (s1.watchBytesSent - s0.watchBytesSent) / dtS, watchers: s1.watchers, heartbeatPeriodSeconds: s1.heartbeatPeriodSeconds, faults,
        },
        fleet: null,
        kernelEqualsPlan: [],
      };
      const f = (x: number | null) => (x === null ? 'n/a' : x.toFixed(1));
      log(`  ${changes} changes; event → programmed n=${lat.length} missed=${missed.n} p50 ${f(ph.latency.p50)} p95 ${f(ph.latency.p95)} p99 ${f(ph.latency.p99)} ms; agent CPU ${ph.agent.cpuPercent.toFixed(1)}%, RSS ${rss0[a].toFixed(0)}→${ph.agent.rssEndMB.toFixed(0)} MB; ${evTotal} events / ${plans} plans; API ${ph.api.writesPerSecond.toFixed(1)} writes/s, ${ph.api.watchEventsPerSecond.toFixed(0)} watch events/s`);
      if (scenario !== 'soak') {
        ph.kernelEqualsPlan = await kernelEqualsPlan();
        for (const k of ph.kernelEqualsPlan) check(`${scenario}: ${k.agent} kernel equals plan`, k.ok, k.ok ? `after ${k.waitedMs} ms` : k.diffs.slice(0, 5).join('; '));
        if (o.fleetEach) {
          ph.fleet = await fleetCheck(o.fleetThreads);
          check(`${scenario}: fleet check`, ph.fleet.ok, `${ph.fleet.report.reached}/${ph.fleet.report.paths} paths over ${ph.fleet.report.readyNodes} nodes and ${ph.fleet.report.peers} Peers; plan ${(ph.fleet.planMs / 1000).toFixed(1)} s, verify ${(ph.fleet.verifyMs / 1000).toFixed(1)} s${ph.fleet.ok ? '' : '; ' + ph.fleet.report.examples.slice(0, 3).join('; ')}`);
        }
        check(`${scenario}: every change programmed`, missed.n === 0, `${lat.length} changes seen on the agents' kernels, ${missed.n} not within 30 s${missed.n ? ': ' + res.missed.filter((x) => x.scenario === scenario).slice(0, 5).map((x) => `${x.what} (${x.change})`).join('; ') : ''}`);
      }
      res.phases.push(ph);
      return ph;
    };

    const steadyBody = (seconds: number) => async (lat: number[], missed: { n: number }) => {
      // Probes at 1/s: one node's allowed location IPs move to a new CIDR (a route on the agents).
      let n = 0;
      const start = Date.now();
      while (Date.now() - start < seconds * 1000) {
        const cidr = `172.29.${n % 250}.0/24`;
        for (const m of monitors) m.clear('add', cidr);
        const r = await sim.call({ op: 'addPeer', name: `probe-${n}`, allowedIP: cidr });
        await expectRoute('steady', 'Peer added (probe)', r.at, 'add', cidr, lat, missed);
        await sim.call({ op: 'deletePeer', name: `probe-${n}` });
        n++;
        await sleep(Math.max(0, start + n * 1000 - Date.now()));
      }
      return n;
    };

    const modeStats = (mode: HeartbeatMode, ph: PhaseResult) => {
      const policy = { mode, minPeriodSeconds: 30, budget: o.heartbeatBudget };
      // Every Node write goes to every Node watcher (one per agent here, one per node in a real
      // cluster): the measured bytes per event scale the fan-out to 5,000 watchers.
      const bytesPerEvent = ph.api.watchEvents > 0 ? ph.api.watchBytesPerSecond / ph.api.watchEventsPerSecond : 0;
      const hbWrites = ph.api.heartbeatWritesPerSecond;
      res.heartbeatModes.push({
        mode, periodSeconds: ph.api.heartbeatPeriodSeconds, writesPerSecond: hbWrites, watchEventsPerSecond: ph.api.watchEventsPerSecond,
        watchBytesPerSecond: ph.api.watchBytesPerSecond, watchers: ph.api.watchers, perWatcherEventsPerSecond: ph.api.watchEventsPerSecond / Math.max(1, o.agents),
        modelWritesPerSecond: heartbeatLoad(policy, simNodes, 1, 0).writesPerSecond,
        fanOutAt5000: { watchEventsPerSecond: hbWrites * 5000, watchBytesPerSecond: hbWrites * 5000 * bytesPerEvent },
      });
      log(`  heartbeats (${mode}): period ${ph.api.heartbeatPeriodSeconds} s, ${hbWrites.toFixed(1)} writes/s measured (model ${res.heartbeatModes.at(-1)!.modelWritesPerSecond.toFixed(1)}), ${bytesPerEvent.toFixed(0)} B per watch event → ${(hbWrites * 5000).toFixed(0)} events/s at 5,000 watchers`);
    };

    for (const sc of o.scenarios) {
      // A scenario that throws (the simulator or an agent gone) is a failed check; the rest run.
      try {
      if (sc === 'steady') {
        const ph = await runPhase('steady', o.heartbeat, steadyBody(o.durationS));
        modeStats(o.heartbeat, ph);
        if (o.compareHeartbeat) {
          const other: HeartbeatMode = o.heartbeat === 'kilo' ? 'adaptive' : 'kilo';
          const sw = await sim.call<{ transitionMs: number }>({ op: 'heartbeat', mode: other });
          log(`  simulated nodes switch to ${other} heartbeats: one round at Kilo's period first (${(sw.transitionMs / 1000).toFixed(0)} s)`);
          await sleep(sw.transitionMs + 1000);
          const ph2 = await runPhase('steady', other, steadyBody(o.durationS));
          modeStats(other, ph2);
          const back = await sim.call<{ transitionMs: number }>({ op: 'heartbeat', mode: o.heartbeat });
          await sleep(back.transitionMs + 1000);
        }
      } else if (sc === 'churn') {
        await runPhase('churn', o.heartbeat, (lat, missed) => churn('churn', o.durationS, o.rate, lat, missed));
      } else if (sc === 'leader-loss') {
        await runPhase('leader-loss', o.heartbeat, async (lat, missed) => {
          const snap = await snapshot();
          const po = fleetPlanOptions(kgFlags);
          const cluster = parseCluster(snap.nodes, snap.peers, po.topologyLabel);
          const period = checkInPeriodSeconds({ mode: o.heartbeat, minPeriodSeconds: 30, budget: o.heartbeatBudget }, simNodes);
          const ago = readyWindowSeconds(o.heartbeat === 'adaptive' ? String(period) : undefined) + 5;
          const rounds = Math.max(1, Math.min(o.locations, Math.floor(o.durationS / 6)));
          let changes = 0;
          for (let i = 0; i < rounds; i++) {
            const loc = locName(i % o.locations);
            const members = cluster.nodes.filter((n) => n.location === loc);
            if (members.length < 2) continue;
            // The location's leader, as every agent elects it (spec §5.3), and its successor.
            const leader = members[findLeader(members)];
            const leaderName = leader.name;
            const rest = members.filter((n) => n !== leader);
            const successor = rest[findLeader(rest)];
            const cidr = leader.subnet!.s;
            for (const m of monitors) m.clear('del', cidr), m.clear('add', cidr);
            const r = await sim.call({ op: 'stopHeartbeat', name: leaderName, agoSeconds: ago });
            await Promise.all([
              expectRoute('leader-loss', 'leader lost: its pod CIDR route removed', r.at, 'del', cidr, lat, missed),
              // In full granularity every node is its own segment: there is no successor.
              ...(o.granularity === 'location' && successor?.key ? [expectWgKey('leader-loss', 'leader lost: successor peered', r.at, successor.key, lat, missed)] : []),
            ]);
            const back = await sim.call({ op: 'resumeHeartbeat', name: leaderName });
            await expectRoute('leader-loss', 'leader back: route restored', back.at, 'add', cidr, lat, missed);
            changes += 2;
            await sleep(1000);
          }
          return changes;
        });
      } else if (sc === 'peers-keys') {
        await runPhase('peers-keys', o.heartbeat, async (lat, missed) => {
          const snap = await snapshot();
          const po = fleetPlanOptions(kgFlags);
          const cluster = parseCluster(snap.nodes, snap.peers, po.topologyLabel);
          let changes = 0;
          const start = Date.now();
          let step = 0;
          while (Date.now() - start < o.durationS * 1000) {
            if (step % 5 === 4) {
              // A location leader rotates its key: the agents' devices swap the peer.
              const loc = locName(step % o.locations);
              const members = cluster.nodes.filter((n) => n.location === loc);
              const leader = members.length ? members[findLeader(members)] : null;
              if (leader) {
                const r = await sim.call<{ at: number; publicKey: string }>({ op: 'rotateKey', name: leader.name });
                await expectWgKey('peers-keys', 'leader key rotated', r.at, r.publicKey, lat, missed);
                changes++;
              }
            } else {
              const k = peerK++;
              const ip = peerIP(k);
              for (const m of monitors) m.clear('add', ip), m.clear('del', ip);
              const r = await sim.call({ op: 'addPeer', name: `lt-peer-${k}`, allowedIP: ip });
              await expectRoute('peers-keys', 'Peer added', r.at, 'add', ip, lat, missed);
              const d = await sim.call({ op: 'deletePeer', name: `lt-peer-${k}` });
              await expectRoute('peers-keys', 'Peer removed', d.at, 'del', ip, lat, missed);
              changes += 2;
            }
            step++;
            await sleep(500);
          }
          return changes;
        });
      } else if (sc === 'api-faults') {
        await runPhase('api-faults', o.heartbeat, (lat, missed) =>
          churn('api-faults', o.durationS, Math.max(1, o.rate / 2), lat, missed, async (el) => {
            const span = o.durationS;
            if (el === Math.floor(span * 0.1)) {
              log('  fault: watches dropped');
              await sim.call({ op: 'dropWatches' });
            } else if (el === Math.floor(span * 0.3)) {
              log('  fault: 410 Gone on the next two list/watch requests, watches dropped');
              await sim.call({ op: 'faults', settings: { goneCount: 2, goneMode: 'stream' } });
              await sim.call({ op: 'dropWatches', abrupt: true });
            } else if (el === Math.floor(span * 0.5)) {
              log('  fault: 30 % of requests throttled (429)');
              await sim.call({ op: 'faults', settings: { throttleRate: 0.3, retryAfterSeconds: 1 } });
            } else if (el === Math.floor(span * 0.7)) {
              log('  faults cleared');
              await sim.call({ op: 'faults', settings: null });
            }
          }),
        );
      }
      } catch (e) {
        check(`${sc}: ran to the end`, false, (e as Error).stack ?? String(e));
      }
    }
    if (o.soakS > 0) {
      const ph = await runPhase('soak', o.heartbeat, async () => {
        await sleep(o.soakS * 1000);
        return 0;
      });
      void ph;
    }
    // Fleet plan + verify: the pool against one thread, on the final state.
    const pool = await fleetCheck(o.fleetThreads);
    res.fleetTiming.pool = { threads: o.fleetThreads, planMs: pool.planMs, verifyMs: pool.verifyMs };
    check('final: fleet check', pool.ok, `${pool.report.reached}/${pool.report.paths} paths${pool.ok ? '' : '; ' + pool.report.examples.slice(0, 3).join('; ')}`);
    if (o.fleetBaseline) {
      const one = await fleetCheck(1);
      res.fleetTiming.threads1 = { planMs: one.planMs, verifyMs: one.verifyMs };
      res.fleetTiming.speedup = (one.planMs + one.verifyMs) / (pool.planMs + pool.verifyMs);
      log(`fleet plan + verify: 1 thread ${(one.planMs / 1000).toFixed(1)} + ${(one.verifyMs / 1000).toFixed(1)} s, pool of ${o.fleetThreads} ${(pool.planMs / 1000).toFixed(1)} + ${(pool.verifyMs / 1000).toFixed(1)} s (${res.fleetTiming.speedup.toFixed(2)}×)`);
    }
    const fin = await kernelEqualsPlan();
    for (const k of fin) check(`final: ${k.agent} kernel equals plan`, k.ok, k.ok ? `after ${k.waitedMs} ms` : k.diffs.slice(0, 5).join('; '));
    for (const [i, name] of agentNames.entries()) check(`final: ${name} still running`, mesh.node(name).kg?.exitCode === null && mesh.node(name).kg?.signalCode === null, `pid ${pids[i]}`);
  } catch (e) {
    check('load test ran to the end', false, (e as Error).stack ?? String(e));
  } finally {
    tearingDown = true;
    for (const t of timers) clearInterval(t);
    for (const m of monitors) m.stop();
    await mesh.down();
  }
  res.ok = res.checks.length > 0 && res.checks.every((c) => c.ok);
  return res;
}
