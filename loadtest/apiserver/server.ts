// The HTTP(S) front end: routing, auth, faults, discovery, admin and metrics; each verb's
// handling (get, list, watch, create, update, patch, delete) is in verbs/.
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import type { Registry } from 'prom-client';
import { SERVER_VERSION, SUBRESOURCES, apiGroup, apiGroupList, apiResourceList, apiVersions, openApiV2Json, openApiV2Protobuf } from './discovery.js';
import { Faults, INITIALIZING_MESSAGE, type RestartOptions } from './faults.js';
import { renderKubeconfig } from './kubeconfig.js';
import { SimCounters, buildRegistry } from './metrics.js';
import { Store } from './store.js';
import { makePki, type Pki } from './tls.js';
import { StatusError, type KubeObject } from './types.js';
import type { Route, VerbContext } from './verbs/context.js';
import { VERBS, verbOf } from './verbs/index.js';
import { JSON_CT } from './verbs/media.js';
import type { WatchConn } from './verbs/watch-conn.js';

const notFound = () => new StatusError(404, 'NotFound', 'the server could not find the requested resource');

export interface ApiServerOptions {
  /** Serve HTTPS with a generated CA (default false). */
  https?: boolean;
  /** 0 (default) picks a free port. */
  port?: number;
  /** Listen address (default 127.0.0.1). */
  host?: string;
  /** Bearer token clients must present; default: a random one under HTTPS, none under HTTP; `false` disables auth. */
  token?: string | false;
  /** Nodes, Peers and any other objects to load at start (CRDs are loaded first). */
  nodes?: KubeObject[];
  peers?: KubeObject[];
  objects?: KubeObject[];
  /** Apply manifests/crds.yaml at start so the Peer API exists (default true). */
  loadCrds?: boolean;
  historySize?: number;
  continueTtlMs?: number;
  /** Server-side watch timeout when the client sets none (default 1800 s, jittered up to 2x like kube-apiserver). */
  watchTimeoutSeconds?: number;
  /** How often watches with allowWatchBookmarks=true get a BOOKMARK (default 60 s). */
  bookmarkIntervalMs?: number;
  /** A watcher whose unsent bytes exceed this is closed as too slow (default 16 MiB, ~1,600 Node events; a real server buffers ~100 events plus socket buffers). */
  maxWatchBacklogBytes?: number;
  /** Also write the kubeconfig to this file. */
  kubeconfigPath?: string;
  /** Reuse an existing store (e.g. to start a second server on the same state). */
  store?: Store;
}

export interface ApiServer {
  url: string;
  host: string;
  port: number;
  https: boolean;
  token: string | undefined;
  caCert: string | undefined;
  clientCert: string | undefined;
  clientKey: string | undefined;
  /** Kubeconfig text (token auth, plus the admin client certificate under HTTPS). */
  kubeconfig: string;
  kubeconfigPath: string | undefined;
  store: Store;
  faults: Faults;
  counters: SimCounters;
  registry: Registry;
  /** Number of open watch streams. */
  watchCount(): number;
  restart(opts?: RestartOptions): Promise<void>;
  stop(): Promise<void>;
}

const REPO_ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const CRD_MANIFEST = resolve(REPO_ROOT, 'manifests/crds.yaml');

export function loadYamlObjects(file: string): KubeObject[] {
  return parseAllDocuments(readFileSync(file, 'utf8'))
    .map((d) => d.toJS() as KubeObject | null)
    .filter((o): o is KubeObject => !!o && typeof o === 'object' && !!o.kind);
}

class ServerImpl implements VerbContext {
  store: Store;
  faults: Faults;
  counters = new SimCounters();
  registry: Registry;
  watches = new Set<WatchConn>();
  /** Open connections, with the generation of the server that accepted them. */
  sockets = new Map<Socket, number>();
  server!: http.Server;
  /** Restarts so far: requests and watches of an older generation belong to a retiring server. */
  gen = 0;
  private readonly genOf = new WeakMap<http.ServerResponse, number>();
  /** Timers of a restart still in progress (a retiring server's grace, the cache initialisation). */
  private readonly pending = new Set<NodeJS.Timeout>();
  pki: Pki | undefined;
  token: string | undefined;
  host: string;
  port = 0;
  maxBacklog: number;
  watchTimeout: number;
  bookmarkTimer: NodeJS.Timeout;

