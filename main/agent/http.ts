// HTTP on --listen (design §13.1): the index page, /health, /metrics, /graph. Plain HTTP, no auth,
// as in Kilo; nothing here serves a key.
import http from 'node:http';
import type { Registry } from 'prom-client';
import { GRAPH_LIMITS, GraphService, type GraphLimits, type GraphSource } from './graph-service.js';

export interface HttpDeps {
  registry: Registry;
  health(): { ok: boolean; reason: string };
  graph: GraphSource;
}

/**
 * Bounds on what one client can hold. Hardening (departs from Kilo): Go's server sets no
 * timeouts, so a client sending a header byte every few seconds holds a socket forever.
 */
export interface ServerLimits {
  /** Until the request's headers are complete. */
  headersTimeoutMs: number;
  /** Until the whole request is received. */
  requestTimeoutMs: number;
  /** An idle keep-alive connection is closed after this. */
  keepAliveTimeoutMs: number;
  /** A socket with no traffic either way (a client that stopped reading a reply). */
  idleTimeoutMs: number;
  /** How often the two request timeouts are checked. */
  checkIntervalMs: number;
  /** Bytes of request line and headers (a longer query gets 431). */
  maxHeaderSize: number;
  maxHeadersCount: number;
  maxConnections: number;
  graph: GraphLimits;
}

export const SERVER_LIMITS: ServerLimits = {
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 30_000,
  keepAliveTimeoutMs: 5_000,
  idleTimeoutMs: 120_000,
  checkIntervalMs: 1_000,
  maxHeaderSize: 16 << 10,
  maxHeadersCount: 64,
  maxConnections: 256,
  graph: GRAPH_LIMITS,
};

const INDEX = `<!doctype html>
<html><head><meta charset="utf-8"><title>Internal Kilo API</title></head>
<body><h1>Internal Kilo API</h1><ul>
<li><a href="/debug/">/debug/</a>: profiling (not available in the TypeScript agent)</li>
<li><a href="/graph">/graph</a>: the mesh topology (?format=svg|png|dot|…&amp;layout=circo|dot|neato|twopi|fdp)</li>
<li><a href="/health">/health</a>: 200 once the dataplane is programmed and fresh, 503 otherwise</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
</ul></body></html>
`;

export function createHttpServer(d: HttpDeps, limits: Partial<ServerLimits> = {}): http.Server {
  const l = { ...SERVER_LIMITS, ...limits };
  const graph = new GraphService(d.graph, d.registry, l.graph);
  const server = http.createServer({
    headersTimeout: l.headersTimeoutMs, requestTimeout: l.requestTimeoutMs, connectionsCheckingInterval: l.checkIntervalMs, maxHeaderSize: l.maxHeaderSize,
  }, (req, res) => {
    // A target that does not parse is answered like an unknown path (index page), never a throw.
    const url = requestURL(req.url) ?? new URL('http://localhost/');
    // These are GET endpoints and a body is useless to them: the connection closes after the
    // reply, and a second later (time for the reply to arrive before the close resets it) stops
    // draining whatever the client still sends.
    const body = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
    const send = (status: number, data: string | Buffer, headers: http.OutgoingHttpHeaders = {}) => {
      res.writeHead(status, body ? { ...headers, Connection: 'close' } : headers);
      res.end(data);
      if (body) res.once('finish', () => setTimeout(() => req.socket.destroy(), 1000).unref());
    };
    const type = (t: string | undefined) => (t ? { 'Content-Type': t } : {});
    void (async () => {
      switch (url.pathname) {
        case '/health': {
          const h = d.health();
          return h.ok ? send(200, '') : send(503, `${h.reason}\n`, type('text/plain; charset=utf-8'));
        }
        case '/metrics':
          return send(200, await d.registry.metrics(), type(d.registry.contentType));
        case '/debug/':
          return send(301, '', { Location: '/debug/pprof/' });
        case '/graph': {
          const r = await graph.get(url.searchParams.get('format') || 'svg', url.searchParams.get('layout') || 'circo');
          // Raw DOT goes without a content type, as in Go.
          return send(r.status, r.body, { ...type(r.type), ...(r.retryAfterSeconds ? { 'Retry-After': String(r.retryAfterSeconds) } : {}) });
        }
        default:
          if (url.pathname.startsWith('/debug/pprof')) return send(404, 'pprof is not available in the TypeScript agent\n');
          return send(200, INDEX, type('text/html; charset=utf-8'));
      }
    })().catch((e: Error) => {
      if (!res.headersSent) send(500, `${e.message}\n`);
    });
  });
  server.keepAliveTimeout = l.keepAliveTimeoutMs;
  server.maxHeadersCount = l.maxHeadersCount;
  server.maxConnections = l.maxConnections;
  server.timeout = l.idleTimeoutMs;
  return server;
}

/** Go's listen address form: ":1107" (all interfaces), "host:port", "[v6]:port". */
export function parseListen(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new Error(`invalid --listen ${JSON.stringify(addr)}: missing port`);
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --listen ${JSON.stringify(addr)}: bad port`);
  return { host: host || undefined, port };
}

/**
 * A request target as a URL, or null when it does not parse: `new URL` throws on targets such as
 * `http://[` (absolute form), and a throw in a request listener ends the process.
 */
export function requestURL(target: string | undefined): URL | null {
  try {
    return new URL(target ?? '/', 'http://localhost');
  } catch {
    return null;
  }
}
