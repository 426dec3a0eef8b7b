// Kubernetes API access over node:http(s) with one keep-alive agent, so that lists stay raw JSON
// (no typed deserialisation of 5,000 Nodes) and watches are streams this process controls.
// The credentials (server, TLS material, token) come from a loader: in the agent a short-lived
// worker in which @kubernetes/client-node resolves the kubeconfig, in-cluster account or exec
// plugin (workers/credentials-client.ts), so the library never stays in this isolate. They are
// loaded again before a known expiry and once after a 401; a token file is re-read every minute.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';

import { InvalidResponseError, KubeError } from './kube-error.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter } from './lines.js';
import { ListItemSplitter, type DropPaths } from './list-items.js';
import { shortMessage } from './watch-event.js';
import type { ApiCredentials } from '../ipc/credentials.js';

export type { ApiCredentials };

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface StreamHandlers {
  onLine(line: string): void;
  onBytes?(n: number): void;
  /** The server accepted the stream (200). */
  onOpen?(): void;
}

/** Resolves the credentials afresh (a configuration error rejects with its message). */
export type CredentialsLoader = () => Promise<ApiCredentials>;

export interface KubeClientOptions {
  /** Longest watch line in bytes (default DEFAULT_MAX_LINE_BYTES); a longer one ends the watch. */
  maxLineBytes?: number;
  /**
   * Largest response body (a list page, a GET, a PATCH answer) in bytes; a larger one is
   * InvalidResponseError('body_too_large'). The reflector lists in pages of 500, but an unpaged
   * list of 5,000 whole Nodes as the simulator makes them (~10 KiB each) is 51 MB: 128 MiB
   * leaves room for a server that ignores `limit` and for Nodes twice that size.
   */
  maxResponseBytes?: number;
  /** Fewest ms between two loads of the credentials after 401s (default 10 s); the caller's backoff paces the rest. */
  renewIntervalMs?: number;
  /** How often a token file is re-read (default 60 s, client-go's period). */
  tokenFilePeriodMs?: number;
}

export const DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024;
/** Error answers are only read for their message and code. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * The whole body, read in linear time (one concatenation at the end) and refused as soon as it
 * passes `max` bytes (or declares more): the connection is dropped then, not drained.
 */
async function readBody(res: http.IncomingMessage, max: number, what: string): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const n = await eachChunk(res, max, what, (c) => chunks.push(c));
  return Buffer.concat(chunks, n);
}

/** Every chunk of the body in order; refused (connection dropped) once it passes `max` bytes. Resolves to the length. */
async function eachChunk(res: http.IncomingMessage, max: number, what: string, onChunk: (c: Buffer) => void): Promise<number> {
  const tooLarge = (n: number) => new InvalidResponseError(`${what}: response body larger than ${max} bytes (${n} bytes seen)`, 'body_too_large', n);
  const declared = Number(res.headers['content-length']);
  let n = 0;
  try {
    if (declared > max) throw tooLarge(declared);
    for await (const c of res) {
      n += (c as Buffer).length;
      if (n > max) throw tooLarge(n);
      onChunk(c as Buffer);
    }
  } catch (e) {
    res.destroy();
    throw e;
  }
  return n;
}

/** An error answer as a KubeError: its status decides what callers do, even if its body is junk or huge. */
async function errorOf(res: http.IncomingMessage, what: string): Promise<KubeError> {
  const status = res.statusCode ?? 0;
  let json: unknown = null;
  let text = '';
  try {
    text = (await readBody(res, MAX_ERROR_BODY_BYTES, what)).toString('utf8');
    json = JSON.parse(text);
  } catch {
    /* too large or not JSON: the status alone */
  }
  const msg = shortMessage((json as { message?: unknown } | null)?.message, shortMessage(text, http.STATUS_CODES[status] ?? 'error'));
  return new KubeError(`${what}: ${status} ${msg}`, status, json, retryAfter(res.headers['retry-after']));
}

function retryAfter(h: string | string[] | undefined): number | null {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return null;
  const s = Number(v);
  return Number.isFinite(s) && s >= 0 ? Math.min(s, 60) * 1000 : null;
}

/** Renew a known expiry this long before it. */
const EXPIRY_MARGIN_MS = 10_000;

const buf = (u: Uint8Array | null) => (u === null ? undefined : Buffer.from(u.buffer, u.byteOffset, u.byteLength));
const sameBytes = (a: Uint8Array | null, b: Uint8Array | null) => (a === null || b === null ? a === b : Buffer.compare(a, b) === 0);
const sameTls = (a: ApiCredentials, b: ApiCredentials) =>
  a.server === b.server && a.skipTLSVerify === b.skipTLSVerify && a.servername === b.servername && sameBytes(a.ca, b.ca) && sameBytes(a.cert, b.cert) && sameBytes(a.key, b.key);

