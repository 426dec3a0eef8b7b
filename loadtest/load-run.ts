// One load-test run: the state every scenario shares (the mesh, the simulator, the agents and
// their route monitors, the results) and the steps they are made of: wait for a change to reach
// every agent's kernel, compare kernels with plans, run the fleet check, record a check.
import type { Mesh } from './mesh/harness.js';
import type { RouteMonitor } from './mesh/monitor.js';
import { NsHttp } from './mesh/ns-http.js';
import { readKernel } from './fleet/kernel.js';
import { compareKernel } from './fleet/verify.js';
import { fleetPlanOptions, planFleet } from './fleet/planner.js';
import type { Sim } from './sim/client.js';
import { parseMetrics } from './metrics.js';
import type { FleetCheck, LoadTestOptions, PhaseResult, Results } from './types.js';
import { parseCluster, plan, type Cluster } from '../plan/plan.js';
import { uapiRequest } from '../dataplane/wireguard.js';
import { b64ToHex } from '../kernel/uapi.js';
import type { NodeObject } from '../plan/node.js';
import type { PeerObject } from '../plan/peer.js';

export const clock = () => performance.timeOrigin + performance.now();
export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
export const locName = (i: number) => `loc-${String(i).padStart(3, '0')}`;

/** Latencies of one phase, and how many changes never showed up. */
export interface PhaseTally {
  lat: number[];
  missed: { n: number };
}

export class LoadRun {
  readonly log: (line: string) => void;
  readonly agentNames: string[];
  readonly kgFlags: string[];
  readonly simNodes: number;
  readonly monitors: RouteMonitor[] = [];
  /** The agents' pids, once they run. */
  pids: number[] = [];
  /** Numbering of the nodes and Peers scenarios add: unique over the whole run. */
  churnK = 0;
  peerK = 0;
  tearingDown = false;
  /** The simulator's IPC channel, once the mesh is up. */
  sim!: Sim;
  /** The run's time origin (clock()): samples, rates, scrapes and latencies count seconds from it. */
  t0 = clock();
  /** One in-namespace HTTP client per agent (mesh/ns-http.ts), started on first use. */
  private readonly clients = new Map<string, NsHttp>();

  constructor(readonly o: LoadTestOptions, readonly mesh: Mesh, readonly res: Results) {
    this.log = o.log;
    this.agentNames = Array.from({ length: o.agents }, (_, i) => `kg-${i}`);
    this.kgFlags = ['--encapsulate', 'never', '--mesh-granularity', o.granularity];
    this.simNodes = o.nodes - o.agents;
  }

  check(name: string, ok: boolean, detail: string): void {
    this.res.checks.push({ name, ok, detail });
    this.log(`${ok ? 'PASS' : 'FAIL'} ${name}: ${detail}`);
  }

  /**
   * An agent's /metrics, parsed (empty when the agent does not answer). Asynchronous, from a
   * client living in the agent's namespace; each scrape's time and size is recorded.
   */
  async scrape(name: string): Promise<Map<string, number>> {
    const n = this.mesh.node(name);
    let c = this.clients.get(name);
    if (!c) this.clients.set(name, (c = new NsHttp([`--mount=${n.mnt}`, `--net=/run/netns/${n.netns}`])));
    const at = clock();
    const r = await c.get('/metrics');
    this.res.scrapes.push({ t: (at - this.t0) / 1000, agent: name, ms: r.ms, bytes: Buffer.byteLength(r.body) });
    return r.status === 200 ? parseMetrics(r.body) : new Map();
  }

  closeClients(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  /** Waits for a route change on every agent; records one sample per agent. */
  async expectRoute(scenario: string, what: string, at: number, kind: 'add' | 'del', dst: string, t: PhaseTally): Promise<void> {
    await Promise.all(this.monitors.map(async (m, i) => {
      const seen = await m.wait(kind, dst, 30_000);
      if (seen === null) {
        t.missed.n++;
        this.res.missed.push({ scenario, what, agent: this.agentNames[i], change: `route ${kind} ${dst}` });
      }
      else {
        t.lat.push(Math.max(0, seen - at));
        this.res.latencies.push({ scenario, what, ms: Math.max(0, seen - at), t: (at - this.t0) / 1000 });
      }
    }));
  }

  /** Waits (polling the device, 20 ms) until every agent's WireGuard device holds `key`. */
  async expectWgKey(scenario: string, what: string, at: number, key: string, t: PhaseTally): Promise<void> {
    const hex = b64ToHex(key);
    await Promise.all(this.pids.map(async (pid, i) => {
      const sock = `/proc/${pid}/root/run/wireguard/kilo0.sock`;
      const end = Date.now() + 30_000;
      while (Date.now() < end) {
        const txt = await uapiRequest(sock, 'get=1\n\n', 5000).catch(() => '');
        if (txt.includes(`public_key=${hex}`)) {
          const ms = Math.max(0, clock() - at);
          t.lat.push(ms);
          this.res.latencies.push({ scenario, what, ms, t: (at - this.t0) / 1000 });
          return;
        }
        await sleep(20);
      }
      t.missed.n++;
      this.res.missed.push({ scenario, what, agent: this.agentNames[i], change: `WireGuard peer ${key}` });
    }));
  }

  snapshot(): Promise<{ nodes: NodeObject[]; peers: PeerObject[] }> {
    return this.sim.call<{ nodes: NodeObject[]; peers: PeerObject[] }>({ op: 'snapshot' });
  }

  /** The cluster as the agents see it now, parsed as the planner does. */
  async cluster(): Promise<Cluster> {
    const snap = await this.snapshot();
    const po = fleetPlanOptions(this.kgFlags);
    return parseCluster(snap.nodes, snap.peers, po.topologyLabel);
  }

  async fleetCheck(threads: number): Promise<FleetCheck> {
    const snap = await this.snapshot();
    // The check runs on the same threads as the plans (destination ranges in the pool's workers).
    const r = await planFleet(snap.nodes, snap.peers, { threads, verify: true, ...fleetPlanOptions(this.kgFlags) });
    const v = r.verify!;
    return { ok: v.ok, threads, planMs: r.ms.parse + r.ms.plan, verifyMs: r.ms.verify, report: v };
  }

  /** Each agent's kernel against its own plan from the current API state, until equal (bounded). */
  async kernelEqualsPlan(): Promise<PhaseResult['kernelEqualsPlan']> {
    const out: PhaseResult['kernelEqualsPlan'] = [];
    for (const name of this.agentNames) {
      const w0 = Date.now();
      let diffs: string[] = ['not compared'];
      while (Date.now() - w0 < 60_000) {
        const snap = await this.snapshot();
        const po = fleetPlanOptions(this.kgFlags);
        const j = plan(parseCluster(snap.nodes, snap.peers, po.topologyLabel), { ...po.plan, hostname: name }, { describe: false }).json;
        const n = this.mesh.node(name);
        diffs = compareKernel(j, await readKernel({ net: `/run/netns/${n.netns}`, mount: n.mnt }));
        if (diffs.length === 0) break;
        await sleep(2000);
      }
      out.push({ agent: name, ok: diffs.length === 0, diffs: diffs.slice(0, 20), waitedMs: Date.now() - w0 });
    }
    return out;
  }
}
