#!/usr/bin/env node
// `kgctl`: Kilo's command-line tool (design §14): graph, showconf, connect. It reads the cluster
// through the same Kubernetes client as kg and builds the topology with the same planner.
import { readFileSync } from 'node:fs';
import { exitAfterDrain, isEntry } from './entry.js';
import { stringify } from 'yaml';
import { topologyDOT } from '../plan/graph.js';
import { deviceConf, peerConf, renderINI, segmentAsPeer, type WGPeer } from '../plan/wireguard.js';
import { flagHelp, FlagError, parseFlags, type FlagDef, type FlagValues } from './flags.js';
import { client, listCluster } from './kgctl/cluster.js';
import {
  KgctlError, parseAllowedIPs, peerObject, topology, view, withAllowedIPs,
  type GranularityFlag, type Listed,
} from './kgctl/model.js';

/** The package version (read here rather than from cli.ts, which loads the whole agent). */
function version(): string {
  try {
    return (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version?: string }).version ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

/** Persistent flags of every kgctl command (§14.1). */
export const GLOBAL_FLAGS: FlagDef[] = [
  { name: 'backend', type: 'string', default: 'kubernetes', usage: 'The backend for the mesh. Possible values: kubernetes' },
  { name: 'mesh-granularity', type: 'string', default: 'auto', usage: 'The granularity of the network mesh to create. Possible values: location, full, cross, auto' },
  { name: 'kubeconfig', type: 'string', default: '', usage: 'Path to kubeconfig (default: $KUBECONFIG if it exists, else $HOME/.kube/config).' },
  { name: 'port', type: 'int', default: 51820, usage: 'The WireGuard port over which the nodes communicate.' },
  { name: 'topology-label', type: 'string', default: 'topology.kubernetes.io/region', usage: 'Kubernetes node label used to group nodes into logical locations.' },
  { name: 'version', type: 'bool', default: false, usage: 'Print version and exit' },
];

export const SHOWCONF_FLAGS: FlagDef[] = [
  { name: 'as-peer', type: 'bool', default: false, usage: 'Should the resource be shown as a peer? Useful to configure this resource as a peer of another WireGuard interface.' },
  { name: 'output', short: 'o', type: 'string', default: 'wireguard', usage: 'The output format of the resource. Only valid when combined with \'as-peer\'. Possible values: wireguard, json, yaml' },
  { name: 'allowed-ips', type: 'strings', default: [], usage: 'Add the given IPs to the allowed IPs of the configuration (repeatable, comma-separated).' },
];

export const CONNECT_FLAGS: FlagDef[] = [
  { name: 'allowed-ip', short: 'a', type: 'string', default: '10.10.10.10/32', usage: 'Allowed IP of the peer: the address of its WireGuard interface.' },
  { name: 'allowed-ips', type: 'strings', default: [], usage: 'Additional IPs (e.g. the service CIDR) to route into the cluster (repeatable, comma-separated).' },
  { name: 'log-level', type: 'string', default: 'info', usage: 'Log level to use. Possible values: all, debug, info, warn, error, none' },
  { name: 'private-key', type: 'string', default: '', usage: 'Path to an existing WireGuard private key file (default: a new key each run).' },
  { name: 'clean-up', type: 'bool', default: true, usage: 'Should Kilo clean up the routes, the interface and the Peer when it shuts down?' },
  { name: 'mtu', type: 'int', default: 1420, usage: 'The MTU for the WireGuard interface.' },
  { name: 'resync-period', type: 'duration', default: '30s', usage: 'How often should Kilo reconcile?' },
  { name: 'interface', short: 'i', type: 'string', default: 'kilo0', usage: 'Name of the Kilo interface to use; if it does not exist, it will be created.' },
  { name: 'persistent-keepalive', type: 'int', default: 10, usage: 'How often should WireGuard send keepalives (seconds)? 0 disables them.' },
];

const USAGE = `kgctl is Kilo's command-line tool: it inspects the mesh and connects this machine to it.

Usage:
  kgctl graph [flags]                          the mesh as a Graphviz DOT graph
  kgctl showconf node NAME|peer NAME [flags]   the WireGuard configuration of a node or peer
  kgctl connect [PEER-NAME] [flags]            make this machine a Peer of the mesh (Linux, root)
  kgctl version                                print the version

Flags:
${flagHelp(GLOBAL_FLAGS)}

showconf flags:
${flagHelp(SHOWCONF_FLAGS)}

connect flags:
${flagHelp(CONNECT_FLAGS)}
  -h, --help                           help for kgctl
`;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
}
const stdio: Io = { out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s) };

/** §14.1: port and granularity are validated before anything else, with Go's "posible" spelling. */
export function validateGlobal(v: FlagValues): { granularity: GranularityFlag; port: number } {
  const g = v['mesh-granularity'] as string;
  if (g !== 'location' && g !== 'full' && g !== 'cross' && g !== 'auto') throw new FlagError(`mesh granularity ${g} unknown; posible values are: location, full, cross, auto`);
  if (v.backend !== 'kubernetes') throw new FlagError(`backend ${v.backend} unknown; posible values are: kubernetes`);
  const port = v.port as number;
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new FlagError(`invalid port: port mus be in range [1:65535], but got ${port}`);
  return { granularity: g, port };
}

const nowSeconds = () => Math.floor(Date.now() / 1000);

/** §14.2 */
export function graphText(l: Listed, granularity: GranularityFlag, now: number): string {
  const v = view(l, { granularity, now });
  return topologyDOT(topology(v, v.lastReady, 0));
}

