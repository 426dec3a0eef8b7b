// Module resolution hooks of the credentials worker process (workers/credentials-worker.ts):
// client-node's KubeConfig (dist/config.js) takes two names from its generated API client
// (dist/gen/index.js), whose import loads ~2,500 model modules, about two thirds of the
// library's import time. Here config.js gets those two names from the two small modules that
// define them. Only when config.js imports exactly names this file knows (checked in its source)
// and those modules still declare them:
// another version of the library gets the whole module, as before (slower, never wrong).
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The generated client's names that KubeConfig uses, and the module that defines each. */
const DEFINED_IN: Record<string, string> = { createConfiguration: './gen/configuration.js', ServerConfiguration: './gen/servers.js' };
const GEN_INDEX = './gen/index.js';

/**
 * The source of a module that stands for gen/index.js when imported by config.js (its source
 * and URL given), or null when config.js uses gen/index.js in any other way.
 */
export function genIndexStub(configSource: string, configUrl: string, readSource: (url: URL) => string = (u) => readFileSync(u, 'utf8')): string | null {
  const uses = configSource.split(GEN_INDEX).length - 1;
  const m = /import\s*\{([^}]*)\}\s*from\s*(['"])\.\/gen\/index\.js\2/.exec(configSource);
  if (uses !== 1 || m === null) return null;
  const names = m[1].split(',').map((x) => x.trim()).filter(Boolean);
  if (names.length === 0 || !names.every((n) => Object.hasOwn(DEFINED_IN, n) && exports(readSource, new URL(DEFINED_IN[n], configUrl), n))) return null;
  return names.map((n) => `export { ${n} } from ${JSON.stringify(new URL(DEFINED_IN[n], configUrl).href)};`).join('\n');
}

/** Whether the module at `url` declares the export `name` (a library that moved it gets the whole index). */
function exports(readSource: (url: URL) => string, url: URL, name: string): boolean {
  let src: string;
  try {
    src = readSource(url);
  } catch {
    return false;
  }
  const declared = new RegExp(`export\\s+(?:async\\s+)?(?:function\\*?|class|const|let|var)\\s+${name}\\b`);
  const listed = new RegExp(`export\\s*\\{[^}]*\\b${name}\\b[^}]*\\}`);
  return declared.test(src) || listed.test(src);
}

type NextResolve = (specifier: string, context: ResolveContext) => Promise<{ url: string }>;
interface ResolveContext {
  parentURL?: string;
}

const stubs = new Map<string, string | null>();

/** The `resolve` hook (node:module register). */
export async function resolve(specifier: string, context: ResolveContext, next: NextResolve): Promise<{ url: string; shortCircuit?: boolean }> {
  const parent = context.parentURL;
  if (specifier === GEN_INDEX && parent?.endsWith('/@kubernetes/client-node/dist/config.js')) {
    if (!stubs.has(parent)) {
      let stub: string | null = null;
      try {
        stub = genIndexStub(readFileSync(fileURLToPath(parent), 'utf8'), parent);
      } catch {
        /* unreadable: the library's own resolution */
      }
      stubs.set(parent, stub);
    }
    const stub = stubs.get(parent);
    if (stub) return { url: `data:text/javascript,${encodeURIComponent(stub)}`, shortCircuit: true };
  }
  return next(specifier, context);
}
