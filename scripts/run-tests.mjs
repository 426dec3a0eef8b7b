#!/usr/bin/env node
// Runs every compiled test file under dist/test with node's own test runner.
// Usage: [KG_DIST=outDir] node scripts/run-tests.mjs [substring filter ...]
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.test.js')) out.push(p);
  }
  return out;
}
const USAGE = `Usage: [KG_DIST=outDir] node scripts/run-tests.mjs [substring filter ...]

Runs the compiled test files under <outDir>/test (default dist) whose path contains any filter
(every file without one), one file at a time, with node's test runner.

Flags:
  -h, --help   Print this help.
`;
const filters = process.argv.slice(2);
if (filters.includes('--help') || filters.includes('-h')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
const flag = filters.find((f) => f.startsWith('-'));
if (flag) {
  process.stderr.write(`Error: unknown flag: ${flag}\nRun with --help for usage.\n`);
  process.exit(2);
}
const dist = process.env.KG_DIST ?? 'dist';
const files = walk(join(dist, 'test')).filter((f) => filters.length === 0 || filters.some((s) => f.includes(s)));
if (files.length === 0) {
  console.error(`no test files found under ${dist}/test (did the build run?)`);
  process.exit(1);
}
// Tests that build network namespaces are serialised (one file at a time) so that they never
// race for names or CPU; pure tests are cheap either way.
const r = spawnSync(process.execPath, ['--test', '--test-concurrency=1', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(r.status ?? 1);
