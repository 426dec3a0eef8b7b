// Pieces shared by the benchmarks that run one real kg against the simulated cluster
// (bench/agent.ts, bench/graph-burst.ts): percentiles, /proc readings, Prometheus text, and the
// scripts of their small Kubernetes clients.
import { readFileSync } from 'node:fs';

export const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)];
};
export const f = (x: number) => x.toFixed(1);
export const clockMs = () => performance.timeOrigin + performance.now();

export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100; // utime + stime, all threads, in ticks
}
export const rssMB = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
/** The process's peak RSS so far (VmHWM), MB. */
export const peakRssMB = (pid: number) => Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
export const metric = (text: string, re: RegExp) => [...text.matchAll(re)].reduce((a, m) => a + Number(m[1]), 0);

/** A histogram's mean (ms) and count between two scrapes, e.g. "12.3 ms (40)"; "n/a" when none. */
export function histogramMean(before: string, after: string, name: string, labels = ''): string {
  const l = labels.replace(/[{}]/g, '\\$&');
  const sum = (t: string) => metric(t, new RegExp(`^${name}_sum${l} ([0-9.e+-]+)`, 'gm'));
  const cnt = (t: string) => metric(t, new RegExp(`^${name}_count${l} ([0-9.e+-]+)`, 'gm'));
  const n = cnt(after) - cnt(before);
  return n > 0 ? `${f(((sum(after) - sum(before)) / n) * 1000)} ms (${n})` : 'n/a';
}

/** Script prelude of the benchmark's small clients: `https`, the simulator's `api` address and CA, and the `token`. */
export const clientPrelude = (kubeconfig: string) => `
  const https = require('https'); const yaml = require('fs').readFileSync(${JSON.stringify(kubeconfig)}, 'utf8');
  const token = /token: (\\S+)/.exec(yaml)[1]; const server = new URL(/server: (\\S+)/.exec(yaml)[1]);
  const api = { host: server.hostname, port: server.port, ca: Buffer.from(/certificate-authority-data: (\\S+)/.exec(yaml)[1], 'base64') };`;

/**
 * A client that merge-patches annotations of one Node and prints when the PATCH left (Unix ms).
 * It connects first (TCP + TLS, warmed by a GET on a keep-alive socket): the clock starts when
 * the PATCH leaves, not when the client starts its handshake.
 */
export const patchScript = (kubeconfig: string, node: string, annotations: Record<string, string>) => `${clientPrelude(kubeconfig)}
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const base = { ...api, path: '/api/v1/nodes/${node}', agent };
    const body = JSON.stringify({ metadata: { annotations: ${JSON.stringify(annotations)} } });
    https.get({ ...base, headers: { Authorization: 'Bearer ' + token } }, (warm) => { warm.resume(); warm.on('end', () => {
      const req = https.request({ ...base, method: 'PATCH', headers: { Authorization: 'Bearer ' + token, 'Content-Type': 'application/merge-patch+json' } },
        (res) => { res.resume(); res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1)); });
      process.stdout.write(String(performance.timeOrigin + performance.now())); req.end(body);
    }); });`;

/**
 * Memory by isolate, from one scrape of the agent's /metrics: the process RSS, the main thread's
 * V8 heap (prom-client's default metrics count that isolate only), the planner's and the I/O
 * worker's heaps (each worker reports its own isolate; the planner with each plan's answer, so
 * a collection after its last plan is not in it).
 */
export function threadMemory(metrics: string): string {
  const g = (name: string): number | null => {
    const m = new RegExp(`^${name}(?:\\{[^}]*\\})? ([0-9.e+-]+)$`, 'm').exec(metrics);
    return m === null ? null : Number(m[1]) / 1048576;
  };
  const v = (x: number | null): string => (x === null ? 'n/a' : `${f(x)}`);
  return `process RSS ${v(g('process_resident_memory_bytes'))} MiB; main thread heap used ${v(g('nodejs_heap_size_used_bytes'))} of ${v(g('nodejs_heap_size_total_bytes'))} MiB; `
    + `planner heap used at its last plan ${v(g('kg_planner_heap_bytes'))} MiB; I/O worker heap used ${v(g('kg_io_worker_heap_bytes'))}, committed ${v(g('kg_io_worker_heap_committed_bytes'))} MiB`;
}

/** The kernel part of the first "mesh programmed" log line (needs --log-level info): plan, apply and each table's pass, ms. */
export function firstProgrammed(log: string): string | null {
  for (const line of log.split('\n')) {
    if (!line.includes('mesh programmed')) continue;
    try {
      const r = JSON.parse(line) as { planMs?: number; applyMs?: number; ioMs?: number; kernelMs?: Record<string, number> };
      return `plan ${r.planMs} ms, I/O worker call ${r.ioMs} ms (its pass ${r.applyMs} ms: ${Object.entries(r.kernelMs ?? {}).map(([k, ms]) => `${k} ${ms}`).join(', ')} ms side by side)`;
    } catch {
      return null;
    }
  }
  return null;
}
