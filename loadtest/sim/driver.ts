#!/usr/bin/env node
// The load test's API simulator process: the simulator (loadtest/apiserver) with N generated
// nodes and P Peers, heartbeats in a heartbeat mode, and an IPC channel through which the load
// test (loadtest/run.ts, in another network namespace) changes the cluster and reads counters.
// Changes are written straight into the store, so the time a reply carries is the moment the
// change exists at the API server (the start of event → programmed).
//   started by loadtest/mesh/harness.ts (apiScript) with the simulator's own arguments plus
//   --nodes N --peers P --locations L --heartbeat kilo|adaptive --heartbeat-budget W --check-in-period S
import { commandFlags } from '../../main/flags.js';
import { generateNodes, generatePeers, wireguardKeyPair } from '../apiserver/generate.js';
import { checkInAnnotations, modeHeartbeats, type Heartbeats } from '../apiserver/heartbeat.js';
import { startApiServer } from '../apiserver/server.js';
import { HELP_FLAG, SIMULATOR_FLAGS } from '../apiserver/options.js';
import type { FaultSettings } from '../apiserver/faults.js';
import type { KubeObject } from '../apiserver/types.js';
import { checkInPeriodSeconds, CHECK_IN_PERIOD_ANNOTATION, type HeartbeatMode, type HeartbeatPolicy } from '../../plan/heartbeat.js';
import type { SimCommand, SimReply, SimStats } from './protocol.js';

const values = commandFlags(process.argv.slice(2), [
  ...SIMULATOR_FLAGS,
  { name: 'heartbeat', type: 'string', default: 'kilo', usage: 'Heartbeat mode of the simulated nodes: kilo or adaptive.' },
  { name: 'heartbeat-budget', type: 'string', default: '15', usage: 'Adaptive mode: cluster-wide Node writes per second.' },
  { name: 'check-in-period', type: 'string', default: '30', usage: 'The nodes\' check-in period in seconds (the minimum in adaptive mode).' },
  HELP_FLAG,
], 'node dist/loadtest/sim/driver.js [flags]   (started by the load test, with an IPC channel)',
'The load test\'s API simulator process: the simulator with generated nodes and Peers, heartbeats in a\nheartbeat mode, and an IPC channel through which the load test changes the cluster and reads counters.');
const str = (name: string): string | undefined => (values[name] as string) || undefined;

const clock = () => performance.timeOrigin + performance.now();
const count = Number(values.nodes);
const mode = values.heartbeat as HeartbeatMode;
if (mode !== 'kilo' && mode !== 'adaptive') throw new Error(`--heartbeat ${mode}: expected kilo or adaptive`);
const policy: HeartbeatPolicy = { mode, minPeriodSeconds: Number(values['check-in-period']), budget: Number(values['heartbeat-budget']) };
const nodes = count > 0 ? generateNodes({ count, locations: str('locations') ? Number(str('locations')) : undefined }) : [];
// Adaptive nodes advertise their period from the start, as their agents would after one check-in.
const extra = checkInAnnotations(policy, count);
for (const n of nodes) Object.assign(n.metadata.annotations!, extra);
const peers = Number(values.peers) > 0 ? generatePeers({ count: Number(values.peers) }) : [];
const srv = await startApiServer({
  https: values.https as boolean, host: values.host as string, port: Number(values.port), nodes, peers, loadCrds: true,
  kubeconfigPath: str('kubeconfig'), historySize: str('history-size') ? Number(str('history-size')) : undefined,
});
const store = srv.store;
const nodeT = store.nodes();
const peerT = store.typeFor('Peer', 'kilo.squat.ai/v1alpha1')!;
const skip = new Set<string>();
let transition: NodeJS.Timeout | null = null;
/** Heartbeats of earlier modes (a mode switch starts a new driver). */
const hbBefore = { sent: 0, failed: 0 };
let hb: Heartbeats & { periodSeconds: number } = modeHeartbeats(store, { names: nodes.map((n) => n.metadata.name!), policy, nodeCount: count, skip });

function stats(): SimStats {
  const c = srv.counters;
  const requests: Record<string, number> = {};
  for (const [k, v] of c.requests) requests[k.split('\u0000').join(' ')] = v;
  return {
    at: clock(), writes: store.counters.writes, watchEventsSent: c.watchEventsSent, watchBytesSent: c.watchBytesSent,
    bytesSent: c.bytesSent, watchers: srv.watchCount(), requests, totalRequests: c.totalRequests(),
    heartbeatsSent: hbBefore.sent + hb.sent(), heartbeatsFailed: hbBefore.failed + hb.failed(), heartbeatPeriodSeconds: hb.periodSeconds,
    objects: store.objectCounts(), faults: { ...srv.faults.injected },
  };
}

/** Only the fields kg reads: the fleet check needs a snapshot of 5,000 nodes, not 50 MB. */
function slim(o: KubeObject): KubeObject {
  return { apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata.name, labels: o.metadata.labels, annotations: o.metadata.annotations }, spec: { podCIDR: (o.spec as { podCIDR?: string } | undefined)?.podCIDR } };
}

