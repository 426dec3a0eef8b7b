// The cost of crash-safe batches (a benchmark, not a test): the same `ip -batch` of N routes and
// `iptables-restore` of N rules given to the tool through a pipe (the old path) and through a
// complete, unlinked private file (dataplane/exec.ts batch), interleaved in one process, in a
// network namespace this program creates and deletes. Routes go via 50 gateways (a mesh of 50
// locations): the kernel takes ~0.3 ms per route when every route has a gateway of its own.
//
//   node dist/bench/batch-file.js [--routes=10000] [--rules=10000] [--reps=9]   (--help)

import { Exec } from '../dataplane/exec.js';
import { KG_PROTO } from '../kernel/owner.js';
import { commandFlags, FlagError, type FlagDef } from '../main/flags.js';
import { TestNode, cleanupMntRoot, requireTool } from '../test/dataplane/netns.js';

const FLAGS: FlagDef[] = [
  { name: 'routes', type: 'int', default: 10_000, usage: 'Routes in the ip -batch.' },
  { name: 'rules', type: 'int', default: 10_000, usage: 'Rules in the iptables-restore input.' },
  { name: 'reps', type: 'int', default: 9, usage: 'Repetitions of each path (interleaved).' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];

const o = commandFlags(
  process.argv.slice(2),
  FLAGS,
  'node dist/bench/batch-file.js [flags]',
  'The same ip -batch and iptables-restore input through a pipe and through a private file\n(the crash-safe path), interleaved, in a network namespace this program creates (needs root).',
  (v) => {
    for (const n of ['routes', 'rules', 'reps']) if ((v[n] as number) < 1) throw new FlagError(`--${n} must be at least 1`);
  },
);
const ROUTES = o.routes as number;
const RULES = o.rules as number;
const REPS = o.reps as number;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const min = (xs: number[]): number => Math.min(...xs);

async function timed(fn: () => Promise<{ code: number; stderr: string }>): Promise<number> {
  const t0 = performance.now();
  const r = await fn();
  const ms = performance.now() - t0;
  if (r.code !== 0) throw new Error(r.stderr);
  return ms;
}

async function pair(name: string, lines: string[], cmd: string, args: string[], exec: Exec, reset: () => Promise<void>): Promise<void> {
  const pipe: number[] = [];
  const file: number[] = [];
  for (let i = 0; i < REPS; i++) {
    // alternate which goes first, so that neither always runs on a warmer kernel
    for (const which of i % 2 === 0 ? ['pipe', 'file'] : ['file', 'pipe']) {
      await reset();
      if (which === 'pipe') pipe.push(await timed(() => exec.run(cmd, args, lines.join('\n') + '\n')));
      else file.push(await timed(() => exec.batch(cmd, args, lines)));
    }
  }
  const bytes = lines.reduce((a, l) => a + l.length + 1, 0);
  console.log(`${name} (${lines.length} lines, ${(bytes / 1024).toFixed(0)} KiB), ${REPS} reps each:`);
  console.log(`  pipe (stdin)   min ${min(pipe).toFixed(1)} ms  median ${median(pipe).toFixed(1)} ms`);
  console.log(`  private file   min ${min(file).toFixed(1)} ms  median ${median(file).toFixed(1)} ms`);
  console.log(`  file / pipe    median ${(median(file) / median(pipe)).toFixed(3)}x  (+${(median(file) - median(pipe)).toFixed(1)} ms)`);
}

async function main(): Promise<void> {
  requireTool('ip', 'iptables-legacy-restore');
  const node = TestNode.create('batchbench');
  try {
    node.ip('link', 'add', 'kilo0', 'type', 'bridge');
    node.ip('addr', 'add', '10.4.0.1/16', 'dev', 'kilo0');
    node.ip('link', 'set', 'kilo0', 'up');
    const exec = new Exec(node.nsenter);
    const routes = Array.from({ length: ROUTES }, (_, i) => `route replace 10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 via 10.5.0.${1 + (i % 50)} dev kilo0 onlink proto ${KG_PROTO}`);
    // delivery alone: the same bytes to a consumer that only reads them
    await pair('delivery only (cat > /dev/null)', routes, 'sh', ['-c', 'cat > /dev/null'], exec, async () => {});
    await pair('ip -force -batch', routes, 'ip', ['-force', '-batch', '-'], exec, async () => void (await exec.run('ip', ['route', 'flush', 'proto', String(KG_PROTO)])));
    const rules = ['*nat', ':KILO-NAT - [0:0]', ...Array.from({ length: RULES }, (_, i) => `-A KILO-NAT -d 10.${64 + (i >> 16)}.${(i >> 8) & 255}.${i & 255}/32 -m comment --comment "Kilo: do not NAT packets destined for known IPs" -j RETURN`), 'COMMIT'];
    await pair('iptables-legacy-restore --noflush', rules, 'iptables-legacy-restore', ['--noflush', '--wait'], exec, async () => void (await exec.run('iptables-legacy-restore', ['--noflush', '--wait'], '*nat\n:KILO-NAT - [0:0]\nCOMMIT\n')));
  } finally {
    node.destroy();
    cleanupMntRoot();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
