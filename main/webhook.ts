// `kg webhook` (design §12.4): the validating admission webhook for Peers. HTTPS on --listen
// (POST /validate, AdmissionReview v1), Prometheus metrics on --listen-metrics. A Peer is
// judged by plan/peer.ts validatePeer, the very check kg's informer applies, so the API server
// refuses exactly the Peers kg would ignore. The decision is admission.ts; this is its server:
// every request gets an answer (400 for malformed bodies, 503 past the limits), never a crash.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { DEFAULT_LIMITS as DEFAULT_CLAIMS, limitsWith, type ClaimLimits } from '../plan/claims.js';
import { MAX_BODY, capText, review, type Verdict } from './admission.js';
import { ALLOW_SHORT_PREFIXES_FLAG, parseFlags, validateLogLevel, FlagError, type FlagDef } from './flags.js';
import { parseListen, requestURL } from './agent/http.js';
import { createLogger, type Fields, type Logger } from './log.js';

// review() lives in admission.ts (pure); exported here too, next to the server that uses it.
export { review } from './admission.js';

export const WEBHOOK_FLAGS: FlagDef[] = [
  { name: 'cert-file', type: 'string', default: '', usage: 'The path to a certificate file (PEM) for the HTTPS server.' },
  { name: 'key-file', type: 'string', default: '', usage: 'The path to the certificate\'s private key file (PEM).' },
  { name: 'listen', type: 'string', default: ':8443', usage: 'The address of the HTTPS webhook server.' },
  { name: 'listen-metrics', type: 'string', default: ':1107', usage: 'The address of the plain-HTTP metrics server.' },
  { name: 'log-level', type: 'string', default: 'info', usage: 'Log level to use. Possible values: all, debug, info, warn, error, none' },
  { name: 'log-format', type: 'string', default: 'json', usage: 'Log format: json or logfmt (kg).' },
  { name: 'version', type: 'bool', default: false, usage: 'Print version and exit' },
  ALLOW_SHORT_PREFIXES_FLAG,
];

/**
 * What one `kg webhook` process takes in at once, so that its memory stays inside the
 * Deployment's limit (manifests/peer-validation.yaml) whatever clients send. Hardening (departs
 * from Kilo): Go's webhook reads any body, any number at a time, with no server timeouts.
 */
export interface WebhookLimits {
  /** Bytes of one body (admission.ts MAX_BODY); larger ones get a 400, unread. */
  maxBody: number;
  /** Bytes of bodies held across all requests at once; past it, 503 with Retry-After. */
  bodyBudget: number;
  /** Reviews being read or judged at once; past it, 503 with Retry-After. */
  maxInFlight: number;
  /** TCP connections; past it, new ones are closed at once. */
  maxConnections: number;
  /** A TLS handshake, the request headers, a whole request, and an idle keep-alive connection. */
  handshakeTimeoutMs: number;
  headersTimeoutMs: number;
  requestTimeoutMs: number;
  keepAliveTimeoutMs: number;
  /**
   * After an early answer (too large, too many) the connection is closed for writing, held
   * this long without reading so that the client sees the answer, then cut.
   */
  lingerMs: number;
}

export const DEFAULT_WEBHOOK_LIMITS: WebhookLimits = {
  maxBody: MAX_BODY,
  bodyBudget: 12 << 20,
  maxInFlight: 64,
  maxConnections: 128,
  handshakeTimeoutMs: 5_000,
  headersTimeoutMs: 5_000,
  // The API server waits timeoutSeconds (5 in the manifest, at most 30) for an answer.
  requestTimeoutMs: 10_000,
  keepAliveTimeoutMs: 30_000,
  lingerMs: 2_000,
};

export function webhookMetrics() {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']) registry.removeSingleMetric(name);
  return {
    registry,
    admissions: new Counter({ name: 'admission_requests_total', help: 'The number of received admission reviews requests', labelNames: ['operation', 'response'], registers: [registry] }),
    requests: new Counter({ name: 'http_requests_total', help: 'The number of received http requests', labelNames: ['handler', 'method'], registers: [registry] }),
    errors: new Counter({ name: 'errors_total', help: 'The total number of errors', registers: [registry] }),
  };
}
export type WebhookMetrics = ReturnType<typeof webhookMetrics>;

