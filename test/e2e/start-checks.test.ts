// End-to-end, the agent's start-up checks (design §11.1): the node list now starts before the
// Peer CRD check and the HTTP listener, so that they overlap. A failed check must still be fatal
// (exit 1, one clear error) and must write nothing to the own Node, as before. A real kg against
// the API simulator in network namespaces; everything is torn down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Mesh, waitFor } from '../../loadtest/mesh/harness.js';

const PREFIX = `kgs${process.pid % 10000}`;
const CRDS = new URL('../../../manifests/crds.yaml', import.meta.url).pathname;

test('e2e: a missing Peer CRD or an unusable --listen stops the agent before it writes its node', { timeout: 300_000 }, async (t) => {
  const mesh = new Mesh({ prefix: PREFIX, nodes: [{ name: 'n1', location: 'a' }], apiArgs: ['--no-crds'], flags: ['--encapsulate', 'never'] });
  t.after(() => mesh.down());
  await mesh.up();
  const annotations = (): Record<string, string> => (JSON.parse(mesh.kubectl(['get', 'node', 'n1', '-o', 'json'])) as { metadata: { annotations?: Record<string, string> } }).metadata.annotations ?? {};
  const run = async (extra: string[]): Promise<string> => {
    await mesh.startKg('n1', extra, false);
    const p = mesh.node('n1').kg!;
    await waitFor('kg to exit', () => p.exitCode !== null || p.signalCode !== null, 60_000, 100);
    assert.equal(p.exitCode, 1, `exit status (log: ${mesh.state}/kg-n1.log)`);
    return readFileSync(join(mesh.state, 'kg-n1.log'), 'utf8');
  };

  let log = await run([]);
  assert.match(log, /CRD is not present/);
  assert.equal(annotations()['kilo.squat.ai/key'], undefined, 'no key published without the CRD');

  mesh.kubectl(['apply', '-f', CRDS]);
  // An address the node does not have: binding fails while the node list runs.
  log = await run(['--listen', '192.0.2.1:1107']);
  assert.match(log, /failed to listen on 192\.0\.2\.1:1107/);
  assert.equal(annotations()['kilo.squat.ai/key'], undefined, 'no key published when the listener fails');

  // The same agent with both in order starts and publishes (the checks above could pass).
  await mesh.startKg('n1');
  await waitFor('the key published', () => annotations()['kilo.squat.ai/key'] !== undefined, 30_000, 300);
  await mesh.stopKg('n1');
});
