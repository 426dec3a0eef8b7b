#!/usr/bin/env node
// Benchmark of the Kubernetes API simulator's watch fan-out (a benchmark, not a test).
//
// Setup: the simulator runs as its own process (so its CPU can be measured alone) with N
// generated ~10 KiB Nodes. This process sends each node's kilo.squat.ai/last-seen heartbeat as
// an HTTP merge patch once per period, spread evenly. A separate "fleet" process holds W watches
// and counts what arrives. Measured: sustained fan-out (events/s, MB/s), server CPU and RSS, and
// delivery lag (patch answered → event received by a watcher). With --find-max it ramps W to
// find the largest watcher count the server holds on this machine.
//
//   node dist/loadtest/apiserver-bench.js [--nodes 5000] [--period 30] [--watchers 50]
//        [--duration 60] [--http] [--find-max] [--max-watchers 3200] [--step-duration 30]
import { fork, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';
import { httpHeartbeats } from './apiserver/heartbeat.js';
import { commandFlags, type FlagDef } from '../main/flags.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const now = () => performance.timeOrigin + performance.now();

interface Target {
  url: string;
  token?: string;
  caCert?: string;
}

// ---------------------------------------------------------------------------------------------
// Fleet role: W watch connections; counts events without parsing them.
interface FleetStats {
  events: number;
  bytes: number;
  minEvents: number;
  maxEvents: number;
  open: number;
  ended: number;
  /** [rv, receivedAt] of watcher 0's events, for lag. */
  samples?: [number, number][];
}

async function fleet(target: Target, count: number, fromRv: number, sample: boolean): Promise<void> {
  const u = new URL(target.url);
  const isHttps = u.protocol === 'https:';
  const counts = new Array<number>(count).fill(0);
  let bytes = 0;
  let open = 0;
  let ended = 0;
  const samples: [number, number][] = [];
  const sockets: net.Socket[] = [];
  const reqs: http.ClientRequest[] = [];
  const path = `/api/v1/nodes?watch=1&resourceVersion=${fromRv}&timeoutSeconds=7200`;
  const auth = target.token ? { authorization: `Bearer ${target.token}` } : {};
  for (let i = 0; i < count; i++) {
    if (sample && i === 0) {
      // Watcher 0 goes through node's HTTP client and reads resourceVersions, for lag.
      const req = (isHttps ? https : http).request(
        { host: u.hostname, port: u.port, path, ca: target.caCert, agent: false, headers: { accept: 'application/json', ...auth } },
        (res) => {
          open++;
          let tail = '';
          res.on('data', (c: Buffer) => {
            bytes += c.length;
            const lines = (tail + c.toString('latin1')).split('\n');
            tail = lines.pop()!;
            const at = now();
            for (const l of lines) {
              counts[0]++;
              const m = /"resourceVersion":"(\d+)"/.exec(l);
              if (m) samples.push([Number(m[1]), at]);
            }
          });
          res.on('end', () => ended++);
          res.on('error', () => ended++);
        },
      );
      req.on('error', () => ended++);
      req.end();
      reqs.push(req);
      continue;
    }
    // The rest are raw sockets that only count bytes and event ends ("}\n"; JSON holds no raw
    // newline), so that the client side costs as little as possible next to the server.
    const sock = isHttps ? tls.connect({ host: u.hostname, port: Number(u.port), ca: target.caCert }) : net.connect({ host: u.hostname, port: Number(u.port) });
    const hdrs = Object.entries({ host: u.host, accept: 'application/json', ...auth }).map(([k, v]) => `${k}: ${v}\r\n`).join('');
    sock.once(isHttps ? 'secureConnect' : 'connect', () => sock.write(`GET ${path} HTTP/1.1\r\n${hdrs}\r\n`));
    let last = 0;
    let headersDone = false;
    sock.on('data', (c: Buffer) => {
      bytes += c.length;
      if (!headersDone) {
        headersDone = true;
        if (c.subarray(0, 12).toString() === 'HTTP/1.1 200') open++;
      }
      let n = last === 0x7d && c[0] === 0x0a ? 1 : 0;
      for (let j = c.indexOf(0x0a, 1); j !== -1; j = c.indexOf(0x0a, j + 1)) if (c[j - 1] === 0x7d) n++;
      last = c[c.length - 1];
      counts[i] += n;
    });
    sock.on('close', () => ended++);
    sock.on('error', () => {});
    sockets.push(sock);
    // Open connections in small batches so the TLS handshakes do not all land at once.
    if (i % 50 === 49) await new Promise((r) => setTimeout(r, 50));
  }
  const report = (withSamples: boolean): FleetStats => {
    let events = 0;
    let min = Infinity;
    let max = 0;
    for (const c of counts) {
      events += c;
      min = Math.min(min, c);
      max = Math.max(max, c);
    }
    return { events, bytes, minEvents: min, maxEvents: max, open, ended, ...(withSamples ? { samples } : {}) };
  };
  process.on('message', (m: { cmd: string }) => {
    if (m.cmd === 'stats') process.send!({ stats: report(false) });
    if (m.cmd === 'final') {
      process.send!({ stats: report(true) }, () => {
        for (const r of reqs) r.destroy();
        for (const so of sockets) so.destroy();
        process.exit(0);
      });
    }
  });
  process.send!({ ready: true });
}

// ---------------------------------------------------------------------------------------------
// Orchestrator role.
function cpuTicks(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const rest = f.slice(f.lastIndexOf(')') + 2).split(' ');
  return Number(rest[11]) + Number(rest[12]); // utime + stime (fields 14 and 15)
}
function rssMiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : 0;
}

