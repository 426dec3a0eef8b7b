#!/usr/bin/env node
// Starts the Kubernetes API simulator with N generated nodes and writes a kubeconfig.
//   node dist/loadtest/apiserver/cli.js --nodes 5000 --https --kubeconfig out.yaml --port 0
import { commandFlags, type FlagDef } from '../../main/flags.js';
import { generateNodes, generatePeers } from './generate.js';
import { storeHeartbeats } from './heartbeat.js';
import { startApiServer } from './server.js';
import { HELP_FLAG, SIMULATOR_FLAGS } from './options.js';

const FLAGS: FlagDef[] = [
  ...SIMULATOR_FLAGS,
  { name: 'token', type: 'string', default: '', usage: 'Bearer token clients must present (default: a random one under HTTPS, none under HTTP).' },
  { name: 'no-auth', type: 'bool', default: false, usage: 'No authentication.' },
  { name: 'heartbeat-period', type: 'string', default: '', usage: 'Seconds; patch every node\'s last-seen once per period (0 or unset: off).' },
  { name: 'bookmark-interval', type: 'string', default: '', usage: 'Seconds between watch bookmarks (default: the simulator\'s).' },
  { name: 'no-crds', type: 'bool', default: false, usage: 'Do not load the CRDs of manifests/.' },
  { name: 'dual-stack', type: 'bool', default: false, usage: 'Generated nodes are dual-stack (design §20.2): an IPv6 pod CIDR in spec.podCIDRs and an IPv6 dual-stack-internal-ip.' },
  HELP_FLAG,
];
const values = commandFlags(process.argv.slice(2), FLAGS, 'node dist/loadtest/apiserver/cli.js [flags]',
  'The Kubernetes API simulator with N generated nodes. Prints one JSON line {url, port, kubeconfig, pid}\nwhen ready; admin API under /_sim/, metrics at /metrics.');
const str = (name: string): string | undefined => (values[name] as string) || undefined;

const count = Number(values.nodes);
const nodes = count > 0 ? generateNodes({ count, locations: str('locations') ? Number(str('locations')) : undefined, dualStack: values['dual-stack'] as boolean }) : [];
const peers = Number(values.peers) > 0 ? generatePeers({ count: Number(values.peers) }) : [];
const srv = await startApiServer({
  https: values.https as boolean,
  host: values.host as string,
  port: Number(values.port),
  token: values['no-auth'] ? false : str('token'),
  nodes,
  peers,
  loadCrds: !values['no-crds'],
  historySize: str('history-size') ? Number(str('history-size')) : undefined,
  bookmarkIntervalMs: str('bookmark-interval') ? Number(str('bookmark-interval')) * 1000 : undefined,
  kubeconfigPath: str('kubeconfig'),
});
const period = Number(str('heartbeat-period') ?? 0);
const hb = period > 0 ? storeHeartbeats(srv.store, { names: nodes.map((n) => n.metadata.name!), periodMs: period * 1000 }) : undefined;
console.log(JSON.stringify({ url: srv.url, port: srv.port, kubeconfig: str('kubeconfig') ?? null, token: srv.token ?? null, pid: process.pid }));

let stopping = false;
const shutdown = async () => {
  if (stopping) return;
  stopping = true;
  await hb?.stop();
  await srv.stop();
  process.exit(0);
};
process.on('SIGINT', shutdown);
process.on('SIGTERM', shutdown);
