// Command-line flags, parsed in one place for the agent and `kg plan`. Semantics follow the Go
// agent's pflag/cobra set-up (design §12.2): `--flag=value` or `--flag value`, bare booleans,
// repeatable comma-separated lists, and the same defaults, validation order and error texts.
import { hostname as osHostname } from 'node:os';
import { network, parseCIDR, type CIDR } from '../plan/addr.js';
import { STRATEGIES, type Strategy } from '../plan/encapsulation.js';
import type { Granularity } from '../plan/types.js';
import { HEARTBEAT_MODES, type HeartbeatMode, type HeartbeatPolicy } from '../plan/heartbeat.js';
import { limitsWith, MIN_PREFIX, type ClaimLimits } from '../plan/claims.js';
import { IPTABLES_LAYOUTS, type IptablesLayout } from '../ipc/dataplane.js';

export type FlagType = 'string' | 'bool' | 'int' | 'duration' | 'strings';
export interface FlagDef {
  name: string;
  type: FlagType;
  default: string | boolean | number | string[];
  usage: string;
  short?: string;
}
export type FlagValues = Record<string, string | boolean | number | string[]>;

export class FlagError extends Error {}

export const LOG_LEVELS = ['all', 'debug', 'info', 'warn', 'error', 'none'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Shared by the agent, `kg plan` and `kg webhook`: the webhook must deny exactly what kg ignores. */
export const ALLOW_SHORT_PREFIXES_FLAG: FlagDef = {
  name: 'allow-short-prefixes', type: 'bool', default: false,
  usage: `Accept allowed-location IPs of Nodes and allowed IPs of Peers with prefixes shorter than /${MIN_PREFIX} (0.0.0.0/0, 0.0.0.0/1, ::/0…); without it a node's are ignored and such a Peer is invalid (kg).`,
};

/** Every flag of the Go agent (design §12.2), then kg's own additions. */
export const AGENT_FLAGS: FlagDef[] = [
  { name: 'backend', type: 'string', default: 'kubernetes', usage: 'The backend for the mesh. Possible values: kubernetes' },
  { name: 'clean-up', type: 'bool', default: true, usage: 'Should kilo clean up network modifications on shutdown?' },
  { name: 'clean-up-interface', type: 'bool', default: false, usage: 'Should Kilo delete its interface when it shuts down?' },
  { name: 'cni', type: 'bool', default: true, usage: 'Should Kilo manage the node\'s CNI configuration?' },
  { name: 'cni-path', type: 'string', default: '/etc/cni/net.d/10-kilo.conflist', usage: 'Path to CNI config.' },
  { name: 'compatibility', type: 'string', default: '', usage: 'Should Kilo run in compatibility mode? Possible values: flannel, cilium' },
  { name: 'create-interface', type: 'bool', default: true, usage: 'Should kilo create an interface on startup?' },
  { name: 'encapsulate', type: 'string', default: 'always', usage: 'When should Kilo encapsulate packets within a location? Possible values: never, crosssubnet, always' },
  { name: 'hostname', type: 'string', default: '', usage: 'Hostname of the node on which this process is running.' },
  { name: 'interface', type: 'string', default: 'kilo0', usage: 'Name of the Kilo interface to use; if it does not exist, it will be created.' },
  { name: 'internal-cidr', type: 'strings', default: [], usage: 'Use the IP address of the first interface in these CIDRs as the internal IP (repeatable, comma-separated).' },
  { name: 'iptables-forward-rules', type: 'bool', default: false, usage: 'Add default accept rules to the FORWARD chain in iptables.' },
  { name: 'kubeconfig', type: 'string', default: '', usage: 'Path to kubeconfig.' },
  { name: 'listen', type: 'string', default: ':1107', usage: 'The address at which to listen for health and metrics.' },
  { name: 'local', type: 'bool', default: true, usage: 'Should Kilo manage routes within a location?' },
  { name: 'log-level', type: 'string', default: 'info', usage: 'Log level to use. Possible values: all, debug, info, warn, error, none' },
  { name: 'master', type: 'string', default: '', usage: 'The address of the Kubernetes API server (overrides any value in kubeconfig).' },
  { name: 'mesh-granularity', type: 'string', default: 'location', usage: 'The granularity of the network mesh to create. Possible values: location, full, cross' },
  { name: 'mtu', type: 'string', default: 'auto', usage: 'The MTU of the WireGuard interface created by Kilo ("auto" detects it from the default route\'s interface).' },
  { name: 'port', type: 'int', default: 51820, usage: 'The port over which WireGuard peers should communicate.' },
  { name: 'prioritise-private-addresses', type: 'bool', default: false, usage: 'Prefer to assign a private IP address to the node\'s endpoint.' },
  { name: 'resync-period', type: 'duration', default: '30s', usage: 'How often should the Kilo controllers reconcile?' },
  { name: 'service-cidr', type: 'strings', default: [], usage: 'The service CIDR for the Kubernetes cluster. Can be provided optionally to avoid masquerading packets sent to service IPs. Can be specified multiple times.' },
  { name: 'subnet', type: 'string', default: '10.4.0.0/16', usage: 'CIDR from which to allocate addresses for WireGuard interfaces.' },
  { name: 'topology-label', type: 'string', default: 'topology.kubernetes.io/region', usage: 'Kubernetes node label used to group nodes into logical locations.' },
  { name: 'version', type: 'bool', default: false, usage: 'Print version and exit' },
  // kg's own flags (not in the Go agent).
  { name: 'key-dir', type: 'string', default: '/var/lib/kilo', usage: 'Directory of the WireGuard private key file (kg).' },
  { name: 'planner-threads', type: 'int', default: 1, usage: 'Threads of the planner pool; the agent plans one node, one change at a time, so 1 is enough and keeps memory low; set explicitly, containers misreport CPUs (kg).' },
  // 20 ms, not 100: the interval caps the sustained plan rate, and 100 ms (10/s) is the churn target
  // itself, so any other plan (a readiness sweep) queued every change behind the bucket. A re-plan
  // costs ~1 ms and a pass ~15-25 ms, so one run in flight already spaces plans; 50/s is headroom.
  { name: 'min-sync-interval', type: 'duration', default: '20ms', usage: 'Plans are held to one per interval on average; a change after a quiet spell is planned at once, and changes during churn are coalesced (kg).' },
  { name: 'check-in-period', type: 'duration', default: '30s', usage: 'Heartbeat period of the own node (the minimum in adaptive mode); Go agents expect 30s (kg).' },
  { name: 'heartbeat', type: 'string', default: 'kilo', usage: 'Heartbeat mode: kilo (Go-compatible, every --check-in-period) or adaptive (all-kg clusters only: the period grows with the cluster to stay under --heartbeat-budget writes/s) (kg).' },
  { name: 'heartbeat-budget', type: 'string', default: '15', usage: 'Adaptive heartbeat mode: cluster-wide Node writes per second to stay under (kg).' },
  { name: 'log-format', type: 'string', default: 'json', usage: 'Log format: json or logfmt (kg).' },
  ALLOW_SHORT_PREFIXES_FLAG,
  { name: 'dual-stack-subnet', type: 'string', default: '', usage: 'CIDR of the other address family than --subnet from which to allocate second WireGuard addresses; turns on dual stack for nodes with pod CIDRs of both families (kg).' },
  { name: 'iptables-layout', type: 'string', default: 'sets', usage: 'How per-address iptables rules are laid out: sets (one rule per ipset; a node change is element adds and deletes; kilo for the run, with a warning, where ipset is unusable) or kilo (one rule per address, as the Go agent) (kg).' },
];

/** Extra flags of `kg plan` (its output is `PlanJSON`, plan/types.ts). */
export const PLAN_FLAGS: FlagDef[] = [
  { name: 'nodes', type: 'string', default: '', usage: 'File with the Nodes (kubectl get nodes -o json|yaml); "-" reads standard input. Required.' },
  { name: 'peers', type: 'string', default: '', usage: 'File with the Peers (kubectl get peers.kilo.squat.ai -o json|yaml); "-" reads standard input.' },
  { name: 'now', type: 'string', default: '', usage: 'Unix seconds used as the clock for readiness (default: the real clock).' },
  { name: 'private-interface', type: 'string', default: 'eth0', usage: 'Device name used where the agent uses the interface holding the private IP.' },
  { name: 'tunnel-interface', type: 'string', default: 'tunl0', usage: 'Device name used for the IPIP tunnel.' },
  { name: 'output', short: 'o', type: 'string', default: '', usage: 'Output format: json or text (default: json unless standard output is a terminal).' },
];

const BOOL_TRUE = new Set(['1', 't', 'T', 'TRUE', 'true', 'True']);
const BOOL_FALSE = new Set(['0', 'f', 'F', 'FALSE', 'false', 'False']);

function parseBool(name: string, v: string): boolean {
  if (BOOL_TRUE.has(v)) return true;
  if (BOOL_FALSE.has(v)) return false;
  throw new FlagError(`invalid argument "${v}" for "--${name}" flag: strconv.ParseBool: parsing "${v}": invalid syntax`);
}

const INT_RE = /^[+-]?(0[xX][0-9a-fA-F]+|0[oO]?[0-7]+|0[bB][01]+|[1-9][0-9]*|0)$/;
function parseIntFlag(name: string, v: string): number {
  if (!INT_RE.test(v)) throw new FlagError(`invalid argument "${v}" for "--${name}" flag: strconv.ParseInt: parsing "${v}": invalid syntax`);
  const neg = v.startsWith('-');
  let body = v.replace(/^[+-]/, '');
  if (/^0[0-7]+$/.test(body)) body = '0o' + body.slice(1);
  const n = Number(body);
  return neg ? -n : n;
}

const DURATION_UNITS: Record<string, number> = { ns: 1e-6, us: 1e-3, 'µs': 1e-3, 'μs': 1e-3, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
/** Go's time.ParseDuration, in milliseconds. */
export function parseDuration(v: string): number | null {
  if (v === '0' || v === '+0' || v === '-0') return 0;
  const m = /^([+-]?)((?:[0-9]*\.?[0-9]+|[0-9]+\.)(?:ns|us|µs|μs|ms|s|m|h))+$/.exec(v);
  if (!m) return null;
  let total = 0;
  const re = /([0-9]*\.?[0-9]+|[0-9]+\.)(ns|us|µs|μs|ms|s|m|h)/g;
  for (const part of v.slice(m[1].length).matchAll(re)) total += parseFloat(part[1]) * DURATION_UNITS[part[2]];
  return m[1] === '-' ? -total : total;
}

/** Parses argv against `defs`. Returns flag values (defaults filled in) and positionals. */
export function parseFlags(argv: readonly string[], defs: readonly FlagDef[]): { values: FlagValues; set: Set<string>; positionals: string[] } {
  const byName = new Map(defs.map((d) => [d.name, d]));
  const byShort = new Map(defs.filter((d) => d.short).map((d) => [d.short!, d]));
  const values: FlagValues = {};
  for (const d of defs) values[d.name] = Array.isArray(d.default) ? [...d.default] : d.default;
  const set = new Set<string>();
  const positionals: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (arg === '--') {
      positionals.push(...argv.slice(i + 1));
      break;
    }
    let def: FlagDef | undefined;
    let inline: string | undefined;
    if (arg.startsWith('--')) {
      const eq = arg.indexOf('=');
      const name = eq >= 0 ? arg.slice(2, eq) : arg.slice(2);
      inline = eq >= 0 ? arg.slice(eq + 1) : undefined;
      def = byName.get(name);
      if (!def) throw new FlagError(`unknown flag: --${name}`);
    } else if (arg.startsWith('-') && arg.length > 1) {
      const short = arg[1];
      def = byShort.get(short);
      if (!def) throw new FlagError(`unknown shorthand flag: '${short}' in ${arg}`);
      if (arg.length > 2) inline = arg[2] === '=' ? arg.slice(3) : arg.slice(2);
    } else {
      positionals.push(arg);
      continue;
    }
    let raw: string;
    if (inline !== undefined) raw = inline;
    else if (def.type === 'bool') raw = 'true';
    else {
      if (i + 1 >= argv.length) throw new FlagError(`flag needs an argument: --${def.name}`);
      raw = argv[++i];
    }
    set.add(def.name);
    switch (def.type) {
      case 'bool':
        values[def.name] = parseBool(def.name, raw);
        break;
      case 'int':
        values[def.name] = parseIntFlag(def.name, raw);
        break;
      case 'duration':
        if (parseDuration(raw) === null) throw new FlagError(`invalid argument "${raw}" for "--${def.name}" flag: time: invalid duration "${raw}"`);
        values[def.name] = raw;
        break;
      case 'strings': {
        // pflag's StringSlice: the first use replaces the default, later uses append.
        const prev = set.has(`${def.name}#used`) ? (values[def.name] as string[]) : [];
        set.add(`${def.name}#used`);
        values[def.name] = raw === '' ? prev : [...prev, ...raw.split(',')];
        break;
      }
      default:
        values[def.name] = raw;
    }
  }
  for (const k of [...set]) if (k.endsWith('#used')) set.delete(k);
  return { values, set, positionals };
}

/** The validated configuration shared by the agent and the planner. */
export interface Config {
  backend: 'kubernetes';
  cleanUp: boolean;
  cleanUpInterface: boolean;
  cni: boolean;
  cniPath: string;
  compatibility: string;
  createInterface: boolean;
  encapsulate: Strategy;
  hostname: string;
  interface: string;
  internalCIDRs: CIDR[];
  iptablesForwardRules: boolean;
  /** --iptables-layout (design §8.10). */
  iptablesLayout: IptablesLayout;
  kubeconfig: string;
  listen: string;
  local: boolean;
  logLevel: LogLevel;
  master: string;
  meshGranularity: Granularity;
  /** A number, or 'auto' (detected from the default route's device). */
  mtu: number | 'auto';
  port: number;
  prioritisePrivateAddresses: boolean;
  resyncPeriodMs: number;
  serviceCIDRs: CIDR[];
  subnet: CIDR;
  /** --dual-stack-subnet (design §20.1): the second family's mesh subnet, or null. */
  dualStackSubnet: CIDR | null;
  topologyLabel: string;
  version: boolean;
  keyDir: string;
  plannerThreads: number;
  minSyncIntervalMs: number;
  checkInPeriodMs: number;
  heartbeat: HeartbeatPolicy;
  logFormat: 'json' | 'logfmt';
  /** What one node or Peer may claim (plan/claims.ts), from --allow-short-prefixes. */
  claims: ClaimLimits;
}

function cidrFlag(v: string, masked: boolean): CIDR {
  const c = parseCIDR(v);
  if (!c) throw new FlagError(`failed to parse "${v}" as CIDR: invalid CIDR address: ${v}`);
  return masked ? network(c) : c;
}

/** Design §20.1: empty (single stack) or a CIDR of the other family than --subnet. */
function dualStackSubnetFlag(v: string, subnet: CIDR): CIDR | null {
  if (v === '') return null;
  const c = cidrFlag(v, true);
  if (c.ip.v6 === subnet.ip.v6) {
    throw new FlagError(`dual-stack subnet ${v} is of the same address family as the subnet ${subnet.s}; it must be ${subnet.ip.v6 ? 'IPv4' : 'IPv6'}`);
  }
  return c;
}

export function validateLogLevel(level: string): LogLevel {
  if (!(LOG_LEVELS as readonly string[]).includes(level)) {
    throw new FlagError(`log level ${level} unknown; possible values are: ${LOG_LEVELS.join(', ')}`);
  }
  return level as LogLevel;
}

/**
 * Validates flag values in the Go agent's order (design §12.2) with its error texts.
 * `--listen` is checked when it is bound, as in Go.
 */
export function toConfig(v: FlagValues, opts: { osHostname?: () => string } = {}): Config {
  const logLevel = validateLogLevel(v['log-level'] as string);
  const subnet = cidrFlag(v.subnet as string, true);
  let hostname = v.hostname as string;
  if (hostname === '') hostname = (opts.osHostname ?? osHostname)();
  if (!hostname) throw new FlagError('failed to determine hostname');
  const encapsulate = v.encapsulate as string;
  if (!(STRATEGIES as readonly string[]).includes(encapsulate)) {
    throw new FlagError(`encapsulation ${encapsulate} unknown; possible values are: never, crosssubnet, always`);
  }
  const granularity = v['mesh-granularity'] as string;
  if (granularity !== 'location' && granularity !== 'full' && granularity !== 'cross') {
    throw new FlagError(`mesh granularity ${granularity} unknown; possible values are: location, full, cross`);
  }
  if (v.backend !== 'kubernetes') throw new FlagError(`backend ${v.backend} unknown; possible values are: kubernetes`);
  const port = v.port as number;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    // "mus" is the Go agent's spelling.
    throw new FlagError(`invalid port: port mus be in range [1:65535], but got ${port}`);
  }
  const serviceCIDRs = (v['service-cidr'] as string[]).map((s) => cidrFlag(s, true));
  const internalCIDRs = (v['internal-cidr'] as string[]).map((s) => cidrFlag(s, true));
  const mtuText = v.mtu as string;
  let mtu: number | 'auto' = 'auto';
  if (mtuText !== 'auto') {
    if (!/^[0-9]+$/.test(mtuText) || Number(mtuText) > 0xffffffff) {
      throw new FlagError(`failed to parse MTU "${mtuText}": strconv.ParseUint: parsing "${mtuText}": invalid syntax`);
    }
    mtu = Number(mtuText);
  }
  const threads = v['planner-threads'] as number;
  if (!Number.isInteger(threads) || threads < 1 || threads > 64) throw new FlagError(`invalid --planner-threads ${threads}: must be 1..64`);
  const logFormat = v['log-format'] as string;
  if (logFormat !== 'json' && logFormat !== 'logfmt') throw new FlagError(`log format ${logFormat} unknown; possible values are: json, logfmt`);
  const checkIn = parseDuration(v['check-in-period'] as string) ?? 30_000;
  if (checkIn < 1000) throw new FlagError(`invalid --check-in-period ${v['check-in-period']}: must be at least 1s`);
  const mode = v.heartbeat as string;
  if (!(HEARTBEAT_MODES as readonly string[]).includes(mode)) throw new FlagError(`heartbeat mode ${mode} unknown; possible values are: ${HEARTBEAT_MODES.join(', ')}`);
  const layout = v['iptables-layout'] as string;
  if (!(IPTABLES_LAYOUTS as readonly string[]).includes(layout)) throw new FlagError(`iptables layout ${layout} unknown; possible values are: ${IPTABLES_LAYOUTS.join(', ')}`);
  const budgetText = v['heartbeat-budget'] as string;
  const budget = Number(budgetText);
  if (!/^[0-9]+(\.[0-9]+)?$/.test(budgetText) || !(budget > 0)) throw new FlagError(`invalid --heartbeat-budget ${budgetText}: must be a positive number of writes per second`);
  return {
    heartbeat: { mode: mode as HeartbeatMode, minPeriodSeconds: Math.ceil(checkIn / 1000), budget },
    keyDir: v['key-dir'] as string,
    plannerThreads: threads,
    minSyncIntervalMs: parseDuration(v['min-sync-interval'] as string) ?? 20,
    checkInPeriodMs: checkIn,
    logFormat,
    claims: limitsWith({ allowShortPrefixes: v['allow-short-prefixes'] as boolean }),
    backend: 'kubernetes',
    cleanUp: v['clean-up'] as boolean,
    cleanUpInterface: v['clean-up-interface'] as boolean,
    cni: v.cni as boolean,
    cniPath: v['cni-path'] as string,
    compatibility: v.compatibility as string,
    createInterface: v['create-interface'] as boolean,
    encapsulate: encapsulate as Strategy,
    hostname,
    interface: v.interface as string,
    internalCIDRs,
    iptablesForwardRules: v['iptables-forward-rules'] as boolean,
    iptablesLayout: layout as IptablesLayout,
    kubeconfig: v.kubeconfig as string,
    listen: v.listen as string,
    local: v.local as boolean,
    logLevel,
    master: v.master as string,
    meshGranularity: granularity,
    mtu,
    port,
    prioritisePrivateAddresses: v['prioritise-private-addresses'] as boolean,
    resyncPeriodMs: parseDuration(v['resync-period'] as string) ?? 30_000,
    serviceCIDRs,
    subnet, dualStackSubnet: dualStackSubnetFlag(v['dual-stack-subnet'] as string, subnet),
    topologyLabel: v['topology-label'] as string,
    version: v.version as boolean,
  };
}

