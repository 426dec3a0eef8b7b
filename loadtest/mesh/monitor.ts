// Kernel route changes as they happen in a namespace (`ip -ts monitor route`): the end of
// event → programmed. Used by the load test and bench/agent.ts. Each change carries the time
// `ip` read it from the kernel, not the time this process got to the line: a blocked event
// loop in the driver (it used to scrape /metrics synchronously every 5 s) would make every change
// seen meanwhile look late.
import { spawn, type ChildProcess } from 'node:child_process';

const clockMs = () => performance.timeOrigin + performance.now();

export interface RouteEvent {
  at: number;
  kind: 'add' | 'del';
  dst: string;
}

export class RouteMonitor {
  private proc: ChildProcess | null = null;
  private buf = '';
  /** dst → the first add/del seen after the last clear() of that key. */
  private readonly seen = new Map<string, number>();
  private readonly waiters = new Map<string, (at: number) => void>();
  events = 0;

  constructor(private readonly netns: string) {}

  /** Starts `ip monitor route` and resolves once it runs (a short settle, as the tool prints nothing on start). */
  async start(): Promise<void> {
    const p = spawn('ip', ['-ts', '-n', this.netns, 'monitor', 'route'], { stdio: ['ignore', 'pipe', 'ignore'] });
    this.proc = p;
    p.stdout!.on('data', (c: Buffer) => {
      const at = clockMs();
      this.buf += c.toString();
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        const line = this.buf.slice(0, i);
        this.buf = this.buf.slice(i + 1);
        const e = parseMonitorLine(line, at);
        if (!e) continue;
        this.events++;
        const k = `${e.kind} ${e.dst}`;
        if (!this.seen.has(k)) this.seen.set(k, at);
        this.waiters.get(k)?.(at);
      }
    });
    await new Promise((r) => setTimeout(r, 300));
  }

  /** Forgets an earlier sighting, before a change that will produce it again. */
  clear(kind: 'add' | 'del', dst: string): void {
    this.seen.delete(`${kind} ${dst}`);
  }

  /** The arrival time of the change, waiting at most `timeoutMs`; null on timeout. */
  wait(kind: 'add' | 'del', dst: string, timeoutMs: number): Promise<number | null> {
    const k = `${kind} ${dst}`;
    const at = this.seen.get(k);
    if (at !== undefined) return Promise.resolve(at);
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.waiters.delete(k);
        resolve(null);
      }, timeoutMs);
      this.waiters.set(k, (a) => {
        clearTimeout(t);
        this.waiters.delete(k);
        resolve(a);
      });
    });
  }

  stop(): void {
    this.proc?.kill();
    this.proc = null;
  }
}

/** `10.64.1.0/24 via … dev kilo0 proto static …` or `Deleted 10.64.1.0/24 …`. */
export function parseMonitorLine(line: string, arrival: number): RouteEvent | null {
  // `ip -ts` prefixes each line with its local time, e.g. `[2026-12-07T01:21:09.443183] `.
  let at = arrival;
  const ts = /^\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,6}))?\] /.exec(line);
  if (ts) {
    const ms = new Date(ts[1]).getTime(); // no offset: local time, as `ip` prints it
    if (Number.isFinite(ms)) at = ms + Number((ts[2] ?? '0').padEnd(6, '0')) / 1000;
    line = line.slice(ts[0].length);
  }
  const m = /^(Deleted )?(\d+\.\d+\.\d+\.\d+(?:\/\d+)?) /.exec(line);
  if (!m) return null;
  const dst = m[2].includes('/') ? m[2] : `${m[2]}/32`;
  return { at, kind: m[1] ? 'del' : 'add', dst };
}
