#!/usr/bin/env node
// `kg`: the agent's command line. Subcommands: plan, version; with no subcommand, the agent.
import { readFileSync } from 'node:fs';
import { exitAfterDrain, isEntry } from './entry.js';
import { AGENT_FLAGS, PLAN_FLAGS, flagHelp, parseFlags, validateLogLevel } from './flags.js';
import { loadCredentialsInWorker } from '../workers/credentials-client.js';

export function version(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string };
    return pkg.version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

const USAGE = `kg is the Kilo agent: it joins this node to the WireGuard mesh.

Usage:
  kg [flags]              run the agent
  kg plan [flags]         print what the agent would program on one node, offline
  kg bench [flags]        measure what kg costs each node and the API server at a cluster size
  kg webhook [flags]      run the Peer validating admission webhook (HTTPS)
  kg version              print the version

Flags:
${flagHelp(AGENT_FLAGS)}
  -h, --help                           help for kg
`;

const PLAN_USAGE = `kg plan computes, without touching the kernel or an API server, everything the agent
would program on one node: topology, routes, rules, WireGuard, iptables and CNI.

Usage:
  kg plan --hostname NAME --nodes FILE [--peers FILE] [--now UNIX_SECONDS] [-o json|text] [flags]

Flags:
${flagHelp([...PLAN_FLAGS, ...AGENT_FLAGS])}
  -h, --help                           help for plan
`;

export async function main(argv: string[]): Promise<number> {
  const help = argv.includes('--help') || argv.includes('-h');
  if (argv[0] === 'version') {
    if (help) {
      process.stdout.write('Print the version.\n\nUsage:\n  kg version\n');
      return 0;
    }
    // The agent's flags are accepted and ignored; an unknown one is an error.
    parseFlags(argv.slice(1), AGENT_FLAGS);
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  if (argv[0] === 'help') {
    process.stdout.write(USAGE);
    return 0;
  }
  if (argv[0] === 'plan') {
    if (help) {
      process.stdout.write(PLAN_USAGE);
      return 0;
    }
    const { runPlan } = await import('./plan-command.js');
    return runPlan(argv.slice(1));
  }
  if (argv[0] === 'webhook') {
    // Subcommands load their modules on demand: the agent's start-up does not pay for them.
    const { WEBHOOK_FLAGS, runWebhook } = await import('./webhook.js');
    if (help) {
      process.stdout.write(`kg webhook validates Peers for the API server (POST /validate, AdmissionReview v1).\n\nUsage:\n  kg webhook --cert-file FILE --key-file FILE [flags]\n\nFlags:\n${flagHelp(WEBHOOK_FLAGS)}\n`);
      return 0;
    }
    return runWebhook(argv.slice(1), version());
  }
  if (argv[0] === 'bench') {
    // Loaded on demand: the agent never pays for the benchmark's imports.
    const bench = await import('../bench/capacity/command.js');
    if (help) {
      process.stdout.write(bench.BENCH_USAGE);
      return 0;
    }
    return bench.runBench(argv.slice(1));
  }
  if (help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const { values } = parseFlags(argv, AGENT_FLAGS);
  // Log level is validated before --version, as in Go (design §12.2).
  if (values.version) {
    validateLogLevel(values['log-level'] as string);
    process.stdout.write(`${version()}\n`);
    return 0;
  }
  // The credentials worker process first: its Node start and the Kubernetes client library's
  // import are the longest step before the lists, and run while this thread loads the agent.
  const stop = new AbortController();
  const load = loadCredentialsInWorker({ kubeconfig: values.kubeconfig as string, master: values.master as string }, { signal: stop.signal });
  load.catch(() => {}); // awaited by the agent; a failure must not count as unhandled meanwhile
  try {
    const { runAgent } = await import('./agent/run.js');
    return await runAgent(argv, version(), { load, stop });
  } finally {
    stop.abort(); // a load still running (the agent failed to start) ends with its process group
  }
}

if (isEntry(import.meta.url)) {
  main(process.argv.slice(2)).then(
    exitAfterDrain,
    (err: unknown) => {
      process.stderr.write(`Error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