export class KubeClient {
  readonly maxLineBytes: number;
  readonly maxResponseBytes: number;
  private readonly renewIntervalMs: number;
  private readonly tokenFilePeriodMs: number;
  private creds: ApiCredentials | null = null;
  private server: URL | null = null;
  private loading: Promise<ApiCredentials> | null = null;
  private loadedAt = -Infinity;
  private tokenReadAt = -Infinity;
  private agent: http.Agent | undefined;
  /** Credential loads so far (the first included). */
  loads = 0;

  constructor(private readonly load: CredentialsLoader, o: KubeClientOptions = {}) {
    this.maxLineBytes = o.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.maxResponseBytes = o.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    this.renewIntervalMs = o.renewIntervalMs ?? 10_000;
    this.tokenFilePeriodMs = o.tokenFilePeriodMs ?? 60_000;
  }

  /** Loads the credentials now (the first request would): a configuration error rejects here. */
  async ready(): Promise<void> {
    await this.credentials();
  }

  private reload(): Promise<ApiCredentials> {
    this.loading ??= this.load()
      .then((c) => this.install(c))
      .finally(() => {
        this.loading = null;
      });
    return this.loading;
  }

  private install(c: ApiCredentials): ApiCredentials {
    let server: URL;
    try {
      server = new URL(c.server);
      if (server.protocol !== 'https:' && server.protocol !== 'http:') throw new Error(`unsupported scheme ${server.protocol}`);
    } catch (e) {
      throw new Error(`failed to create Kubernetes config: invalid server URL ${JSON.stringify(c.server)}: ${(e as Error).message}`);
    }
    this.loads++;
    // New TLS material needs a new agent: its pooled sockets carry the old client certificate.
    if (this.creds && !sameTls(this.creds, c)) {
      this.agent?.destroy();
      this.agent = undefined;
    }
    this.creds = { ...c, headers: { ...c.headers } };
    this.server = server;
    this.loadedAt = Date.now();
    if (c.tokenFile) this.rereadToken(this.creds);
    return this.creds;
  }

  private rereadToken(c: ApiCredentials): void {
    this.tokenReadAt = Date.now();
    try {
      const t = readFileSync(c.tokenFile!, 'utf8').trim();
      if (t) c.headers.Authorization = `Bearer ${t}`;
    } catch {
      /* keep the token held, as client-go does when a re-read fails */
    }
  }

  /** The credentials to use now: renewed shortly before a known expiry, the token file re-read every period. */
  private async credentials(): Promise<ApiCredentials> {
    const c = this.creds;
    if (!c) return this.reload();
    const now = Date.now();
    if (c.expiresAtMs !== null && now >= c.expiresAtMs - EXPIRY_MARGIN_MS && now - this.loadedAt >= this.renewIntervalMs) {
      try {
        return await this.reload();
      } catch (e) {
        if (now < c.expiresAtMs) return c; // still valid: the next request tries again
        throw e;
      }
    }
    if (c.tokenFile && now - this.tokenReadAt >= this.tokenFilePeriodMs) this.rereadToken(c);
    return c;
  }

  /**
   * After a 401: load the credentials again (at most once per renewIntervalMs); true when there
   * are new ones to retry with. A failed load is the request's error, still a 401.
   */
  private async renewAfter401(res: http.IncomingMessage, what: string): Promise<boolean> {
    res.resume();
    if (Date.now() - this.loadedAt < this.renewIntervalMs) return false;
    try {
      await this.reload();
      return true;
    } catch (e) {
      throw new KubeError(`${what}: 401 Unauthorized, and loading the credentials again failed: ${(e as Error).message}`, 401);
    }
  }

  /** Request options with the current credentials and the keep-alive agent. */
  private async options(method: string, path: string, headers: Record<string, string>, timeoutMs?: number): Promise<https.RequestOptions> {
    const c = await this.credentials();
    const server = this.server!;
    if (!this.agent) {
      this.agent = server.protocol === 'https:'
        ? new https.Agent({
          keepAlive: true, maxSockets: 8, ca: buf(c.ca), cert: buf(c.cert), key: buf(c.key),
          ...(c.servername ? { servername: c.servername } : {}), ...(c.skipTLSVerify ? { rejectUnauthorized: false } : {}),
        })
        : new http.Agent({ keepAlive: true, maxSockets: 8 });
    }
    const base = server.pathname.replace(/\/$/, '');
    return {
      method,
      headers: { Accept: 'application/json', ...c.headers, ...headers },
      agent: this.agent,
      protocol: server.protocol,
      hostname: server.hostname.replace(/^\[|\]$/g, ''),
      port: server.port || (server.protocol === 'https:' ? 443 : 80),
      path: base + path,
      timeout: timeoutMs,
    };
  }

