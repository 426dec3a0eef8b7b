// The shipped binaries load nothing of the tooling: no module of loadtest/ (the API simulator),
// bench/ or test/, and not mitata. `kg bench` reaches bench/capacity through one dynamic import
// in main/cli.js, which only that subcommand runs. Checked twice: a walk of the built module
// graph (static imports, dynamic imports and worker URLs), and the modules a running kg loads.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { specifiers } from '../layout/imports.js';

const DIST = fileURLToPath(new URL('../../', import.meta.url));
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TOOLING = /^(loadtest|bench|test)\//;
const BENCH_DISPATCH = { from: 'main/cli.js', to: 'bench/capacity/command.js' };

/** Every module reachable from `roots` (paths relative to dist/), and the packages they import. */
function graph(roots: string[], skip: (from: string, to: string) => boolean): { modules: Set<string>; packages: Map<string, string>; skipped: number } {
  const modules = new Set<string>();
  const packages = new Map<string, string>();
  let skipped = 0;
  const todo = [...roots];
  while (todo.length) {
    const mod = todo.pop()!;
    if (modules.has(mod)) continue;
    modules.add(mod);
    for (const { spec } of specifiers(readFileSync(join(DIST, mod), 'utf8'))) {
      if (spec.startsWith('node:')) continue;
      if (!spec.startsWith('.')) {
        packages.set(spec.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0], mod);
        continue;
      }
      const to = relative(DIST, resolve(dirname(join(DIST, mod)), spec));
      if (skip(mod, to)) {
        skipped++;
        continue;
      }
      assert.ok(existsSync(join(DIST, to)), `${mod} imports ${spec}, which is not built`);
      todo.push(to);
    }
  }
  return { modules, packages, skipped };
}

test('the module graph of kg (every subcommand but bench) and kgctl holds no tooling', () => {
  const g = graph(['main/cli.js', 'main/kgctl.js'], (from, to) => from === BENCH_DISPATCH.from && to === BENCH_DISPATCH.to);
  assert.equal(g.skipped, 1, 'kg bench is reached through exactly one import, skipped here');
  const tooling = [...g.modules].filter((m) => TOOLING.test(m));
  assert.deepEqual(tooling, [], 'product modules that reach tooling');
  assert.ok(!g.packages.has('mitata'), `mitata imported by ${g.packages.get('mitata')}`);
  // The walk went everywhere the agent goes: its start-up, both worker threads, the planner.
  for (const m of ['main/agent/run.js', 'main/agent/agent.js', 'workers/io-worker.js', 'workers/plan-worker.js', 'main/plan-command.js', 'main/webhook.js', 'main/kgctl/connect.js']) {
    assert.ok(g.modules.has(m), `${m} is in the walk`);
  }
});

test('kg bench is what brings in the benchmark and the simulator', () => {
  const g = graph(['main/cli.js'], () => false);
  assert.ok([...g.modules].some((m) => m.startsWith('bench/capacity/')));
  assert.ok(g.packages.has('mitata'));
});

test('a running kg loads no tooling module (help, plan, webhook, kgctl, and the agent up to its API server)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-loaded-'));
  try {
    const log = join(dir, 'loaded.txt');
    // A loader hook records every module URL; workers inherit --import and record theirs.
    writeFileSync(join(dir, 'hooks.mjs'), `import { appendFileSync } from 'node:fs';
export async function load(url, context, next) { appendFileSync(${JSON.stringify(log)}, url + '\\n'); return next(url, context); }\n`);
    writeFileSync(join(dir, 'register.mjs'), `import { register } from 'node:module';\nregister(${JSON.stringify(pathToFileURL(join(dir, 'hooks.mjs')).href)});\n`);
    const kg = join(DIST, 'main/cli.js');
    const runs: [string, string[], number][] = [
      [kg, ['--help'], 0],
      [kg, ['plan', '--hostname', 'alpha', '--nodes', join(ROOT, 'examples/nodes.yaml'), '--peers', join(ROOT, 'examples/peers.yaml'), '--now', '1764160010', '-o', 'text'], 0],
      [kg, ['webhook', '--help'], 0],
      [join(DIST, 'main/kgctl.js'), ['--help'], 0],
      // The agent starts its threads and loads everything, then stops at the missing kubeconfig.
      [kg, ['--hostname', 'n1', '--key-dir', join(dir, 'kilo'), '--listen', '127.0.0.1:0', '--create-interface=false', '--kubeconfig', join(dir, 'none.yaml')], 1],
    ];
    for (const [bin, args, status] of runs) {
      const r = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, bin, ...args], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, status, `${args.join(' ')}: ${r.stderr}`);
    }
    const loaded = [...new Set(readFileSync(log, 'utf8').split('\n').filter((u) => u.startsWith('file:')))].map((u) => fileURLToPath(u));
    const ours = loaded.filter((p) => p.startsWith(DIST)).map((p) => relative(DIST, p));
    assert.ok(ours.includes('main/agent/agent.js') && ours.includes('workers/io-worker.js'), `the agent ran: ${ours.join(', ')}`);
    assert.deepEqual(ours.filter((m) => TOOLING.test(m)), []);
    assert.deepEqual(loaded.filter((p) => /node_modules\/mitata\//.test(p)), []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
