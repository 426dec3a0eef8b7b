// The API client's credentials (watch/kube.ts over workers/credentials-client.ts): resolved by
// @kubernetes/client-node in a short-lived worker process from every kind of configuration the agent
// takes (token, client certificate, token file, exec plugin with an expiry), reloaded before a
// known expiry and once after a 401, a token file re-read periodically; a failing or hanging
// load is one clear error. Against a real HTTPS server with the simulator's PKI.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import https from 'node:https';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { stringify } from 'yaml';
import { makePki, renderKubeconfig } from '../../loadtest/apiserver/index.js';
import { KubeClient, type ApiCredentials, type KubeClientOptions } from '../../watch/kube.js';
import { KubeError } from '../../watch/kube-error.js';
import { loadCredentialsInWorker, workerCredentials } from '../../workers/credentials-client.js';

type After = { after: (fn: () => Promise<void> | void) => void };
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** An HTTPS server answering GET /api/v1/nodes to the tokens in `accept` (or a CA-signed client certificate). */
async function server(t: After, o: { clientCerts?: boolean } = {}) {
  const pki = makePki();
  const accept = new Set<string>();
  const seen: string[] = [];
  const srv = https.createServer({ cert: pki.server.certPem, key: pki.server.keyPem, ca: pki.ca.certPem, requestCert: o.clientCerts === true, rejectUnauthorized: false }, (req, res) => {
    const auth = req.headers.authorization ?? '';
    seen.push(auth);
    const byCert = (req.socket as TLSSocket).authorized === true;
    const ok = byCert || accept.has(auth.replace(/^Bearer /, ''));
    res.writeHead(ok ? 200 : 401, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(ok ? { kind: 'NodeList', metadata: { resourceVersion: '1' }, items: [] } : { kind: 'Status', code: 401, message: 'Unauthorized' }));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const dir = mkdtempSync(join(tmpdir(), 'kg-creds-'));
  t.after(async () => {
    srv.closeAllConnections();
    await new Promise<void>((r) => srv.close(() => r()));
    rmSync(dir, { recursive: true, force: true });
  });
  const url = `https://127.0.0.1:${(srv.address() as { port: number }).port}`;
  /** A kubeconfig whose user is `user` (client-go's keys). */
  const kubeconfig = (user: Record<string, unknown>) => {
    const p = join(dir, `kubeconfig-${Math.random().toString(36).slice(2)}`);
    writeFileSync(p, stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: url, 'certificate-authority-data': b64(pki.ca.certPem) } }],
      users: [{ name: 'u', user }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    }));
    return p;
  };
  return { pki, accept, seen, url, dir, kubeconfig };
}

const list = (c: KubeClient) => c.request<{ kind: string }>('GET', '/api/v1/nodes');

function client(t: After, load: () => Promise<ApiCredentials>, o: KubeClientOptions = {}): KubeClient {
  const c = new KubeClient(load, o);
  t.after(() => c.close());
  return c;
}

test('credentials worker: a token and a client certificate from a kubeconfig reach the server', async (t) => {
  const s = await server(t, { clientCerts: true });
  s.accept.add('tok-1');
  const byToken = client(t, workerCredentials({ kubeconfig: s.kubeconfig({ token: 'tok-1' }), master: '' }));
  assert.equal((await list(byToken)).kind, 'NodeList');
  assert.deepEqual(s.seen, ['Bearer tok-1']);
  const cfg = renderKubeconfig({ server: s.url, caCertPem: s.pki.ca.certPem, clientCertPem: s.pki.client.certPem, clientKeyPem: s.pki.client.keyPem });
  writeFileSync(join(s.dir, 'cert.yaml'), cfg);
  const creds = await loadCredentialsInWorker({ kubeconfig: join(s.dir, 'cert.yaml'), master: '' });
  assert.ok(creds.cert && creds.key && creds.ca, 'the TLS material crossed from the worker');
  assert.equal(creds.expiresAtMs, null);
  const byCert = client(t, async () => creds);
  assert.equal((await list(byCert)).kind, 'NodeList');
  assert.equal(s.seen.at(-1), '', 'no token: the certificate authenticated');
});

