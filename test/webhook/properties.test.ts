// Properties of `kg webhook` (fast-check, a fixed number of runs: a few seconds here):
// - the overlap sweep finds exactly the pairs the old every-pair check found;
// - review() on random JSON anywhere in an AdmissionReview, and on random text and bytes,
//   always answers 200 or 400, bounded, valid JSON for 200s, and never throws;
// - the live server (real HTTPS) does the same for random bodies and content types.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import fc from 'fast-check';
import { makePki } from '../../loadtest/apiserver/index.js';
import { quadraticOverlaps } from '../../bench/webhook.js';
import { MAX_MESSAGE, MAX_RESPONSE, MAX_WARNINGS, overlapWarnings, review } from '../../main/admission.js';
import { generateKeyPair } from '../../main/keys.js';
import { silentLogger } from '../../main/log.js';
import { startWebhook } from '../../main/webhook.js';
import { intersects, parseCIDR } from '../../plan/addr.js';

/** Allowed IPs from a small space, so that overlaps, repeats, host bits and both families occur. */
const allowedIP = fc.oneof(
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 255 }), fc.integer({ min: 20, max: 32 })).map(([a, b, bits]) => `10.0.${a}.${b}/${bits}`),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 8 })).map(([a, bits]) => `10.${a}.0.0/${bits}`),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 100, max: 128 })).map(([a, bits]) => `fd00::${a}/${bits}`),
  fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 128 })).map(([a, bits]) => `::ffff:10.0.0.${a}/${bits}`),
  fc.constantFrom('0.0.0.0/0', '::/0', 'not-an-ip', '10.0.0.1'),
);

test('overlapWarnings: the sweep names the same pairs as the every-pair check, and counts them all', () => {
  fc.assert(
    fc.property(fc.array(allowedIP, { maxLength: 60 }), (ips) => {
      const peer = { spec: { allowedIPs: ips } };
      const total = quadraticOverlaps(peer);
      const got = overlapWarnings(peer);
      const named = got.filter((w) => !w.startsWith('...'));
      assert.equal(named.length, Math.min(total, MAX_WARNINGS));
      if (total > MAX_WARNINGS) assert.equal(got[got.length - 1], `... and ${total - MAX_WARNINGS} more overlapping pairs of allowedIPs`);
      else assert.equal(got.length, total);
      // Every named pair overlaps; with no cap hit, they are exactly the old check's warnings.
      const cidrs = ips.map((s) => parseCIDR(s)).filter((c) => c !== null);
      const old: string[] = [];
      for (let i = 0; i < cidrs.length; i++) for (let j = i + 1; j < cidrs.length; j++) if (intersects(cidrs[i]!, cidrs[j]!)) old.push(`allowedIPs ${cidrs[i]!.s} and ${cidrs[j]!.s} overlap`);
      if (total <= MAX_WARNINGS) assert.deepEqual(named, old);
      for (const w of named) assert.ok(old.includes(w), w);
    }),
    { numRuns: 2000, seed: 15 },
  );
});

const { publicKey } = generateKeyPair();
const BASE = {
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid: 'u', operation: 'CREATE',
    object: { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'p' }, spec: { allowedIPs: ['10.5.0.1/32', '10.5.0.0/24'], publicKey, endpoint: { dnsOrIP: { ip: '192.0.2.1', dns: '' }, port: 51820 }, persistentKeepalive: 10 } },
  },
};
/** Where a random value goes: every field the webhook or validatePeer reads, and the containers around them. */
const PATHS = [
  [], ['apiVersion'], ['kind'], ['request'], ['request', 'uid'], ['request', 'operation'], ['request', 'object'],
  ['request', 'object', 'metadata'], ['request', 'object', 'spec'], ['request', 'object', 'spec', 'allowedIPs'],
  ['request', 'object', 'spec', 'allowedIPs', 0], ['request', 'object', 'spec', 'publicKey'], ['request', 'object', 'spec', 'endpoint'],
  ['request', 'object', 'spec', 'endpoint', 'dnsOrIP'], ['request', 'object', 'spec', 'endpoint', 'dnsOrIP', 'ip'],
  ['request', 'object', 'spec', 'endpoint', 'dnsOrIP', 'dns'], ['request', 'object', 'spec', 'endpoint', 'port'],
  ['request', 'object', 'spec', 'persistentKeepalive'], ['request', 'oldObject'],
] as (string | number)[][];

