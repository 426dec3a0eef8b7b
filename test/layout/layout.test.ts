// The architecture as a test: the pipeline's folders import only downward, product code never
// reaches test tooling, and no file takes part in an import cycle. docs/design.md explains the
// layers; this keeps the code and that page in step.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { cycles, importGraph, type Edge } from './imports.js';
import { functionLengths } from './functions.js';

// dist/test/layout/ → the repository root (the sources, not the build).
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
process.chdir(ROOT);
const { files, edges } = importGraph(ROOT);
const top = (p: string): string => p.split('/')[0];

/** What each product folder may import besides itself (docs/design.md, "Layers"). */
const MAY_IMPORT: Record<string, readonly string[]> = {
  plan: [],
  ipc: ['plan'],
  kernel: ['plan'],
  diff: ['plan', 'ipc', 'kernel'],
  dataplane: ['plan', 'ipc', 'kernel', 'diff'],
  watch: ['ipc'],
  workers: ['plan', 'ipc', 'kernel', 'diff', 'dataplane'],
  main: ['plan', 'ipc', 'kernel', 'diff', 'dataplane', 'watch', 'workers'],
};
/** `kg bench` loads the capacity benchmark on demand; the agent never does. */
const ON_DEMAND: readonly Pick<Edge, 'from' | 'to'>[] = [{ from: 'main/cli.ts', to: 'bench/capacity/command.ts' }];

/** Longer functions are split into named steps (issue 16). */
const MAX_FUNCTION_LINES = 80;

const show = (es: readonly Edge[]): string => es.map((e) => `${e.from} -> ${e.to}${e.dynamic ? ' (dynamic)' : ''}`).join('\n');

test('the import graph was read: every relative import resolves to a source file', () => {
  assert.ok(files.length > 150 && edges.length > 500, `${files.length} files, ${edges.length} imports`);
  const known = new Set(files);
  assert.equal(show(edges.filter((e) => !known.has(e.to))), '');
});

test('no import cycles anywhere (type-only imports count)', () => {
  assert.deepEqual(cycles(files, edges), []);
});

test('product code never imports test tooling (loadtest/, bench/, test/, scripts/)', () => {
  const bad = edges.filter((e) => top(e.from) in MAY_IMPORT && !(top(e.to) in MAY_IMPORT) && !ON_DEMAND.some((o) => o.from === e.from && o.to === e.to && e.dynamic));
  assert.equal(show(bad), '');
});

test('product folders import only the layers below them', () => {
  const bad = edges.filter((e) => {
    const a = top(e.from);
    const b = top(e.to);
    if (!(a in MAY_IMPORT) || !(b in MAY_IMPORT) || a === b) return false;
    return !MAY_IMPORT[a].includes(b);
  });
  assert.equal(show(bad), '');
});

test('the checker finds what it looks for', () => {
  const f = ['a.ts', 'b.ts', 'c.ts', 'd.ts'];
  const e = (from: string, to: string): Edge => ({ from, to, dynamic: false });
  assert.deepEqual(cycles(f, [e('a.ts', 'b.ts'), e('b.ts', 'c.ts'), e('c.ts', 'a.ts'), e('c.ts', 'd.ts')]), [['a.ts', 'b.ts', 'c.ts']]);
  assert.deepEqual(cycles(f, [e('d.ts', 'd.ts')]), [['d.ts']]);
  assert.deepEqual(cycles(f, [e('a.ts', 'b.ts'), e('b.ts', 'c.ts')]), []);
});

test('no function in product code is longer than 80 lines', () => {
  const product = files.filter((f) => top(f) in MAY_IMPORT);
  const long = functionLengths(ROOT, product).filter((f) => f.lines > MAX_FUNCTION_LINES);
  assert.equal(long.map((f) => `${f.file}:${f.line} ${f.name}: ${f.lines} lines`).join('\n'), '');
});

test('every § a comment cites has its heading in docs/design.md', () => {
  const headings = new Set([...readFileSync(join(ROOT, 'docs/design.md'), 'utf8').matchAll(/^#+ §(\d+(?:\.\d+)*)(?: |$)/gm)].map((m) => m[1]));
  const missing = new Set<string>();
  for (const f of files) {
    for (const m of readFileSync(join(ROOT, f), 'utf8').matchAll(/§ ?(\d+(?:\.\d+)*)/g)) if (!headings.has(m[1])) missing.add(`${f}: §${m[1]}`);
  }
  assert.ok(headings.size > 100, `${headings.size} headings`);
  assert.deepEqual([...missing], []);
});