  /** Sends the request, once more with renewed credentials after a 401. */
  private async exchange(method: string, path: string, headers: Record<string, string>, body: string | undefined, signal: AbortSignal | undefined, timeoutMs?: number): Promise<http.IncomingMessage> {
    for (let attempt = 0; ; attempt++) {
      const res = await this.send(await this.options(method, path, headers, timeoutMs), body, signal);
      if (res.statusCode !== 401 || attempt > 0 || !(await this.renewAfter401(res, `${method} ${path}`))) return res;
    }
  }

  private send(o: https.RequestOptions, body: string | undefined, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const mod = o.protocol === 'https:' ? https : http;
    return new Promise((resolve, reject) => {
      const req = mod.request({ ...o, signal }, resolve);
      req.on('error', reject);
      req.on('timeout', () => req.destroy(new Error(`request to ${o.path} timed out`)));
      if (body !== undefined) req.write(body);
      req.end();
    });
  }

  /** A JSON request. Non-2xx answers throw a KubeError with the status and Retry-After. */
  async request<T = unknown>(method: string, path: string, r: RequestOptions = {}): Promise<T> {
    const body = r.body === undefined ? undefined : JSON.stringify(r.body);
    const headers: Record<string, string> = body === undefined ? {} : { 'Content-Type': r.contentType ?? 'application/json' };
    const res = await this.exchange(method, path, headers, body, r.signal, r.timeoutMs ?? 30_000);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw await errorOf(res, `${method} ${path}`);
    const bytes = await readBody(res, this.maxResponseBytes, `${method} ${path}`);
    if (bytes.length === 0) return null as T;
    try {
      return JSON.parse(bytes.toString('utf8')) as T;
    } catch {
      throw new InvalidResponseError(`${method} ${path}: invalid JSON in the response (${bytes.length} bytes)`, 'not_json', bytes.length);
    }
  }

  /**
   * A list GET whose items go to `onItem` one at a time, each as its own JSON text, while the
   * response arrives (watch/list-items.ts): neither the page's text nor all its objects are held
   * at once. Resolves to the rest of the response (kind, metadata), its `items` empty.
   */
  async requestList<T = unknown>(path: string, onItem: (json: string) => void, r: Omit<RequestOptions, 'body' | 'contentType'> & { drop?: DropPaths } = {}): Promise<T> {
    const res = await this.exchange('GET', path, {}, undefined, r.signal, r.timeoutMs ?? 30_000);
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) throw await errorOf(res, `GET ${path}`);
    const split = new ListItemSplitter(this.maxLineBytes, undefined, r.drop);
    await eachChunk(res, this.maxResponseBytes, `GET ${path}`, (c) => split.push(c, onItem));
    return split.end() as T;
  }

  /**
   * A streaming GET (watch): calls onLine for every newline-delimited line. Resolves when the
   * server ends the stream; rejects on errors or when `signal` aborts.
   */
  async stream(path: string, h: StreamHandlers, signal: AbortSignal, accept?: string): Promise<void> {
    const res = await this.exchange('GET', path, accept ? { Accept: accept } : {}, undefined, signal);
    if (res.statusCode !== 200) throw await errorOf(res, `watch ${path}`);
    h.onOpen?.();
    const lines = new LineSplitter(this.maxLineBytes);
    const onLine = (line: string) => h.onLine(line);
    await new Promise<void>((resolve, reject) => {
      let done = false;
      const finish = (e?: Error) => {
        if (done) return;
        done = true;
        if (e) {
          res.destroy();
          reject(e);
        } else resolve();
      };
      res.on('data', (chunk: Buffer) => {
        if (done) return;
        h.onBytes?.(chunk.length);
        try {
          lines.push(chunk, onLine);
        } catch (e) {
          finish(e as Error);
        }
      });
      res.on('end', () => {
        try {
          lines.end(onLine);
          finish();
        } catch (e) {
          finish(e as Error);
        }
      });
      res.on('error', (e) => finish(e));
      // A reset or an abort closes without 'end': that is an error, never a clean finish.
      res.on('close', () => finish(signal.aborted ? new Error('watch aborted') : new Error('watch connection closed before its end')));
    });
  }

  close(): void {
    this.agent?.destroy();
  }
}