type ShowconfOutput = 'wireguard' | 'json' | 'yaml';

function renderAsPeer(name: string, p: WGPeer, output: ShowconfOutput): string {
  if (output === 'wireguard') return renderINI({ iface: null, peers: [p] });
  const obj = peerObject(name, p);
  return output === 'json' ? JSON.stringify(obj, null, 2) + '\n' : stringify(obj, { sortMapEntries: true });
}

export interface ShowconfOptions {
  granularity: GranularityFlag;
  port: number;
  asPeer: boolean;
  output: ShowconfOutput;
  allowedIPs: string[];
  now: number;
}

/** §14.3: the text to print, or a note for stderr (a node that is not a leader). */
export function showconfText(l: Listed, kind: 'node' | 'peer', name: string, o: ShowconfOptions): { out: string } | { note: string } {
  const extra = parseAllowedIPs(o.allowedIPs);
  const v = view(l, { granularity: o.granularity, now: o.now });
  if (kind === 'node') {
    const node = v.nodes.find((n) => n.name === name);
    if (!node) throw new KgctlError(`did not find any node named ${JSON.stringify(name)} in the cluster`);
    const t = topology(v, name, o.port);
    if (!node.key || !t.segments.some((s) => s.key === node.key)) return { note: `Node ${JSON.stringify(name)} is not a leader node\n` };
    if (!o.asPeer) return { out: renderINI(deviceConf(t, null, o.port)) };
    const p = segmentAsPeer(t);
    if (!p) throw new KgctlError(`did not find a segment for node ${JSON.stringify(name)}`);
    return { out: renderAsPeer(name, withAllowedIPs(p, extra), o.output) };
  }
  const peer = v.peers.find((p) => p.name === name);
  if (!peer) throw new KgctlError(`did not find any peer named ${JSON.stringify(name)} in the cluster`);
  const t = topology(v, v.lastReady, 51820);
  if (!o.asPeer) return { out: renderINI(peerConf(t, name)) };
  const self: WGPeer = { publicKey: peer.publicKey ?? '', endpoint: peer.endpoint, allowedIPs: [...peer.allowedIPs], persistentKeepalive: peer.persistentKeepalive, presharedKey: peer.presharedKey };
  return { out: renderAsPeer(name, withAllowedIPs(self, extra), o.output) };
}

export async function main(argv: string[], io: Io = stdio): Promise<number> {
  const cmd = argv[0];
  const rest = argv.slice(1);
  if (cmd === undefined || cmd === 'help' || cmd === '--help' || cmd === '-h' || rest.includes('--help') || rest.includes('-h')) {
    io.out(USAGE);
    return cmd === undefined ? 1 : 0;
  }
  if (cmd === 'version' || cmd === '--version') {
    try {
      parseFlags(rest, GLOBAL_FLAGS); // persistent flags are accepted; an unknown one is an error
    } catch (e) {
      io.err(`Error: ${(e as Error).message}\n`);
      return 1;
    }
    io.out(`${version()}\n`);
    return 0;
  }
  try {
    switch (cmd) {
      case 'graph': {
        const { values, positionals } = parseFlags(rest, GLOBAL_FLAGS);
        if (values.version) {
          io.out(`${version()}\n`);
          return 0;
        }
        if (positionals.length) throw new FlagError(`unknown command ${JSON.stringify(positionals[0])} for "kgctl graph"`);
        const g = validateGlobal(values);
        const c = client(values);
        try {
          io.out(graphText(await listCluster(c, values['topology-label'] as string), g.granularity, nowSeconds()));
        } finally {
          c.close();
        }
        return 0;
      }
      case 'showconf': {
        const { values, positionals } = parseFlags(rest, [...GLOBAL_FLAGS, ...SHOWCONF_FLAGS]);
        if (values.version) {
          io.out(`${version()}\n`);
          return 0;
        }
        const [kind, name, ...more] = positionals;
        if ((kind !== 'node' && kind !== 'peer') || !name || more.length) throw new FlagError('usage: kgctl showconf node NAME | kgctl showconf peer NAME');
        const g = validateGlobal(values);
        const output = values.output as string;
        if (output !== 'wireguard' && output !== 'json' && output !== 'yaml') throw new FlagError(`output format ${output} unknown; posible values are: wireguard, json, yaml`);
        parseAllowedIPs(values['allowed-ips'] as string[]); // bad flags fail before any request
        const c = client(values);
        try {
          const l = await listCluster(c, values['topology-label'] as string);
          const r = showconfText(l, kind, name, { ...g, asPeer: values['as-peer'] as boolean, output, allowedIPs: values['allowed-ips'] as string[], now: nowSeconds() });
          if ('note' in r) io.err(r.note);
          else io.out(r.out);
        } finally {
          c.close();
        }
        return 0;
      }
      case 'connect': {
        if (process.platform !== 'linux') throw new KgctlError('this command is not supported on this OS');
        const { values, positionals } = parseFlags(rest, [...GLOBAL_FLAGS, ...CONNECT_FLAGS]);
        if (values.version) {
          io.out(`${version()}\n`);
          return 0;
        }
        if (positionals.length > 1) throw new FlagError('usage: kgctl connect [PEER-NAME]');
        const g = validateGlobal(values);
        const { runConnect } = await import('./kgctl/connect.js');
        return await runConnect(values, positionals[0], g);
      }
      default:
        throw new FlagError(`unknown command ${JSON.stringify(cmd)} for "kgctl"`);
    }
  } catch (e) {
    io.err(`Error: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

if (isEntry(import.meta.url)) void main(process.argv.slice(2)).then(exitAfterDrain);
