// Hostile input against `kg webhook`, one test per class (issue 15): over real HTTPS, to a real
// `kg webhook` process (started with the Deployment's NODE_OPTIONS) or, where a test needs short
// limits, to startWebhook in this process. Each class asserts what must hold: an answer for every
// request (400, a denial with a short reason, or 503 past the limits), a bounded answer, fixed
// metric labels, no crash, and memory inside the manifest's limit under attack.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { makePki } from '../../loadtest/apiserver/index.js';
import { ATTACK_KINDS, attack, hostileBodies, manifestWebhook, startWebhookProcess, type WebhookProcess } from '../../bench/webhook.js';
import { MAX_BODY, MAX_MESSAGE, MAX_RESPONSE, MAX_WARNINGS } from '../../main/admission.js';
import { generateKeyPair } from '../../main/keys.js';
import { silentLogger } from '../../main/log.js';
import { DEFAULT_WEBHOOK_LIMITS, startWebhook, type WebhookLimits } from '../../main/webhook.js';
import { DEFAULT_LIMITS as DEFAULT_CLAIMS } from '../../plan/claims.js';
import { validatePeer } from '../../plan/peer.js';

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  bytes: Buffer;
}

interface SendOptions {
  body?: string | Buffer | (string | Buffer)[];
  contentType?: string | null;
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  timeoutMs?: number;
}

/** One HTTPS request; a list body is sent chunked, one write per piece. Rejects when no answer comes. */
function send(port: number, ca: string, o: SendOptions = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const headers: Record<string, string> = { ...o.headers };
    if (o.contentType !== null) headers['Content-Type'] = o.contentType ?? 'application/json';
    const req = https.request({ host: '127.0.0.1', port, path: o.path ?? '/validate', method: o.method ?? 'POST', ca, headers, agent: false, timeout: o.timeoutMs ?? 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const bytes = Buffer.concat(chunks);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: bytes.toString('utf8'), bytes });
      });
      res.on('error', reject);
    });
    // The server may answer before the whole body is written (too large): the answer counts.
    req.on('error', (e) => reject(e));
    req.on('timeout', () => req.destroy(new Error(`no answer within ${o.timeoutMs ?? 30_000} ms`)));
    if (Array.isArray(o.body)) {
      for (const piece of o.body) req.write(piece);
      req.end();
    } else {
      req.end(o.body);
    }
  });
}

const { publicKey } = generateKeyPair();
const reviewOf = (request: Record<string, unknown>) => ({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request });
const peerReview = (spec: unknown, extra: Record<string, unknown> = {}) => JSON.stringify(reviewOf({ uid: 'uid-1', operation: 'CREATE', object: { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'p' }, spec }, ...extra }));
const VALID = peerReview({ allowedIPs: ['10.5.0.1/32'], publicKey });
/** A review with `raw` (JSON text) in place of the given spec field. */
const withRaw = (field: string, raw: string) => peerReview({ allowedIPs: ['10.5.0.1/32'], publicKey, [field]: '@RAW@' }).replace('"@RAW@"', raw);

/** Every answer is bounded, and a 200 is an AdmissionReview with the response's uid. */
function assertBounded(r: Reply, what: string): void {
  assert.ok(r.status === 200 || r.status === 400, `${what}: status ${r.status} ${r.body.slice(0, 200)}`);
  assert.ok(r.bytes.length <= MAX_RESPONSE, `${what}: answer of ${r.bytes.length} bytes`);
  if (r.status === 200) {
    const a = JSON.parse(r.body);
    assert.equal(a.kind, 'AdmissionReview', what);
    assert.equal(typeof a.response.uid, 'string', what);
    assert.equal(typeof a.response.allowed, 'boolean', what);
  }
}

async function stillServes(w: { port: number; ca: string }, child?: WebhookProcess): Promise<void> {
  if (child) assert.equal(child.child.exitCode, null, `kg webhook exited: ${child.output().slice(-3000)}`);
  const r = await send(w.port, w.ca, { body: VALID });
  assert.equal(r.status, 200, r.body);
  assert.equal(JSON.parse(r.body).response.allowed, true);
}

