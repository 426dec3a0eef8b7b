// Function lengths, read with the TypeScript compiler's parser: every function, method,
// constructor, accessor and arrow function, from its first line to its closing brace.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import ts from 'typescript';

export interface FunctionLength {
  file: string;
  line: number;
  name: string;
  lines: number;
}

function nameOf(n: ts.Node, sf: ts.SourceFile): string {
  const named = n as ts.Node & { name?: ts.Node };
  if (named.name) return named.name.getText(sf);
  if (ts.isConstructorDeclaration(n)) return 'constructor';
  const p = n.parent;
  if (p && (ts.isVariableDeclaration(p) || ts.isPropertyAssignment(p) || ts.isPropertyDeclaration(p))) return p.name.getText(sf);
  return '(anonymous)';
}

/** Every function-like node in `files` (paths relative to `root`), longest first. */
export function functionLengths(root: string, files: readonly string[]): FunctionLength[] {
  const out: FunctionLength[] = [];
  for (const file of files) {
    const sf = ts.createSourceFile(file, readFileSync(join(root, file), 'utf8'), ts.ScriptTarget.Latest, true);
    const visit = (n: ts.Node): void => {
      if (ts.isFunctionLike(n) && (n as ts.FunctionLikeDeclaration).body) {
        const first = sf.getLineAndCharacterOfPosition(n.getStart(sf)).line;
        const last = sf.getLineAndCharacterOfPosition(n.getEnd()).line;
        out.push({ file, line: first + 1, name: nameOf(n, sf), lines: last - first + 1 });
      }
      ts.forEachChild(n, visit);
    };
    visit(sf);
  }
  return out.sort((a, b) => b.lines - a.lines);
}
