// Every program of the repository answers --help with its usage and rejects an unknown flag,
// without starting its work: benchmarks, the load test, the simulator, scripts, and kg and kgctl
// with each subcommand. A bench/ or loadtest/ module that reads its command line must be listed here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** Tooling programs, relative to dist/ (or to the checkout for scripts/). Exit 2 on a bad flag. */
const PROGRAMS = [
  'bench/agent.js', 'bench/batch-file.js', 'bench/compare.js', 'bench/dataplane.js', 'bench/graph-burst.js', 'bench/io-worker.js',
  'bench/nat-conn.js', 'bench/plan.js',
  'bench/watch-lines.js', 'bench/webhook.js', 'bench/capacity/kernel-child.js',
  'loadtest/run.js', 'loadtest/apiserver-bench.js', 'loadtest/apiserver/cli.js', 'loadtest/fleet/bench.js', 'loadtest/mesh/demo.js',
  'loadtest/sim/driver.js',
];
const SCRIPTS: [string, string[]][] = [['scripts/run-tests.mjs', []], ['scripts/bundle.mjs', []], ['scripts/setup.sh', ['bash']]];
/** kg and kgctl keep the Go tools' exit status 1 for a bad flag (cobra's). */
const COMMANDS: [string, string[]][] = [
  ['main/cli.js', []], ['main/cli.js', ['plan']], ['main/cli.js', ['webhook']], ['main/cli.js', ['bench']], ['main/cli.js', ['version']],
  // The bundle (scripts/bundle.mjs) is what the image runs; `kg bench` is loaded from dist/bench beside it.
  ['bundle/cli.js', []], ['bundle/cli.js', ['plan']], ['bundle/cli.js', ['webhook']], ['bundle/cli.js', ['bench']], ['bundle/cli.js', ['version']],
  ['main/kgctl.js', ['graph']], ['main/kgctl.js', ['showconf']], ['main/kgctl.js', ['connect']], ['main/kgctl.js', ['version']],
];

interface Run { status: number | null; stdout: string; stderr: string; ms: number }

function run(cmd: string, args: string[]): Promise<Run> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const p = spawn(cmd, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (c: Buffer) => (stdout += c));
    p.stderr.on('data', (c: Buffer) => (stderr += c));
    p.on('error', reject);
    p.on('close', (status) => resolve({ status, stdout, stderr, ms: performance.now() - t0 }));
  });
}

/** Runs the jobs two at a time (the machine is shared). */
async function all<T>(jobs: (() => Promise<T>)[]): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  };
  await Promise.all([lane(), lane()]);
  return out;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? walk(p) : p.endsWith('.js') ? [p] : [];
  });
}

test('every bench/ and loadtest/ module that reads its command line is a listed program', () => {
  const readers = ['bench', 'loadtest'].flatMap((d) => walk(join(DIST, d)))
    .filter((f) => /process\.argv|parseArgs\(|isEntry\(/.test(readFileSync(f, 'utf8')))
    .map((f) => relative(DIST, f))
    .sort();
  assert.deepEqual(readers, [...PROGRAMS].sort());
});

test('programs: --help prints the usage and exits 0 at once; an unknown flag exits 2 and says so', async () => {
  const cases: [string, string, string[]][] = [
    ...PROGRAMS.map((p): [string, string, string[]] => [p, process.execPath, [join(DIST, p)]]),
    ...SCRIPTS.map(([p, pre]): [string, string, string[]] => [p, pre[0] ?? process.execPath, [join(ROOT, p)]]),
  ];
  const results = await all(cases.flatMap(([, cmd, args]) => [() => run(cmd, [...args, '--help']), () => run(cmd, [...args, '--frobnicate'])]));
  cases.forEach(([name], i) => {
    const help = results[2 * i];
    const bad = results[2 * i + 1];
    assert.equal(help.status, 0, `${name} --help: ${help.stderr}`);
    assert.match(help.stdout, /^usage: /i, `${name} --help prints its usage first`);
    assert.match(help.stdout, /--help/, `${name} --help lists its flags`);
    assert.equal(help.stderr, '', `${name} --help starts nothing`);
    assert.ok(help.ms < 15_000, `${name} --help took ${help.ms.toFixed(0)} ms`);
    assert.equal(bad.status, 2, `${name} --frobnicate: ${bad.stdout}${bad.stderr}`);
    assert.match(bad.stderr, /unknown (flag|option).*--frobnicate/i, `${name} names the unknown flag`);
    assert.equal(bad.stdout, '', `${name} --frobnicate starts nothing`);
  });
});

test('kg and kgctl subcommands: --help prints the usage; an unknown flag is one error line, exit 1', async () => {
  const results = await all(COMMANDS.flatMap(([bin, sub]) => [
    () => run(process.execPath, [join(DIST, bin), ...sub, '--help']),
    () => run(process.execPath, [join(DIST, bin), ...sub, '--frobnicate']),
  ]));
  COMMANDS.forEach(([bin, sub], i) => {
    const name = `${bin} ${sub.join(' ')}`;
    const help = results[2 * i];
    const bad = results[2 * i + 1];
    assert.equal(help.status, 0, `${name} --help: ${help.stderr}`);
    assert.match(help.stdout, /Usage:/, `${name} --help`);
    assert.equal(bad.status, 1, `${name} --frobnicate: ${bad.stdout}${bad.stderr}`);
    assert.match(bad.stderr, /^Error: unknown flag: --frobnicate\n/, name);
    assert.equal(bad.stdout, '', name);
  });
});
