// Kubernetes API access. @kubernetes/client-node's KubeConfig does the configuration work
// (kubeconfig files, in-cluster service accounts, exec/token refresh, TLS material); requests go
// through node:http(s) with one keep-alive agent, so that lists stay raw JSON (no typed
// deserialisation of 5,000 Nodes) and watches are streams this process controls.
import http from 'node:http';
import https from 'node:https';
import { existsSync } from 'node:fs';
import { KubeConfig } from '@kubernetes/client-node';

import { KubeError } from './kube-error.js';

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
  private agent: http.Agent | undefined;

  constructor(readonly kc: KubeConfig) {
    this.server = new URL(kc.getCurrentCluster()!.server);
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
    const chunks: Buffer[] = [];
    for await (const c of res) chunks.push(c as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    let json: unknown = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      if ((res.statusCode ?? 0) < 300) throw new KubeError(`${method} ${path}: invalid JSON in the response`, res.statusCode ?? 0);
    }
    const status = res.statusCode ?? 0;
    if (status < 200 || status >= 300) {
      const msg = (json as { message?: string } | null)?.message ?? (text.slice(0, 200) || http.STATUS_CODES[status]);
      throw new KubeError(`${method} ${path}: ${status} ${msg}`, status, json, retryAfter(res.headers['retry-after']));
    }
    return json as T;
  }

  /**
   * A streaming GET (watch): calls onLine for every newline-delimited line. Resolves when the
   * server ends the stream; rejects on errors or when `signal` aborts.
   */
  async stream(path: string, h: StreamHandlers, signal: AbortSignal, accept?: string): Promise<void> {
    const o = await this.options('GET', path, accept ? { Accept: accept } : {});
    const res = await this.send(o, undefined, signal);
    const status = res.statusCode ?? 0;
    if (status !== 200) {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      let json: unknown = null;
      try {
        json = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        /* not JSON */
      }
      throw new KubeError(`watch ${path}: ${status} ${(json as { message?: string } | null)?.message ?? http.STATUS_CODES[status]}`, status, json, retryAfter(res.headers['retry-after']));
    }
    h.onOpen?.();
    let rest = '';
    await new Promise<void>((resolve, reject) => {
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        h.onBytes?.(Buffer.byteLength(chunk));
        rest += chunk;
        let i: number;
        while ((i = rest.indexOf('\n')) >= 0) {
          const line = rest.slice(0, i);
          rest = rest.slice(i + 1);
          if (line.trim() !== '') h.onLine(line);
        }
      });
      let ended = false;
      res.on('end', () => {
        ended = true;
        if (rest.trim() !== '') h.onLine(rest);
        resolve();
      });
      res.on('error', reject);
      // A reset or an abort closes without 'end': that is an error, never a clean finish.
      res.on('close', () => {
        if (!ended) reject(signal.aborted ? new Error('watch aborted') : new Error('watch connection closed before its end'));
      });
    });
  }

  close(): void {
    this.agent?.destroy();
  }
}