/** A `kg webhook` process for one test, stopped afterwards. */
async function webhookProcess(t: { after(fn: () => Promise<unknown>): void }): Promise<WebhookProcess> {
  const w = await startWebhookProcess(undefined, manifestWebhook().nodeOptions);
  t.after(() => w.stop());
  return w;
}

/** startWebhook in this process with some limits lowered, closed afterwards. */
async function webhookServer(t: { after(fn: () => Promise<unknown>): void }, limits: Partial<WebhookLimits>) {
  const pki = makePki({ ips: ['127.0.0.1'], dns: [] });
  const s = await startWebhook({ cert: pki.server.certPem, key: pki.server.keyPem, listen: '127.0.0.1:0', listenMetrics: '127.0.0.1:0', log: silentLogger, limits });
  t.after(() => s.close());
  return { port: (s.webhook.address() as net.AddressInfo).port, ca: pki.ca.certPem, server: s };
}

/** Resolves when the server closes the socket; rejects after `ms`. */
function closedWithin(socket: net.Socket, ms: number, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      socket.destroy();
      reject(new Error(`${what}: the server still holds the connection after ${ms} ms`));
    }, ms);
    socket.on('error', () => {});
    socket.resume(); // read what comes (a 408), or 'close' never fires
    socket.once('close', () => {
      clearTimeout(t);
      resolve();
    });
  });
}

test('hostile webhook: deeply nested JSON gets a 400, never a crash (validatePeer included)', { timeout: 120_000 }, async (t) => {
  const w = await webhookProcess(t);
  const deep = (n: number) => '['.repeat(n) + ']'.repeat(n);
  const deepObject = (n: number) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
  const bodies: [string, string][] = [
    ['3 MB of [', '['.repeat(MAX_BODY - 10)],
    ['an allowed IP nested 1,000,000 deep', withRaw('allowedIPs', `[${deep(1_000_000)}]`)],
    ['a public key nested 200,000 deep (objects)', withRaw('publicKey', deepObject(200_000))],
    ['a keepalive nested 10,000 deep', withRaw('persistentKeepalive', deep(10_000))],
    ['request.uid nested 100,000 deep', JSON.stringify(reviewOf({ uid: '@', object: {} })).replace('"@"', deep(100_000))],
  ];
  for (const [what, body] of bodies) {
    const r = await send(w.port, w.ca, { body });
    assertBounded(r, what);
    assert.equal(r.status, 400, what);
    assert.match(r.body, /^Request could not be decoded: /, what);
    // Refused before parsing: never parsed into 1,000,000 nested arrays.
    if (!what.startsWith('3 MB')) assert.match(r.body, /JSON nested deeper than 64 levels/, what);
  }
  await stillServes(w, w);
  // The check shared with the agent never throws either, however deep the value.
  const nested = JSON.parse(deep(20_000));
  for (const spec of [{ allowedIPs: [nested] }, { allowedIPs: [], publicKey: nested }, { allowedIPs: [], endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: nested } }, { allowedIPs: [], persistentKeepalive: nested }]) {
    const err = validatePeer({ spec } as never);
    assert.ok(err !== null && err.length < 200, String(err));
  }
});

