// `kgctl connect` (design §14.4): makes this machine a Peer of the mesh. It registers the Peer,
// runs its own WireGuard interface (kernel, or wireguard-go when the kernel has none) and keeps
// the interface's peers (PeerConf, §6.2) and routes (PeerRoutes, §7.8) in step with the cluster.
// The kernel is written by kg's own reconcilers (dataplane/), which write only differences.
import { lookup } from 'node:dns/promises';
import { readFileSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { network, parseCIDR, parseIP } from '../../plan/addr.js';
import { endpointStringOpt, withResolved } from '../../plan/endpoint.js';
import { parseKey, publicKeyOf } from '../../plan/key.js';
import type { MeshNode, NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import { KILO_TABLE } from '../../plan/routes.js';
import { peerConf } from '../../plan/wireguard.js';
import type { DesiredPeer, DesiredWireGuard, ReconcilerReport } from '../../ipc/dataplane.js';
import { Exec } from '../../dataplane/exec.js';
import { RouteReconciler } from '../../dataplane/routes.js';
import { WireGuardReconciler } from '../../dataplane/wireguard.js';
import { FlagError, parseDuration, validateLogLevel, type FlagValues } from '../flags.js';
import { KubeError } from '../../watch/kube-error.js';
import type { KubeClient } from '../../watch/kube.js';
import { generateKeyPair } from '../keys.js';
import { createLogger, type Logger } from '../log.js';
import { Reflector } from '../../watch/reflector.js';
import { PEERS_PATH, checkCRD, client } from './cluster.js';
import {
  KgctlError, connectSubnet, parseAllowedIPs, parseListed, peerRoutes, readyNodes, topology, view,
  type GranularityFlag, type Listed,
} from './model.js';

/** §6.8: the key from `--private-key` (newlines tolerated) or a fresh one. */
export function loadPrivateKey(file: string): { privateKey: string; publicKey: string; generated: boolean } {
  if (!file) return { ...generateKeyPair(), generated: true };
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    throw new KgctlError(`failed to read private key file ${file}: ${(e as Error).message}`);
  }
  const key = parseKey(text.replace(/\s+/g, ''));
  if (!key) throw new KgctlError(`private key file ${file} does not hold a base64 WireGuard key`);
  return { privateKey: key, publicKey: publicKeyOf(key), generated: false };
}

/** DNS endpoints resolved; a node whose endpoint does not resolve aborts the sync (§14.4 step 6). */
async function resolveNodes(nodes: readonly MeshNode[]): Promise<MeshNode[]> {
  return Promise.all(nodes.map(async (n) => {
    const e = n.endpoint;
    if (!e || e.ip || !e.dns) return n;
    const host = e.dns.slice(0, e.dns.lastIndexOf(':'));
    const r = await lookup(host).catch((err: Error) => {
      throw new KgctlError(`failed to resolve the endpoint ${e.dns} of node ${n.name}: ${err.message}`);
    });
    const ip = parseIP(r.address);
    return ip ? { ...n, endpoint: withResolved(e, ip) } : n;
  }));
}

export interface ConnectOptions {
  name: string;
  iface: string;
  port: number;
  mtu: number;
  allowedIP: string;
  extra: string[];
  keepalive: number;
  granularity: GranularityFlag;
  privateKey: string;
}

/** The desired device and routes for one sync, from the listed cluster (pure but for DNS). */
export async function desiredFor(l: Listed, o: ConnectOptions, now: number): Promise<{ wg: DesiredWireGuard; routes: ReturnType<typeof peerRoutes> }> {
  const extra = parseAllowedIPs(o.extra);
  const nodes = await resolveNodes(l.nodes);
  const subnet = connectSubnet(nodes);
  // --allowed-ips ride on the alphabetically first ready node's allowed location IPs (§14.4).
  const first = readyNodes(nodes, now).map((n) => n.name).sort()[0];
  const withExtra = extra.length && first ? nodes.map((n) => (n.name === first ? { ...n, allowedLocationIPs: [...n.allowedLocationIPs, ...extra] } : n)) : nodes;
  const v = view({ ...l, nodes: withExtra }, { granularity: o.granularity, now }, subnet);
  if (!v.peers.some((p) => p.name === o.name)) throw new KgctlError(`peer ${JSON.stringify(o.name)} is not ready (is it valid, with allowed IPs and a public key?)`);
  const t = topology(v, v.lastReady, o.port);
  const conf = peerConf(t, o.name);
  const peers: DesiredPeer[] = conf.peers.map((p) => ({
    publicKey: p.publicKey,
    endpoint: endpointStringOpt(p.endpoint) || null,
    allowedIPs: p.allowedIPs.map((c) => c.s),
    persistentKeepalive: p.persistentKeepalive,
    presharedKey: p.presharedKey !== null,
    ...(p.presharedKey ? { presharedKeySecret: p.presharedKey } : {}),
  }));
  return {
    wg: { privateKey: o.privateKey, listenPort: o.port, mtu: o.mtu, address: o.allowedIP, peers },
    routes: peerRoutes(t, o.iface, o.name, extra),
  };
}

function reportErrors(log: Logger, reports: ReconcilerReport[]): number {
  let n = 0;
  for (const r of reports) for (const e of r.errors) {
    n++;
    log.error('failed to apply', { kind: e.kind, item: e.item, error: e.message });
  }
  return n;
}

async function ensurePeer(c: KubeClient, name: string, spec: Record<string, unknown>, log: Logger): Promise<boolean> {
  try {
    await c.request('GET', `${PEERS_PATH}/${encodeURIComponent(name)}`);
    // An existing Peer is not updated: its key may belong to another private key (§14.4 step 3).
    log.info('using the existing Peer', { peer: name });
    return false;
  } catch (e) {
    if (!(e instanceof KubeError) || e.status !== 404) throw e;
  }
  await c.request('POST', PEERS_PATH, { body: { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name }, spec } });
  log.info('created the Peer', { peer: name });
  return true;
}

