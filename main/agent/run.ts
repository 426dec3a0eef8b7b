// `kg` (the agent): start-up in the Go agent's order (design §11.1), then run until SIGTERM/SIGINT.
// Only light modules are imported up front: the credentials worker starts first (main/cli.ts
// starts it before it loads this module), and loads the Kubernetes client library (the longest
// import) while this thread loads the agent's own modules.
import { readFileSync } from 'node:fs';
import type { Agent } from './agent.js';
import { discover, readHost } from './discovery.js';
import { AGENT_FLAGS, FlagError, parseFlags, toConfig, type Config } from '../flags.js';
import { loadNodeKey } from '../keys.js';
import { KubeClient } from '../../watch/kube.js';
import { workerCredentials } from '../../workers/credentials-client.js';
import { createLogger, type Logger } from '../log.js';
import type { Metrics } from './metrics.js';
import { tuneHeap } from './memory.js';
import { dualStackConfig, ipv6Usable } from './ipv6.js';
import { startProfiling } from '../profile.js';
import type { IoClient } from '../../workers/io-client.js';
import type { ApiCredentials } from '../../ipc/credentials.js';

/** The agent's heavier modules (prom-client, piscina, comlink and all the agent's rooms), loaded once the credentials worker runs. */
async function agentModules() {
  const [agent, http, metrics, pool, io] = await Promise.all([
    import('./agent.js'), import('./http.js'), import('./metrics.js'), import('../../workers/plan-pool.js'), import('../../workers/io-client.js'),
  ]);
  return { Agent: agent.Agent, createHttpServer: http.createHttpServer, parseListen: http.parseListen, createMetrics: metrics.createMetrics, PlanPool: pool.PlanPool, IoClient: io.IoClient };
}

/** Design §4.6: IPv6 iptables rules are skipped when the kernel has IPv6 disabled; an unreadable status is fatal, as in Go. */
function ipv6Enabled(): boolean {
  try {
    return readFileSync('/sys/module/ipv6/parameters/disable', 'utf8')[0] !== '1';
  } catch (e) {
    throw new Error(`failed to check IPv6 status: ${(e as Error).message}`);
  }
}

/** The I/O worker's client, its log lines and write errors going to the agent's log. */
function createIo(Io: typeof IoClient, cfg: Config, ipv6: boolean, metrics: Metrics, log: Logger, onRestart: () => void): IoClient {
  return new Io(
    // The agent drives resyncs (--resync-period re-plans, then re-reads the kernel when nothing
    // changed): a second timer in the worker would re-read every peer and rule twice.
    // Its route monitor still repairs route drift at once.
    { interface: cfg.interface, createInterface: cfg.createInterface, resyncPeriodMs: 0, ipv6, iptablesLayout: cfg.iptablesLayout },
    {
      registry: metrics.registry,
      onRestart,
      onEvent: (ev) => {
        if (ev.type === 'log') log[ev.level](ev.msg, { component: 'io-worker' });
        else if (ev.type === 'error') log.warn('dataplane write failed', { kind: ev.error.kind, item: ev.error.item, error: ev.error.message });
      },
    },
  );
}

/** A credentials load main/cli.ts started before it loaded the agent, and what stops it. */
export interface EarlyCredentials {
  load: Promise<ApiCredentials>;
  stop: AbortController;
}

export interface RunningAgent {
  agent: Agent;
  stop(): Promise<void>;
  port: number;
}

/**
 * The credentials worker process first (~0.6 s: Node and the client library), then this
 * thread's modules, the metrics, the keys and the kernel's IPv6 status.
 */
async function prepare(cfg: Config, log: Logger, early?: EarlyCredentials) {
  const stopLoading = early?.stop ?? new AbortController();
  const load = workerCredentials({ kubeconfig: cfg.kubeconfig, master: cfg.master }, { signal: stopLoading.signal });
  let first = early?.load;
  const client = new KubeClient(() => {
    const p = first ?? load();
    first = undefined;
    return p;
  });
  const credentialsLoaded = client.ready().then(() => log.info('Kubernetes credentials loaded', { sinceProcessStartMs: Math.round(performance.now()) }));
  credentialsLoaded.catch(() => {}); // awaited later; a failure must not count as unhandled meanwhile
  try {
    const m = await agentModules();
    const metrics = m.createMetrics();
    const keys = loadNodeKey(cfg.keyDir, log, (problem) => metrics.keyFileErrors.labels(problem).inc());
    return { client, stopLoading, credentialsLoaded, m, metrics, keys, ipv6: ipv6Enabled() };
  } catch (e) {
    stopLoading.abort();
    throw e;
  }
}