test('hostile webhook: huge arrays get short answers: overlap warnings capped, past the allowed-IP cap denied at once, objects and arrays bounded', { timeout: 120_000 }, async (t) => {
  const w = await webhookProcess(t);
  // 10.0.0.0/8 and addresses inside it: every address overlaps the /8. Up to the cap on allowed
  // IPs per Peer (plan/claims.ts) the Peer is allowed, with MAX_WARNINGS warnings and a count.
  const ips = (n: number) => ['10.0.0.0/8', ...Array.from({ length: n }, (_, k) => `10.${(k + 1) >>> 16}.${((k + 1) >>> 8) & 255}.${(k + 1) & 255}/32`)];
  const r = await send(w.port, w.ca, { body: peerReview({ allowedIPs: ips(DEFAULT_CLAIMS.maxPeerAllowedIPs - 1), publicKey }) });
  assertBounded(r, `${DEFAULT_CLAIMS.maxPeerAllowedIPs} allowed IPs`);
  const res = JSON.parse(r.body).response;
  assert.equal(res.allowed, true);
  assert.equal(res.warnings.length, MAX_WARNINGS + 1);
  assert.equal(res.warnings[0], 'allowedIPs 10.0.0.0/8 and 10.0.0.1/32 overlap');
  assert.equal(res.warnings[MAX_WARNINGS], `... and ${DEFAULT_CLAIMS.maxPeerAllowedIPs - 1 - MAX_WARNINGS} more overlapping pairs of allowedIPs`);
  // 150,001 of them: past the cap, denied before any check of pairs (every pair was 11 billion
  // comparisons: minutes, past the API server's 30 s at most).
  const many = await send(w.port, w.ca, { body: peerReview({ allowedIPs: ips(150_000), publicKey }), timeoutMs: 30_000 });
  assertBounded(many, '150,001 allowed IPs');
  assert.match(JSON.parse(many.body).response.status.message, /^allowedIPs has 150001 entries; at most 1024 are allowed$/);
  // Arrays of what costs most to parse: objects, arrays, one object with ~300,000 keys.
  const bodies = hostileBodies();
  for (const kind of ['objects', 'keys'] as const) assertBounded(await send(w.port, w.ca, { body: bodies[kind] }), kind);
  const containers = await send(w.port, w.ca, { body: withRaw('allowedIPs', `[${new Array(500_000).fill('[]').join(',')}]`) });
  assert.equal(containers.status, 400);
  assert.match(containers.body, /more than 10000 JSON objects and arrays/);
  await stillServes(w, w);
});

test('hostile webhook: values of the wrong type anywhere get a 400 or a short denial', { timeout: 120_000 }, async (t) => {
  const w = await webhookProcess(t);
  const huge = Array.from({ length: 5_000 }, (_, i) => ({ i }));
  const cases: [string, string, 200 | 400, RegExp?][] = [
    ['request.uid a number', JSON.stringify(reviewOf({ uid: 7, object: { spec: {} } })), 400, /uid is required/],
    ['request an array', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: [1, 2] }), 400],
    ['request a string', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: 'x' }), 400],
    ['apiVersion a list', JSON.stringify({ apiVersion: ['admission.k8s.io/v1'], kind: 'AdmissionReview', request: { uid: 'u', object: {} } }), 400, /only API v1/],
    ['object an array', JSON.stringify(reviewOf({ uid: 'u', object: [{ spec: {} }] })), 400, /into a Peer/],
    ['object a number', JSON.stringify(reviewOf({ uid: 'u', object: 5 })), 400, /into a Peer/],
    ['spec a string', peerReview('spec'), 400, /spec is not an object/],
    ['spec.allowedIPs an object', peerReview({ allowedIPs: { a: '10.0.0.1/32' }, publicKey }), 200, /allowedIPs must be a list/],
    ['spec.allowedIPs a string', peerReview({ allowedIPs: '10.0.0.1/32', publicKey }), 200, /allowedIPs must be a list/],
    ['spec.allowedIPs numbers', peerReview({ allowedIPs: [1, 2], publicKey }), 200, /failed to parse 1 as a valid IP address/],
    ['spec.allowedIPs 1,000 objects', peerReview({ allowedIPs: huge.slice(0, 1000), publicKey }), 200, /^failed to parse an object as a valid IP address$/],
    ['spec.allowedIPs 5,000 objects', peerReview({ allowedIPs: huge, publicKey }), 200, /^allowedIPs has 5000 entries; at most 1024 are allowed$/],
    ['spec.allowedIPs nulls', peerReview({ allowedIPs: [null], publicKey }), 200, /failed to parse null/],
    ['spec.publicKey a list of 5,000 objects', peerReview({ allowedIPs: [], publicKey: huge }), 200, /^failed to parse public key a list: must be 32 bytes of standard base64$/],
    ['spec.endpoint a string', peerReview({ allowedIPs: [], publicKey, endpoint: '192.0.2.1:51820' }), 200, /DNS name or IP/],
    ['spec.endpoint.dnsOrIP a list', peerReview({ allowedIPs: [], publicKey, endpoint: { dnsOrIP: ['192.0.2.1'], port: 51820 } }), 200, /DNS name or IP/],
    ['spec.endpoint.port a string', peerReview({ allowedIPs: [], publicKey, endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: '51820' } }), 200, /port must be a valid UDP port number, got "51820"/],
    ['spec.persistentKeepalive an object', peerReview({ allowedIPs: [], publicKey, persistentKeepalive: { s: 10 } }), 200, /keepalive/],
    ['request.operation an object', peerReview({ allowedIPs: [], publicKey }, { operation: { op: 'CREATE' } }), 200],
    ['metadata a list', JSON.stringify(reviewOf({ uid: 'u', object: { metadata: [1], spec: { allowedIPs: [], publicKey } } })), 200],
  ];
  for (const [what, body, status, msg] of cases) {
    const r = await send(w.port, w.ca, { body });
    assertBounded(r, what);
    assert.equal(r.status, status, `${what}: ${r.body.slice(0, 300)}`);
    if (msg) assert.match(r.status === 200 ? JSON.parse(r.body).response.status.message : r.body, msg, what);
  }
  await stillServes(w, w);
});

