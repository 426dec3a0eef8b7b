// The credentials worker's module hooks (workers/credentials-hooks.ts): client-node's KubeConfig
// gets its two names from the generated client's small modules, not from its index (~2,500 model
// modules), and only when its source imports exactly those.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { genIndexStub } from '../../workers/credentials-hooks.js';

const configPath = join(createRequire(import.meta.url).resolve('@kubernetes/client-node').replace(/index\.js$/, ''), 'config.js');
const configUrl = pathToFileURL(configPath).href;

test('credentials hooks: the installed client-node config.js is served the two small modules', () => {
  const stub = genIndexStub(readFileSync(configPath, 'utf8'), configUrl);
  assert.ok(stub, 'this version of @kubernetes/client-node is recognised (else the worker loads all models again)');
  assert.match(stub, /export \{ createConfiguration \} from "file:[^"]*\/dist\/gen\/configuration\.js";/);
  assert.match(stub, /export \{ ServerConfiguration \} from "file:[^"]*\/dist\/gen\/servers\.js";/);
});

test('credentials hooks: any other use of the generated client keeps the whole module', () => {
  // Module texts for the check, not imports of this file (test/layout reads `from '…'`).
  const gen = `'./gen/index.js'`;
  const imp = (names: string) => `import fs from 'node:fs';\nimport { ${names} } from ${gen};\n`;
  assert.ok(genIndexStub(imp('createConfiguration, ServerConfiguration, '), configUrl));
  assert.ok(genIndexStub(imp('ServerConfiguration'), configUrl));
  assert.equal(genIndexStub(imp('createConfiguration, CoreV1Api'), configUrl), null, 'a name the stub does not define');
  assert.equal(genIndexStub(`import * as gen from ${gen};`, configUrl), null);
  assert.equal(genIndexStub(`${imp('createConfiguration')}export * from ${gen};`, configUrl), null, 'a second use');
  assert.equal(genIndexStub(`import { createConfiguration as c } from ${gen};`, configUrl), null, 'a renamed import');
  assert.equal(genIndexStub(`import x from 'y';`, configUrl), null);
  assert.equal(genIndexStub(imp(''), configUrl), null);
  // A version whose small modules no longer declare the names keeps the whole module too.
  assert.ok(genIndexStub(imp('createConfiguration'), configUrl, () => 'export function createConfiguration(o) {}'));
  assert.equal(genIndexStub(imp('createConfiguration'), configUrl, () => 'export function somethingElse() {}'), null, 'moved away');
  assert.equal(genIndexStub(imp('ServerConfiguration'), configUrl, () => { throw new Error('ENOENT'); }), null, 'module gone');
});

test('credentials hooks: with them, KubeConfig loads and resolves credentials without a single generated model', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-cred-hooks-'));
  try {
    const log = join(dir, 'loaded.txt');
    const kc = join(dir, 'kubeconfig');
    writeFileSync(kc, [
      'apiVersion: v1', 'kind: Config', 'clusters:', '- name: c', '  cluster: { server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true }',
      'users:', '- name: u', '  user: { token: secret-token }', 'contexts:', '- name: x', '  context: { cluster: c, user: u }', 'current-context: x', '',
    ].join('\n'));
    writeFileSync(join(dir, 'log-hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }\n`);
    writeFileSync(join(dir, 'main.mjs'), `import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(join(dir, 'log-hooks.mjs')).href)});
register(${JSON.stringify(new URL('../../workers/credentials-hooks.js', import.meta.url).href)});
const { loadKubeConfig, readCredentials } = await import(${JSON.stringify(new URL('../../workers/kube-config.js', import.meta.url).href)});
const c = await readCredentials(loadKubeConfig({ kubeconfig: ${JSON.stringify(kc)}, master: '' }));
process.stdout.write(JSON.stringify({ server: c.server, headers: c.headers, skip: c.skipTLSVerify }));\n`);
    const r = spawnSync(process.execPath, [join(dir, 'main.mjs')], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { server: string; headers: Record<string, string>; skip: boolean };
    assert.equal(out.server, 'https://10.0.0.1:6443');
    assert.equal(out.headers.Authorization, 'Bearer secret-token');
    const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    assert.ok(loaded.some((u) => u.endsWith('/@kubernetes/client-node/dist/config.js')));
    assert.ok(loaded.some((u) => u.endsWith('/dist/gen/configuration.js')));
    assert.deepEqual(loaded.filter((u) => /\/dist\/gen\/(index|models\/)/.test(u)), [], 'no generated model, not the index');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