  constructor(readonly opts: ApiServerOptions) {
    this.store = opts.store ?? new Store({ historySize: opts.historySize, continueTtlMs: opts.continueTtlMs });
    this.host = opts.host ?? '127.0.0.1';
    // kubectl sends bearer tokens only over TLS, so plain HTTP defaults to no auth (like the
    // old insecure port); HTTPS defaults to a random token.
    this.token = opts.token === false ? undefined : opts.token ?? (opts.https ? randomBytes(24).toString('hex') : undefined);
    this.maxBacklog = opts.maxWatchBacklogBytes ?? 16 * 1024 * 1024;
    this.watchTimeout = opts.watchTimeoutSeconds ?? 1800;
    if (opts.https) this.pki = makePki({ ips: [this.host === '0.0.0.0' ? '127.0.0.1' : this.host, '127.0.0.1', '::1'] });
    this.registry = buildRegistry(this.counters, this.store);
    this.faults = new Faults({
      dropWatches: (abrupt) => {
        const n = this.watches.size;
        for (const w of [...this.watches]) w.close(abrupt);
        return n;
      },
      onStallChange: (stalled) => {
        for (const w of [...this.watches]) {
          // A stalled watch missed events; once the fault clears it is reset, as a half-open
          // connection eventually is, so that no client ever sees a stream with a gap in it.
          if (stalled) w.stalled = true;
          else if (w.stalled) w.close(true);
        }
      },
      restart: (o) => this.restart(o),
    });
    this.bookmarkTimer = setInterval(() => this.sendBookmarks(), opts.bookmarkIntervalMs ?? 60_000);
    this.bookmarkTimer.unref();
  }

