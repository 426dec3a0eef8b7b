// Kubernetes API access. @kubernetes/client-node's KubeConfig does the configuration work
// (kubeconfig files, in-cluster service accounts, exec/token refresh, TLS material); requests go
// through node:http(s) with one keep-alive agent, so that lists stay raw JSON (no typed
// deserialisation of 5,000 Nodes) and watches are streams this process controls.
import http from 'node:http';
import https from 'node:https';
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

import { InvalidResponseError, KubeError } from './kube-error.js';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter } from './lines.js';
import { shortMessage } from './watch-event.js';

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
}

export const DEFAULT_MAX_RESPONSE_BYTES = 128 * 1024 * 1024;
/** Error answers are only read for their message and code. */
const MAX_ERROR_BODY_BYTES = 64 * 1024;

/**
 * The whole body, read in linear time (one concatenation at the end) and refused as soon as it
 * passes `max` bytes (or declares more): the connection is dropped then, not drained.
 */
async function readBody(res: http.IncomingMessage, max: number, what: string): Promise<Buffer> {
  const tooLarge = (n: number) => {
    res.destroy();
    return new InvalidResponseError(`${what}: response body larger than ${max} bytes (${n} bytes seen)`, 'body_too_large', n);
  };
  const declared = Number(res.headers['content-length']);
  if (declared > max) throw tooLarge(declared);
  const chunks: Buffer[] = [];
  let n = 0;
  for await (const c of res) {
    n += (c as Buffer).length;
    if (n > max) throw tooLarge(n);
    chunks.push(c as Buffer);
  }
  return Buffer.concat(chunks, n);
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

/** Builds the configuration the way the Go agent does: --kubeconfig, --master, or in-cluster. */
export function loadKubeConfig(opts: { kubeconfig: string; master: string }): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig)) throw new Error(`failed to create Kubernetes config: kubeconfig ${opts.kubeconfig} does not exist`);
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (e) {
      throw new Error(`failed to create Kubernetes config: cannot load kubeconfig ${opts.kubeconfig}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!kc.getCurrentCluster()) throw new Error(`failed to create Kubernetes config: kubeconfig ${opts.kubeconfig} has no current cluster`);
  } else if (!opts.master) {
    if (!process.env.KUBERNETES_SERVICE_HOST) {
      throw new Error('failed to create Kubernetes config: no --kubeconfig or --master given and not running in a cluster (KUBERNETES_SERVICE_HOST is unset)');
    }
    kc.loadFromCluster();
  } else {
    kc.loadFromClusterAndUser({ name: 'master', server: opts.master, skipTLSVerify: false }, { name: 'master' });
  }
  if (opts.master) {
    // --master overrides the server of the kubeconfig, as clientcmd.BuildConfigFromFlags does.
    const c = kc.getCurrentCluster()!;
    kc.clusters = kc.clusters.map((x) => (x.name === c.name ? { ...x, server: opts.master } : x));
  }
  const server = kc.getCurrentCluster()!.server;
  try {
    const u = new URL(server);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error(`unsupported scheme ${u.protocol}`);
  } catch (e) {
    throw new Error(`failed to create Kubernetes config: invalid server URL ${JSON.stringify(server)}: ${(e as Error).message}`);
  }
  return kc;
}

function retryAfter(h: string | string[] | undefined): number | null {
  const v = Array.isArray(h) ? h[0] : h;
  if (!v) return null;
  const s = Number(v);
  return Number.isFinite(s) && s >= 0 ? Math.min(s, 60) * 1000 : null;
}

export class KubeClient {
  readonly server: URL;
  readonly maxLineBytes: number;
  readonly maxResponseBytes: number;
  private agent: http.Agent | undefined;

  constructor(readonly kc: KubeConfig, o: KubeClientOptions = {}) {
    this.server = new URL(kc.getCurrentCluster()!.server);
    this.maxLineBytes = o.maxLineBytes ?? DEFAULT_MAX_LINE_BYTES;
    this.maxResponseBytes = o.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
  }

  /** Request options with fresh credentials (tokens and exec plugins refresh here). */
  private async options(method: string, path: string, headers: Record<string, string>, timeoutMs?: number): Promise<https.RequestOptions> {
    const o: https.RequestOptions = { method, headers: { Accept: 'application/json', ...headers } };
    await this.kc.applyToHTTPSOptions(o);
    // One keep-alive agent for the process, built with the TLS material of the first request.
    if (!this.agent) {
      const tls = { ca: o.ca, cert: o.cert, key: o.key, pfx: o.pfx, passphrase: o.passphrase, servername: o.servername };
      const skip = this.kc.getCurrentCluster()?.skipTLSVerify === true;
      this.agent = this.server.protocol === 'https:'
        ? new https.Agent({ keepAlive: true, maxSockets: 8, ...tls, ...(skip ? { rejectUnauthorized: false } : {}) })
        : new http.Agent({ keepAlive: true, maxSockets: 8 });
    }
    const base = this.server.pathname.replace(/\/$/, '');
    return {
      ...o,
      agent: this.agent,
      protocol: this.server.protocol,
      hostname: this.server.hostname.replace(/^\[|\]$/g, ''),
      port: this.server.port || (this.server.protocol === 'https:' ? 443 : 80),
      path: base + path,
      timeout: timeoutMs,
    };
  }

  private send(o: https.RequestOptions, body: string | undefined, signal?: AbortSignal): Promise<http.IncomingMessage> {
    const mod = this.server.protocol === 'https:' ? https : http;
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
    const o = await this.options(method, path, headers, r.timeoutMs ?? 30_000);
    const res = await this.send(o, body, r.signal);
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
   * A streaming GET (watch): calls onLine for every newline-delimited line. Resolves when the
   * server ends the stream; rejects on errors or when `signal` aborts.
   */
  async stream(path: string, h: StreamHandlers, signal: AbortSignal, accept?: string): Promise<void> {
    const o = await this.options('GET', path, accept ? { Accept: accept } : {});
    const res = await this.send(o, undefined, signal);
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