/** The validated flags of `kgctl connect`, and the private key. */
function connectOptions(v: FlagValues, nameArg: string | undefined, g: { granularity: GranularityFlag; port: number }, log: Logger): { o: ConnectOptions; resyncMs: number; publicKey: string } {
  const name = nameArg ?? osHostname();
  const a = parseCIDR(v['allowed-ip'] as string);
  if (!a) throw new FlagError(`failed to parse ${JSON.stringify(v['allowed-ip'])} as CIDR`);
  const allowedIP = network(a);
  parseAllowedIPs(v['allowed-ips'] as string[]);
  const mtu = v.mtu as number;
  if (!Number.isInteger(mtu) || mtu < 576 || mtu > 65535) throw new FlagError(`invalid --mtu ${mtu}`);
  const keepalive = v['persistent-keepalive'] as number;
  if (!Number.isInteger(keepalive) || keepalive < 0 || keepalive > 65535) throw new FlagError(`invalid --persistent-keepalive ${keepalive}`);
  const resyncMs = parseDuration(v['resync-period'] as string) ?? 30_000;
  if (resyncMs < 1000) throw new FlagError('--resync-period must be at least 1s');
  const key = loadPrivateKey(v['private-key'] as string);
  log.info(key.generated ? 'generated a private key' : 'loaded the private key', { publicKey: key.publicKey });
  const o: ConnectOptions = {
    name, iface: v.interface as string, port: g.port, mtu, allowedIP: allowedIP.s, extra: v['allowed-ips'] as string[],
    keepalive, granularity: g.granularity, privateKey: key.privateKey,
  };
  return { o, resyncMs, publicKey: key.publicKey };
}

interface ConnectDataplane {
  wg: WireGuardReconciler;
  routes: RouteReconciler;
}

/** The WireGuard link first (address, MTU, up), with no peers yet; then the routes' reconciler. */
async function bringUp(o: ConnectOptions, log: Logger): Promise<ConnectDataplane> {
  const exec = new Exec();
  const wg = new WireGuardReconciler(exec, { interface: o.iface, createInterface: true, mode: 'auto', wireguardGo: 'wireguard-go', uapiDir: '/var/run/wireguard' });
  const routes = new RouteReconciler(exec, KILO_TABLE);
  wg.setDesired({ privateKey: o.privateKey, listenPort: o.port, mtu: o.mtu, address: o.allowedIP, peers: [] });
  const first = await wg.reconcile(true);
  if (first.errors.length) throw new KgctlError(`failed to set up ${o.iface}: ${first.errors.map((e) => e.message).join('; ')}`);
  log.info('interface up', { interface: o.iface, mode: wg.getMode(), address: o.allowedIP });
  return { wg, routes };
}

