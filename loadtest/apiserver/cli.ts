#!/usr/bin/env node
// Starts the Kubernetes API simulator with N generated nodes and writes a kubeconfig.
//   node dist/loadtest/apiserver/cli.js --nodes 5000 --https --kubeconfig out.yaml --port 0
import { parseArgs } from 'node:util';
import { generateNodes, generatePeers } from './generate.js';
import { storeHeartbeats } from './heartbeat.js';
import { startApiServer } from './server.js';
import { SIMULATOR_OPTIONS } from './options.js';

const { values } = parseArgs({
  options: {
    ...SIMULATOR_OPTIONS,
    token: { type: 'string' },
    'no-auth': { type: 'boolean', default: false },
    'heartbeat-period': { type: 'string', description: 'seconds; patch every node\'s last-seen once per period (0: off)' },
    'bookmark-interval': { type: 'string', description: 'seconds' },
    'no-crds': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

if (values.help) {
  console.log(`usage: cli.js [--nodes N] [--peers N] [--locations N] [--https] [--host 127.0.0.1] [--port 0]
       [--token T | --no-auth] [--kubeconfig FILE] [--history-size N] [--heartbeat-period SECONDS]
       [--bookmark-interval SECONDS] [--no-crds]
Prints one JSON line {url, port, kubeconfig, pid} when ready; admin API under /_sim/, metrics at /metrics.`);
  process.exit(0);
}

const count = Number(values.nodes);
const nodes = count > 0 ? generateNodes({ count, locations: values.locations ? Number(values.locations) : undefined }) : [];
const peers = Number(values.peers) > 0 ? generatePeers({ count: Number(values.peers) }) : [];
const srv = await startApiServer({
  https: values.https,
  host: values.host,
  port: Number(values.port),
  token: values['no-auth'] ? false : values.token,
  nodes,
  peers,
  loadCrds: !values['no-crds'],
  historySize: values['history-size'] ? Number(values['history-size']) : undefined,
  bookmarkIntervalMs: values['bookmark-interval'] ? Number(values['bookmark-interval']) * 1000 : undefined,
  kubeconfigPath: values.kubeconfig,
});
const period = Number(values['heartbeat-period'] ?? 0);
const hb = period > 0 ? storeHeartbeats(srv.store, { names: nodes.map((n) => n.metadata.name!), periodMs: period * 1000 }) : undefined;
console.log(JSON.stringify({ url: srv.url, port: srv.port, kubeconfig: values.kubeconfig ?? null, token: srv.token ?? null, pid: process.pid }));

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
