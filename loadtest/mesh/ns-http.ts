// HTTP GETs against a node's kg from one long-lived client inside the node's namespaces. The
// harness's Mesh.http spawns a fresh Node.js per request with spawnSync: ~0.1 s of CPU and the
// caller's event loop blocked meanwhile, which on a 2-core machine competes with the agent being
// measured. Here a request is one line on the client's stdin and one JSON line back.
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** The client, run with `node -e` in the namespace: reads {id, url} lines, writes {id, status, body, ms} lines. */
const CLIENT = `
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
require('node:readline').createInterface({ input: process.stdin }).on('line', async (line) => {
  const { id, url, timeoutMs } = JSON.parse(line);
  const t0 = performance.now();
  try {
    const r = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    const body = await r.text();
    out({ id, status: r.status, body, ms: performance.now() - t0 });
  } catch (e) {
    out({ id, status: 0, body: String(e && e.message), ms: performance.now() - t0 });
  }
});`;

export interface NsResponse {
  status: number;
  body: string;
  /** Request to last byte, timed inside the namespace (the agent's answer, not the IPC). */
  ms: number;
}

export class NsHttp {
  private proc: ChildProcess | null = null;
  private next = 0;
  private readonly pending = new Map<number, (r: NsResponse) => void>();

  /** `nsenter` arguments that enter the node's namespaces, e.g. [`--net=/run/netns/x`, `--mount=…`]. */
  constructor(private readonly enter: string[], private readonly base = 'http://127.0.0.1:1107') {}

  private start(): ChildProcess {
    const p = spawn('nsenter', [...this.enter, '--', process.execPath, '-e', CLIENT], { stdio: ['pipe', 'pipe', 'ignore'] });
    createInterface({ input: p.stdout! }).on('line', (line) => {
      const r = JSON.parse(line) as NsResponse & { id: number };
      this.pending.get(r.id)?.({ status: r.status, body: r.body, ms: r.ms });
      this.pending.delete(r.id);
    });
    // The client gone: every request still waiting fails, and the next one starts a new client.
    p.on('exit', () => {
      if (this.proc === p) this.proc = null;
      for (const [id, res] of this.pending) res({ status: 0, body: 'client exited', ms: NaN }), this.pending.delete(id);
    });
    p.stdin!.on('error', () => {});
    return p;
  }

  /** GET `path`; status 0 with the error as body on failure (never throws). Bounded by `timeoutMs`. */
  get(path: string, timeoutMs = 15_000): Promise<NsResponse> {
    this.proc ??= this.start();
    const id = this.next++;
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.pending.delete(id);
        resolve({ status: 0, body: 'timed out', ms: NaN });
      }, timeoutMs + 1000);
      this.pending.set(id, (r) => {
        clearTimeout(t);
        resolve(r);
      });
      this.proc!.stdin!.write(JSON.stringify({ id, url: this.base + path, timeoutMs }) + '\n');
    });
  }

  close(): void {
    this.proc?.kill();
    this.proc = null;
  }
}
