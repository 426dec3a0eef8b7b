// The agent's /graph (design §13.1.1) behind a guard. Anyone who reaches --listen may ask for it,
// and a render of a large mesh is the costliest thing the agent does (minutes of circo; the DOT
// of a full mesh grows with the square of the nodes). So: formats and
// layouts from fixed lists, one build or render at a time with a short queue (503 beyond it),
// each result cached per version of the cluster view, and every render bounded in time and size.
import { spawn, type ChildProcess } from 'node:child_process';
import { setPriority } from 'node:os';
import { Counter, type Registry } from 'prom-client';
import { GraphTooLargeError } from '../../plan/graph.js';

/** Graphviz output formats /graph serves (Kilo's list), with their content types. */
export const FORMATS: ReadonlyMap<string, string> = new Map([
  ['svg', 'image/svg+xml'], ['png', 'image/png'], ['bmp', 'image/bmp'], ['fig', 'application/x-xfig'], ['gif', 'image/gif'],
  ['json', 'application/json'], ['ps', 'application/postscript'],
]);
export const LAYOUTS: ReadonlySet<string> = new Set(['circo', 'dot', 'neato', 'twopi', 'fdp']);

export interface GraphLimits {
  /** Longest DOT text built, in characters. */
  maxDotLength: number;
  /** Largest rendered output: dot is killed once its output passes this. */
  maxOutputBytes: number;
  /** dot is killed after this long. */
  renderTimeoutMs: number;
  /** Builds or renders waiting behind the running one; a request for another one gets 503. */
  maxQueued: number;
  /** Bytes of results kept (only the current version's). */
  maxCacheBytes: number;
}

export const GRAPH_LIMITS: GraphLimits = {
  maxDotLength: 4 << 20,
  maxOutputBytes: 16 << 20,
  renderTimeoutMs: 10_000,
  maxQueued: 2,
  maxCacheBytes: 48 << 20,
};

/** The graph cannot be built now (the planner is busy with reconciles): 503, try again. */
export class GraphBusyError extends Error {}

export interface GraphSource {
  /** Changes (never decreasing) whenever the graph may have changed; read on every request. */
  version(): number;
  /** The DOT text (null: no valid node). Throws GraphBusyError or GraphTooLargeError. */
  dot(maxLength: number): Promise<string | null>;
}

export interface GraphReply {
  status: number;
  body: string | Buffer;
  type?: string;
  retryAfterSeconds?: number;
}

type RenderResult = { ok: true; out: Buffer } | { ok: false; reason: 'failed' | 'timeout' | 'too_large' };

/**
 * Runs `dot -K<layout> -T<format>` on the text, at the lowest CPU priority (a render may not
 * starve the agent), killed past `timeoutMs` or `maxBytes` of output.
 */
