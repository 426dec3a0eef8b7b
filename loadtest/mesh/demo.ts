// `npm run demo`: a local Kilo mesh — the API simulator and real kg agents in network namespaces
// (5 nodes, 3 locations, CNI-made pods) — with the topology, a ping matrix, and /metrics and
// /graph forwarded to this machine's loopback. Ctrl-C tears it all down.
//
//   node dist/loadtest/mesh/demo.js [--once] [--granularity location|full|cross] [--dual-stack]
import net from 'node:net';
import { spawn } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import { DUAL_STACK_SUBNET, Mesh } from './harness.js';
import { parseCluster, plan } from '../../plan/plan.js';
import { planText } from '../../plan/format-text.js';
import { parseCIDR } from '../../plan/addr.js';
import { commandFlags, FlagError, type FlagDef } from '../../main/flags.js';

const FLAGS: FlagDef[] = [
  { name: 'once', type: 'bool', default: false, usage: 'Print the topology and the ping matrix, then tear the mesh down.' },
  { name: 'granularity', type: 'string', default: 'location', usage: 'Mesh granularity: location, full or cross.' },
  { name: 'dual-stack', type: 'bool', default: false, usage: `IPv4 and IPv6: pod CIDRs and underlay addresses of both families, kg with --dual-stack-subnet ${DUAL_STACK_SUBNET}, pings in both.` },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const args = commandFlags(process.argv.slice(2), FLAGS, 'node dist/loadtest/mesh/demo.js [flags]   (npm run demo)',
  'A local Kilo mesh: the API simulator and 5 real kg agents in network namespaces (needs root,\nwireguard-go), with the topology, a ping matrix, and /metrics and /graph on this machine\'s loopback.',
  (v) => {
    if (v.granularity !== 'location' && v.granularity !== 'full' && v.granularity !== 'cross') throw new FlagError('--granularity must be location, full or cross');
  });
const once = args.once as boolean;
const granularity = args.granularity as 'location' | 'full' | 'cross';
const dualStack = args['dual-stack'] as boolean;

/** Forwards 127.0.0.1:<port> on this machine to 127.0.0.1:1107 inside a node's namespace. */
function forward(mesh: Mesh, node: string, port: number): () => void {
  const sock = `${mesh.state}/http-${node}.sock`;
  if (existsSync(sock)) rmSync(sock);
  const n = mesh.node(node);
  // The inner end listens on a Unix socket (the filesystem is shared) and dials kg in the netns.
  const inner = spawn('nsenter', [`--net=/run/netns/${n.netns}`, '--', process.execPath, '-e',
    `require('net').createServer((c) => { const u = require('net').connect(1107, '127.0.0.1'); c.pipe(u).pipe(c); u.on('error', () => c.destroy()); c.on('error', () => u.destroy()); }).listen(${JSON.stringify(sock)})`], { stdio: 'ignore' });
  const outer = net.createServer((c) => {
    const u = net.connect(sock);
    c.pipe(u).pipe(c);
    u.on('error', () => c.destroy());
    c.on('error', () => u.destroy());
  }).listen(port, '127.0.0.1');
  return () => {
    outer.close();
    inner.kill();
  };
}

const mesh = new Mesh({
  prefix: 'kgdemo',
  nodes: [
    { name: 'a1', location: 'aws' }, { name: 'a2', location: 'aws' },
    { name: 'g1', location: 'gcp' }, { name: 'g2', location: 'gcp' },
    { name: 'h1', location: 'home' },
  ],
  flags: ['--encapsulate', 'never', '--mesh-granularity', granularity],
  dualStack,
  log: (l) => console.log(`  ${l}`),
});

let stopping = false;
const stops: (() => void)[] = [];
async function shutdown(code: number): Promise<never> {
  if (stopping) process.exit(code);
  stopping = true;
  console.log('\ncleaning up namespaces and processes…');
  for (const s of stops) s();
  await mesh.down();
  console.log('done.');
  process.exit(code);
}
process.on('SIGINT', () => void shutdown(0));
process.on('SIGTERM', () => void shutdown(0));

try {
  console.log('# building the mesh');
  await mesh.down(); // leftovers of an interrupted run
  await mesh.up();
  console.log('# starting kg on every node');
  await Promise.all(mesh.nodes.map((n) => mesh.startKg(n.spec.name)));
  for (const n of mesh.nodes) await mesh.createPod(n.spec.name);

  const nodes = JSON.parse(mesh.kubectl(['get', 'nodes', '-o', 'json'])).items;
  const p = plan(parseCluster(nodes, [], 'topology.kubernetes.io/region'), {
    hostname: 'a1', granularity, subnet: parseCIDR('10.4.0.0/16')!, encapsulate: 'never', local: true, cni: true, compatibility: '',
    iptablesForwardRules: false, serviceCIDRs: [], interface: 'kilo0', mtu: 1420, privateInterface: 'eth0', tunnelInterface: 'tunl0', now: Math.floor(Date.now() / 1000),
    ...(dualStack ? { dualStackSubnet: parseCIDR(DUAL_STACK_SUBNET)! } : {}),
  }).json;
  console.log('\n# topology and routes, as kg on a1 programs them\n');
  console.log(planText(p).split('\n# iptables-save')[0]);

  const names = mesh.nodes.map((n) => n.spec.name);
  let failures = 0;
  for (const family of dualStack ? ['IPv4', 'IPv6'] : ['IPv4']) {
    console.log(`# ping matrix (pod → pod${dualStack ? `, ${family}` : ''})`);
    console.log(`from\\to  ${names.map((n) => n.padEnd(5)).join(' ')}`);
    for (const from of names) {
      const row = names.map((to) => {
        if (from === to) return '  -  ';
        const ok = mesh.ping({ pod: from }, family === 'IPv4' ? mesh.node(to).podIP! : mesh.node(to).podIP6!, 2);
        if (!ok) failures++;
        return ok ? ' ok  ' : ' FAIL';
      });
      console.log(`${from.padEnd(8)}  ${row.join(' ')}`);
    }
  }
  console.log(`\n${failures === 0 ? 'every pod reaches every pod' : `${failures} pairs failed`}; WireGuard on a1:`);
  console.log(mesh.on('a1', ['wg', 'show', 'kilo0']).replace(/private key: .*\n/, ''));

  mesh.nodes.forEach((n, i) => stops.push(forward(mesh, n.spec.name, 11071 + i)));
  console.log('# kg endpoints, forwarded to this machine');
  mesh.nodes.forEach((n, i) => console.log(`  ${n.spec.name}: http://127.0.0.1:${11071 + i}/metrics   http://127.0.0.1:${11071 + i}/graph`));
  console.log(`  logs: ${mesh.state}/kg-<node>.log; run a command on a node: nsenter --mount=${mesh.mntRoot}/a1 --net=/run/netns/kgdemo-a1 -- wg show`);
  if (once) await shutdown(failures === 0 ? 0 : 1);
  console.log('\nthe mesh keeps running; press Ctrl-C to tear it down');
  await new Promise(() => {});
} catch (e) {
  console.error(`demo failed: ${(e as Error).message}`);
  await shutdown(1);
}
