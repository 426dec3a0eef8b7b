// `kg webhook` end to end: the real binary over HTTPS with a certificate made here, real
// AdmissionReview v1 requests (good and bad Peers, malformed bodies), its metrics through
// promtool, and a clean shutdown on SIGTERM.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makePki } from '../../loadtest/apiserver/index.js';
import { generateKeyPair } from '../../main/keys.js';
import { review } from '../../main/admission.js';

const CLI = new URL('../../main/cli.js', import.meta.url).pathname;

interface Reply {
  status: number;
  type: string;
  body: string;
}

function post(port: number, ca: string, body: string | Buffer, contentType = 'application/json', method = 'POST'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: '/validate', method, ca, headers: { 'Content-Type': contentType }, timeout: 10_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: Buffer.concat(chunks).toString() }));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body);
  });
}

function get(port: number, path: string): Promise<Reply> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path, timeout: 10_000 }, (res) => {
      let b = '';
      res.on('data', (c) => (b += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: b }));
    }).on('error', reject);
  });
}

const admission = (uid: string, operation: string, object: unknown) => JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: {
    uid, operation, kind: { group: 'kilo.squat.ai', version: 'v1alpha1', kind: 'Peer' },
    resource: { group: 'kilo.squat.ai', version: 'v1alpha1', resource: 'peers' }, name: 'p', object,
  },
});
const peer = (spec: Record<string, unknown>) => ({ apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'p' }, spec });