/**
 * Watches Nodes and Peers and applies the desired device and routes after each change (coalesced)
 * and every resync period (re-reading the kernel); stop() returns after the sync in progress.
 */
function syncLoop(kube: KubeClient, o: ConnectOptions, dp: ConnectDataplane, topologyLabel: string, resyncMs: number, log: Logger): { lastSync(): number; stop(): Promise<void> } {
  const stores = { nodes: new Map<string, NodeObject>(), peers: new Map<string, PeerObject>() };
  let timer: NodeJS.Timeout | null = null;
  let running: Promise<void> = Promise.resolve();
  let stopping = false;
  let lastSync = 0;
  const sync = (reread: boolean) => {
    running = running.then(async () => {
      if (stopping) return;
      try {
        const l = parseListed([...stores.nodes.values()], [...stores.peers.values()], topologyLabel);
        const d = await desiredFor(l, o, Math.floor(Date.now() / 1000));
        dp.wg.setDesired(d.wg);
        dp.routes.setDesired(d.routes);
        const reports: ReconcilerReport[] = [];
        reports.push(await dp.wg.reconcile(reread, async () => void reports.push(await dp.routes.reconcile(reread))));
        if (reportErrors(log, reports) === 0) log.debug('in sync', { peers: d.wg.peers.length, routes: d.routes.length });
        lastSync = Date.now();
      } catch (e) {
        log.error('failed to sync', { error: (e as Error).message });
      }
    });
  };
  // Watch events are coalesced (100 ms); the resync period re-reads the kernel and repairs drift.
  const schedule = () => {
    if (timer || stopping) return;
    timer = setTimeout(() => {
      timer = null;
      sync(false);
    }, 100);
  };
  const reflector = <T>(path: string, store: Map<string, T>) => new Reflector<T>({
    client: kube, path, log,
    slim: (x) => x as T,
    onEvent: (e) => {
      if (e.type === 'delete') store.delete(e.name);
      else store.set(e.name, e.obj);
      schedule();
    },
    onSynced: schedule,
  });
  const nodes = reflector('/api/v1/nodes', stores.nodes);
  const peers = reflector(PEERS_PATH, stores.peers);
  nodes.start();
  peers.start();
  const resync = setInterval(() => {
    if (nodes.hasSynced && peers.hasSynced) sync(true);
  }, resyncMs);
  return {
    lastSync: () => lastSync,
    async stop() {
      stopping = true;
      clearInterval(resync);
      if (timer) clearTimeout(timer);
      await Promise.all([nodes.stop(), peers.stop()]);
      await running;
    },
  };
}

/** With --clean-up: the routes and the interface, and the Peer if this run created it. */
async function cleanUp(kube: KubeClient, dp: ConnectDataplane, name: string, created: boolean, log: Logger): Promise<void> {
  reportErrors(log, [await dp.routes.cleanUp(), await dp.wg.cleanUp(true)]);
  if (!created) return;
  try {
    await kube.request('DELETE', `${PEERS_PATH}/${encodeURIComponent(name)}`, { timeoutMs: 10_000 });
    log.info('deleted the Peer', { peer: name });
  } catch (e) {
    log.error('failed to delete the Peer', { peer: name, error: (e as Error).message });
  }
}

export async function runConnect(v: FlagValues, nameArg: string | undefined, g: { granularity: GranularityFlag; port: number }): Promise<number> {
  const log = createLogger({ level: validateLogLevel(v['log-level'] as string), caller: 'kgctl' });
  const { o, resyncMs, publicKey } = connectOptions(v, nameArg, g, log);
  const kube = client(v);
  await checkCRD(kube);
  const created = await ensurePeer(kube, o.name, { allowedIPs: [o.allowedIP], persistentKeepalive: o.keepalive, publicKey }, log);
  const dp = await bringUp(o, log);
  const loop = syncLoop(kube, o, dp, v['topology-label'] as string, resyncMs, log);
  await new Promise<void>((resolve) => {
    const done = () => resolve();
    process.once('SIGINT', done);
    process.once('SIGTERM', done);
  });
  const lastSync = loop.lastSync();
  log.info('caught interrupt; gracefully cleaning up; see you next time!', { lastSync: lastSync ? new Date(lastSync).toISOString() : null });
  await loop.stop();
  if (v['clean-up']) await cleanUp(kube, dp, o.name, created, log);
  // Without --clean-up the interface stays; a wireguard-go we started keeps running with it.
  kube.close();
  return 0;
}