test('credentials: a token file is re-read every period without a new worker, as client-go does', async (t) => {
  const s = await server(t);
  const file = join(s.dir, 'token');
  writeFileSync(file, 'old-token\n');
  s.accept.add('old-token');
  const c = client(t, workerCredentials({ kubeconfig: s.kubeconfig({ 'auth-provider': { name: 'tokenfile', config: { tokenFile: file } } }), master: '' }), { tokenFilePeriodMs: 100 });
  await list(c);
  // The kubelet rotates the token; the server stops taking the old one a little later.
  writeFileSync(file, 'new-token\n');
  s.accept.add('new-token');
  await new Promise((r) => setTimeout(r, 150));
  s.accept.delete('old-token');
  await list(c);
  assert.deepEqual(s.seen, ['Bearer old-token', 'Bearer new-token']);
  assert.equal(c.loads, 1, 'one worker: the file was re-read in this thread');
});

test('credentials: an exec plugin\'s token is renewed before its expiry, through a fresh worker', async (t) => {
  const s = await server(t);
  const plugin = join(s.dir, 'plugin.cjs');
  const counter = join(s.dir, 'count');
  writeFileSync(counter, '0');
  // kubectl's ExecCredential: a new token per run, valid for 10.3 s (the client renews 10 s before).
  writeFileSync(plugin, `const fs = require('fs'); const n = Number(fs.readFileSync(${JSON.stringify(counter)}, 'utf8')) + 1;
fs.writeFileSync(${JSON.stringify(counter)}, String(n));
process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential',
  status: { token: 'exec-' + n, expirationTimestamp: new Date(Date.now() + 10300).toISOString() } }));`);
  s.accept.add('exec-1').add('exec-2');
  const kc = s.kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin], interactiveMode: 'Never' } });
  const c = client(t, workerCredentials({ kubeconfig: kc, master: '' }), { renewIntervalMs: 0 });
  await list(c);
  await new Promise((r) => setTimeout(r, 400));
  await list(c);
  assert.deepEqual(s.seen, ['Bearer exec-1', 'Bearer exec-2']);
  assert.equal(c.loads, 2);
});

test('credentials: a 401 loads them once again and retries; a server that refuses everything gets one reload per interval', async (t) => {
  const s = await server(t);
  let n = 0;
  const load = async (): Promise<ApiCredentials> => {
    n++;
    return { server: s.url, ca: Buffer.from(s.pki.ca.certPem), cert: null, key: null, servername: null, skipTLSVerify: false, headers: { Authorization: `Bearer t${n}` }, expiresAtMs: null, tokenFile: null };
  };
  const c = client(t, load, { renewIntervalMs: 0 });
  s.accept.add('t2');
  await list(c); // t1 refused, t2 taken
  assert.deepEqual(s.seen, ['Bearer t1', 'Bearer t2']);
  s.accept.clear();
  const slow = client(t, load, { renewIntervalMs: 60_000 });
  for (let i = 0; i < 5; i++) await assert.rejects(list(slow), (e) => e instanceof KubeError && e.status === 401);
  assert.equal(n, 3, 'the second client loaded once (its first load), and renewed no more within the interval');
});

test('credentials worker: a bad kubeconfig, a failing or hanging exec plugin are one clear error, not a crash', async (t) => {
  const s = await server(t);
  await assert.rejects(loadCredentialsInWorker({ kubeconfig: join(s.dir, 'none'), master: '' }), /failed to create Kubernetes config: kubeconfig .* does not exist/);
  const fail = join(s.dir, 'fail.cjs');
  writeFileSync(fail, 'process.stderr.write("no credentials for you\\n"); process.exit(3);');
  const failing = s.kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [fail] } });
  await assert.rejects(loadCredentialsInWorker({ kubeconfig: failing, master: '' }), /failed to get Kubernetes credentials: no credentials for you/);
  const hang = join(s.dir, 'hang.cjs');
  const hangPid = join(s.dir, 'hang.pid');
  writeFileSync(hang, `require('fs').writeFileSync(${JSON.stringify(hangPid)}, String(process.pid)); setInterval(() => {}, 1000);`);
  const hanging = s.kubeconfig({ exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [hang] } });
  const t0 = Date.now();
  await assert.rejects(loadCredentialsInWorker({ kubeconfig: hanging, master: '' }, { timeoutMs: 1500 }), /no answer within 1500 ms/);
  assert.ok(Date.now() - t0 < 5000);
  // Given up on (a timeout or the agent's stop), the worker takes the plugin with it: its process group is killed.
  rmSync(hangPid, { force: true });
  const stop = new AbortController();
  const gaveUp = assert.rejects(loadCredentialsInWorker({ kubeconfig: hanging, master: '' }, { signal: stop.signal }), /aborted/);
  for (let i = 0; i < 600 && !existsSync(hangPid); i++) await new Promise((r) => setTimeout(r, 50));
  const pid = Number(readFileSync(hangPid, 'utf8'));
  stop.abort();
  await gaveUp;
  // Gone, or a zombie until whoever inherited it reaps it.
  const gone = () => !existsSync(`/proc/${pid}`) || / Z /.test(readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/^.*\)/, ''));
  for (let i = 0; i < 100 && !gone(); i++) await new Promise((r) => setTimeout(r, 50));
  assert.ok(gone(), 'the hanging plugin is gone');
  // Through the client: the request fails with the load's message; the next one tries again.
  const c = client(t, workerCredentials({ kubeconfig: failing, master: '' }));
  await assert.rejects(list(c), /no credentials for you/);
  await assert.rejects(list(c), /no credentials for you/);
});