test('hostile webhook: strings of any length are never echoed back whole', { timeout: 120_000 }, async (t) => {
  const w = await webhookProcess(t);
  const long = (c: string) => c.repeat(MAX_BODY - 2000);
  const denials: [string, string, RegExp][] = [
    ['a 3 MB public key', peerReview({ allowedIPs: [], publicKey: long('A') }), /^failed to parse public key "A+…" \([\d,]+ bytes\): must be 32 bytes of standard base64$/],
    ['a 3 MB allowed IP', peerReview({ allowedIPs: [long('1')], publicKey }), /^failed to parse "1+…" \([\d,]+ bytes\) as a valid IP address$/],
    ['a 3 MB endpoint IP', peerReview({ allowedIPs: [], publicKey, endpoint: { dnsOrIP: { ip: long('9') }, port: 1 } }), /^failed to parse "9+…" \([\d,]+ bytes\) as a valid IP address$/],
    ['a 3 MB DNS name', peerReview({ allowedIPs: [], publicKey, endpoint: { dnsOrIP: { dns: long('a') }, port: 1 } }), /^failed to validate endpoint DNS name "a+…" \([\d,]+ bytes\): a lowercase RFC 1123 .* alphanumeric character$/],
    ['1.5 M characters of U+FFFD in a key', peerReview({ allowedIPs: [], publicKey: '\uFFFD'.repeat(1_000_000) }), /^failed to parse public key "\uFFFD+…" \([\d,]+ bytes\): must/],
  ];
  for (const [what, body, msg] of denials) {
    const r = await send(w.port, w.ca, { body });
    assertBounded(r, what);
    assert.equal(r.status, 200, what);
    const message = JSON.parse(r.body).response.status.message as string;
    assert.ok(message.length <= MAX_MESSAGE + 64, `${what}: a message of ${message.length} characters`);
    assert.match(message, msg, what);
  }
  const refused: [string, SendOptions, RegExp][] = [
    ['a 3 MB uid', { body: JSON.stringify(reviewOf({ uid: long('u'), object: { spec: {} } })) }, /uid is longer than 256 characters/],
    ['a 15 kB content type', { body: VALID, contentType: 'x'.repeat(15_000) }, /^received Content-Type=x+… \(\d+ characters left out\) …x+, expected application\/json\n$/],
    ['a 3 MB string that is not JSON', { body: '"' + long('s') }, /^Request could not be decoded: /],
  ];
  for (const [what, o, msg] of refused) {
    const r = await send(w.port, w.ca, o);
    assertBounded(r, what);
    assert.equal(r.status, 400, what);
    assert.ok(r.body.length <= MAX_MESSAGE + 64, `${what}: ${r.body.length} characters`);
    assert.match(r.body, msg, what);
  }
  await stillServes(w, w);
});

