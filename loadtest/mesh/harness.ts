// A real Kilo mesh on one machine: every node is a network namespace plus a private mount
// namespace (its own /run/wireguard, /var/lib/kilo, /var/lib/cni, /etc/cni/net.d), running the
// real `kg` with userspace WireGuard (wireguard-go); the API simulator runs in a namespace of
// its own, over HTTPS with a token; "pods" are network namespaces plugged in by the real CNI
// bridge and host-local plugins from the conflist kg wrote. Used by the end-to-end tests, the
// README demo and the load test. Everything is created under a name prefix and torn down by pid
// and by name, even after a failure.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { alive } from '../../dataplane/exec.js';

// This file runs from <outDir>/loadtest/mesh/, so the build it belongs to is two levels up
// (several builds may coexist, e.g. a developer's dist and a scratch outDir).
const DIST = resolve(fileURLToPath(new URL('.', import.meta.url)), '../..');
const CNI_BIN = ['/usr/lib/cni', '/opt/cni/bin'].find((d) => existsSync(join(d, 'bridge'))) ?? '/usr/lib/cni';

export interface MeshNodeSpec {
  name: string;
  location: string;
  /** Extra annotations set before kg starts (leader, force-endpoint, …). */
  annotations?: Record<string, string>;
  /** Extra kg flags for this node. */
  flags?: string[];
}

export interface MeshOptions {
  prefix: string;
  nodes: MeshNodeSpec[];
  /** Flags for every kg (e.g. --mesh-granularity, --encapsulate). */
  flags?: string[];
  /** Extra arguments for the API simulator (e.g. --nodes 5000 --heartbeat-period 30). */
  apiArgs?: string[];
  /**
   * Another simulator entry point (a path inside the build, e.g. loadtest/sim-driver.js) taking
   * the same arguments; it runs with an IPC channel (Mesh.api) so a load test can drive it.
   */
  apiScript?: string;
  /** A state directory (logs, kubeconfig); default /tmp/<prefix>. */
  stateDir?: string;
  log?: (line: string) => void;
  /**
   * Dual stack (design §20): IPv6 underlay addresses (fd77::/64) beside the IPv4 ones, a second
   * (IPv6) pod CIDR in each Node's spec.podCIDRs, each node's IPv6 underlay address as its
   * force-dual-stack-internal-ip, and kg with --dual-stack-subnet fd04::/64: pods get both families.
   */
  dualStack?: boolean;
  /**
   * kg's entry point inside the build: the bundle (default, what the image runs) or
   * `main/cli.js` (tsc's modules, unbundled: a benchmark's same-run baseline).
   */
  kgEntry?: string;
}

/** What the image runs (scripts/bundle.mjs). */
export const KG_BUNDLE = 'bundle/cli.js';

/** The IPv6 mesh subnet of a dual-stack mesh. */
export const DUAL_STACK_SUBNET = 'fd04::/64';

/** The e2e tests' mesh: five nodes in three locations (two, two and one). */
export const FIVE_NODES: readonly MeshNodeSpec[] = [
  { name: 'a1', location: 'a' }, { name: 'a2', location: 'a' },
  { name: 'b1', location: 'b' }, { name: 'b2', location: 'b' },
  { name: 'c1', location: 'c' },
];

export interface NodeHandle {
  spec: MeshNodeSpec;
  index: number;
  netns: string;
  podNetns: string;
  mnt: string;
  ip: string;
  podCIDR: string;
  podIP: string | null;
  /** Dual stack only: the IPv6 underlay address, pod CIDR and pod address. */
  ip6: string | null;
  podCIDR6: string | null;
  podIP6: string | null;
  kg: ChildProcess | null;
}

/** Runs a command, throwing with its stderr when it fails. Bounded by `timeoutMs`. */
export function sh(cmd: string, args: string[], o: { input?: string; timeoutMs?: number; allowFail?: boolean } = {}): string {
  const r = spawnSync(cmd, args, { input: o.input, encoding: 'utf8', timeout: o.timeoutMs ?? 30_000, maxBuffer: 256 << 20 });
  if ((r.status !== 0 || r.error) && !o.allowFail) {
    throw new Error(`${cmd} ${args.join(' ')}: ${r.error?.message ?? ''} ${r.stderr?.trim() ?? ''} (exit ${r.status})`);
  }
  return r.stdout ?? '';
}

