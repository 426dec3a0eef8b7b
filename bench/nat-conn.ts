// Per-packet benchmark of the iptables layouts (a benchmark, not a test): new TCP connections per
// second from a pod network namespace through a node's KILO-NAT masquerade to an outside
// namespace, with 100 and with 10,000 exempt destinations in KILO-NAT, in the Kilo layout (one
// RETURN rule per destination, walked by every new connection) and the set layout (one rule per
// set). All in one run, rounds interleaved; the three namespaces are created here and deleted.
//
//   node dist/bench/nat-conn.js [--sizes=100,10000] [--seconds=3] [--rounds=3] [--backend=nft|legacy] [--json]

import { spawn, spawnSync } from 'node:child_process';
import { Exec } from '../dataplane/exec.js';
import { IptablesReconciler } from '../dataplane/iptables.js';
import type { IptablesJSON, IptablesRule } from '../plan/types.js';
import type { IptablesLayout } from '../ipc/dataplane.js';
import { commandFlags, type FlagDef } from '../main/flags.js';

const FLAGS: FlagDef[] = [
  { name: 'sizes', type: 'string', default: '100,10000', usage: 'Exempt destinations in KILO-NAT, comma-separated.' },
  { name: 'seconds', type: 'string', default: '3', usage: 'Seconds per measurement.' },
  { name: 'rounds', type: 'string', default: '3', usage: 'Rounds (each measures every layout and size once).' },
  { name: 'backend', type: 'string', default: 'nft', usage: 'iptables backend: nft or legacy.' },
  { name: 'layouts', type: 'string', default: 'kilo,sets,nft', usage: 'kilo, sets (kg\'s layouts) and nft (a native nftables set with the same content, for the ipset/nftables choice).' },
  { name: 'json', type: 'bool', default: false, usage: 'Also print the results as one JSON line.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const cli = commandFlags(process.argv.slice(2), FLAGS, 'node dist/bench/nat-conn.js [flags]',
  'New connections per second from a pod namespace through KILO-NAT masquerade to an outside namespace,\nper iptables layout and number of exempt destinations (needs root).');
const SIZES = (cli.sizes as string).split(',').map(Number);
const SECONDS = Number(cli.seconds);
const ROUNDS = Number(cli.rounds);
const BACKEND = cli.backend as 'nft' | 'legacy';
const LAYOUTS = (cli.layouts as string).split(',') as (IptablesLayout | 'nft')[];

const tag = `kgnc${process.pid}`;
const NS = { pod: `${tag}-pod`, node: `${tag}-node`, out: `${tag}-out` };

function sh(cmd: string, ...args: string[]): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr}`);
  return r.stdout;
}
const inNs = (ns: string, ...a: string[]): string => sh('ip', 'netns', 'exec', ns, ...a);

function up(): void {
  for (const ns of Object.values(NS)) {
    sh('ip', 'netns', 'add', ns);
    inNs(ns, 'ip', 'link', 'set', 'lo', 'up');
  }
  sh('ip', 'link', 'add', `${tag}a`, 'netns', NS.pod, 'type', 'veth', 'peer', 'name', 'pod0', 'netns', NS.node);
  sh('ip', 'link', 'add', `${tag}b`, 'netns', NS.out, 'type', 'veth', 'peer', 'name', 'out0', 'netns', NS.node);
  inNs(NS.pod, 'ip', 'addr', 'add', '10.99.1.2/24', 'dev', `${tag}a`);
  inNs(NS.pod, 'ip', 'link', 'set', `${tag}a`, 'up');
  inNs(NS.pod, 'ip', 'route', 'add', 'default', 'via', '10.99.1.1');
  inNs(NS.pod, 'sysctl', '-qw', 'net.ipv4.ip_local_port_range=1024 65000');
  inNs(NS.node, 'ip', 'addr', 'add', '10.99.1.1/24', 'dev', 'pod0');
  inNs(NS.node, 'ip', 'addr', 'add', '192.0.2.1/24', 'dev', 'out0');
  inNs(NS.node, 'ip', 'link', 'set', 'pod0', 'up');
  inNs(NS.node, 'ip', 'link', 'set', 'out0', 'up');
  inNs(NS.node, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
  inNs(NS.out, 'ip', 'addr', 'add', '192.0.2.2/24', 'dev', `${tag}b`);
  inNs(NS.out, 'ip', 'link', 'set', `${tag}b`, 'up');
}

function down(): void {
  for (const ns of Object.values(NS)) spawnSync('ip', ['netns', 'del', ns]);
}

const C = (s: string): string[] => ['-m', 'comment', '--comment', s];
/** The node's NAT rules: `n` exempt pod subnets (none of them the outside address), then MASQUERADE. */
function rules(n: number): IptablesJSON {
  const nat = (chain: string, rule: string[]): IptablesRule => ({ family: 'ipv4', table: 'nat', chain, rule });
  const prepend = [nat('POSTROUTING', ['-s', '10.99.1.0/24', ...C('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT'])];
  for (let i = 0; i < n; i++) prepend.push(nat('KILO-NAT', ['-d', `10.${100 + (i >> 8)}.${i & 255}.0/24`, ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN']));
  return { chains: [{ family: 'ipv4', table: 'nat', chain: 'KILO-NAT' }], prepend, append: [nat('KILO-NAT', [...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'])] };
}

// The client resets each connection once it is established (no TIME_WAIT), keeping 32 connects
// in flight for the given time, and prints how many completed.
const SERVER = `require('net').createServer((s) => s.on('error', () => {})).listen(8080, '192.0.2.2', () => console.log('ready'));`;
const CLIENT = `const net = require('net'); const end = Date.now() + Number(process.argv[1]) * 1000; let n = 0, fail = 0;
const one = () => { if (Date.now() >= end) return done(); const s = net.connect(8080, '192.0.2.2'); s.on('connect', () => { n++; s.resetAndDestroy(); one(); }); s.on('error', (e) => { if (fail++ === 0) console.error(e.message); one(); }); };
let open = 32; const done = () => { if (--open === 0) console.log(JSON.stringify({ n, fail })); }; for (let i = 0; i < 32; i++) one();`;

async function measure(): Promise<number> {
  const r = spawnSync('ip', ['netns', 'exec', NS.pod, process.execPath, '-e', CLIENT, String(SECONDS)], { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(r.stderr);
  const { n, fail } = JSON.parse(r.stdout) as { n: number; fail: number };
  if (fail > n / 100) throw new Error(`${fail} of ${n + fail} connects failed: ${r.stderr.trim()}`);
  return n / SECONDS;
}

/** The same NAT with a native nftables set (not a kg layout): kg's iptables rules removed first. */
async function nativeSet(exec: Exec, n: number): Promise<void> {
  await new IptablesReconciler(exec, { backend: BACKEND, ipv6: false, layout: 'sets' }).cleanUp();
  await exec.run('nft', ['delete', 'table', 'ip', 'kgbench']);
  const elems = Array.from({ length: n }, (_, i) => `10.${100 + (i >> 8)}.${i & 255}.0/24`);
  const r = await exec.batch('nft', ['-f', '-'], [
    'table ip kgbench {',
    ' set exempt { type ipv4_addr; flags interval; }',
    ' chain post { type nat hook postrouting priority srcnat; ip saddr 10.99.1.0/24 ip daddr != @exempt masquerade; }',
    '}',
    `add element ip kgbench exempt { ${elems.join(', ')} }`,
  ]);
  if (r.code !== 0) throw new Error(`nft: ${r.stderr}`);
}

async function main(): Promise<void> {
  up();
  const server = spawn('ip', ['netns', 'exec', NS.out, process.execPath, '-e', SERVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((res) => server.stdout!.once('data', () => res()));
    const exec = new Exec({ net: `/run/netns/${NS.node}` });
    const results = new Map<string, number[]>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const layout of LAYOUTS) {
        for (const n of SIZES) {
          if (layout === 'nft') await nativeSet(exec, n);
          else {
            await exec.run('nft', ['delete', 'table', 'ip', 'kgbench']);
            const r = new IptablesReconciler(exec, { backend: BACKEND, ipv6: false, layout });
            r.setDesired(rules(n));
            const rep = await r.reconcile(true);
            if (rep.errors.length > 0) throw new Error(JSON.stringify(rep.errors));
          }
          const k = `${layout} ${n}`;
          results.set(k, [...(results.get(k) ?? []), await measure()]);
        }
      }
    }
    const med = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
    const out: Record<string, number> = {};
    console.log(`new connections/s through KILO-NAT masquerade (${BACKEND} backend, ${SECONDS} s x ${ROUNDS} rounds, median)`);
    for (const [k, xs] of results) {
      out[k] = med(xs);
      console.log(`  ${k.padEnd(12)} exempt destinations: ${med(xs).toFixed(0)} conn/s  (${xs.map((x) => x.toFixed(0)).join(', ')})`);
    }
    const [small, big] = [Math.min(...SIZES), Math.max(...SIZES)];
    for (const layout of LAYOUTS) console.log(`  ${layout}: ${big} / ${small} destinations = ${(out[`${layout} ${big}`] / out[`${layout} ${small}`]).toFixed(2)}`);
    console.log(`  at ${big}: sets / kilo = ${(out[`sets ${big}`] / out[`kilo ${big}`]).toFixed(2)}`);
    if (cli.json) console.log(JSON.stringify(out));
    await new IptablesReconciler(exec, { backend: BACKEND, ipv6: false, layout: 'sets' }).cleanUp();
    await exec.run('nft', ['delete', 'table', 'ip', 'kgbench']);
  } finally {
    server.kill();
    down();
  }
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error(e);
    down();
    process.exit(1);
  },
);
