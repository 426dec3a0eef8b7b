// The private key file under failure and hostile content: written durably (fsync of file and
// directory, seen with strace), no temporary file left after a failed write (a full tmpfs in a
// private mount namespace) or a crash, an unparsable file kept aside and counted, and no log line
// or error message that carries key material.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, loadNodeKey, loadOrCreateKey, type KeyFileProblem } from '../../main/keys.js';
import { createLogger } from '../../main/log.js';
import { createMetrics } from '../../main/agent/metrics.js';

const KEYS_JS = fileURLToPath(new URL('../../main/keys.js', import.meta.url));

function tempDir(t: { after: (fn: () => void) => void }): string {
  const dir = mkdtempSync(join(tmpdir(), 'kg-hostile-keys-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** loadNodeKey with its logs captured and its problems counted in a real registry. */
function loadLogged(dir: string) {
  const logs: string[] = [];
  const metrics = createMetrics();
  const problems: KeyFileProblem[] = [];
  let error: Error | null = null;
  let key = null;
  try {
    key = loadNodeKey(dir, createLogger({ level: 'debug', write: (l) => logs.push(l) }), (p) => {
      problems.push(p);
      metrics.keyFileErrors.labels(p).inc();
    });
  } catch (e) {
    error = e as Error;
  }
  return { key, logs, problems, error, metrics };
}

/** Neither the text nor any 12-character piece of the key appears in `texts`. */
function assertNoKeyIn(texts: string[], key: string): void {
  for (const s of texts) {
    for (let i = 0; i + 12 <= key.length; i += 4) assert.ok(!s.includes(key.slice(i, i + 12)), `key material in: ${s.slice(0, 120)}…`);
  }
}

/** Runs loadOrCreateKey(dir) in a child process (under `wrap`, e.g. strace or unshare); returns its report. */
function child(dir: string, wrap: string[] = [], setup = ''): { error: string | null; entries: string[]; status: number | null; stderr: string } {
  const script = `import { loadOrCreateKey } from ${JSON.stringify(KEYS_JS)};
import { readdirSync } from 'node:fs';
let error = null;
try { loadOrCreateKey(${JSON.stringify(dir)}); } catch (e) { error = e.message; }
console.log(JSON.stringify({ error, entries: readdirSync(${JSON.stringify(dir)}) }));`;
  const cmd = wrap.length ? [...wrap, 'sh', '-c', `${setup} exec "$0" --input-type=module -e "$1"`, process.execPath, script] : [process.execPath, '--input-type=module', '-e', script];
  const r = spawnSync(cmd[0], cmd.slice(1), { encoding: 'utf8', timeout: 20_000 });
  const out = r.stdout.trim().split('\n').pop() ?? '';
  if (!out.startsWith('{')) return { error: null, entries: [], status: r.status, stderr: r.stderr + (r.error ? String(r.error) : '') };
  return { ...(JSON.parse(out) as { error: string | null; entries: string[] }), status: r.status, stderr: r.stderr };
}

test('hostile keys: the key is written to a temporary file, fsynced, renamed, and the directory fsynced (strace)', (t) => {
  const dir = tempDir(t);
  const kd = join(dir, 'kilo');
  const trace = join(dir, 'trace');
  const probe = spawnSync('strace', ['-V'], { encoding: 'utf8' });
  assert.equal(probe.status, 0, 'strace is needed to see the system calls (scripts/setup.sh installs it)');
  // -y names each descriptor's file; write() is not traced, so the key never reaches the trace.
  const r = child(kd, ['strace', '-y', '-e', 'trace=openat,fsync,fdatasync,close,rename,renameat,renameat2', '-o', trace]);
  assert.equal(r.error, null, r.stderr);
  const calls = readFileSync(trace, 'utf8').split('\n').filter((l) => l.includes(kd));
  const order = [
    new RegExp(`^openat\\(.*"${kd}/\\.key\\.tmp", O_WRONLY\\|O_CREAT\\|O_EXCL.*, 0600\\) = \\d+`),
    new RegExp(`^f(data)?sync\\(\\d+<${kd}/\\.key\\.tmp>\\) = 0`),
    new RegExp(`^close\\(\\d+<${kd}/\\.key\\.tmp>\\) = 0`),
    new RegExp(`^rename(at2?)?\\(.*"${kd}/\\.key\\.tmp",.*"${kd}/key".*\\) = 0`),
    new RegExp(`^openat\\(.*"${kd}", O_RDONLY.*O_DIRECTORY.*\\) = \\d+`),
    new RegExp(`^fsync\\(\\d+<${kd}>\\) = 0`),
  ];
  let at = 0;
  for (const re of order) {
    while (at < calls.length && !re.test(calls[at])) at++;
    assert.ok(at < calls.length, `no ${re} after the previous step in:\n${calls.join('\n')}`);
    at++;
  }
  assert.deepEqual(readdirSync(kd), ['key']);
  assert.equal(statSync(join(kd, 'key')).mode & 0o777, 0o600);
});

test('hostile keys: an existing directory with a loose mode is made 0700', (t) => {
  const kd = join(tempDir(t), 'kilo');
  mkdirSync(kd, { mode: 0o755 });
  chmodSync(kd, 0o755);
  loadOrCreateKey(kd);
  assert.equal(statSync(kd).mode & 0o777, 0o700);
  chmodSync(kd, 0o777);
  loadOrCreateKey(kd);
  assert.equal(statSync(kd).mode & 0o777, 0o700, 'also when the key exists');
});

test('hostile keys: a write that fails (a full disk) leaves no temporary file and says why', (t) => {
  const dir = tempDir(t);
  const mnt = join(dir, 'm');
  const kd = join(mnt, 'kilo');
  mkdirSync(mnt);
  // A 4 KiB tmpfs in a private mount namespace (gone with the child), filled before the write.
  const r = child(kd, ['unshare', '-m'], `mount -t tmpfs -o size=4k tmpfs ${mnt} && mkdir ${kd} && dd if=/dev/zero of=${mnt}/fill bs=4096 count=1 2>/dev/null;`);
  assert.ok(r.error, `the write failed: ${r.stderr}`);
  assert.deepEqual(r.entries, [], 'no temporary file and no partial key left behind');
  assert.match(r.error, /^failed to write private key file .*\/key: ENOSPC/);
});

test('hostile keys: what a crash mid-write leaves (the temporary file) is removed at the next start, logged and counted', (t) => {
  const kd = join(tempDir(t), 'kilo');
  mkdirSync(kd, { mode: 0o700 });
  const half = generateKeyPair().privateKey.slice(0, 20);
  writeFileSync(join(kd, '.key.tmp'), half);
  writeFileSync(join(kd, '.key.4242.tmp'), half, { mode: 0o600 }); // an earlier version's name
  const { key, logs, problems } = loadLogged(kd);
  assert.ok(key?.generated);
  assert.deepEqual(readdirSync(kd), ['key']);
  assert.deepEqual(problems, ['leftover_temp', 'leftover_temp']);
  assert.equal(logs.filter((l) => l.includes('temporary key file')).length, 2);
  assert.ok(!logs.some((l) => l.includes(half)));
});

test('hostile keys: a key file that does not parse is kept aside, never replaced in place, with an error and a metric, and no key material anywhere', async (t) => {
  const kd = join(tempDir(t), 'kilo');
  mkdirSync(kd, { mode: 0o700 });
  const real = generateKeyPair().privateKey;
  const content = `${real}junk\n`;
  writeFileSync(join(kd, 'key'), content, { mode: 0o644 });
  const first = loadLogged(kd);
  assert.equal(first.error, null);
  assert.ok(first.key!.generated);
  assert.notEqual(first.key!.privateKey, real);
  const aside = readdirSync(kd).filter((f) => f.startsWith('key.invalid-'));
  assert.equal(aside.length, 1);
  assert.match(aside[0], /^key\.invalid-\d{10}$/);
  assert.equal(readFileSync(join(kd, aside[0]), 'utf8'), content, 'kept byte for byte');
  assert.equal(readFileSync(join(kd, 'key'), 'utf8'), first.key!.privateKey);
  const errors = first.logs.map((l) => JSON.parse(l) as { level: string; msg: string; keptAs?: string; bytes?: number }).filter((l) => l.level === 'error');
  assert.equal(errors.length, 1);
  assert.match(errors[0].msg, /does not parse; kept it aside/);
  assert.equal(errors[0].keptAs, join(kd, aside[0]));
  assert.equal(errors[0].bytes, Buffer.byteLength(content));
  assert.match(await first.metrics.registry.metrics(), /^kg_key_file_errors_total\{reason="invalid"\} 1$/m);
  assertNoKeyIn(first.logs, real);

  // Again within the same second: the first aside copy is not overwritten.
  writeFileSync(join(kd, 'key'), `${real}\u0000`);
  const second = loadLogged(kd);
  assert.deepEqual(second.problems, ['invalid']);
  const asides = readdirSync(kd).filter((f) => f.startsWith('key.invalid-')).sort();
  assert.equal(asides.length, 2);
  assert.equal(readFileSync(join(kd, aside[0]), 'utf8'), content);
  assertNoKeyIn(second.logs, real);
});

test('hostile keys: a huge key file is not read whole, and is kept aside', (t) => {
  const kd = join(tempDir(t), 'kilo');
  mkdirSync(kd, { mode: 0o700 });
  const real = generateKeyPair().privateKey;
  writeFileSync(join(kd, 'key'), (real + '\n').repeat(200_000));
  const { key, logs, error } = loadLogged(kd);
  assert.equal(error, null);
  assert.ok(key!.generated);
  const rec = logs.map((l) => JSON.parse(l) as { level: string; bytes?: number }).find((l) => l.level === 'error');
  assert.equal(rec?.bytes, 45 * 200_000);
  assertNoKeyIn(logs, real);
});

test('hostile keys: a key file that is not a regular file (a FIFO, a directory) is a fatal error at once, without its content', (t) => {
  const dir = tempDir(t);
  const fifo = join(dir, 'fifo');
  mkdirSync(fifo, { mode: 0o700 });
  assert.equal(spawnSync('mkfifo', [join(fifo, 'key')]).status, 0);
  // In a child: reading a FIFO the way the old code did blocks for ever.
  const r = child(fifo);
  assert.equal(r.status, 0, `the child did not hang or crash: ${r.stderr}`);
  assert.match(r.error ?? '', /^failed to read private key file .*\/key: not a regular file$/);
  const isDir = join(dir, 'isdir');
  mkdirSync(join(isDir, 'key'), { recursive: true });
  const { error } = loadLogged(isDir);
  assert.match(error?.message ?? '', /^failed to read private key file .*\/key: not a regular file$/);
});