/** `--help` text for a flag set. */
export function flagHelp(defs: readonly FlagDef[]): string {
  const rows = defs.map((d) => {
    const left = `${d.short ? `-${d.short}, ` : '    '}--${d.name}${d.type === 'bool' ? '' : ` ${d.type === 'strings' ? 'strings' : d.type}`}`;
    const def = Array.isArray(d.default) ? (d.default.length ? `[${d.default.join(',')}]` : '') : String(d.default);
    const shown = d.type === 'bool' && d.default === false ? '' : def === '' ? '' : ` (default ${d.type === 'string' || d.type === 'duration' ? JSON.stringify(def) : def})`;
    return [left, `${d.usage}${shown}`];
  });
  const w = Math.max(...rows.map((r) => r[0].length)) + 3;
  return rows.map(([l, r]) => `  ${l.padEnd(w)}${r}`).join('\n');
}

/**
 * A script's command line (benchmarks and tools): `--help` prints `Usage: <usage>`, the
 * description and the flags, then exits 0; an unknown flag, a positional argument or a failed
 * `check` prints the error and exits 2. Needs a `help` flag in `defs`.
 */
export function commandFlags(argv: readonly string[], defs: readonly FlagDef[], usage: string, description: string, check?: (v: FlagValues) => void): FlagValues {
  let values: FlagValues;
  try {
    const p = parseFlags(argv, defs);
    if (p.positionals.length) throw new FlagError(`unexpected argument ${JSON.stringify(p.positionals[0])}`);
    values = p.values;
    if (!values.help) check?.(values);
  } catch (e) {
    if (!(e instanceof FlagError)) throw e;
    process.stderr.write(`Error: ${e.message}\nRun with --help for usage.\n`);
    process.exit(2);
  }
  if (values.help) {
    process.stdout.write(`Usage: ${usage}\n\n${description}\n\nFlags:\n${flagHelp(defs)}\n`);
    process.exit(0);
  }
  return values;
}
