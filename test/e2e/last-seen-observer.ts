// A second observer of the cluster, as another agent would be: a list+watch of Nodes (kg's own
// Reflector, which rides through outages and relists) that prints, for every event, the time it
// arrived and the node's kilo.squat.ai/last-seen, one JSON line each. Run inside the API's network
// namespace: node last-seen-observer.js <kubeconfig>. Ends on SIGTERM or when stdin closes.
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { KubeClient } from '../../watch/kube.js';
import { inProcessCredentials } from '../../workers/kube-config.js';
import { silentLogger } from '../../main/log.js';
import { Reflector } from '../../watch/reflector.js';

export interface Observation {
  t: number;
  node: string;
  lastSeen?: number;
  deleted?: true;
  /** A complete list arrived (node "*"). */
  synced?: true;
}

/**
 * The oldest any node's last-seen got, in seconds, as seen by a reader evaluating readiness at
 * every moment between `from` and `to` (ms): per node, the newest last-seen received so far,
 * aged until the next one arrives.
 */
export function maxLastSeenAge(obs: Observation[], from: number, to: number): Map<string, number> {
  const held = new Map<string, number>();
  const worst = new Map<string, number>();
  const age = (node: string, at: number) => {
    const ls = held.get(node);
    if (ls === undefined || at < from) return;
    worst.set(node, Math.max(worst.get(node) ?? 0, Math.min(at, to) / 1000 - ls));
  };
  for (const o of [...obs].sort((a, b) => a.t - b.t)) {
    if (o.t > to) break;
    age(o.node, o.t);
    if (o.lastSeen !== undefined && o.node !== '*') held.set(o.node, Math.max(held.get(o.node) ?? 0, o.lastSeen));
  }
  for (const node of held.keys()) age(node, to);
  return worst;
}

async function main(kubeconfig: string): Promise<void> {
  const client = new KubeClient(inProcessCredentials({ kubeconfig, master: '' }));
  const print = (o: Observation) => process.stdout.write(JSON.stringify(o) + '\n');
  const r = new Reflector<{ lastSeen: number }>({
    client, path: '/api/v1/nodes', log: silentLogger, watchTimeoutSeconds: 60, backoffInitialMs: 100, backoffMaxMs: 1000,
    slim: (o) => ({ lastSeen: Number((o.metadata as { annotations?: Record<string, string> }).annotations?.['kilo.squat.ai/last-seen'] ?? 0) }),
    onSynced: () => print({ t: Date.now(), node: '*', synced: true }),
    onEvent: (e) => print(e.type === 'delete' ? { t: Date.now(), node: e.name, deleted: true } : { t: Date.now(), node: e.name, lastSeen: e.obj.lastSeen }),
  });
  r.start();
  const stop = () => void r.stop().then(() => {
    client.close();
    process.exit(0);
  });
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) void main(process.argv[2]);
