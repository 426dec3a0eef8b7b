// Shared helpers for the API simulator tests: real kubectl, raw HTTP(S) requests, bounded waits.
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ApiServer } from '../../loadtest/apiserver/index.js';

/** kubectl from $KUBECTL or PATH. Missing kubectl is a failure, never a silent skip. */
export function kubectlPath(): string {
  const k = process.env.KUBECTL ?? 'kubectl';
  try {
    execFileSync(k, ['version', '--client'], { stdio: 'ignore', timeout: 20_000 });
  } catch (err) {
    throw new Error(`kubectl is required for these tests and "${k}" does not run (${(err as Error).message}); install Debian's kubernetes-client (.ci/run does) or set KUBECTL`);
  }
  return k;
}

export interface Kubectl {
  (args: string[], opts?: { input?: string; timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  kubeconfig: string;
  dir: string;
  cleanup(): void;
}

/** Runs kubectl against a simulator with its own kubeconfig file; rejects on a non-zero exit. */
export function kubectlFor(srv: ApiServer, kubeconfigText = srv.kubeconfig): Kubectl {
  const bin = kubectlPath();
  const dir = mkdtempSync(join(tmpdir(), 'kgsim-kubectl-'));
  const kubeconfig = join(dir, 'kubeconfig');
  writeFileSync(kubeconfig, kubeconfigText, { mode: 0o600 });
  const run = ((args: string[], opts: { input?: string; timeoutMs?: number } = {}) =>
    new Promise((ok, fail) => {
      const child = execFile(
        bin,
        [`--kubeconfig=${kubeconfig}`, `--cache-dir=${join(dir, 'cache')}`, ...args],
        { timeout: opts.timeoutMs ?? 30_000, env: { ...process.env, HOME: dir } },
        (err, stdout, stderr) => {
          if (err) fail(new Error(`kubectl ${args.join(' ')} failed: ${err.message}\n${stderr}`));
          else ok({ stdout, stderr });
        },
      );
      if (opts.input !== undefined) child.stdin!.end(opts.input);
      else child.stdin!.end();
    })) as Kubectl;
  run.kubeconfig = kubeconfig;
  run.dir = dir;
  run.cleanup = () => rmSync(dir, { recursive: true, force: true });
  return run;
}

export interface RawResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One HTTP(S) request to the simulator with its token and CA. */
export function request(
  srv: ApiServer,
  method: string,
  path: string,
  opts: { body?: unknown; contentType?: string; headers?: Record<string, string>; timeoutMs?: number; token?: string | null } = {},
): Promise<RawResponse> {
  const u = new URL(srv.url);
  const body = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
  const token = opts.token === null ? undefined : opts.token ?? srv.token;
  return new Promise((ok, fail) => {
    const req = (srv.https ? https : http).request(
      {
        host: u.hostname,
        port: u.port,
        method,
        path,
        ca: srv.caCert,
        agent: false,
        headers: {
          accept: 'application/json',
          ...(token ? { authorization: `Bearer ${token}` } : {}),
          ...(body !== undefined ? { 'content-type': opts.contentType ?? 'application/json', 'content-length': String(Buffer.byteLength(body)) } : {}),
          ...(opts.headers ?? {}),
        },
        timeout: opts.timeoutMs ?? 10_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => ok({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
        res.on('error', fail);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`request ${method} ${path} timed out`)));
    req.on('error', fail);
    req.end(body);
  });
}

export interface RawWatch {
  status: Promise<number>;
  events: { type: string; object: any }[]; // eslint-disable-line @typescript-eslint/no-explicit-any
  /** Resolves when the server ends the stream (true) or it errors (false). */
  ended: Promise<boolean>;
  headersSeen(): boolean;
  close(): void;
}

/** Opens a watch and collects its newline-delimited JSON events. */
export function rawWatch(srv: ApiServer, path: string, accept = 'application/json'): RawWatch {
  const u = new URL(srv.url);
  const events: RawWatch['events'] = [];
  let headers = false;
  let setStatus!: (n: number) => void;
  let setEnded!: (b: boolean) => void;
  const status = new Promise<number>((r) => (setStatus = r));
  const ended = new Promise<boolean>((r) => (setEnded = r));
  const req = (srv.https ? https : http).request(
    { host: u.hostname, port: u.port, method: 'GET', path, ca: srv.caCert, agent: false, headers: { accept, ...(srv.token ? { authorization: `Bearer ${srv.token}` } : {}) } },
    (res) => {
      headers = true;
      setStatus(res.statusCode ?? 0);
      let buf = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        const lines = (buf + c).split('\n');
        buf = lines.pop()!;
        for (const line of lines) if (line.trim()) events.push(JSON.parse(line));
      });
      res.on('end', () => setEnded(true));
      res.on('error', () => setEnded(false));
      res.on('aborted', () => setEnded(false));
    },
  );
  req.on('error', () => {
    setStatus(0);
    setEnded(false);
  });
  req.end();
  return { status, events, ended, headersSeen: () => headers, close: () => req.destroy() };
}

/** Polls until `cond` holds; fails after `timeoutMs` with `what` in the message. */
export async function waitFor(what: string, cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Resolves `p`, or rejects after `ms` so that no test can hang on it. */
export function within<T>(ms: number, p: Promise<T>, what = 'operation'): Promise<T> {
  let t: NodeJS.Timeout;
  return Promise.race([p, new Promise<T>((_, fail) => (t = setTimeout(() => fail(new Error(`${what} did not finish within ${ms} ms`)), ms)))]).finally(() => clearTimeout(t));
}
