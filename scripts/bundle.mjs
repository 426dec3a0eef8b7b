#!/usr/bin/env node
// The last step of `npm run build`: bundles the agent's four entry points (kg, the planner pool's
// worker, the I/O worker, the credentials worker) from tsc's output into dist/bundle/ with esbuild.
// Why: a cold start loads ~300 modules in three isolates and a child process; one file per entry
// (and shared chunks) is read and compiled with far less resolution work, and the credentials
// worker carries only the parts of @kubernetes/client-node that KubeConfig uses.
// The bundle keeps names and module comments (no minifying): stack traces stay readable.
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const USAGE = `Usage: node scripts/bundle.mjs [--dist DIR]

Bundles the agent's entry points (main/cli.js, workers/plan-worker.js, workers/io-worker.js,
workers/credentials-worker.js) of tsc's output DIR (default dist) into DIR/bundle/.
Run by \`npm run build\` after tsc.

Flags:
      --dist DIR   tsc's output directory (default dist).
  -h, --help       Print this help.
`;

const args = process.argv.slice(2);
if (args.includes('-h') || args.includes('--help')) {
  process.stdout.write(USAGE);
  process.exit(0);
}
let dist = 'dist';
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--dist' && i + 1 < args.length) dist = args[++i];
  else if (args[i].startsWith('--dist=')) dist = args[i].slice('--dist='.length);
  else {
    process.stderr.write(`Error: unknown flag: ${args[i]}\nRun with --help for usage.\n`);
    process.exit(2);
  }
}

const { build } = await import('esbuild');
const { genIndexStub } = await import(pathToFileURL(join(dist, 'workers/credentials-hooks.js')).href);

/**
 * client-node's KubeConfig imports two names from its generated API client, whose index loads
 * ~2,500 model modules: give config.js the two small modules instead, under the same check as
 * the unbundled worker's hooks (workers/credentials-hooks.ts). Another library version gets the
 * whole index (bigger, never wrong) and a warning.
 */
const genIndex = {
  name: 'kg-gen-index',
  setup(b) {
    b.onResolve({ filter: /^\.\/gen\/index\.js$/ }, (a) => {
      if (!a.importer.endsWith(join('@kubernetes', 'client-node', 'dist', 'config.js'))) return undefined;
      const stub = genIndexStub(readFileSync(a.importer, 'utf8'), pathToFileURL(a.importer).href);
      if (stub === null) {
        process.stderr.write('bundle: warning: @kubernetes/client-node config.js no longer imports what credentials-hooks knows: the whole API client is bundled\n');
        return undefined;
      }
      const contents = stub.replace(/"file:\/\/[^"]+"/g, (u) => JSON.stringify(fileURLToPath(JSON.parse(u))));
      return { path: a.importer, namespace: 'kg-gen-index', pluginData: { contents, resolveDir: dirname(a.importer) } };
    });
    b.onLoad({ filter: /.*/, namespace: 'kg-gen-index' }, (a) => ({ contents: a.pluginData.contents, resolveDir: a.pluginData.resolveDir, loader: 'js' }));
  },
};

const result = await build({
  entryPoints: ['main/cli.js', 'workers/plan-worker.js', 'workers/io-worker.js', 'workers/credentials-worker.js'].map((e) => join(dist, e)),
  outdir: join(dist, 'bundle'),
  // Entries and chunks side by side: a worker's URL (new URL('./io-worker.js', import.meta.url))
  // and ../../package.json resolve from any of them as from dist/main and dist/workers.
  entryNames: '[name]',
  chunkNames: 'chunk-[hash]',
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  keepNames: true,
  sourcemap: 'linked',
  legalComments: 'none',
  logLevel: 'warning',
  // CommonJS dependencies call require() for Node's built-ins.
  banner: { js: "import { createRequire as __kgRequire } from 'node:module'; const require = __kgRequire(import.meta.url);" },
  // The credentials worker registers its resolution hooks only when unbundled (the bundle has no imports left to hook).
  define: { KG_BUNDLED: 'true' },
  // piscina starts its workers from its own files (__dirname); `kg bench` spawns siblings of its
  // own modules: both stay where they are, loaded from node_modules and dist/bench.
  external: ['piscina', '../bench/capacity/command.js'],
  plugins: [genIndex],
  metafile: true,
});
const outs = Object.entries(result.metafile.outputs).filter(([f]) => f.endsWith('.js'));
const kb = outs.reduce((s, [, o]) => s + o.bytes, 0) / 1024;
process.stdout.write(`bundle: ${outs.length} files, ${kb.toFixed(0)} KiB in ${join(dist, 'bundle')}\n`);