/** Starts the agent; resolves once it runs (fatal start-up errors reject). */
export async function startAgent(config: Config, log: Logger, version: string, early?: EarlyCredentials): Promise<RunningAgent> {
  log.info(`Starting Kilo network mesh '${version}'.`, { hostname: config.hostname, granularity: config.meshGranularity });
  const { client, stopLoading, credentialsLoaded, m, metrics, keys, ipv6 } = await prepare(config, log, early);
  const cfg = dualStackConfig(config, ipv6 && ipv6Usable(), (msg, f) => log.warn(msg, f), metrics.dualStackDisabled);
  const pool = new m.PlanPool({ threads: cfg.plannerThreads, topologyLabel: cfg.topologyLabel, claims: cfg.claims });
  let onIoRestart = () => {};
  const io = createIo(m.IoClient, cfg, ipv6, metrics, log, () => onIoRestart());
  const ioStarted = io.start();
  ioStarted.catch(() => {}); // awaited later; a failure must not count as unhandled meanwhile
  const closeThreads = async () => {
    stopLoading.abort();
    await pool.close().catch(() => {});
    await io.close().catch(() => {});
  };
  let host: Awaited<ReturnType<typeof discover>>;
  try {
    const [, read] = await Promise.all([credentialsLoaded, readHost(cfg.hostname)]);
    host = discover(read, { ignore: [cfg.interface, 'kube-bridge'], internalCIDRs: cfg.internalCIDRs });
    log.info('host discovered', { privateIP: host.privateIP?.s ?? null, publicIP: host.publicIP?.s ?? null, privateInterface: host.privateIface, mtu: host.autoMTU });
  } catch (e) {
    // A bad kubeconfig or host: stop the threads started above, then report.
    stopLoading.abort();
    await ioStarted.catch(() => {});
    await credentialsLoaded.catch(() => {});
    await closeThreads();
    throw e;
  }
  const agent = new m.Agent({
    config: cfg, log, client, metrics, pool, io, host, publicKey: keys.publicKey, privateKey: keys.privateKey,
    minSyncIntervalMs: cfg.minSyncIntervalMs, checkInPeriodMs: cfg.checkInPeriodMs, heartbeat: cfg.heartbeat,
    privateInterface: host.privateIface ?? 'eth0', tunnelInterface: cfg.compatibility === 'flannel' ? 'flannel.1' : 'tunl0',
  });
  onIoRestart = () => agent.ioRestarted();
  const shutdownResources = async () => {
    await closeThreads();
    client.close();
  };
  // The node list runs while the I/O worker starts, the CRD is checked and the listener binds;
  // any of those failing is fatal, as before (and as in Go).
  agent.listNodes();
  const server = m.createHttpServer({ registry: metrics.registry, health: () => agent.health(), graph: { version: () => agent.graphVersion(), dot: (max) => agent.graphDOT(max) } });
  const { host: listenHost, port } = m.parseListen(cfg.listen);
  const listening = new Promise<void>((resolve, reject) => {
    server.once('error', (e) => reject(new Error(`failed to listen on ${cfg.listen}: ${e.message}`)));
    server.listen(port, listenHost, resolve);
  });
  const checks = await Promise.allSettled([ioStarted, agent.checkCRD(), listening]);
  const failed = checks.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    await agent.abortStart();
    server.close();
    await shutdownResources();
    throw failed.reason;
  }
  agent.start();
  const addr = server.address();
  return {
    agent,
    port: typeof addr === 'object' && addr ? addr.port : port,
    stop: async () => {
      await agent.stop();
      await new Promise<void>((r) => server.close(() => r()));
      server.closeAllConnections();
      await shutdownResources();
    },
  };
}

export async function runAgent(argv: string[], version: string, early?: EarlyCredentials): Promise<number> {
  const { values, positionals } = parseFlags(argv, AGENT_FLAGS);
  if (positionals.length > 0) throw new FlagError(`unknown command "${positionals[0]}" for "kg"`);
  const cfg = toConfig(values);
  const log = createLogger({ level: cfg.logLevel, format: cfg.logFormat });
  tuneHeap();
  startProfiling(process.env.KG_CPU_PROFILE, log);
  const running = await startAgent(cfg, log, version, early);
  await new Promise<void>((resolve) => {
    const onSignal = () => {
      log.info('caught interrupt; gracefully cleaning up; see you next time!');
      resolve();
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });
  // Bounded: clean-up may not hang the pod's termination forever.
  const timer = setTimeout(() => {
    log.error('clean-up took too long; exiting');
    process.exit(1);
  }, 60_000);
  timer.unref();
  await running.stop();
  return 0;
}