/** JSON texts: random values, deep nesting (as text: too deep for JSON.stringify), long and odd strings. */
const jsonText = fc.oneof(
  { weight: 6, arbitrary: fc.jsonValue({ maxDepth: 6 }).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((n) => '['.repeat(n) + ']'.repeat(n)) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 20_000 }).map((n) => '{"a":'.repeat(n) + 'null' + '}'.repeat(n)) },
  { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 3 }), fc.integer({ min: 1, max: 300_000 })).map(([s, n]) => JSON.stringify(s.repeat(n))) },
  { weight: 1, arbitrary: fc.array(fc.oneof(allowedIP, fc.string()), { maxLength: 300 }).map((a) => JSON.stringify(a)) },
  { weight: 1, arbitrary: fc.fullUnicodeString({ maxLength: 50 }).map((s) => JSON.stringify(s)) },
);

/** A review with `text` at `path` (the JSON text spliced in, so that any text fits). */
function splice(path: (string | number)[], text: string): string {
  if (path.length === 0) return text;
  const doc = structuredClone(BASE) as Record<string, any>;
  let at: any = doc;
  for (const k of path.slice(0, -1)) at = at[k];
  at[path[path.length - 1]] = '\u0000SPLICE\u0000';
  return JSON.stringify(doc).replace('"\\u0000SPLICE\\u0000"', text);
}

const body = fc.oneof(
  { weight: 8, arbitrary: fc.tuple(fc.constantFrom(...PATHS), jsonText).map(([p, t]) => splice(p, t)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b).toString('utf8')) },
);

function checkVerdict(status: number, text: string): void {
  assert.ok(status === 200 || status === 400, `status ${status}: ${text.slice(0, 200)}`);
  assert.ok(Buffer.byteLength(text) <= MAX_RESPONSE, `${Buffer.byteLength(text)} bytes`);
  if (status === 200) {
    const a = JSON.parse(text);
    assert.equal(a.apiVersion, 'admission.k8s.io/v1');
    assert.equal(typeof a.response.uid, 'string');
    assert.equal(typeof a.response.allowed, 'boolean');
    if (!a.response.allowed) assert.ok(a.response.status.message.length <= MAX_MESSAGE + 64);
    assert.ok((a.response.warnings ?? []).length <= MAX_WARNINGS + 1);
  } else {
    assert.ok(text.length <= MAX_MESSAGE + 64, `a 400 text of ${text.length} characters`);
  }
}

test('review(): random JSON anywhere in an AdmissionReview, random text and bytes: always a bounded 200 or 400', () => {
  fc.assert(
    fc.property(body, (b) => {
      const v = review('application/json', b);
      checkVerdict(v.status, v.body);
      if (v.status === 200) assert.ok(['CREATE', 'UPDATE', 'DELETE', 'CONNECT', 'other'].includes(v.operation!), v.operation);
    }),
    { numRuns: 3000, seed: 15 },
  );
});

test('kg webhook over HTTPS: random bodies and content types always get a bounded 200 or 400', { timeout: 120_000 }, async (t) => {
  const pki = makePki({ ips: ['127.0.0.1'], dns: [] });
  const s = await startWebhook({ cert: pki.server.certPem, key: pki.server.keyPem, listen: '127.0.0.1:0', listenMetrics: '127.0.0.1:0', log: silentLogger });
  const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
  t.after(() => {
    agent.destroy();
    return s.close();
  });
  const port = (s.webhook.address() as AddressInfo).port;
  const post = (b: Buffer, type: string | null) => new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/validate', method: 'POST', ca: pki.ca.certPem, agent, headers: type === null ? {} : { 'Content-Type': type }, timeout: 20_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text: Buffer.concat(chunks).toString('utf8') }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('no answer')));
    req.end(b);
  });
  const raw = fc.oneof(
    { weight: 4, arbitrary: body.map((b) => Buffer.from(b)) },
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 5000 }).map((b) => Buffer.from(b)) },
  );
  const type = fc.constantFrom('application/json', 'application/json', 'application/json', 'text/plain', 'application/json; charset=utf-8', null);
  await fc.assert(
    fc.asyncProperty(raw, type, async (b, ct) => {
      const r = await post(b, ct);
      checkVerdict(r.status, r.text);
    }),
    { numRuns: 300, seed: 15 },
  );
  // Still serving, and every request was counted in fixed label values.
  const ok = await post(Buffer.from(JSON.stringify(BASE)), 'application/json');
  assert.equal(JSON.parse(ok.text).response.allowed, true);
});