test('credentials: in cluster (service account token and CA at the standard path), the rotated token is taken up', async () => {
  // A private mount namespace with a tmpfs over /run (so nothing is made on the host); the server,
  // the worker and the client run inside it (the main thread re-reads the token at that path).
  const SA = '/var/run/secrets/kubernetes.io/serviceaccount';
  const kube = new URL('../../watch/kube.js', import.meta.url).href;
  const creds = new URL('../../workers/credentials-client.js', import.meta.url).href;
  const sim = new URL('../../loadtest/apiserver/index.js', import.meta.url).href;
  const script = `
    import https from 'node:https'; import { mkdirSync, writeFileSync } from 'node:fs';
    import { KubeClient } from ${JSON.stringify(kube)}; import { workerCredentials } from ${JSON.stringify(creds)};
    import { makePki } from ${JSON.stringify(sim)};
    const pki = makePki(); const accept = new Set(['sa-1']); const seen = [];
    const srv = https.createServer({ cert: pki.server.certPem, key: pki.server.keyPem }, (req, res) => {
      seen.push(req.headers.authorization); const ok = accept.has((req.headers.authorization ?? '').replace('Bearer ', ''));
      res.writeHead(ok ? 200 : 401, { 'Content-Type': 'application/json' }); res.end(JSON.stringify({ kind: ok ? 'NodeList' : 'Status' })); });
    await new Promise((r) => srv.listen(0, '127.0.0.1', r));
    mkdirSync(${JSON.stringify(SA)}, { recursive: true });
    writeFileSync(${JSON.stringify(SA)} + '/ca.crt', pki.ca.certPem); writeFileSync(${JSON.stringify(SA)} + '/token', 'sa-1');
    process.env.KUBERNETES_SERVICE_HOST = '127.0.0.1'; process.env.KUBERNETES_SERVICE_PORT = String(srv.address().port);
    const c = new KubeClient(workerCredentials({ kubeconfig: '', master: '' }), { tokenFilePeriodMs: 100 });
    await c.request('GET', '/api/v1/nodes');
    writeFileSync(${JSON.stringify(SA)} + '/token', 'sa-2'); accept.add('sa-2');
    await new Promise((r) => setTimeout(r, 150)); accept.delete('sa-1');
    await c.request('GET', '/api/v1/nodes');
    console.log(JSON.stringify({ seen, loads: c.loads })); c.close(); srv.close(); srv.closeAllConnections();`;
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', 'sh', '-c', `mount -t tmpfs tmpfs /run && mkdir -p ${SA} && exec "$0" --input-type=module -e "$1"`, process.execPath, script], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(JSON.parse(r.stdout.trim().split('\n').at(-1)!), { seen: ['Bearer sa-1', 'Bearer sa-2'], loads: 1 });
});

// The agent forks the credentials process first and then loads its heavier modules, so its event
// loop is busy when the answer and the exit arrive together: the answer must still be read.
test('credentials worker: the answer is read even when the parent is busy as the worker exits', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-cred-busy-'));
  try {
    const worker = join(dir, 'worker.mjs');
    // What credentials-worker.ts does at its end: send the answer, exit once it is written.
    writeFileSync(worker, "process.send({ ok: true, credentials: { server: 'https://10.0.0.1', headers: {} } }, () => process.exit(0));\n");
    for (let i = 0; i < 8; i++) {
      const answer = loadCredentialsInWorker({ kubeconfig: '', master: '' }, { workerUrl: new URL(`file://${worker}`) });
      const until = Date.now() + 600;
      while (Date.now() < until); // the agent loading its modules
      assert.equal((await answer).server, 'https://10.0.0.1', `round ${i}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