function handle(m: SimCommand): unknown {
  const now = String(Math.floor(Date.now() / 1000));
  switch (m.op) {
    case 'addNode': {
      const o = generateNodes({ count: 1, realistic: true, lastSeen: Number(now), locations: [m.location] })[0];
      o.metadata.name = m.name;
      o.metadata.labels!['kubernetes.io/hostname'] = m.name;
      Object.assign(o.metadata.annotations!, extra, { 'kilo.squat.ai/endpoint': m.endpoint, 'kilo.squat.ai/internal-ip': m.internalIP });
      (o.spec as Record<string, unknown>).podCIDR = m.podCIDR;
      (o.spec as Record<string, unknown>).podCIDRs = [m.podCIDR];
      store.create(nodeT, o);
      return { at: clock() };
    }
    case 'deleteNode':
      store.delete(nodeT, undefined, m.name);
      return { at: clock() };
    case 'stopHeartbeat': {
      // The node's agent dies: no more check-ins, and its last check-in is backdated past the
      // readiness window so that readers drop it now rather than a minute from now.
      skip.add(m.name);
      store.patchAnnotations(nodeT, undefined, m.name, { 'kilo.squat.ai/last-seen': String(Number(now) - m.agoSeconds) });
      return { at: clock() };
    }
    case 'resumeHeartbeat':
      skip.delete(m.name);
      store.patchAnnotations(nodeT, undefined, m.name, { 'kilo.squat.ai/last-seen': now });
      return { at: clock() };
    case 'rotateKey': {
      const k = wireguardKeyPair();
      store.patchAnnotations(nodeT, undefined, m.name, { 'kilo.squat.ai/key': k.publicKey });
      return { at: clock(), publicKey: k.publicKey };
    }
    case 'addPeer': {
      const k = wireguardKeyPair();
      store.create(peerT, { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: m.name }, spec: { allowedIPs: [m.allowedIP], publicKey: k.publicKey, persistentKeepalive: 25 } });
      return { at: clock(), publicKey: k.publicKey };
    }
    case 'deletePeer':
      store.delete(peerT, undefined, m.name);
      return { at: clock() };
    case 'faults':
      return { at: clock(), settings: m.settings === null ? srv.faults.clear() : srv.faults.set(m.settings as Partial<FaultSettings>) };
    case 'dropWatches':
      return { at: clock(), dropped: srv.faults.dropWatches(m.abrupt ?? false) };
    case 'heartbeat': {
      // Switch the simulated nodes' heartbeat mode (the real agents keep their own flag). As a
      // fleet of agents would: one round at Kilo's period that publishes the new mode's
      // annotation (or removes it), then the new period. Switching at once would leave nodes
      // that have not checked in yet with Kilo's 60 s window and an old last-seen: not ready.
      const names = nodes.map((n) => n.metadata.name!);
      const p: HeartbeatPolicy = { ...policy, mode: m.mode };
      const ann: Record<string, string | null> = m.mode === 'adaptive' ? checkInAnnotations(p, count) : { [CHECK_IN_PERIOD_ANNOTATION]: null };
      const switchRound = () => {
        void hb.stop();
        hbBefore.sent += hb.sent();
        hbBefore.failed += hb.failed();
      };
      switchRound();
      hb = modeHeartbeats(store, { names, policy: p, nodeCount: count, skip, periodSeconds: policy.minPeriodSeconds, annotations: ann, rounds: 1 });
      const transitionMs = policy.minPeriodSeconds * 1000 + 500;
      transition = setTimeout(() => {
        switchRound();
        hb = modeHeartbeats(store, { names, policy: p, nodeCount: count, skip });
      }, transitionMs);
      return { at: clock(), periodSeconds: checkInPeriodSeconds(p, count), transitionMs };
    }
    case 'stats':
      return stats();
    case 'snapshot':
      return {
        at: clock(),
        nodes: store.list(nodeT).items.map((i) => slim(i.obj ?? (JSON.parse(i.json.toString('utf8')) as KubeObject))),
        peers: store.list(peerT).items.map((i) => i.obj ?? (JSON.parse(i.json.toString('utf8')) as KubeObject)),
      };
  }
}

process.on('message', (raw) => {
  const m = raw as SimCommand & { id: number };
  let reply: SimReply;
  try {
    reply = { id: m.id, ok: true, value: handle(m) };
  } catch (e) {
    reply = { id: m.id, ok: false, error: (e as Error).message };
  }
  process.send!(reply);
});
// The harness waits for this line.
console.log(JSON.stringify({ url: srv.url, port: srv.port, kubeconfig: str('kubeconfig') ?? null, pid: process.pid, heartbeatPeriodSeconds: hb.periodSeconds }));

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  if (transition) clearTimeout(transition);
  await hb.stop();
  await srv.stop();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
// The load test owns this process: when its channel closes, stop.
process.on('disconnect', shutdown);
