// `kg webhook` (spec §12.4): the validating admission webhook for Peers. HTTPS on --listen
// (POST /validate, AdmissionReview v1), Prometheus metrics on --listen-metrics. A Peer is
// judged by plan/peer.ts validatePeer, the very check kg's informer applies, so the API server
// refuses exactly the Peers kg would ignore. Malformed requests get a 400, never a crash.
import http from 'node:http';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import { Counter, Registry, collectDefaultMetrics } from 'prom-client';
import { intersects, parseCIDR, type CIDR } from '../plan/addr.js';
import { validatePeer, type PeerObject } from '../plan/peer.js';
import { ALLOW_SHORT_PREFIXES_FLAG, parseFlags, validateLogLevel, FlagError, type FlagDef } from './flags.js';
import { DEFAULT_LIMITS, limitsWith, type ClaimLimits } from '../plan/claims.js';
import { parseListen } from './http.js';
import { createLogger, type Logger } from './log.js';

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

/** AdmissionReview bodies are small; anything bigger than this is refused unread. */
const MAX_BODY = 3 << 20;

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

/**
 * Overlapping allowed IPs inside one Peer are accepted (Kilo's validation does not check them,
 * spec §3.3.3, and kg de-duplicates exact repeats, §5.6) but reported as admission warnings,
 * which kubectl shows to the user.
 */
export function overlapWarnings(p: PeerObject): string[] {
  const list = Array.isArray(p.spec?.allowedIPs) ? (p.spec!.allowedIPs as unknown[]) : [];
  const cidrs = list.map((a) => (typeof a === 'string' ? parseCIDR(a) : null)).filter((c): c is CIDR => c !== null);
  const out: string[] = [];
  for (let i = 0; i < cidrs.length; i++) {
    for (let j = i + 1; j < cidrs.length; j++) {
      if (intersects(cidrs[i], cidrs[j])) out.push(`allowedIPs ${cidrs[i].s} and ${cidrs[j].s} overlap`);
    }
  }
  return out;
}

export interface Verdict {
  status: number;
  /** JSON response body (200) or an error text (400). */
  body: string;
  operation?: string;
  allowed?: boolean;
}

const bad = (text: string): Verdict => ({ status: 400, body: text });

/** The admission decision for one request body: pure, so that it is tested without sockets too. */
export function review(contentType: string | undefined, body: string, claims: ClaimLimits = DEFAULT_LIMITS): Verdict {
  if (contentType !== 'application/json') return bad(`received Content-Type=${contentType ?? ''}, expected application/json`);
  let ar: unknown;
  try {
    ar = JSON.parse(body);
  } catch (e) {
    return bad(`Request could not be decoded: ${(e as Error).message}`);
  }
  if (!ar || typeof ar !== 'object' || Array.isArray(ar)) return bad('Request could not be decoded: not a JSON object');
  const r = ar as { apiVersion?: unknown; kind?: unknown; request?: unknown };
  if (r.apiVersion !== 'admission.k8s.io/v1' || r.kind !== 'AdmissionReview') return bad('only API v1 is supported');
  const req = r.request as { uid?: unknown; operation?: unknown; object?: unknown } | null | undefined;
  if (!req || typeof req !== 'object' || typeof req.uid !== 'string' || req.uid === '') return bad('Request could not be decoded: request.uid is required');
  if (!req.object || typeof req.object !== 'object' || Array.isArray(req.object)) return bad('could not unmarshal the request object into a Peer: not a JSON object');
  const peer = req.object as PeerObject;
  if (peer.spec !== undefined && (peer.spec === null || typeof peer.spec !== 'object' || Array.isArray(peer.spec))) {
    return bad('could not unmarshal the request object into a Peer: spec is not an object');
  }
  const err = validatePeer(peer, claims);
  const warnings = err ? [] : overlapWarnings(peer);
  const response = {
    uid: req.uid,
    allowed: err === null,
    ...(err ? { status: { message: err, code: 403, reason: 'Forbidden' } } : {}),
    ...(warnings.length ? { warnings } : {}),
  };
  return {
    status: 200,
    body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response }),
    operation: typeof req.operation === 'string' ? req.operation : '',
    allowed: err === null,
  };
}

export function webhookHandler(m: WebhookMetrics, log: Logger, claims: ClaimLimits = DEFAULT_LIMITS): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    if (url.pathname !== '/validate') {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    m.requests.inc({ handler: '/validate', method: req.method ?? '' });
    const chunks: Buffer[] = [];
    let size = 0;
    let failed = false;
    const fail = (text: string) => {
      if (failed) return;
      failed = true;
      m.errors.inc();
      log.warn('bad admission request', { error: text });
      res.writeHead(400, { 'Content-Type': 'text/plain', Connection: 'close' }).end(text + '\n');
    };
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        fail(`request body larger than ${MAX_BODY} bytes`);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('error', (e) => fail(`failed to read the request body: ${e.message}`));
    req.on('end', () => {
      if (failed) return;
      const v = review(req.headers['content-type'], Buffer.concat(chunks).toString('utf8'), claims);
      if (v.status !== 200) return fail(v.body);
      m.admissions.inc({ operation: v.operation ?? '', response: v.allowed ? 'allowed' : 'denied' });
      res.writeHead(200, { 'Content-Type': 'application/json' }).end(v.body);
    });
  };
}

export interface WebhookServers {
  webhook: https.Server;
  metrics: http.Server;
  close(): Promise<void>;
}

export async function startWebhook(o: { cert: string | Buffer; key: string | Buffer; listen: string; listenMetrics: string; log: Logger; claims?: ClaimLimits }): Promise<WebhookServers> {
  const m = webhookMetrics();
  const webhook = https.createServer({ cert: o.cert, key: o.key, minVersion: 'TLSv1.2' }, webhookHandler(m, o.log, o.claims));
  webhook.requestTimeout = 30_000;
  webhook.headersTimeout = 10_000;
  const metrics = http.createServer((req, res) => {
    if (new URL(req.url ?? '/', 'http://x').pathname !== '/metrics') {
      res.writeHead(404).end();
      return;
    }
    m.registry.metrics().then(
      (text) => res.writeHead(200, { 'Content-Type': m.registry.contentType }).end(text),
      (e: Error) => res.writeHead(500).end(e.message),
    );
  });
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
    // Graceful for 5 s, then the remaining connections are cut (spec §12.4).
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
