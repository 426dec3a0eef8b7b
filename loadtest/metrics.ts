// What the load test reads from the agents: Prometheus text from /metrics, and CPU and RSS from
// /proc; plus the percentile its reports use.
import { readFileSync } from 'node:fs';

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

export function sumOf(m: Map<string, number>, name: string, filter?: (labels: string) => boolean): number {
  let s = 0;
  for (const [k, v] of m) {
    const b = k.indexOf('{');
    const n = b < 0 ? k : k.slice(0, b);
    if (n === name && (!filter || filter(b < 0 ? '' : k.slice(b)))) s += v;
  }
  return s;
}

/** Per-label deltas of one counter between two scrapes. */
export function deltaByLabels(a: Map<string, number>, b: Map<string, number>, name: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of b) {
    if (!k.startsWith(name + '{') && k !== name) continue;
    const d = v - (a.get(k) ?? 0);
    if (d !== 0) out[k.slice(name.length) || '{}'] = d;
  }
  return out;
}

/** utime + stime of all threads, in ticks; NaN once the process is gone. */
export function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return Number(f[11]) + Number(f[12]);
  } catch {
    return NaN;
  }
}
export function rssMB(pid: number): number {
  try {
    return Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024;
  } catch {
    return NaN;
  }
}
