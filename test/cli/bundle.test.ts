// The bundle `npm run build` makes (scripts/bundle.mjs) and the image runs: its entry points do
// what tsc's modules do, its credentials worker resolves every kind of configuration the same way
// without carrying client-node's generated API models, and the agent's main thread still never
// loads the Kubernetes client library. (The mesh tests, the demo and bench/agent run the bundle.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { stringify } from 'yaml';
import { makePki } from '../../loadtest/apiserver/index.js';
import { loadCredentialsInWorker } from '../../workers/credentials-client.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUNDLE = join(DIST, 'bundle');
/** The bundled credentials process, as the agent's fork would name it. */
const BUNDLED_CREDENTIALS = pathToFileURL(join(BUNDLE, 'credentials-worker.js'));
const ENTRIES = ['cli.js', 'plan-worker.js', 'io-worker.js', 'credentials-worker.js'];
const b64 = (s: string) => Buffer.from(s).toString('base64');

/** The files an entry loads, static and dynamic imports followed (chunks are siblings). */
function closure(entry: string): Set<string> {
  const seen = new Set<string>();
  const visit = (f: string) => {
    if (seen.has(f)) return;
    seen.add(f);
    for (const m of readFileSync(join(BUNDLE, f), 'utf8').matchAll(/(?:from|import\()\s*"\.\/([\w.-]+\.js)"/g)) visit(m[1]);
  };
  visit(entry);
  return seen;
}

test('bundle: the four entry points are built, each a sibling of its chunks', () => {
  for (const e of ENTRIES) assert.ok(existsSync(join(BUNDLE, e)), `dist/bundle/${e} (npm run build runs scripts/bundle.mjs)`);
  const files = readdirSync(BUNDLE).filter((f) => f.endsWith('.js'));
  for (const e of ENTRIES) for (const f of closure(e)) assert.ok(files.includes(f), `${e} imports ./${f}, which is missing`);
});

test('bundle: the credentials worker carries KubeConfig without the generated API models; the agent\'s main thread loads neither', () => {
  const text = (files: Set<string>) => [...files].map((f) => readFileSync(join(BUNDLE, f), 'utf8')).join('\n');
  const creds = text(closure('credentials-worker.js'));
  assert.match(creds, /loadFromFile\(/, 'KubeConfig is in the credentials worker\'s files');
  assert.match(creds, /function createConfiguration\(/, 'the generated client\'s configuration module');
  // The generated models (V1PodSpec…; ~500 classes when the index is bundled: the stub was not applied).
  assert.deepEqual(creds.match(/class _?V1[A-Z]\w*/g) ?? [], [], 'generated model classes in the credentials worker');
  const workerOnly = new Set(closure('credentials-worker.js'));
  for (const f of closure('cli.js')) workerOnly.delete(f);
  assert.ok(workerOnly.size > 0, 'the library lives in chunks only the credentials worker loads');
  assert.doesNotMatch(text(closure('cli.js')), /loadFromFile\(/, 'kg\'s main thread (cli.js and what it imports) has no KubeConfig');
});

test('bundle: the credentials worker resolves token, client-certificate and exec configurations as tsc\'s modules do', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-bundle-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const pki = makePki();
  const plugin = join(dir, 'plugin.cjs');
  writeFileSync(plugin, `process.stdout.write(JSON.stringify({ apiVersion: 'client.authentication.k8s.io/v1', kind: 'ExecCredential', status: { token: 'from-exec' } }));`);
  const users: Record<string, Record<string, unknown>> = {
    token: { token: 'tok' },
    cert: { 'client-certificate-data': b64(pki.client.certPem), 'client-key-data': b64(pki.client.keyPem) },
    exec: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: process.execPath, args: [plugin], interactiveMode: 'Never' } },
  };
  for (const [kind, user] of Object.entries(users)) {
    const kc = join(dir, `kubeconfig-${kind}`);
    writeFileSync(kc, stringify({
      apiVersion: 'v1', kind: 'Config', 'current-context': 'c',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:6443', 'certificate-authority-data': b64(pki.ca.certPem) } }],
      users: [{ name: 'u', user }], contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
    }));
    const flags = { kubeconfig: kc, master: '' };
    const bundled = await loadCredentialsInWorker(flags, { workerUrl: BUNDLED_CREDENTIALS });
    const modules = await loadCredentialsInWorker(flags);
    assert.deepEqual(bundled, modules, kind);
    assert.equal(bundled.server, 'https://127.0.0.1:6443', kind);
  }
  const missing = join(dir, 'absent');
  await assert.rejects(loadCredentialsInWorker({ kubeconfig: missing, master: '' }, { workerUrl: BUNDLED_CREDENTIALS }),
    /failed to create Kubernetes config: kubeconfig .*absent does not exist/);
});

test('bundle: `kg plan` prints byte for byte what tsc\'s modules print', () => {
  const args = ['plan', '--hostname', 'alpha', '--nodes', 'examples/nodes.yaml', '--peers', 'examples/peers.yaml', '--now', '1764160010', '-o', 'json'];
  const run = (entry: string) => spawnSync(process.execPath, [join(DIST, entry), ...args], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
  const [bundled, modules] = [run('bundle/cli.js'), run('main/cli.js')];
  assert.equal(modules.status, 0, modules.stderr);
  assert.equal(bundled.status, 0, bundled.stderr);
  assert.ok(modules.stdout.length > 1000);
  assert.equal(bundled.stdout, modules.stdout);
  const version = spawnSync(process.execPath, [join(DIST, 'bundle/cli.js'), 'version'], { encoding: 'utf8' });
  assert.equal(version.stdout.trim(), (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version);
});