const HANDLERS = new Set(['/validate', '/healthz']);
const METHODS = new Set(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS']);
/** Hardening (departs from Kilo): label values from fixed sets (Go labels any method; it counts /validate only). */
const requestLabels = (path: string, method: string | undefined) => ({
  handler: HANDLERS.has(path) ? path : 'other',
  method: METHODS.has(method ?? '') ? method! : 'other',
});

/**
 * A warning logger that writes at most `max` lines per window and says how many it left out:
 * a flood of bad requests is counted (errors_total), not written line by line.
 */
function limitedWarn(log: Logger, max = 10, windowMs = 10_000) {
  let start = 0;
  let n = 0;
  let left = 0;
  return (msg: string, f: Fields) => {
    const now = Date.now();
    if (now - start >= windowMs) {
      start = now;
      n = 0;
    }
    if (n++ >= max) {
      left++;
      return;
    }
    log.warn(msg, left ? { ...f, suppressed: left } : f);
    left = 0;
  };
}

/**
 * Runs jobs one per event-loop turn, in arrival order: between two reviews the loop accepts
 * connections, shakes hands and answers /healthz, so bodies that arrive together delay a probe
 * by one review (~0.1 s for the costliest body), not by all of them.
 */
function turnQueue(): (job: () => void) => void {
  const queue: (() => void)[] = [];
  let scheduled = false;
  const pump = () => {
    scheduled = false;
    queue.shift()?.();
    if (queue.length && !scheduled) {
      scheduled = true;
      setImmediate(pump);
    }
  };
  return (job) => {
    queue.push(job);
    if (!scheduled) {
      scheduled = true;
      setImmediate(pump);
    }
  };
}

/** An error answer; a body still arriving is left unread and the connection closed. */
function answerError(req: http.IncomingMessage, res: http.ServerResponse, status: number, text: string, headers: Record<string, string>, lingerMs: number): void {
  if (res.destroyed || res.headersSent) return;
  if (req.complete) return void res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', ...headers }).end(text + '\n');
  // The rest of the body is not read (reading it only to drop it costs CPU and garbage), and
  // the connection is closed after the answer. Node closes a Connection: close response's
  // socket with destroySoon(): at once, with the unread body still in the kernel, which resets
  // the connection, and the client can lose the answer. Here the write side is closed instead
  // (the client reads the answer, then the end) and the socket is destroyed lingerMs later:
  // the lingering close of Go's and nginx's servers.
  req.pause();
  const socket = req.socket;
  socket.destroySoon = () => {
    socket.end();
    // Not unref'd: a paused socket keeps no I/O going, and shutdown waits for it.
    setTimeout(() => socket.destroy(), lingerMs);
  };
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', Connection: 'close', ...headers }).end(text + '\n');
}

export function webhookHandler(m: WebhookMetrics, log: Logger, limits: WebhookLimits = DEFAULT_WEBHOOK_LIMITS, claims: ClaimLimits = DEFAULT_CLAIMS): http.RequestListener {
  let inFlight = 0;
  let buffered = 0;
  const warn = limitedWarn(log);
  const enqueue = turnQueue();
  return (req, res) => {
    const path = (requestURL(req.url)?.pathname ?? '');
    m.requests.inc(requestLabels(path, req.method));
    // The probes' endpoint: answered by this very server, so a dead listener, a broken TLS
    // setup or a stuck event loop fails them.
    if (path === '/healthz') return void res.writeHead(200, { 'Content-Type': 'text/plain' }).end('ok\n');
    if (path !== '/validate') return void res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
    let chunks: Buffer[] = [];
    let size = 0;
    let held = 0;
    let slot = false;
    let done = false;
    const release = () => {
      buffered -= held;
      held = 0;
      chunks = [];
      if (slot) inFlight--;
      slot = false;
    };
    const refuse = (status: number, text: string, headers: Record<string, string> = {}) => {
      if (done) return;
      done = true;
      release();
      m.errors.inc();
      warn('bad admission request', { status, error: text });
      answerError(req, res, status, text, headers, limits.lingerMs);
    };
    const busy = { 'Retry-After': '1' };
    req.on('error', (e) => refuse(400, `failed to read the request body: ${e.message}`));
    res.on('close', release); // answered, or the client went away, or the server cut a slow body
    req.on('data', (c: Buffer) => {
      if (done) return; // an answer was given: what was still buffered is dropped
      size += c.length;
      if (size > limits.maxBody) return refuse(400, `request body larger than ${limits.maxBody} bytes`);
      if (buffered + c.length > limits.bodyBudget) return refuse(503, 'too many admission review bytes in flight, try again', busy);
      chunks.push(c);
      held += c.length;
      buffered += c.length;
    });
    req.on('end', () => {
      if (!done) enqueue(judge);
    });
    const judge = () => {
      if (done || res.destroyed) return; // the client left while the review waited
      const body = Buffer.concat(chunks).toString('utf8');
      release();
      let v: Verdict;
      try {
        v = review(req.headers['content-type'], body, claims);
      } catch (e) {
        // review() is meant never to throw (the fuzz test holds it to that); if it does, this
        // request fails and the process lives on.
        log.error('admission review failed', { error: capText(String((e as Error)?.stack ?? e)) });
        v = { status: 500, body: 'internal error while reviewing the request' };
      }
      if (v.status !== 200) return refuse(v.status, v.body);
      done = true;
      m.admissions.inc({ operation: v.operation ?? 'other', response: v.allowed ? 'allowed' : 'denied' });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(v.body);
    };
    if (inFlight >= limits.maxInFlight) return refuse(503, 'too many admission reviews in flight, try again', busy);
    inFlight++;
    slot = true;
    if (Number(req.headers['content-length']) > limits.maxBody) refuse(400, `request body larger than ${limits.maxBody} bytes`);
  };
}

export interface WebhookServers {
  webhook: https.Server;
  metrics: http.Server;
  close(): Promise<void>;
}

/** Timeouts and caps of one server: slow or idle clients cannot hold sockets for long. */
function bound(s: http.Server, l: WebhookLimits): void {
  s.headersTimeout = l.headersTimeoutMs;
  s.requestTimeout = l.requestTimeoutMs;
  s.keepAliveTimeout = l.keepAliveTimeoutMs;
  s.maxHeadersCount = 64;
  s.maxRequestsPerSocket = 1000;
  s.maxConnections = l.maxConnections;
}

export async function startWebhook(o: { cert: string | Buffer; key: string | Buffer; listen: string; listenMetrics: string; log: Logger; limits?: Partial<WebhookLimits>; claims?: ClaimLimits }): Promise<WebhookServers> {
  const limits = { ...DEFAULT_WEBHOOK_LIMITS, ...o.limits };
  const m = webhookMetrics();
  // Node checks the header and request timeouts every connectionsCheckingInterval (30 s by default).
  const checking = Math.min(1000, limits.headersTimeoutMs, limits.requestTimeoutMs);
  const webhook = https.createServer(
    { cert: o.cert, key: o.key, minVersion: 'TLSv1.2', handshakeTimeout: limits.handshakeTimeoutMs, connectionsCheckingInterval: checking },
    webhookHandler(m, o.log, limits, o.claims),
  );
  bound(webhook, limits);
  const metrics = http.createServer({ connectionsCheckingInterval: checking }, (req, res) => {
    if ((requestURL(req.url)?.pathname ?? '') !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    m.registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': m.registry.contentType }).end(text),
      (e: Error) => res.writeHead(500).end(e.message),
    );
  });
  bound(metrics, { ...limits, maxConnections: 64 });
  const listen = (s: http.Server, addr: string) => new Promise<void>((resolve, reject) => {
    const { host, port } = parseListen(addr);
    s.once('error', reject);
    s.listen(port, host, () => resolve());
  });
  await listen(webhook, o.listen);
  try {
    await listen(metrics, o.listenMetrics);
  } catch (e) {
    webhook.close();
    throw e;
  }
  const closeOne = (s: http.Server) => new Promise<void>((r) => {
    s.close(() => r());
    s.closeIdleConnections();
    // Graceful for 5 s, then the remaining connections are cut (design §12.4).
    setTimeout(() => s.closeAllConnections(), 5000).unref();
  });
  return { webhook, metrics, close: () => Promise.all([closeOne(webhook), closeOne(metrics)]).then(() => {}) };
}

/** `kg webhook [flags]` */
export async function runWebhook(argv: string[], versionText: string): Promise<number> {
  const { values, positionals } = parseFlags(argv, WEBHOOK_FLAGS);
  if (positionals.length) throw new FlagError(`unknown command ${JSON.stringify(positionals[0])} for "kg webhook"`);
  const level = validateLogLevel(values['log-level'] as string);
  if (values.version) {
    process.stdout.write(`${versionText}\n`);
    return 0;
  }
  const format = values['log-format'] as string;
  if (format !== 'json' && format !== 'logfmt') throw new FlagError(`log format ${format} unknown; possible values are: json, logfmt`);
  const log = createLogger({ level, format, caller: 'kg-webhook' });
  const certFile = values['cert-file'] as string;
  const keyFile = values['key-file'] as string;
  if (!certFile || !keyFile) throw new FlagError('--cert-file and --key-file are required');
  let cert: Buffer;
  let key: Buffer;
  try {
    cert = readFileSync(certFile);
    key = readFileSync(keyFile);
  } catch (e) {
    throw new Error(`failed to read the TLS certificate or key: ${(e as Error).message}`);
  }
  const s = await startWebhook({ cert, key, listen: values.listen as string, listenMetrics: values['listen-metrics'] as string, log, claims: limitsWith({ allowShortPrefixes: values['allow-short-prefixes'] as boolean }) });
  const port = (x: http.Server) => (x.address() as { port: number } | null)?.port ?? 0;
  log.info('listening', { webhook: values.listen, metrics: values['listen-metrics'], webhookPort: port(s.webhook), metricsPort: port(s.metrics) });
  await new Promise<void>((resolve) => {
    process.once('SIGINT', () => resolve());
    process.once('SIGTERM', () => resolve());
  });
  log.info('caught interrupt; gracefully shutting down');
  await s.close();
  return 0;
}