test('hostile webhook: invalid UTF-8, lone surrogates and wrong or missing Content-Type', { timeout: 120_000 }, async (t) => {
  const w = await webhookProcess(t);
  const [pre, post] = peerReview({ allowedIPs: [], publicKey: '@' }).split('@');
  const cases: [string, SendOptions, 200 | 400][] = [
    ['invalid UTF-8 inside a string', { body: Buffer.concat([Buffer.from(pre), Buffer.from([0xff, 0xc3, 0x28, 0xed, 0xa0, 0x80]), Buffer.from(post)]) }, 200],
    ['invalid UTF-8 outside strings', { body: Buffer.concat([Buffer.from(VALID.slice(0, -1)), Buffer.from([0xff, 0xfe]), Buffer.from('}')]) }, 400],
    ['a lone surrogate in the uid', { body: VALID.replace('"uid-1"', '"\\ud800x"') }, 200],
    ['a NUL in the body', { body: VALID.replace('"uid-1"', '"uid\u0000"') }, 400],
    ['no Content-Type', { body: VALID, contentType: null }, 400],
    ['text/plain', { body: VALID, contentType: 'text/plain' }, 400],
    ['application/json with a charset (Go compares the whole value)', { body: VALID, contentType: 'application/json; charset=utf-8' }, 400],
    ['an empty body', { body: '' }, 400],
  ];
  for (const [what, o, status] of cases) {
    const r = await send(w.port, w.ca, o);
    assertBounded(r, what);
    assert.equal(r.status, status, `${what}: ${r.body.slice(0, 200)}`);
    // Whatever came in, what goes out is valid UTF-8.
    assert.ok(Buffer.from(r.body, 'utf8').equals(r.bytes), `${what}: the answer is not valid UTF-8`);
  }
  const surrogate = await send(w.port, w.ca, { body: VALID.replace('"uid-1"', '"\\ud800x"') });
  assert.equal(JSON.parse(surrogate.body).response.uid, '\ud800x', 'the uid comes back as sent');
  await stillServes(w, w);
});

test('hostile webhook: chunked and slow bodies, slow headers and stalled handshakes are cut', { timeout: 120_000 }, async (t) => {
  // Short limits here; the defaults are asserted below and in the manifest test.
  const w = await webhookServer(t, { requestTimeoutMs: 1500, headersTimeoutMs: 1000, handshakeTimeoutMs: 1000 });
  // A review in 400 chunks of a few bytes each.
  const pieces = VALID.match(/.{1,3}/gs)!;
  const chunked = await send(w.port, w.ca, { body: pieces });
  assert.equal(chunked.status, 200);
  assert.equal(JSON.parse(chunked.body).response.allowed, true);
  // Half a body, then nothing.
  const slowBody = tls.connect({ host: '127.0.0.1', port: w.port, ca: w.ca }, () => {
    slowBody.write(`POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${VALID.length}\r\n\r\n${VALID.slice(0, 40)}`);
  });
  // Headers that never end.
  const slowHeaders = tls.connect({ host: '127.0.0.1', port: w.port, ca: w.ca }, () => slowHeaders.write('POST /validate HTTP/1.1\r\nHost: x\r\n'));
  // A TCP connection that never starts TLS.
  const noHandshake = net.connect({ host: '127.0.0.1', port: w.port });
  const cut = Promise.all([closedWithin(slowBody, 8000, 'slow body'), closedWithin(slowHeaders, 8000, 'slow headers'), closedWithin(noHandshake, 8000, 'no TLS handshake')]);
  // Meanwhile everybody else is served.
  await stillServes(w);
  await cut;
  await stillServes(w);
  // The defaults keep a slow client at most seconds, not Node's 5 minutes.
  assert.ok(DEFAULT_WEBHOOK_LIMITS.headersTimeoutMs <= 10_000 && DEFAULT_WEBHOOK_LIMITS.requestTimeoutMs <= 30_000 && DEFAULT_WEBHOOK_LIMITS.handshakeTimeoutMs <= 10_000);
  assert.ok(w.server.webhook.headersTimeout <= 1000 && w.server.webhook.maxHeadersCount === 64 && w.server.webhook.maxConnections === DEFAULT_WEBHOOK_LIMITS.maxConnections);
});

