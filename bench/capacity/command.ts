// `kg bench` entry point: flags are checked before the measuring code (and its dependencies: the
// Kubernetes client, piscina, mitata) is loaded, so a bad flag fails at once.
import { flagHelp } from '../../main/flags.js';
import { BENCH_FLAGS, parseBenchFlags } from './options.js';

export const BENCH_USAGE = `kg bench measures what Kilo (kg) costs each node and the API server at a cluster size,
from this code on this machine: dataplane size for a leader and a non-leader, plan time (full and
incremental), kernel write cost (root: a scratch network namespace), agent memory, API-server load
per heartbeat mode, and fleet planning throughput.

Usage:
  kg bench [--nodes 5000] [--locations 50] [--peers 100] [--granularity location|full|cross] [-o table|json|markdown]
  kg bench --nodes-file FILE [--peers-file FILE] [--now UNIX_SECONDS]
  kg bench --sweep 100,1000,5000,10000 [--out-dir DIR]

Flags:
${flagHelp([...BENCH_FLAGS, { name: 'help', short: 'h', type: 'bool', default: false, usage: 'help for bench' }]).replace(' (default false)', '')}
`;

export async function runBench(argv: string[]): Promise<number> {
  const cfg = parseBenchFlags(argv);
  if (cfg.sweep.length > 0) return (await import('./sweep.js')).runSweep(cfg);
  const [{ runOne }, { formatResult }] = await Promise.all([import('./index.js'), import('./report.js')]);
  const tty = process.stderr.isTTY;
  // Under a sweep (KG_BENCH_PROGRESS=1) each step is a line the parent turns into its progress bar.
  const sweepChild = process.env.KG_BENCH_PROGRESS === '1';
  const res = await runOne(cfg, (step) => {
    if (sweepChild) process.stderr.write(`KG_BENCH_STEP ${step}\n`);
    else if (tty) process.stderr.write(`\r\x1b[Kkg bench: ${cfg.nodesFile || cfg.nodes + ' nodes'}: ${step}…`);
  });
  if (tty) process.stderr.write('\r\x1b[K');
  process.stdout.write(formatResult(res, cfg.output));
  return 0;
}