export function renderDOT(dot: string, layout: string, format: string, o: { timeoutMs: number; maxBytes: number }): Promise<RenderResult> {
  return new Promise((resolve) => {
    let p: ChildProcess;
    try {
      p = spawn('dot', [`-K${layout}`, `-T${format}`], { stdio: ['pipe', 'pipe', 'ignore'] });
    } catch {
      return resolve({ ok: false, reason: 'failed' });
    }
    let settled = false;
    let killed: 'timeout' | 'too_large' | null = null;
    const settle = (r: RenderResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const kill = (why: 'timeout' | 'too_large') => {
      killed ??= why;
      p.kill('SIGKILL');
    };
    const timer = setTimeout(() => kill('timeout'), o.timeoutMs);
    if (p.pid !== undefined) {
      try {
        setPriority(p.pid, 19);
      } catch {
        /* it may have exited already */
      }
    }
    const out: Buffer[] = [];
    let bytes = 0;
    p.stdout!.on('data', (c: Buffer) => {
      bytes += c.length;
      if (bytes > o.maxBytes) kill('too_large');
      else if (!killed) out.push(c);
    });
    p.on('error', () => settle({ ok: false, reason: 'failed' }));
    p.on('close', (code) => settle(killed ? { ok: false, reason: killed } : code === 0 ? { ok: true, out: Buffer.concat(out) } : { ok: false, reason: 'failed' }));
    p.stdin!.on('error', () => {});
    p.stdin!.end(dot);
  });
}

function counter(registry: Registry, name: string, help: string): Counter<'result'> {
  return (registry.getSingleMetric(name) as Counter<'result'> | undefined) ?? new Counter({ name, help, labelNames: ['result'], registers: [registry] });
}

interface Job {
  started: boolean;
  /** The version the job read when it started. */
  v: number;
  reply: Promise<GraphReply>;
}

const text = (status: number, body: string): GraphReply => ({ status, body: `${body}\n`, type: 'text/plain; charset=utf-8' });
const NO_NODES = text(500, 'did not find any valid Kilo nodes in the cluster');

export class GraphService {
  private readonly cache = new Map<string, { v: number; reply: GraphReply; dot?: string | null; bytes: number }>();
  private cacheBytes = 0;
  /** The newest job per key, queued or running. */
  private readonly jobs = new Map<string, Job>();
  private queued = 0;
  private tail: Promise<unknown> = Promise.resolve();
  private readonly requests: Counter<'result'>;
  private readonly builds: Counter<'result'>;
  private readonly renders: Counter<'result'>;

  constructor(private readonly source: GraphSource, registry: Registry, private readonly limits: GraphLimits = GRAPH_LIMITS) {
    this.requests = counter(registry, 'kg_graph_requests_total', 'Requests to /graph by result: ok, unsupported (format or layout), busy (503), failed.');
    this.builds = counter(registry, 'kg_graph_builds_total', 'DOT texts built for /graph by result: ok, failed, too_large, busy.');
    this.renders = counter(registry, 'kg_graph_renders_total', 'Graphviz renders for /graph by result: ok, failed, timeout, too_large.');
  }

  /** The reply to /graph?format=…&layout=… (Kilo's defaults: svg, circo). */
  async get(format: string, layout: string): Promise<GraphReply> {
    // Own entries only: `format in {…}` accepted constructor, toString, __proto__….
    const raw = format === 'dot' || format === 'gv';
    const bad = !raw && !FORMATS.has(format) ? 'format' : !LAYOUTS.has(layout) ? 'layout' : null;
    if (bad) {
      this.requests.labels('unsupported').inc();
      return text(500, `unsupported ${bad}`);
    }
    const r = await this.answer(raw ? 'dot' : `${format}/${layout}`, format, layout);
    this.requests.labels(r.status === 200 ? 'ok' : r.status === 503 ? 'busy' : 'failed').inc();
    return r;
  }

  private answer(key: string, format: string, layout: string): Promise<GraphReply> | GraphReply {
    const v = this.source.version();
    const hit = this.cache.get(key);
    if (hit && hit.v === v) return hit.reply;
    // A queued job reads the version when it starts: joining it gives a fresh answer.
    const job = this.jobs.get(key);
    if (job && (!job.started || job.v === v)) return job.reply;
    if (this.queued >= this.limits.maxQueued) return this.busy();
    return this.enqueue(key, format, layout).reply;
  }

  private busy(): GraphReply {
    return { ...text(503, 'the graph is being rendered; try again later'), retryAfterSeconds: Math.ceil(this.limits.renderTimeoutMs / 1000) };
  }

  private enqueue(key: string, format: string, layout: string): Job {
    const job = { started: false, v: -1 } as Job;
    this.queued++;
    job.reply = this.tail.then(async () => {
      this.queued--;
      job.started = true;
      job.v = this.source.version();
      return this.build(key, format, layout, job.v);
    }).catch((e: Error) => text(500, e.message)).finally(() => {
      if (this.jobs.get(key) === job) this.jobs.delete(key);
    });
    this.tail = job.reply;
    this.jobs.set(key, job);
    return job;
  }

  private async dotAt(v: number): Promise<{ dot: string | null } | { reply: GraphReply }> {
    const hit = this.cache.get('dot');
    if (hit && hit.v === v) return hit.dot !== undefined ? { dot: hit.dot } : { reply: hit.reply };
    try {
      const dot = await this.source.dot(this.limits.maxDotLength);
      this.builds.labels('ok').inc();
      const reply = dot === null ? NO_NODES : { status: 200, body: dot };
      this.store('dot', v, reply, dot);
      return { dot };
    } catch (e) {
      if (e instanceof GraphBusyError) {
        this.builds.labels('busy').inc();
        return { reply: this.busy() };
      }
      const tooLarge = e instanceof GraphTooLargeError;
      this.builds.labels(tooLarge ? 'too_large' : 'failed').inc();
      const reply = text(500, (e as Error).message);
      // Too large stays too large until the cluster changes; other failures are tried again.
      if (tooLarge) this.store('dot', v, reply, undefined);
      return { reply };
    }
  }

  private async build(key: string, format: string, layout: string, v: number): Promise<GraphReply> {
    const d = await this.dotAt(v);
    if ('reply' in d) return d.reply;
    if (d.dot === null) return NO_NODES;
    if (key === 'dot') return { status: 200, body: d.dot };
    const r = await renderDOT(d.dot, layout, format, { timeoutMs: this.limits.renderTimeoutMs, maxBytes: this.limits.maxOutputBytes });
    this.renders.labels(r.ok ? 'ok' : r.reason).inc();
    const why = { failed: '', timeout: `: timed out after ${this.limits.renderTimeoutMs} ms`, too_large: `: output over ${this.limits.maxOutputBytes} bytes` };
    const reply = r.ok ? { status: 200, body: r.out, type: FORMATS.get(format) } : text(500, `unable to render graph${why[r.reason]}`);
    this.store(key, v, reply, undefined);
    return reply;
  }

  /** Keeps a result for its version; older versions can never be served again and go first. */
  private store(key: string, v: number, reply: GraphReply, dot: string | null | undefined): void {
    for (const [k, e] of this.cache) {
      if (e.v < v || k === key) {
        this.cacheBytes -= e.bytes;
        this.cache.delete(k);
      }
    }
    const bytes = typeof reply.body === 'string' ? reply.body.length * 2 : reply.body.length;
    if (bytes > this.limits.maxCacheBytes) return;
    for (const [k, e] of this.cache) {
      if (this.cacheBytes + bytes <= this.limits.maxCacheBytes) break;
      this.cacheBytes -= e.bytes;
      this.cache.delete(k);
    }
    this.cache.set(key, { v, reply, dot, bytes });
    this.cacheBytes += bytes;
  }
}