async function getJson(t: Target, path: string): Promise<any> {
  const u = new URL(t.url);
  return new Promise((ok, fail) => {
    const req = (u.protocol === 'https:' ? https : http).request(
      { host: u.hostname, port: u.port, path, ca: t.caCert, agent: false, timeout: 10_000, headers: t.token ? { authorization: `Bearer ${t.token}` } : {} },
      (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => {
          try {
            ok(JSON.parse(b));
          } catch (e) {
            fail(e);
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', fail);
    req.end();
  });
}

function startFleet(target: Target, count: number, fromRv: number, sample: boolean): Promise<{ child: ChildProcess; ask(cmd: 'stats' | 'final'): Promise<FleetStats> }> {
  const child = fork(fileURLToPath(import.meta.url), ['--role', 'fleet', '--count', String(count), '--from-rv', String(fromRv), '--sample', String(sample)], {
    env: { ...process.env, SIM_TARGET: JSON.stringify(target) },
    execArgv: ['--max-old-space-size=4096'],
  });
  return new Promise((ok, fail) => {
    const t = setTimeout(() => fail(new Error('fleet did not start')), 120_000);
    child.once('message', () => {
      clearTimeout(t);
      ok({
        child,
        ask: (cmd) =>
          new Promise<FleetStats>((res, rej) => {
            const to = setTimeout(() => rej(new Error(`fleet did not answer ${cmd}`)), 30_000);
            child.once('message', (m: any) => {
              clearTimeout(to);
              res(m.stats);
            });
            child.send({ cmd });
          }),
      });
    });
    child.once('exit', (c) => fail(new Error(`fleet exited ${c}`)));
  });
}

/** W watchers split over P fleet processes, seen as one. */
async function startFleets(target: Target, watchers: number, procs: number, fromRv: number) {
  const n = Math.max(1, Math.min(procs, watchers));
  const parts = Array.from({ length: n }, (_, i) => Math.floor(watchers / n) + (i < watchers % n ? 1 : 0));
  const fleets = await Promise.all(parts.map((c, i) => startFleet(target, c, fromRv, i === 0)));
  return {
    pids: fleets.map((f) => f.child.pid!),
    kill: () => fleets.forEach((f) => f.child.kill('SIGKILL')),
    async ask(cmd: 'stats' | 'final'): Promise<FleetStats> {
      const all = await Promise.all(fleets.map((f) => f.ask(cmd)));
      return {
        events: all.reduce((a, x) => a + x.events, 0),
        bytes: all.reduce((a, x) => a + x.bytes, 0),
        minEvents: Math.min(...all.map((x) => x.minEvents)),
        maxEvents: Math.max(...all.map((x) => x.maxEvents)),
        open: all.reduce((a, x) => a + x.open, 0),
        ended: all.reduce((a, x) => a + x.ended, 0),
        samples: all[0].samples,
      };
    },
  };
}

const r0Rate = (a: { writes: number }, b: { writes: number }, secs: number) => (b.writes - a.writes) / secs;

const pct = (xs: number[], p: number) => {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))];
};

interface StepResult {
  watchers: number;
  seconds: number;
  writes: number;
  writesPerSec: number;
  eventsPerSec: number;
  mbPerSec: number;
  serverCpuPct: number;
  clientCpuPct: number;
  serverRssMiB: number;
  lagP50ms: number;
  lagP99ms: number;
  lagMaxms: number;
  missing: number;
  drainMs: number;
  slowClosed: number;
  ok: boolean;
}

async function step(target: Target, serverPid: number, watchers: number, seconds: number, commits: Map<number, number>, clkTck: number, procs: number): Promise<StepResult> {
  const before = await getJson(target, '/_sim/stats');
  const fl = await startFleets(target, watchers, procs, before.resourceVersion);
  try {
    const deadline = Date.now() + 60_000;
    let s = await fl.ask('stats');
    while (s.open < watchers && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 200));
      s = await fl.ask('stats');
    }
    if (s.open < watchers) throw new Error(`only ${s.open}/${watchers} watches opened`);
    // Measurement window.
    const s0 = await getJson(target, '/_sim/stats');
    const f0 = await fl.ask('stats');
    const c0 = cpuTicks(serverPid);
    const fc0 = fl.pids.reduce((a, p) => a + cpuTicks(p), 0);
    const t0 = Date.now();
    let rssMax = 0;
    while (Date.now() - t0 < seconds * 1000) {
      await new Promise((r) => setTimeout(r, 1000));
      rssMax = Math.max(rssMax, rssMiB(serverPid));
    }
    const secs = (Date.now() - t0) / 1000;
    const c1 = cpuTicks(serverPid);
    const fc1 = fl.pids.reduce((a, p) => a + cpuTicks(p), 0);
    const s1 = await getJson(target, '/_sim/stats');
    const f1 = await fl.ask('stats');
    // Then up to 10 s for in-flight events: has every watcher got every write since it started?
    let s2 = await getJson(target, '/_sim/stats');
    const drainEnd = Date.now() + 10_000;
    const drainStart = Date.now();
    while (Date.now() < drainEnd) {
      await new Promise((r) => setTimeout(r, 250));
      s2 = await getJson(target, '/_sim/stats');
      const f = await fl.ask('stats');
      // Heartbeats keep coming, so "caught up" means within one second's worth of writes.
      if (f.minEvents >= s2.writes - before.writes - Math.ceil(r0Rate(s0, s1, secs))) break;
    }
    const drainMs = Date.now() - drainStart;
    s2 = await getJson(target, '/_sim/stats');
    const fin = await fl.ask('final');
    // Writes of the last second may still be on the wire; more than that missing is falling behind.
    const expected = s2.writes - before.writes;
    const missing = Math.max(0, expected - fin.minEvents - Math.ceil(r0Rate(s0, s1, secs)));
    const lags: number[] = [];
    for (const [rv, at] of fin.samples ?? []) {
      const c = commits.get(rv);
      if (c !== undefined) lags.push(at - c);
    }
    const r: StepResult = {
      watchers,
      seconds: secs,
      writes: s1.writes - s0.writes,
      writesPerSec: (s1.writes - s0.writes) / secs,
      eventsPerSec: (f1.events - f0.events) / secs,
      mbPerSec: (f1.bytes - f0.bytes) / secs / 1e6,
      serverCpuPct: ((c1 - c0) / clkTck / secs) * 100,
      clientCpuPct: ((fc1 - fc0) / clkTck / secs) * 100,
      serverRssMiB: rssMax,
      lagP50ms: pct(lags, 50),
      lagP99ms: pct(lags, 99),
      lagMaxms: lags.length ? Math.max(...lags) : NaN,
      missing,
      drainMs,
      slowClosed: s2.slowWatchersClosed - before.slowWatchersClosed,
      ok: false,
    };
    // Held = every watcher got every event (within a 10 s drain), none was dropped as slow or ended,
    // and delivery kept pace with the writes during the window. Lag is reported, not judged: it
    // is measured across processes, so on a busy machine it includes client scheduling delays.
    r.ok = r.missing === 0 && r.slowClosed === 0 && fin.ended === 0 && r.eventsPerSec >= 0.95 * r.writesPerSec * watchers;
    return r;
  } finally {
    fl.kill();
  }
}

const FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '5000', usage: 'Generated ~10 KiB Nodes.' },
  { name: 'period', type: 'string', default: '30', usage: 'Heartbeat period in seconds (every node patched once per period).' },
  { name: 'watchers', type: 'string', default: '50', usage: 'Watches held by the fleet processes.' },
  { name: 'duration', type: 'string', default: '60', usage: 'Seconds of the measured window.' },
  { name: 'http', type: 'bool', default: false, usage: 'Plain HTTP instead of HTTPS + token.' },
  { name: 'find-max', type: 'bool', default: false, usage: 'Ramp the watcher count to the largest the server holds.' },
  { name: 'max-watchers', type: 'string', default: '3200', usage: 'Upper bound of --find-max.' },
  { name: 'step-duration', type: 'string', default: '30', usage: 'Seconds of each --find-max step.' },
  { name: 'fleet-procs', type: 'string', default: '2', usage: 'Processes the watchers are spread over.' },
  // The fleet child's own flags (this program forks itself with --role fleet).
  { name: 'role', type: 'string', default: 'bench', usage: 'Internal: bench, or fleet for a forked watcher process.' },
  { name: 'count', type: 'string', default: '', usage: 'Internal (--role fleet): watches to hold.' },
  { name: 'from-rv', type: 'string', default: '', usage: 'Internal (--role fleet): resourceVersion to watch from.' },
  { name: 'sample', type: 'string', default: '', usage: 'Internal (--role fleet): true to sample delivery lag.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];

async function main(): Promise<void> {
  const values = commandFlags(process.argv.slice(2), FLAGS, 'node dist/loadtest/apiserver-bench.js [flags]',
    'The API simulator\'s watch fan-out: N generated Nodes heartbeating once per period, W watchers in\nother processes; events/s, MB/s, server CPU and RSS, delivery lag. --find-max ramps W.') as Record<string, string> & { http: boolean; 'find-max': boolean };
  if (values.role === 'fleet') {
    return fleet(JSON.parse(process.env.SIM_TARGET!) as Target, Number(values.count), Number(values['from-rv']), values.sample === 'true');
  }
  const nodes = Number(values.nodes);
  const period = Number(values.period);
  const dir = mkdtempSync(join(tmpdir(), 'kgsim-bench-'));
  const kubeconfig = join(dir, 'kubeconfig');
  // History must cover at least one heartbeat round so a watcher that starts late can resume.
  const server = spawn(
    process.execPath,
    ['--max-old-space-size=8192', join(HERE, 'apiserver/cli.js'), '--nodes', String(nodes), ...(values.http ? [] : ['--https']), '--port', '0', '--kubeconfig', kubeconfig, '--history-size', String(Math.max(10_000, nodes * 2))],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  const cleanup = () => {
    if (server.exitCode === null) server.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  process.on('exit', cleanup);
  try {
    const line = await new Promise<string>((ok, fail) => {
      const t = setTimeout(() => fail(new Error('server did not start in 120 s')), 120_000);
      createInterface({ input: server.stdout! }).once('line', (l) => {
        clearTimeout(t);
        ok(l);
      });
    });
    const info = JSON.parse(line);
    const kc = parse(readFileSync(kubeconfig, 'utf8'));
    const caData = kc.clusters[0].cluster['certificate-authority-data'];
    const target: Target = { url: info.url, token: info.token ?? undefined, caCert: caData ? Buffer.from(caData, 'base64').toString() : undefined };
    const clkTck = 100; // Linux USER_HZ
    const names = Array.from({ length: nodes }, (_, i) => `node-${String(i).padStart(Math.max(5, String(nodes).length), '0')}`);
    const commits = new Map<number, number>();
    const hb = httpHeartbeats(target, { names, periodMs: period * 1000, maxSockets: 8, onCommitted: (rv, at) => commits.set(rv, at) });
    console.log(`server ${info.url} (${values.http ? 'HTTP' : 'HTTPS + token'}), ${nodes} nodes, heartbeat period ${period} s → ${(nodes / period).toFixed(1)} writes/s`);
    const header = 'watchers  secs  writes/s  events/s     MB/s  srvCPU%  cliCPU%  srvRSS MiB  lag p50/p99/max ms  drain ms  missing  slow  ok';
    const fmt = (r: StepResult) =>
      `${String(r.watchers).padStart(8)}  ${r.seconds.toFixed(0).padStart(4)}  ${r.writesPerSec.toFixed(1).padStart(8)}  ${r.eventsPerSec.toFixed(0).padStart(8)}  ${r.mbPerSec.toFixed(1).padStart(7)}  ${r.serverCpuPct.toFixed(0).padStart(7)}  ${r.clientCpuPct.toFixed(0).padStart(7)}  ${r.serverRssMiB.toFixed(0).padStart(10)}  ${`${r.lagP50ms.toFixed(0)}/${r.lagP99ms.toFixed(0)}/${r.lagMaxms.toFixed(0)}`.padStart(17)}  ${String(r.drainMs).padStart(8)}  ${String(r.missing).padStart(8)}  ${String(r.slowClosed).padStart(4)}  ${r.ok ? 'yes' : 'NO'}`;
    console.log(header);
    const results: StepResult[] = [];
    const main = await step(target, server.pid!, Number(values.watchers), Number(values.duration), commits, clkTck, Number(values['fleet-procs']));
    console.log(fmt(main));
    results.push(main);
    if (values['find-max']) {
      // Double until a step fails, then bisect (to a 25-watcher / 25% resolution).
      let best = main.ok ? main.watchers : 0;
      let fail = Infinity;
      for (;;) {
        const w = fail === Infinity ? Math.max(best, 25) * 2 : Math.round((best + fail) / 2 / 25) * 25;
        if (w > Number(values['max-watchers']) || w <= best || w >= fail || (fail !== Infinity && fail - best <= Math.max(25, best / 4))) break;
        commits.clear();
        const r = await step(target, server.pid!, w, Number(values['step-duration']), commits, clkTck, Number(values['fleet-procs'])).catch((e: Error) => {
          console.log(`${String(w).padStart(8)}  failed: ${e.message}`);
          return undefined;
        });
        if (r) {
          console.log(fmt(r));
          results.push(r);
        }
        if (r?.ok) best = w;
        else fail = w;
      }
      console.log(`largest watcher count held (every event delivered, none dropped, delivery kept pace): ${best}`);
    }
    await hb.stop();
    console.log(`heartbeats sent ${hb.sent()}, failed ${hb.failed()}`);
    console.log(JSON.stringify({ nodes, period, https: !values.http, results }));
  } finally {
    server.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 500));
    cleanup();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