export async function waitFor<T>(what: string, fn: () => T | null | undefined | false | Promise<T | null | undefined | false>, timeoutMs: number, everyMs = 250): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown = null;
  while (Date.now() < end) {
    try {
      const v = await fn();
      if (v) return v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, everyMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
}

/** Checks the tools a mesh needs, with one clear message for what is missing. */
export function checkPrerequisites(): void {
  const missing = ['ip', 'nsenter', 'unshare', 'wireguard-go', 'wg', 'iptables', 'tcpdump']
    .filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
  if (!existsSync(join(CNI_BIN, 'bridge')) || !existsSync(join(CNI_BIN, 'host-local'))) missing.push('containernetworking-plugins');
  if (process.getuid?.() !== 0) missing.push('root privileges');
  if (missing.length) throw new Error(`the mesh harness needs: ${missing.join(', ')} (run scripts/setup.sh as root)`);
}

export class Mesh {
  readonly nodes: NodeHandle[] = [];
  readonly ul: string;
  readonly apiNs: string;
  readonly peerNs: string;
  readonly state: string;
  readonly mntRoot: string;
  kubeconfig = '';
  apiURL = '';
  /** The API simulator's process (with an IPC channel when `apiScript` is set). */
  api: ChildProcess | null = null;
  private readonly log: (line: string) => void;
  private readonly procs = new Set<ChildProcess>();

  constructor(readonly o: MeshOptions) {
    this.ul = `${o.prefix}-ul`;
    this.apiNs = `${o.prefix}-api`;
    this.peerNs = `${o.prefix}-peer`;
    this.state = o.stateDir ?? `/tmp/${o.prefix}`;
    this.mntRoot = `/run/${o.prefix}-mnt`;
    this.log = o.log ?? (() => {});
    o.nodes.forEach((spec, i) => this.addHandle(spec, i));
  }

  private addHandle(spec: MeshNodeSpec, i: number): NodeHandle {
    const h: NodeHandle = {
      spec, index: i, netns: `${this.o.prefix}-${spec.name}`, podNetns: `${this.o.prefix}-${spec.name}-pod`, mnt: `${this.mntRoot}/${spec.name}`,
      ip: `192.168.77.${11 + i}`, podCIDR: `10.244.${i + 1}.0/24`, podIP: null, kg: null,
      ip6: this.o.dualStack ? `fd77::${(11 + i).toString(16)}` : null, podCIDR6: this.o.dualStack ? `fd44:0:0:${(i + 1).toString(16)}::/64` : null, podIP6: null,
    };
    this.nodes.push(h);
    return h;
  }

  node(name: string): NodeHandle {
    const n = this.nodes.find((x) => x.spec.name === name);
    if (!n) throw new Error(`no node ${name}`);
    return n;
  }

  /** Runs a command on a node: its network namespace and its mount namespace. */
  on(name: string, args: string[], o: { timeoutMs?: number; allowFail?: boolean; input?: string } = {}): string {
    const n = this.node(name);
    return sh('nsenter', [`--mount=${n.mnt}`, `--net=/run/netns/${n.netns}`, '--', ...args], o);
  }

  pod(name: string, args: string[], o: { timeoutMs?: number; allowFail?: boolean } = {}): string {
    return sh('ip', ['netns', 'exec', this.node(name).podNetns, ...args], o);
  }

  private netnsExists(n: string): boolean {
    return sh('ip', ['netns', 'list'], { allowFail: true }).split('\n').some((l) => l.split(' ')[0] === n);
  }

  /**
   * Claims the prefix for this process (a pid file in the state directory). A prefix in use by
   * another live process is refused, and its namespaces are left alone: two overlapping
   * benchmark runs once tore down each other's mesh in their opening down(). A pid file whose
   * process is gone is a leftover, and is taken over (down() then clears what it left).
   */
  private claim(): void {
    const file = join(this.state, 'owner.pid');
    const other = existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) : NaN;
    if (Number.isInteger(other) && other > 0 && other !== process.pid && alive(other)) {
      throw new Error(`a mesh with prefix ${this.o.prefix} is in use by pid ${other} (${file}): wait for that run to end or stop it`);
    }
    mkdirSync(this.state, { recursive: true });
    writeFileSync(file, `${process.pid}\n`);
  }

  async up(): Promise<void> {
    checkPrerequisites();
    this.claim(); // creates the state directory
    mkdirSync(this.mntRoot, { recursive: true });
    // Mount-namespace handles live under a private bind mount, as `ip netns` does for /run/netns.
    if (!readFileSync('/proc/self/mountinfo', 'utf8').includes(` ${this.mntRoot} `)) {
      sh('mount', ['--bind', this.mntRoot, this.mntRoot]);
      sh('mount', ['--make-private', this.mntRoot]);
    }
    this.log(`underlay ${this.ul}, API namespace ${this.apiNs}`);
    sh('ip', ['netns', 'add', this.ul]);
    sh('ip', ['-n', this.ul, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', this.ul, 'link', 'add', 'br0', 'type', 'bridge']);
    sh('ip', ['-n', this.ul, 'link', 'set', 'br0', 'up']);
    // The nodes' default gateway: a dead end inside the underlay namespace (kg's host discovery
    // needs a default route, and nothing may leave the test namespaces).
    sh('ip', ['-n', this.ul, 'addr', 'add', '192.168.77.1/24', 'dev', 'br0']);
    if (this.o.dualStack) sh('ip', ['-n', this.ul, 'addr', 'add', 'fd77::1/64', 'dev', 'br0', 'nodad']);
    this.attach(this.apiNs, 'api', '192.168.77.2');
    await this.startApi();
    for (const n of this.nodes) await this.createNode(n);
  }

  /** A namespace with one leg on the underlay bridge. */
  private attach(ns: string, tag: string, ip: string, ip6: string | null = null): void {
    sh('ip', ['netns', 'add', ns]);
    sh('ip', ['-n', this.ul, 'link', 'add', `ul-${tag}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    sh('ip', ['-n', this.ul, 'link', 'set', `ul-${tag}`, 'master', 'br0', 'up']);
    sh('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
    sh('ip', ['-n', ns, 'addr', 'add', `${ip}/24`, 'dev', 'eth0']);
    // nodad: usable at once (as a route source and gateway) instead of tentative for a second.
    if (ip6) sh('ip', ['-n', ns, 'addr', 'add', `${ip6}/64`, 'dev', 'eth0', 'nodad']);
    sh('ip', ['-n', ns, 'link', 'set', 'eth0', 'up']);
  }

  private async startApi(): Promise<void> {
    this.kubeconfig = join(this.state, 'kubeconfig');
    const out = join(this.state, 'api.log');
    const p = spawn('ip', ['netns', 'exec', this.apiNs, process.execPath, join(DIST, this.o.apiScript ?? 'loadtest/apiserver/cli.js'), '--https', '--host', '192.168.77.2', '--port', '6443', '--kubeconfig', this.kubeconfig, ...(this.o.apiArgs ?? [])], {
      stdio: this.o.apiScript ? ['ignore', 'pipe', 'pipe', 'ipc'] : ['ignore', 'pipe', 'pipe'],
    });
    this.procs.add(p);
    this.api = p;
    let text = '';
    p.stdout!.on('data', (c: Buffer) => (text += c.toString()));
    p.stderr!.on('data', (c: Buffer) => writeFileSync(out, c, { flag: 'a' }));
    await waitFor('the API simulator', () => text.includes('"url"'), 120_000, 50);
    this.apiURL = JSON.parse(text.split('\n')[0]).url;
    this.log(`API simulator at ${this.apiURL}`);
  }

  /** kubectl against the simulator, from the API namespace. */
  kubectl(args: string[], o: { input?: string; allowFail?: boolean } = {}): string {
    return sh('ip', ['netns', 'exec', this.apiNs, 'kubectl', '--kubeconfig', this.kubeconfig, ...args], { ...o, timeoutMs: 30_000 });
  }

  /** The simulator's fault controls (its admin API, through kubectl --raw). */
  simFaults(settings: Record<string, unknown> | null): void {
    if (settings === null) this.kubectl(['delete', '--raw', '/_sim/faults']);
    else this.kubectl(['create', '--raw', '/_sim/faults', '-f', '-'], { input: JSON.stringify(settings) });
  }

  simDropWatches(): void {
    this.kubectl(['create', '--raw', '/_sim/drop-watches', '-f', '-'], { input: '{}' });
  }

  private nodeObject(n: NodeHandle): object {
    const dual = n.ip6 && n.podCIDR6 ? { 'kilo.squat.ai/force-dual-stack-internal-ip': `${n.ip6}/64` } : {};
    return {
      apiVersion: 'v1', kind: 'Node',
      metadata: { name: n.spec.name, labels: { 'topology.kubernetes.io/region': n.spec.location, 'kubernetes.io/hostname': n.spec.name }, annotations: { ...dual, ...(n.spec.annotations ?? {}) } },
      spec: n.podCIDR6 ? { podCIDR: n.podCIDR, podCIDRs: [n.podCIDR, n.podCIDR6] } : { podCIDR: n.podCIDR },
    };
  }

  private async createNode(n: NodeHandle): Promise<void> {
    this.log(`node ${n.spec.name}: ${n.netns} ${n.ip} pods ${n.podCIDR} location ${n.spec.location}`);
    this.attach(n.netns, n.spec.name, n.ip, n.ip6);
    sh('ip', ['netns', 'exec', n.netns, 'sysctl', '-qw', 'net.ipv4.ip_forward=1']);
    sh('ip', ['-n', n.netns, 'route', 'add', 'default', 'via', '192.168.77.1']);
    sh('ip', ['netns', 'add', n.podNetns]);
    if (n.ip6) {
      // IPv6 forwarding, and no DAD on the links the CNI plugins make (the bridge's gateway and the pod's address).
      sh('ip', ['netns', 'exec', n.netns, 'sysctl', '-qw', 'net.ipv6.conf.all.forwarding=1', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
      sh('ip', ['netns', 'exec', n.podNetns, 'sysctl', '-qw', 'net.ipv6.conf.default.accept_dad=0', 'net.ipv6.conf.all.accept_dad=0']);
    }
    writeFileSync(n.mnt, '');
    sh('unshare', [`--mount=${n.mnt}`, '--propagation', 'private', 'true']);
    const dirs = ['/run/wireguard', '/var/lib/kilo', '/var/lib/cni', '/etc/cni/net.d'];
    // The node's own /etc/hosts names it, as on a real host (kg's discovery resolves its hostname).
    const hosts = join(this.state, `hosts-${n.spec.name}`);
    writeFileSync(hosts, `127.0.0.1 localhost\n${n.ip} ${n.spec.name}\n`);
    this.on(n.spec.name, ['sh', '-c', `mkdir -p ${dirs.join(' ')} && for d in ${dirs.join(' ')}; do mount -t tmpfs -o mode=0755 tmpfs $d; done && mount -t sysfs sysfs /sys && mount --bind ${hosts} /etc/hosts`]);
    // What Kilo's install-cni init container writes (design §10.1); kg rewrites the range.
    const stock = { cniVersion: '0.4.0', name: 'kilo', plugins: [
      { name: 'kubernetes', type: 'bridge', bridge: 'kube-bridge', isDefaultGateway: true, forceAddress: true, mtu: 1420, ipam: { type: 'host-local' } },
      { type: 'portmap', snat: true, capabilities: { portMappings: true } },
    ] };
    this.on(n.spec.name, ['sh', '-c', 'cat > /etc/cni/net.d/10-kilo.conflist'], { input: JSON.stringify(stock) });
    this.kubectl(['apply', '-f', '-'], { input: JSON.stringify(this.nodeObject(n)) });
  }

  /** Starts kg on a node (in its namespaces); resolves once its /health answers 200. */
  async startKg(name: string, extra: string[] = [], waitHealthy = true): Promise<void> {
    const n = this.node(name);
    const args = [
      // KG_NODE_ARGS: node flags for the agents (e.g. --cpu-prof, which NODE_OPTIONS refuses).
      `--mount=${n.mnt}`, `--net=/run/netns/${n.netns}`, '--', process.execPath, ...(process.env.KG_NODE_ARGS ?? '').split(' ').filter(Boolean), join(DIST, this.o.kgEntry ?? KG_BUNDLE),
      '--hostname', name, '--kubeconfig', this.kubeconfig, '--listen', ':1107', '--resync-period', '10s', '--log-level', 'info',
      ...(this.o.dualStack ? ['--dual-stack-subnet', DUAL_STACK_SUBNET] : []), ...(this.o.flags ?? []), ...(n.spec.flags ?? []), ...extra,
    ];
    const log = join(this.state, `kg-${name}.log`);
    writeFileSync(log, `# kg ${args.slice(3).join(' ')}\n`);
    const p = spawn('nsenter', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const append = (c: Buffer) => writeFileSync(log, c, { flag: 'a' });
    p.stdout!.on('data', append);
    p.stderr!.on('data', append);
    n.kg = p;
    this.procs.add(p);
    p.on('exit', () => this.procs.delete(p));
    if (waitHealthy) await this.waitHealthy(name);
  }

  async waitHealthy(name: string, timeoutMs = 60_000): Promise<void> {
    await waitFor(`kg on ${name} to be healthy (log: ${join(this.state, `kg-${name}.log`)})`, () => {
      if (this.node(name).kg?.exitCode !== null && this.node(name).kg?.exitCode !== undefined) throw new Error(`kg on ${name} exited with ${this.node(name).kg!.exitCode}`);
      return this.http(name, '/health').status === 200;
    }, timeoutMs, 300);
  }

  /** An HTTP GET against a node's kg, made inside the node's namespace. */
  http(name: string, path: string): { status: number; body: string } {
    const out = this.on(name, [process.execPath, '-e', `fetch('http://127.0.0.1:1107${path}').then(async (r) => process.stdout.write(r.status + '\\n' + await r.text())).catch((e) => process.stdout.write('0\\n' + e.message))`], { allowFail: true, timeoutMs: 15_000 });
    const i = out.indexOf('\n');
    return { status: Number(out.slice(0, i)), body: out.slice(i + 1) };
  }

  /** Stops kg: SIGTERM (clean shutdown, clean-up per flags) or SIGKILL (a crash). */
  async stopKg(name: string, signal: 'SIGTERM' | 'SIGKILL' = 'SIGTERM'): Promise<void> {
    const n = this.node(name);
    const p = n.kg;
    if (!p || p.exitCode !== null) return;
    p.kill(signal);
    await waitFor(`kg on ${name} to exit`, () => p.exitCode !== null || p.signalCode !== null, 30_000, 100);
    n.kg = null;
  }

  /** Adds a node after start-up (a node joining the cluster). */
  async addNode(spec: MeshNodeSpec): Promise<NodeHandle> {
    const h = this.addHandle(spec, this.nodes.length);
    await this.createNode(h);
    return h;
  }

  /** The pod of a node, created by the CNI plugins from the conflist kg wrote. */
  async createPod(name: string): Promise<string> {
    const n = this.node(name);
    const conf = await waitFor(`kg to write the CNI range on ${name}`, () => {
      const text = this.on(name, ['cat', '/etc/cni/net.d/10-kilo.conflist']);
      return text.includes(n.podCIDR) && (!n.podCIDR6 || text.includes(n.podCIDR6)) ? text : null;
    }, 30_000);
    const list = JSON.parse(conf) as { cniVersion: string; name: string; plugins: Record<string, unknown>[] };
    let prev: unknown = undefined;
    for (const plugin of list.plugins) {
      const stdin = JSON.stringify({ ...plugin, cniVersion: list.cniVersion, name: list.name, ...(prev ? { prevResult: prev } : {}), runtimeConfig: { portMappings: [] } });
      const out = this.on(name, ['env', 'CNI_COMMAND=ADD', `CNI_CONTAINERID=${n.podNetns}`, `CNI_NETNS=/run/netns/${n.podNetns}`, 'CNI_IFNAME=eth0', `CNI_PATH=${CNI_BIN}`, join(CNI_BIN, String(plugin.type))], { input: stdin });
      prev = JSON.parse(out);
    }
    const ips = (prev as { ips: { address: string }[] }).ips.map((x) => x.address.split('/')[0]);
    const ip = ips.find((x) => !x.includes(':'))!;
    n.podIP = ip;
    n.podIP6 = ips.find((x) => x.includes(':')) ?? null;
    return ip;
  }

  /** Bounded ping; returns whether replies came back. */
  ping(from: { node?: string; pod?: string; ns?: string }, to: string, count = 3): boolean {
    const args = ['ping', '-c', String(count), '-i', '0.2', '-W', '1', '-q', to];
    const ns = from.ns ?? (from.pod ? this.node(from.pod).podNetns : this.node(from.node!).netns);
    const r = spawnSync('ip', ['netns', 'exec', ns, ...args], { encoding: 'utf8', timeout: 15_000 });
    return r.status === 0;
  }

  /** The external Peer: a namespace on the underlay running wireguard-go with the given config. */
  startPeer(conf: string, address: string, routes: string[]): void {
    if (!this.netnsExists(this.peerNs)) this.attach(this.peerNs, 'peer', '192.168.77.50');
    const mnt = `${this.mntRoot}/peer`;
    if (!existsSync(mnt)) {
      writeFileSync(mnt, '');
      sh('unshare', [`--mount=${mnt}`, '--propagation', 'private', 'true']);
      sh('nsenter', [`--mount=${mnt}`, `--net=/run/netns/${this.peerNs}`, '--', 'sh', '-c', 'mkdir -p /run/wireguard && mount -t tmpfs tmpfs /run/wireguard && mount -t sysfs sysfs /sys']);
    }
    const on = (args: string[], input?: string) => sh('nsenter', [`--mount=${mnt}`, `--net=/run/netns/${this.peerNs}`, '--', ...args], { input });
    const p = spawn('nsenter', [`--mount=${mnt}`, `--net=/run/netns/${this.peerNs}`, '--', 'wireguard-go', '-f', 'wg0'], { stdio: 'ignore' });
    this.procs.add(p);
    for (let i = 0; i < 50 && on(['sh', '-c', 'test -S /run/wireguard/wg0.sock && echo y || true']).trim() !== 'y'; i++) spawnSync('sleep', ['0.1']);
    const key = join(this.state, 'peer.conf');
    writeFileSync(key, conf, { mode: 0o600 });
    on(['wg', 'setconf', 'wg0', key]);
    on(['ip', 'addr', 'add', address, 'dev', 'wg0']);
    on(['ip', 'link', 'set', 'wg0', 'up']);
    for (const r of routes) on(['ip', 'route', 'replace', r, 'dev', 'wg0']);
  }

  /** Tears everything down by pid and by name; safe to call twice and after a partial up(). */
  async down(): Promise<void> {
    this.claim();
    for (const n of this.nodes) {
      if (n.kg && n.kg.exitCode === null) n.kg.kill('SIGTERM');
    }
    await new Promise((r) => setTimeout(r, 200));
    // Whatever still runs inside our namespaces (kg, wireguard-go, tcpdump) is stopped by pid:
    // deleting a namespace does not stop its processes.
    const namespaces = [this.ul, this.apiNs, this.peerNs, ...this.nodes.flatMap((n) => [n.netns, n.podNetns])];
    for (let round = 0; round < 2; round++) {
      for (const ns of namespaces) {
        for (const pid of sh('ip', ['netns', 'pids', ns], { allowFail: true }).split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), round === 0 ? 'SIGTERM' : 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
      await new Promise((r) => setTimeout(r, 300));
    }
    for (const p of this.procs) if (p.exitCode === null) p.kill('SIGKILL');
    for (const ns of namespaces) if (this.netnsExists(ns)) sh('ip', ['netns', 'del', ns], { allowFail: true });
    for (const n of [...this.nodes.map((x) => x.mnt), `${this.mntRoot}/peer`]) {
      if (existsSync(n)) {
        sh('umount', [n], { allowFail: true });
        rmSync(n, { force: true });
      }
    }
    if (existsSync(this.mntRoot)) {
      sh('umount', [this.mntRoot], { allowFail: true });
      rmSync(this.mntRoot, { recursive: true, force: true });
    }
    rmSync(join(this.state, 'owner.pid'), { force: true });
  }
}

/** Captures on the underlay bridge while `during` runs (at most `max` packets); returns tcpdump's IP lines. */
export async function captureUnderlay(mesh: Mesh, filter: string, during: () => void, max = 400): Promise<string[]> {
  const p = spawn('timeout', ['20', 'ip', 'netns', 'exec', mesh.ul, 'tcpdump', '-l', '-n', '-i', 'br0', '-c', String(max), filter], { stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  await new Promise((r) => setTimeout(r, 800));
  during();
  await new Promise((r) => setTimeout(r, 500));
  p.kill('SIGINT');
  await new Promise((r) => p.once('exit', r));
  return out.split('\n').filter((l) => l.includes(' IP '));
}