test('kg webhook: AdmissionReview v1 over HTTPS, bad Peers denied, malformed bodies 400, metrics', { timeout: 60_000 }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-webhook-'));
  const pki = makePki({ ips: ['127.0.0.1'], dns: ['peer-validation.kilo.svc'] });
  writeFileSync(join(dir, 'tls.crt'), pki.server.certPem);
  writeFileSync(join(dir, 'tls.key'), pki.server.keyPem, { mode: 0o600 });
  const p = spawn(process.execPath, [CLI, 'webhook', `--cert-file=${join(dir, 'tls.crt')}`, `--key-file=${join(dir, 'tls.key')}`, '--listen=127.0.0.1:0', '--listen-metrics=127.0.0.1:0'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  p.stdout.on('data', (c: Buffer) => (out += c.toString()));
  p.stderr.on('data', (c: Buffer) => (err += c.toString()));
  t.after(() => {
    if (p.exitCode === null) p.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });
  const started = Date.now();
  while (!out.includes('"listening"') && Date.now() - started < 15_000 && p.exitCode === null) await new Promise((r) => setTimeout(r, 50));
  assert.ok(out.includes('"listening"'), `kg webhook did not start: ${out}${err}`);
  const line = JSON.parse(out.split('\n').find((l) => l.includes('"listening"'))!);
  const port = line.webhookPort as number;
  const metricsPort = line.metricsPort as number;
  const ca = pki.ca.certPem;
  const { publicKey } = generateKeyPair();

  await t.test('a valid Peer is allowed; the response echoes the uid', async () => {
    const r = await post(port, ca, admission('uid-1', 'CREATE', peer({ allowedIPs: ['10.5.0.1/32'], publicKey, endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: 51820 }, persistentKeepalive: 10 })));
    assert.equal(r.status, 200);
    assert.equal(r.type, 'application/json');
    assert.deepEqual(JSON.parse(r.body), { apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', response: { uid: 'uid-1', allowed: true } });
  });

  await t.test('bad Peers are denied with the validation error (design §3.3.3)', async () => {
    const cases: [string, Record<string, unknown>, RegExp][] = [
      ['invalid key (not base64)', { allowedIPs: ['10.5.0.1/32'], publicKey: 'not a key' }, /public key/],
      ['invalid key (31 bytes)', { allowedIPs: ['10.5.0.1/32'], publicKey: Buffer.alloc(31, 1).toString('base64') }, /public key/],
      ['allowed IP without a prefix', { allowedIPs: ['10.5.0.1'], publicKey }, /10\.5\.0\.1/],
      ['endpoint with a bad IP', { allowedIPs: ['10.5.0.1/32'], publicKey, endpoint: { dnsOrIP: { ip: '300.1.1.1' }, port: 51820 } }, /300\.1\.1\.1/],
      ['endpoint with a bad DNS name', { allowedIPs: ['10.5.0.1/32'], publicKey, endpoint: { dnsOrIP: { dns: 'Bad_Host' }, port: 51820 } }, /RFC 1123/],
      ['endpoint without DNS or IP', { allowedIPs: ['10.5.0.1/32'], publicKey, endpoint: { dnsOrIP: {}, port: 51820 } }, /DNS name or IP/],
      ['endpoint port 0', { allowedIPs: ['10.5.0.1/32'], publicKey, endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: 0 } }, /port/],
      ['endpoint port 70000', { allowedIPs: ['10.5.0.1/32'], publicKey, endpoint: { dnsOrIP: { ip: '192.0.2.1' }, port: 70000 } }, /port/],
      ['negative keepalive', { allowedIPs: ['10.5.0.1/32'], publicKey, persistentKeepalive: -1 }, /keepalive/],
    ];
    for (const [what, spec, msg] of cases) {
      const r = await post(port, ca, admission(`uid-${what}`, 'UPDATE', peer(spec)));
      assert.equal(r.status, 200, what);
      const res = JSON.parse(r.body).response;
      assert.equal(res.uid, `uid-${what}`, what);
      assert.equal(res.allowed, false, what);
      assert.match(res.status.message, msg, what);
    }
  });

  await t.test('overlapping allowed IPs: allowed as Kilo allows them, with a warning', async () => {
    // Kilo's validation (design §3.3.3) has no overlap rule; kg de-duplicates repeats (§5.6).
    // The webhook admits such a Peer, as Go's does, and tells the user through `warnings`.
    const r = await post(port, ca, admission('uid-overlap', 'CREATE', peer({ allowedIPs: ['10.5.0.0/24', '10.5.0.7/32', '10.6.0.0/24'], publicKey })));
    const res = JSON.parse(r.body).response;
    assert.equal(res.allowed, true);
    assert.deepEqual(res.warnings, ['allowedIPs 10.5.0.0/24 and 10.5.0.7/32 overlap']);
  });

  await t.test('malformed requests get 400 and the server keeps serving', async () => {
    const bad: [string, string | Buffer, string, RegExp][] = [
      ['not JSON', '{"apiVersion":', 'application/json', /^Request could not be decoded/],
      ['JSON but not an object', '[1,2]', 'application/json', /^Request could not be decoded/],
      ['wrong content type', admission('u', 'CREATE', peer({ allowedIPs: [], publicKey })), 'text/plain', /^received Content-Type=text\/plain, expected application\/json/],
      ['v1beta1 review', JSON.stringify({ apiVersion: 'admission.k8s.io/v1beta1', kind: 'AdmissionReview', request: { uid: 'u', object: {} } }), 'application/json', /^only API v1 is supported/],
      ['no request', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview' }), 'application/json', /uid is required/],
      ['object not an object', admission('u', 'CREATE', 'peer'), 'application/json', /into a Peer/],
      ['spec not an object', admission('u', 'CREATE', { spec: [1] }), 'application/json', /into a Peer/],
      ['4 MiB body', Buffer.alloc(4 << 20, 0x20), 'application/json', /larger than/],
    ];
    for (const [what, body, type, msg] of bad) {
      // An oversized body is answered at once and the connection closed for writing, the rest
      // unread: the client gets the answer instead of a reset.
      const r = await post(port, ca, body, type);
      assert.equal(r.status, 400, `${what}: ${r.body}`);
      assert.match(r.body, msg, what);
    }
    const ok = await post(port, ca, admission('uid-after', 'CREATE', peer({ allowedIPs: ['10.5.0.2/32'], publicKey })));
    assert.equal(JSON.parse(ok.body).response.allowed, true);
    assert.equal(p.exitCode, null, 'still running');
  });

  await t.test('/healthz on the webhook\'s own HTTPS port (the probes): 200 while it serves', async () => {
    const r = await new Promise<Reply>((resolve, reject) => {
      https.get({ host: '127.0.0.1', port, path: '/healthz', ca, timeout: 10_000 }, (res) => {
        let b = '';
        res.on('data', (c) => (b += c));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type'] ?? ''), body: b }));
      }).on('error', reject);
    });
    assert.deepEqual([r.status, r.body], [200, 'ok\n']);
    // Plain HTTP on the TLS port gets no answer: a probe without TLS would fail.
    const plain = await new Promise<string>((resolve) => {
      http.get({ host: '127.0.0.1', port, path: '/healthz', timeout: 5000 }, (res) => resolve(String(res.statusCode))).on('error', (e) => resolve(e.message)).on('timeout', function (this: http.ClientRequest) {
        this.destroy(new Error('timeout'));
      });
    });
    assert.notEqual(plain, '200');
  });

  await t.test('/metrics: Kilo\'s webhook counters, promtool-clean', async () => {
    const m = await get(metricsPort, '/metrics');
    assert.equal(m.status, 200);
    assert.match(m.body, /admission_requests_total\{operation="CREATE",response="allowed"\} 3/);
    assert.match(m.body, /admission_requests_total\{operation="UPDATE",response="denied"\} 9/);
    assert.match(m.body, /http_requests_total\{handler="\/validate",method="POST"\} 2\d/);
    assert.match(m.body, /http_requests_total\{handler="\/healthz",method="GET"\} 1/);
    assert.match(m.body, /errors_total [78]/);
    const file = join(dir, 'metrics.txt');
    writeFileSync(file, m.body);
    const lint = spawnSync('sh', ['-c', `promtool check metrics < ${file}`], { encoding: 'utf8' });
    assert.equal(lint.status, 0, `promtool: ${lint.stdout}${lint.stderr}`);
    assert.equal((await get(metricsPort, '/other')).status, 404);
  });

  await t.test('SIGTERM shuts down cleanly (exit 0)', async () => {
    p.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => (p.exitCode !== null ? r(p.exitCode) : p.once('exit', (c) => r(c))));
    assert.equal(code, 0, err);
  });
});

test('kg webhook: bad flags and files are one clear error, exit 1', () => {
  const run = (args: string[]) => spawnSync(process.execPath, [CLI, 'webhook', ...args], { encoding: 'utf8', timeout: 20_000 });
  let r = run([]);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /--cert-file and --key-file are required/);
  r = run(['--cert-file=/nonexistent/c', '--key-file=/nonexistent/k']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /failed to read the TLS certificate or key/);
  r = run(['--version']);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /^\d+\.\d+\.\d+\n$/);
  r = run(['--log-level=loud', '--cert-file=a', '--key-file=b']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /log level loud unknown/);
  r = run(['--bogus']);
  assert.equal(r.status, 1);
  assert.match(r.stderr, /unknown flag: --bogus/);
});

test('review(): the decision is pure and never throws on any JSON', () => {
  for (const body of ['null', '1', '"x"', '{}', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"spec":null}}}']) {
    const v = review('application/json', body);
    assert.ok(v.status === 400 || v.status === 200, body);
  }
  const v = review('application/json', '{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{}}}');
  assert.equal(v.status, 200);
  assert.equal(JSON.parse(v.body).response.allowed, false, 'a Peer without spec is denied');
});
