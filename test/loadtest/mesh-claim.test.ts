// The mesh harness claims its name prefix: a second run with the same prefix, while the first
// is alive, must fail without touching the first one's namespaces; a leftover claim of a process
// that is gone is taken over.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Mesh, sh } from '../../loadtest/mesh/harness.js';

test('mesh harness: a prefix in use by a live process is refused and left alone; a dead owner is taken over', async () => {
  const state = mkdtempSync(join(tmpdir(), 'kg-claim-'));
  const prefix = `kgclaim${process.pid % 10000}`;
  const marker = `${prefix}-ul`; // the namespace the other run's down() would delete first
  const owner = spawn('sleep', ['30'], { stdio: 'ignore' });
  try {
    sh('ip', ['netns', 'add', marker]);
    writeFileSync(join(state, 'owner.pid'), `${owner.pid}\n`);
    const mesh = new Mesh({ prefix, nodes: [], stateDir: state });
    await assert.rejects(mesh.down(), new RegExp(`prefix ${prefix} is in use by pid ${owner.pid}`));
    await assert.rejects(mesh.up(), /is in use by pid/);
    assert.ok(sh('ip', ['netns', 'list']).split('\n').some((l) => l.split(' ')[0] === marker), "the other run's namespace is still there");
    assert.equal(readFileSync(join(state, 'owner.pid'), 'utf8').trim(), String(owner.pid));

    owner.kill('SIGKILL');
    await new Promise((r) => owner.once('exit', r));
    await mesh.down(); // a leftover: taken over and cleared
    assert.ok(!sh('ip', ['netns', 'list']).split('\n').some((l) => l.split(' ')[0] === marker), 'the leftover namespace is gone');
    assert.ok(!existsSync(join(state, 'owner.pid')), 'the claim is released');
  } finally {
    owner.kill('SIGKILL');
    sh('ip', ['netns', 'del', marker], { allowFail: true });
    rmSync(state, { recursive: true, force: true });
  }
});
