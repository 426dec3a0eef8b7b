// The agent's main thread never loads @kubernetes/client-node: the credentials worker process
// (workers/credentials-worker.ts) does, and ends. Checked with module hooks registered in the main
// thread only (worker threads do not inherit them), on an agent that resolves its credentials
// and then stops at an API server that refuses connections.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const CLI = fileURLToPath(new URL('../../main/cli.js', import.meta.url));

test('kg (agent): the main thread resolves its credentials without loading the Kubernetes client library', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-main-modules-'));
  try {
    const log = join(dir, 'loaded.txt');
    writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }\n`);
    writeFileSync(join(dir, 'main.mjs'), `import { register } from 'node:module';
register(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});
process.argv = [process.argv[0], ${JSON.stringify(CLI)}, ...process.argv.slice(2)];
await import(${JSON.stringify(pathToFileURL(CLI).href)});\n`);
    const kc = join(dir, 'kubeconfig');
    writeFileSync(kc, [
      'apiVersion: v1', 'kind: Config', 'clusters:', '- name: c', '  cluster: { server: "https://127.0.0.1:1" }',
      'users:', '- name: u', '  user: { token: t }', 'contexts:', '- name: x', '  context: { cluster: c, user: u }', 'current-context: x', '',
    ].join('\n'));
    const r = spawnSync(process.execPath, [join(dir, 'main.mjs'), '--hostname', 'n1', '--key-dir', join(dir, 'kilo'), '--listen', '127.0.0.1:0', '--create-interface=false', '--kubeconfig', kc], { encoding: 'utf8', timeout: 60_000 });
    // The credentials were resolved (the worker ran): the failure is the connection, after them.
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /ECONNREFUSED/);
    const loaded = readFileSync(log, 'utf8').split('\n').filter(Boolean);
    assert.ok(loaded.some((u) => u.endsWith('/workers/credentials-client.js')), 'the main thread ran the credentials client');
    assert.ok(loaded.some((u) => u.endsWith('/main/agent/agent.js')));
    assert.deepEqual(loaded.filter((u) => /@kubernetes\/client-node|\/workers\/kube-config\.js|\/workers\/credentials-worker\.js/.test(u)), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
