// The repository's import graph, read from the TypeScript sources as text: every relative
// specifier of `import … from`, `export … from`, `import '…'` and `import('…')`, type-only
// imports included (a cycle of types is still a cycle a reader has to untangle).
// test/cli/agent-imports reads built modules with the same specifiers(), worker URLs included.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, normalize, relative } from 'node:path';

export interface Edge {
  from: string;
  to: string;
  dynamic: boolean;
}

const SKIP = new Set(['node_modules', 'dist', '.git', '.ci']);
/**
 * How a file names a module: an import, an import() when the code runs, or a module URL
 * (`new URL('./x.js', import.meta.url)`: a worker's entry point, or a script it spawns).
 */
export type SpecKind = 'static' | 'dynamic' | 'url';
const FORMS: readonly [RegExp, SpecKind][] = [
  [/\bfrom\s*(['"])([^'"]+)\1/g, 'static'],
  [/^\s*import\s*(['"])([^'"]+)\1/gm, 'static'],
  [/\bimport\s*\(\s*(['"])([^'"]+)\1\s*\)/g, 'dynamic'],
  [/\bnew URL\(\s*(['"])(\.[^'"]+\.js)\1\s*,\s*import\.meta\.url\s*\)/g, 'url'],
];

/** The modules a source or built file names (packages and `node:` built-ins included), comments left out. */
export function specifiers(text: string): { spec: string; kind: SpecKind }[] {
  const src = code(text);
  return FORMS.flatMap(([re, kind]) => [...src.matchAll(re)].map((m) => ({ spec: m[2], kind })));
}

/** Every .ts file under `root`, as paths relative to it. */
export function sources(root: string, dir = ''): string[] {
  const out: string[] = [];
  for (const name of readdirSync(join(root, dir)).sort()) {
    if (SKIP.has(name)) continue;
    const p = join(dir, name);
    if (statSync(join(root, p)).isDirectory()) out.push(...sources(root, p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

/** Strips comments so that an import named in a comment is not an edge. */
function code(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

export function importGraph(root: string): { files: string[]; edges: Edge[] } {
  const files = sources(root);
  const edges: Edge[] = [];
  for (const f of files) {
    for (const { spec, kind } of specifiers(readFileSync(join(root, f), 'utf8'))) {
      if (kind === 'url' || !/^\.{1,2}\//.test(spec)) continue;
      edges.push({ from: f, to: relative('.', normalize(join(dirname(f), spec)).replace(/\.js$/, '.ts')), dynamic: kind === 'dynamic' });
    }
  }
  return { files, edges };
}

/** Strongly connected components with more than one file, or a file importing itself (Tarjan). */
export function cycles(files: readonly string[], edges: readonly Edge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) next.get(e.from)?.push(e.to);
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  let i = 0;
  const visit = (v: string): void => {
    index.set(v, i);
    low.set(v, i++);
    stack.push(v);
    on.add(v);
    for (const w of next.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || (next.get(v) ?? []).includes(v)) out.push(comp.sort());
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  return out;
}