test('hostile webhook: bodies over the limit get a 400 that the client receives', { timeout: 120_000 }, async (t) => {
  const w = await webhookProcess(t);
  const big = Buffer.alloc(16 << 20, 0x20);
  for (const [what, o] of [
    ['16 MiB with a Content-Length', { body: big }],
    ['16 MiB chunked (no length), 1 MiB a chunk', { body: Array.from({ length: 16 }, (_, i) => big.subarray(i << 20, (i + 1) << 20)) }],
  ] as [string, SendOptions][]) {
    const r = await send(w.port, w.ca, o);
    assert.equal(r.status, 400, what);
    assert.equal(r.body, `request body larger than ${MAX_BODY} bytes\n`, what);
  }
  await stillServes(w, w);
});

test('hostile webhook: concurrent requests past the limits get 503 with Retry-After, the rest are served', { timeout: 120_000 }, async (t) => {
  const w = await webhookServer(t, { maxInFlight: 4, bodyBudget: 1 << 20 });
  // Four reviews whose bodies are still coming hold all the slots.
  const held = Array.from({ length: 4 }, () => {
    const s = tls.connect({ host: '127.0.0.1', port: w.port, ca: w.ca });
    let answer = '';
    s.on('data', (c: Buffer) => (answer += c.toString()));
    s.on('error', () => {});
    s.write(`POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${VALID.length}\r\n\r\n${VALID.slice(0, 20)}`);
    return { s, answer: () => answer };
  });
  await new Promise((r) => setTimeout(r, 500));
  const fifth = await send(w.port, w.ca, { body: VALID });
  assert.equal(fifth.status, 503, fifth.body);
  assert.equal(fifth.headers['retry-after'], '1');
  assert.match(fifth.body, /too many admission reviews in flight/);
  for (const h of held) h.s.write(VALID.slice(20));
  const deadline = Date.now() + 10_000;
  while (held.some((h) => !h.answer().includes('"allowed":true')) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  for (const h of held) {
    assert.match(h.answer(), /^HTTP\/1.1 200 OK/, 'a held review is answered once its body is in');
    h.s.destroy();
  }
  // Bytes: a 700 KiB body is held; a second one does not fit into the 1 MiB budget.
  const pad = (n: number) => withRaw('x', JSON.stringify('p'.repeat(n)));
  const first = pad(700 << 10);
  const s = tls.connect({ host: '127.0.0.1', port: w.port, ca: w.ca });
  s.on('error', () => {});
  let firstAnswer = '';
  s.on('data', (c: Buffer) => (firstAnswer += c.toString()));
  s.write(`POST /validate HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${first.length}\r\n\r\n${first.slice(0, first.length - 10)}`);
  await new Promise((r) => setTimeout(r, 500));
  const second = await send(w.port, w.ca, { body: pad(700 << 10) });
  assert.equal(second.status, 503);
  assert.match(second.body, /too many admission review bytes in flight/);
  s.write(first.slice(first.length - 10));
  const until = Date.now() + 10_000;
  while (!firstAnswer.includes('"allowed":true') && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
  assert.match(firstAnswer, /^HTTP\/1.1 200 OK/);
  s.destroy();
  // The slots and bytes were given back: 100 reviews at once are all answered.
  const burst = await Promise.all(Array.from({ length: 100 }, () => send(w.port, w.ca, { body: VALID }).then((r) => r.status)));
  assert.ok(burst.every((s) => s === 200 || s === 503), JSON.stringify(burst));
  await stillServes(w);
});

test('hostile webhook: parallel max-size hostile bodies keep it alive and inside the manifest\'s memory limit', { timeout: 180_000 }, async (t) => {
  const w = await webhookProcess(t);
  const all = hostileBodies();
  const { memoryLimit, probeTimeoutMs, readinessFailureThreshold } = manifestWebhook();
  const r = await attack(w, ATTACK_KINDS.map((k) => [k, all[k]]), 16, 5, probeTimeoutMs);
  assert.ok(r.alive, `kg webhook died under attack: ${w.output().slice(-3000)}`);
  assert.ok(r.requests >= ATTACK_KINDS.length, `${r.requests} requests answered`);
  // Every answer is bounded; connections cut while a refused body was still coming count as `error`.
  assert.ok(Object.keys(r.statuses).every((s) => ['200', '400', '503', 'error'].includes(s)), JSON.stringify(r.statuses));
  assert.ok(r.largestAnswer <= MAX_RESPONSE, `largest answer ${r.largestAnswer} bytes`);
  // The readiness probe (its timeout, from another process) never failed often enough in a row
  // to take the pod out of the Service.
  assert.ok(r.healthProbes >= 3 && r.healthFailuresInARow < readinessFailureThreshold, JSON.stringify(r));
  assert.ok(r.peakRss < memoryLimit, `peak RSS ${(r.peakRss / 1048576).toFixed(1)} MiB, limit ${memoryLimit / 1048576} MiB`);
  await stillServes(w, w);
});

test('hostile webhook: metric label values come from fixed sets', { timeout: 120_000 }, async (t) => {
  const w = await webhookProcess(t);
  const spec = { allowedIPs: ['10.5.0.1/32'], publicKey };
  for (const operation of ['x'.repeat(300), { op: 1 }, 'create', 'CONNECT', 'DELETE', 'UPDATE', null, 'CREATE\n']) {
    assert.equal((await send(w.port, w.ca, { body: peerReview(spec, { operation }) })).status, 200);
  }
  for (const [method, path] of [['PUT', '/validate'], ['PROPFIND', '/validate'], ['GET', '/nope'], ['POST', '/validate/../x'], ['GET', '/healthz'], ['MKCOL', '/' + 'p'.repeat(3000)]]) {
    await send(w.port, w.ca, { method, path, body: VALID });
  }
  const text = await new Promise<string>((resolve, reject) => {
    http.get({ host: '127.0.0.1', port: w.metricsPort, path: '/metrics' }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve(b));
    }).on('error', reject);
  });
  const labels = (metric: string, label: string) => [...text.matchAll(new RegExp(`^${metric}\\{[^}]*${label}="([^"]*)"`, 'gm'))].map((m) => m[1]);
  assert.deepEqual(new Set(labels('admission_requests_total', 'operation')), new Set(['CONNECT', 'DELETE', 'UPDATE', 'CREATE', 'other']));
  assert.deepEqual(new Set(labels('admission_requests_total', 'response')), new Set(['allowed']));
  assert.deepEqual(new Set(labels('http_requests_total', 'handler')), new Set(['/validate', '/healthz', 'other']));
  assert.deepEqual(new Set(labels('http_requests_total', 'method')), new Set(['POST', 'PUT', 'GET', 'other']));
});

test('hostile webhook: request targets that do not parse get an answer, not a crash (both ports)', { timeout: 60_000 }, async (t) => {
  const w = await webhookProcess(t);
  const raw = (socket: net.Socket, text: string) => new Promise<string>((resolve) => {
    let b = '';
    socket.on('data', (c: Buffer) => {
      b += c.toString();
      if (b.includes('\r\n\r\n')) resolve(b);
    });
    socket.on('error', () => resolve(b));
    socket.on('close', () => resolve(b));
    socket.write(text);
  });
  for (const target of ['http://[', 'https://[::1/validate', 'http://%zz']) {
    const s = tls.connect({ host: '127.0.0.1', port: w.port, ca: w.ca });
    const a = await raw(s, `POST ${target} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}`);
    s.destroy();
    assert.match(a, /^HTTP\/1.1 (404|400)/, `webhook, ${target}`);
    const m = net.connect({ host: '127.0.0.1', port: w.metricsPort });
    const b = await raw(m, `GET ${target} HTTP/1.1\r\nHost: x\r\n\r\n`);
    m.destroy();
    assert.match(b, /^HTTP\/1.1 (404|400)/, `metrics, ${target}`);
  }
  await stillServes(w, w);
});
