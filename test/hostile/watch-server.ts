// A hostile API server for the reflector: HTTPS with a CA and a token (the simulator's PKI), and
// just enough of the API (list and watch of /api/v1/nodes, GET of one Node) to serve whatever
// bytes a test scripts, where the simulator only ever sends well-formed JSON.
import https from 'node:https';
import type http from 'node:http';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki, renderKubeconfig } from '../../loadtest/apiserver/index.js';
import { KubeClient, type KubeClientOptions } from '../../watch/kube.js';
import { inProcessCredentials } from '../../workers/kube-config.js';

export type Node = { metadata: { name: string; resourceVersion?: string; annotations?: Record<string, string> } };
/** Answers one request; `n` counts the requests of its kind from 1. */
export type Script = (res: http.ServerResponse, n: number, req: http.IncomingMessage) => void | Promise<void>;

export const node = (name: string, a = ''): Node => ({ metadata: { name, annotations: { a } } });

export interface HostileApi {
  url: string;
  /** The cluster state the default list answers with. */
  nodes: Map<string, Node>;
  rv: number;
  /** How lists, watches and GETs of one Node are answered (defaults: the state, an open silent watch). */
  list: Script;
  watch: Script;
  get: Script;
  counts: { list: number; watch: number; get: number };
  /** Open connections: zero once every client closed its sockets (no request of theirs can still arrive). */
  readonly connections: number;
  /** A client with a kubeconfig for this server. */
  client(o?: KubeClientOptions): KubeClient;
  stop(): Promise<void>;
}

export function listBody(api: Pick<HostileApi, 'nodes' | 'rv'>): string {
  return JSON.stringify({ kind: 'NodeList', apiVersion: 'v1', metadata: { resourceVersion: String(api.rv) }, items: [...api.nodes.values()] });
}

/** Writes `line` as one watch line, from the same buffer every time, until the client hangs up or `total` bytes went out. */
export async function writeRepeated(res: http.ServerResponse, prefix: string, total: number, fill = 'a'): Promise<number> {
  const block = Buffer.alloc(64 * 1024, fill);
  let sent = 0;
  if (!res.write(prefix)) await drained(res);
  sent += Buffer.byteLength(prefix);
  while (sent < total && !res.destroyed && !res.writableEnded) {
    const b = total - sent >= block.length ? block : block.subarray(0, total - sent);
    sent += b.length;
    if (!res.write(b) && !(await drained(res))) break;
  }
  return sent;
}

/** Resolves true on 'drain', false when the connection closes first. */
function drained(res: http.ServerResponse): Promise<boolean> {
  return new Promise((resolve) => {
    const done = (v: boolean) => {
      res.off('drain', onDrain);
      res.off('close', onClose);
      resolve(v);
    };
    const onDrain = () => done(true);
    const onClose = () => done(false);
    res.on('drain', onDrain);
    res.on('close', onClose);
  });
}

export const watchHeaders = (res: http.ServerResponse) => res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });

export async function startHostileApi(): Promise<HostileApi> {
  const pki = makePki();
  const token = 'hostile-test-token';
  const dir = mkdtempSync(join(tmpdir(), 'kg-hostile-'));
  const sockets = new Set<import('node:stream').Duplex>();
  const api: HostileApi = {
    url: '',
    nodes: new Map(),
    rv: 1,
    counts: { list: 0, watch: 0, get: 0 },
    get connections() {
      return sockets.size;
    },
    list: (res) => {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      res.end(listBody(api));
    },
    // An open watch that sends nothing until the test ends.
    watch: (res) => {
      watchHeaders(res);
      res.flushHeaders();
    },
    get: (res, _n, req) => {
      const name = decodeURIComponent(new URL(req.url!, 'https://x').pathname.split('/').pop()!);
      const n = api.nodes.get(name);
      res.writeHead(n ? 200 : 404, { 'Content-Type': 'application/json' });
      res.end(JSON.stringify(n ?? { kind: 'Status', code: 404, message: 'not found' }));
    },
    client: (o) => {
      const kc = join(dir, 'kubeconfig');
      writeFileSync(kc, renderKubeconfig({ server: api.url, caCertPem: pki.ca.certPem, token }));
      return new KubeClient(inProcessCredentials({ kubeconfig: kc, master: '' }), o);
    },
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((r) => server.close(() => r()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
  const server = https.createServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (req, res) => {
    if (req.headers.authorization !== `Bearer ${token}`) {
      res.writeHead(401).end();
      return;
    }
    const u = new URL(req.url!, 'https://x');
    const kind = u.pathname === '/api/v1/nodes' ? (u.searchParams.get('watch') === 'true' ? 'watch' : 'list') : u.pathname.startsWith('/api/v1/nodes/') ? 'get' : null;
    if (!kind) {
      res.writeHead(404).end();
      return;
    }
    const n = ++api.counts[kind];
    Promise.resolve(api[kind](res, n, req)).catch(() => res.destroy());
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  api.url = `https://127.0.0.1:${(server.address() as import('node:net').AddressInfo).port}`;
  return api;
}

export async function until(what: string, cond: () => boolean, timeoutMs = 15_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