  createServer(): http.Server {
    const gen = this.gen;
    const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
      this.genOf.set(res, gen);
      this.handle(req, res).catch((err) => this.fail(res, err, 'unknown', ''));
    };
    const s = this.pki
      ? https.createServer({ cert: this.pki.server.certPem, key: this.pki.server.keyPem, ca: this.pki.ca.certPem, requestCert: true, rejectUnauthorized: false }, handler)
      : http.createServer(handler);
    s.keepAliveTimeout = 30_000;
    s.on('connection', (sock: Socket) => {
      this.sockets.set(sock, gen);
      sock.on('close', () => this.sockets.delete(sock));
    });
    return s;
  }

  async listen(port: number): Promise<void> {
    this.server = this.createServer();
    await new Promise<void>((ok, fail) => {
      this.server.once('error', fail);
      this.server.listen(port, this.host, () => {
        this.server.off('error', fail);
        ok();
      });
    });
    this.port = (this.server.address() as AddressInfo).port;
  }

  /** Shuts down like a terminating kube-apiserver: watch streams end cleanly, then connections close. */
  async close(): Promise<void> {
    for (const t of this.pending) clearTimeout(t);
    this.pending.clear();
    const closed = new Promise<void>((ok) => this.server.close(() => ok()));
    this.server.closeIdleConnections();
    await this.endConnections(() => true);
    await closed;
  }

  /** Ends the watches of the matching generations cleanly, lets their last chunks leave, then cuts the connections. */
  private async endConnections(mine: (gen: number) => boolean): Promise<void> {
    for (const w of [...this.watches]) if (mine(w.gen)) w.close(false);
    const socks = () => [...this.sockets].filter(([, g]) => mine(g)).map(([sock]) => sock);
    for (let i = 0; i < 20 && socks().length > 0; i++) {
      if (socks().every((sock) => sock.writableLength === 0)) break;
      await new Promise((ok) => setTimeout(ok, 10));
    }
    for (const sock of socks()) sock.destroy();
  }

  private later(ms: number, f: () => void): void {
    const t = setTimeout(() => {
      this.pending.delete(t);
      f();
    }, ms);
    this.pending.add(t);
  }

  /** See RestartOptions for the phases. */
  async restart(o: RestartOptions = {}): Promise<void> {
    const old = this.gen++;
    if ((o.graceMs ?? 0) > 0) {
      // The old server stops accepting and drops its idle connections; its open watches keep
      // going (the store feeds every generation, as etcd feeds both servers' caches) until the
      // grace ends. Requests still in flight on it are answered with Connection: close.
      this.server.close();
      this.server.closeIdleConnections();
      this.later(o.graceMs!, () => void this.endConnections((g) => g <= old));
    } else {
      await this.close();
    }
    if (o.downMs) await new Promise((r) => setTimeout(r, o.downMs));
    await this.listen(this.port);
    this.writeIdentityLease();
    // The new watch cache starts from the state when it has initialised: older resourceVersions
    // are too old for it (410).
    const initialised = () => {
      if (!o.keepHistory) this.store.clearHistory();
    };
    if (o.initializingMs) {
      this.faults.startInitializing(o.initializingMs, o.retryAfterSeconds ?? 1);
      this.later(o.initializingMs, initialised);
    } else initialised();
  }

  /**
   * A starting kube-apiserver writes its identity Lease (kube-system, KEP-1965), so the cluster's
   * resourceVersion moves on at every restart, as it does on a real one (where etcd's revision is
   * shared by every write): no resourceVersion from before a restart is current after it.
   */
  private writeIdentityLease(): void {
    const leases = this.store.type('coordination.k8s.io', 'v1', 'leases');
    const spec = { holderIdentity: `kgsim-${this.gen}`, leaseDurationSeconds: 3600, renewTime: new Date().toISOString().replace('Z', '000Z') };
    try {
      if (this.store.tryGet(leases, 'kube-system', 'apiserver-kgsim')) this.store.patch(leases, 'kube-system', 'apiserver-kgsim', 'merge', { spec });
      else this.store.create(leases, { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: 'apiserver-kgsim', labels: { 'apiserver.kubernetes.io/identity': 'kube-apiserver' } }, spec }, 'kube-system');
    } catch {
      // kube-system deleted by a test: nothing to renew.
    }
  }

  /** Response headers, with Connection: close on a retiring server (a real one stops keep-alives when it shuts down). */
  headers(res: http.ServerResponse, h: Record<string, string>): Record<string, string> {
    return this.genOf.get(res) === this.gen ? h : { ...h, connection: 'close' };
  }

  generationOf(res: http.ServerResponse): number | undefined {
    return this.genOf.get(res);
  }

  sendBookmarks(): void {
    for (const w of this.watches) if (w.bookmarks && !w.stalled) w.bookmark(this.store.rv);
  }

  get url(): string {
    const h = this.host.includes(':') ? `[${this.host}]` : this.host;
    return `${this.pki ? 'https' : 'http'}://${h}:${this.port}`;
  }

  send(res: http.ServerResponse, code: number, body: unknown, contentType = JSON_CT, headers: Record<string, string> = {}): void {
    const buf = Buffer.isBuffer(body) ? body : Buffer.from(typeof body === 'string' ? body : JSON.stringify(body));
    res.writeHead(code, this.headers(res, { 'content-type': contentType, 'content-length': String(buf.length), ...headers }));
    res.end(buf);
    this.counters.bytesSent += buf.length;
  }

  fail(res: http.ServerResponse, err: unknown, verb: string, resource: string): void {
    const se = err instanceof StatusError ? err : new StatusError(500, 'InternalError', `Internal error occurred: ${(err as Error)?.message ?? String(err)}`);
    this.counters.request(verb, resource, se.code);
    if (res.headersSent) {
      res.destroy();
      return;
    }
    this.send(res, se.code, se.toStatus(), JSON_CT, se.headers ?? {});
  }

  authenticated(req: http.IncomingMessage): boolean {
    if (!this.token) return true;
    if (req.headers.authorization === `Bearer ${this.token}`) return true;
    const sock = req.socket as Socket & { authorized?: boolean };
    return !!this.pki && sock.authorized === true;
  }

  async readBody(req: http.IncomingMessage): Promise<unknown> {
    const chunks: Buffer[] = [];
    let n = 0;
    for await (const c of req) {
      n += (c as Buffer).length;
      if (n > 32 * 1024 * 1024) throw new StatusError(413, 'RequestEntityTooLarge', 'request body too large');
      chunks.push(c as Buffer);
    }
    const text = Buffer.concat(chunks).toString('utf8');
    if (text.trim() === '') return undefined;
    try {
      return JSON.parse(text);
    } catch {
      throw new StatusError(400, 'BadRequest', 'the body of the request could not be decoded as JSON');
    }
  }

  route(segs: string[], group: string, version: string): Route | undefined {
    let watchPath = false;
    if (segs[0] === 'watch') {
      watchPath = true;
      segs = segs.slice(1);
    }
    const find = (r: string) => this.store.types.get(`${group ? group + '/' : ''}${version}/${r}`);
    if (segs[0] === 'namespaces' && segs.length >= 3) {
      const t = find(segs[2]);
      if (t && t.namespaced) return { t, ns: segs[1], name: segs[3], sub: segs[4], watchPath };
      if (segs.length === 3 && group === '') {
        const nsType = find('namespaces')!;
        return { t: nsType, name: segs[1], sub: segs[2], watchPath };
      }
      return undefined;
    }
    const t = find(segs[0]);
    if (!t) return undefined;
    return { t, name: segs[1], sub: segs[2], watchPath };
  }

  async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://sim');
    const path = url.pathname.replace(/\/+$/, '') || '/';
    const method = req.method ?? 'GET';
    if (path === '/healthz' || path === '/livez' || path === '/readyz') return this.send(res, 200, 'ok', 'text/plain');
    if (path === '/version') return this.send(res, 200, SERVER_VERSION);
    if (!this.authenticated(req)) {
      return this.fail(res, new StatusError(401, 'Unauthorized', 'Unauthorized'), method.toLowerCase(), '');
    }
    if (path === '/metrics') return this.send(res, 200, await this.registry.metrics(), this.registry.contentType);
    if (path.startsWith('/_sim/')) return this.admin(req, res, path, url);
    if (this.serveRoots(req, res, path)) return;
    return this.serveApi(req, res, url, path, method);
  }

  /** Discovery roots and OpenAPI; false when the path is none of them. */
  private serveRoots(req: http.IncomingMessage, res: http.ServerResponse, path: string): boolean {
    if (path === '/api') this.send(res, 200, apiVersions(`${this.host}:${this.port}`));
    else if (path === '/apis') this.send(res, 200, apiGroupList(this.store));
    else if (path === '/openapi/v2' || path === '/swagger.json') {
      if (/protobuf/.test(req.headers.accept ?? '')) this.send(res, 200, openApiV2Protobuf(), 'application/com.github.proto-openapi.spec.v2.v1.0+protobuf');
      else this.send(res, 200, openApiV2Json());
    } else return false;
    return true;
  }

  /** /api/VERSION/… and /apis/GROUP/VERSION/…: group and version discovery, or a resource request. */
  private serveApi(req: http.IncomingMessage, res: http.ServerResponse, url: URL, path: string, method: string): void | Promise<void> {
    const segs = path.split('/').filter((s) => s !== '').map(decodeURIComponent);
    let group: string;
    let version: string;
    let rest: string[];
    if (segs[0] === 'api' && segs[1]) {
      group = '';
      version = segs[1];
      rest = segs.slice(2);
    } else if (segs[0] === 'apis' && segs[1]) {
      group = segs[1];
      if (!segs[2]) {
        const g = apiGroup(this.store, group);
        return g ? this.send(res, 200, g) : this.fail(res, notFound(), 'get', '');
      }
      version = segs[2];
      rest = segs.slice(3);
    } else {
      return this.fail(res, notFound(), method.toLowerCase(), '');
    }
    if (rest.length === 0) {
      const doc = apiResourceList(this.store, group, version);
      return doc ? this.send(res, 200, doc) : this.fail(res, notFound(), 'get', '');
    }
    const r = this.route(rest, group, version);
    // Subresources are served as the object itself (a status write is a write of the object);
    // anything else (proxy, exec, scale, ...) does not exist here.
    if (r?.sub !== undefined && !(SUBRESOURCES[r.t.resource] ?? []).includes(r.sub)) {
      return this.fail(res, notFound(), method.toLowerCase(), r.t.resource);
    }
    if (!r) return this.fail(res, notFound(), method.toLowerCase(), rest[0]);
    return this.serveResource(req, res, r, url.searchParams, method);
  }

  /** A resource request: faults first, then the verb's handler (verbs/). */
  private async serveResource(req: http.IncomingMessage, res: http.ServerResponse, r: Route, q: URLSearchParams, method: string): Promise<void> {
    const isWatch = method === 'GET' && (r.watchPath || q.get('watch') === 'true' || q.get('watch') === '1');
    const verb = isWatch ? 'watch' : verbOf(method, r);
    try {
      const injectGone = await this.injectFaults(verb, q);
      if (q.get('dryRun')) throw new StatusError(400, 'BadRequest', 'dryRun is not supported by this simulator');
      const handler = Object.hasOwn(VERBS, verb) ? VERBS[verb] : undefined;
      if (!handler) throw new StatusError(405, 'MethodNotAllowed', `the server does not allow this method on the requested resource`);
      return await handler(this, { req, res, r, q, injectGone });
    } catch (err) {
      return this.fail(res, err, verb, r.t.resource);
    }
  }

  /**
   * Faults act on resource requests only, so discovery keeps working while they are on. Throws
   * the injected error; true when a 410 is to be delivered inside a watch stream instead.
   */
  private async injectFaults(verb: string, q: URLSearchParams): Promise<boolean> {
    // A restarted server's watch cache that is still initialising (RestartOptions).
    const wait = this.faults.refuseInitializing(verb, q);
    if (wait !== null) throw new StatusError(429, 'TooManyRequests', INITIALIZING_MESSAGE, { retryAfterSeconds: wait }, { 'retry-after': String(wait) });
    const d = this.faults.decide(verb);
    if (this.faults.settings.latencyMs > 0) await new Promise((ok) => setTimeout(ok, this.faults.settings.latencyMs));
    if (d.kind === 'error') throw new StatusError(d.status, d.status === 503 ? 'ServiceUnavailable' : 'InternalError', `injected fault: ${d.status}`);
    if (d.kind === 'throttle') {
      throw new StatusError(429, 'TooManyRequests', 'Too many requests, please try again later.', { retryAfterSeconds: d.retryAfter }, { 'retry-after': String(d.retryAfter) });
    }
    if (d.kind === 'gone' && !(verb === 'watch' && d.mode === 'stream')) {
      throw new StatusError(410, 'Expired', 'too old resource version: injected fault');
    }
    return d.kind === 'gone';
  }




  async admin(req: http.IncomingMessage, res: http.ServerResponse, path: string, url: URL): Promise<void> {
    const q = url.searchParams;
    const method = req.method ?? 'GET';
    try {
      switch (`${method} ${path}`) {
        case 'GET /_sim/faults':
          return this.send(res, 200, this.faults.settings);
        case 'POST /_sim/faults':
        case 'PUT /_sim/faults':
          return this.send(res, 200, this.faults.set(((await this.readBody(req)) ?? {}) as object));
        case 'DELETE /_sim/faults':
          return this.send(res, 200, this.faults.clear());
        case 'POST /_sim/drop-watches':
          return this.send(res, 200, { dropped: this.faults.dropWatches(q.get('abrupt') === 'true') });
        case 'POST /_sim/stall':
          this.faults.stall(q.get('on') !== 'false');
          return this.send(res, 200, this.faults.settings);
        case 'POST /_sim/restart': {
          const num = (k: string) => Number(q.get(k) ?? 0) || 0;
          const opts: RestartOptions = {
            keepHistory: q.get('keepHistory') === 'true', downMs: num('downMs'), graceMs: num('graceMs'),
            initializingMs: num('initializingMs'), retryAfterSeconds: num('retryAfterSeconds') || 1,
          };
          // Answer first; the restart then closes this very connection.
          res.on('finish', () => void this.faults.restart(opts));
          return this.send(res, 202, { restarting: true, ...opts });
        }
        case 'GET /_sim/stats':
          return this.send(res, 200, this.stats());
        default:
          throw new StatusError(404, 'NotFound', `unknown admin endpoint ${method} ${path}`);
      }
    } catch (err) {
      return this.fail(res, err, 'admin', '');
    }
  }

  stats(): object {
    return {
      resourceVersion: this.store.rv,
      writes: this.store.counters.writes,
      requests: this.counters.totalRequests(),
      watchers: this.watches.size,
      watchEventsSent: this.counters.watchEventsSent,
      watchBytesSent: this.counters.watchBytesSent,
      bytesSent: this.counters.bytesSent,
      slowWatchersClosed: this.counters.slowWatchersClosed,
      injected: this.faults.injected,
      generation: this.gen,
      initializing: this.faults.initializing,
      objects: this.store.objectCounts(),
    };
  }
}

/** Loads objects into a store by kind (CustomResourceDefinitions first, so their kinds exist). */
export function loadObjects(store: Store, objs: KubeObject[]): void {
  const order = (o: KubeObject) => (o.kind === 'CustomResourceDefinition' ? 0 : o.kind === 'Namespace' ? 1 : 2);
  for (const o of [...objs].sort((a, b) => order(a) - order(b))) {
    const t = store.typeFor(o.kind!, o.apiVersion);
    if (!t) throw new Error(`no resource type serves ${o.apiVersion} ${o.kind}`);
    if (t.resource === 'namespaces' && store.tryGet(t, undefined, o.metadata.name!)) continue;
    store.create(t, o, o.metadata.namespace);
  }
}

export async function startApiServer(opts: ApiServerOptions = {}): Promise<ApiServer> {
  const impl = new ServerImpl(opts);
  const initial: KubeObject[] = [];
  if (opts.loadCrds ?? true) {
    for (const crd of loadYamlObjects(CRD_MANIFEST)) {
      const t = impl.store.typeFor('CustomResourceDefinition')!;
      if (!impl.store.tryGet(t, undefined, crd.metadata.name!)) initial.push(crd);
    }
  }
  initial.push(...(opts.nodes ?? []), ...(opts.peers ?? []), ...(opts.objects ?? []));
  loadObjects(impl.store, initial);
  try {
    await impl.listen(opts.port ?? 0);
  } catch (err) {
    clearInterval(impl.bookmarkTimer);
    throw err;
  }
  const kubeconfig = renderKubeconfig({
    server: impl.url,
    caCertPem: impl.pki?.ca.certPem,
    token: impl.token,
    clientCertPem: impl.pki?.client.certPem,
    clientKeyPem: impl.pki?.client.keyPem,
  });
  if (opts.kubeconfigPath) writeFileSync(opts.kubeconfigPath, kubeconfig, { mode: 0o600 });
  let stopped = false;
  return {
    get url() {
      return impl.url;
    },
    host: impl.host,
    get port() {
      return impl.port;
    },
    https: !!impl.pki,
    token: impl.token,
    caCert: impl.pki?.ca.certPem,
    clientCert: impl.pki?.client.certPem,
    clientKey: impl.pki?.client.keyPem,
    kubeconfig,
    kubeconfigPath: opts.kubeconfigPath,
    store: impl.store,
    faults: impl.faults,
    counters: impl.counters,
    registry: impl.registry,
    watchCount: () => impl.watches.size,
    restart: (o) => impl.faults.restart(o),
    async stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(impl.bookmarkTimer);
      await impl.close();
    },
  };
}
