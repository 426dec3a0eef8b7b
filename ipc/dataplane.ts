// Messages between the main thread and the dataplane I/O worker (workers/io-worker.ts).
// Everything here is plain data: it crosses the thread boundary by structured clone.

import type { IptablesJSON, IptablesRule, Route, Rule, WireGuardPeer } from '../plan/types.js';

/** A peer as the worker must configure it: the plan's peer plus the secret the plan redacts. */
export interface DesiredPeer extends WireGuardPeer {
  /** base64 preshared key; required when `presharedKey` is true. */
  presharedKeySecret?: string;
}

export interface DesiredWireGuard {
  /** base64 private key. */
  privateKey: string;
  listenPort: number;
  /** Link MTU; 0 = auto (underlay default-route device MTU − 80, or 1420). */
  mtu: number;
  /** The single address the link must carry, e.g. `10.4.0.1/16`. */
  address: string;
  /** Design §20.3: the second family's address, e.g. `fd04::1/64`; only in dual stack. */
  address2?: string;
  peers: DesiredPeer[];
}

/** The whole desired dataplane of one node: the planner's output plus the secrets. */
export interface DesiredState {
  interface: string;
  /** null = non-leader: the link is set down, its configuration and addresses are left alone. */
  wireguard: DesiredWireGuard | null;
  routes: Route[];
  rules: Rule[];
  iptables: IptablesJSON;
  /** IPIP tunnel (design §9.3/§9.7): device name and the address it must carry (null = none). */
  tunnel: { dev: string; address: string | null; privIface?: string | null } | null;
  /** `podCIDR2` (design §20.4): absent = Kilo's rule; with --dual-stack-subnet the second range set, or null for none. */
  cni: { path: string; podCIDR: string; podCIDR2?: string | null } | null;
}

/** One splice of a list: remove `deleteCount` items at `start`, insert `items` there. */
export interface Splice<T> {
  start: number;
  deleteCount: number;
  items: T[];
}

/**
 * The change from one desired state to the next (made by the plan worker, diff/desired.ts).
 * The I/O worker splices it into the state it holds, so a one-node change costs O(changed).
 */
export interface DesiredDelta {
  /** Sequence number of the state this delta applies to; the result has seq + 1. */
  base: number;
  interface: string;
  /** The WireGuard head (key, port, MTU, address) or null (non-leader); peers travel separately. */
  wireguard: Omit<DesiredWireGuard, 'peers'> | null;
  peers: Splice<DesiredPeer> | null;
  routes: Splice<Route> | null;
  rules: Rule[] | null;
  chains: IptablesJSON['chains'] | null;
  prepend: Splice<IptablesRule> | null;
  append: Splice<IptablesRule> | null;
  tunnel: DesiredState['tunnel'];
  cni: DesiredState['cni'];
}

export type IptablesBackend = 'legacy' | 'nft';
/** `--iptables-layout`: per-address rules as ipset elements (sets) or Kilo's rule per address (kilo). */
export type IptablesLayout = 'sets' | 'kilo';
export const IPTABLES_LAYOUTS: readonly IptablesLayout[] = ['sets', 'kilo'];

/** The layout asked for and the one in effect: `kilo` for this run when ipset is unusable (design §8.11). */
export interface LayoutStatus {
  requested: IptablesLayout;
  effective: IptablesLayout;
  /** Why the effective layout is not the requested one (what is missing, what to do); null = none. */
  problem: string | null;
}
export type WireGuardMode = 'auto' | 'kernel' | 'userspace';

/** Options of the worker / Dataplane. The network namespace is the process's own. */
export interface DataplaneOptions {
  /** WireGuard interface name (`--interface`, default kilo0). */
  interface: string;
  /** `--create-interface`: create the link (kernel, else wireguard-go); false = adopt an existing one. */
  createInterface: boolean;
  /** auto = kernel link if the kernel supports it, else userspace. */
  wireguardMode: WireGuardMode;
  /** wireguard-go binary (default `wireguard-go` from PATH). */
  wireguardGo: string;
  /** Directory of UAPI sockets (default /var/run/wireguard). */
  uapiDir: string;
  /** null = detect the host's backend. */
  iptablesBackend: IptablesBackend | null;
  /** How the per-address rules are laid out (design §8.10). */
  iptablesLayout: IptablesLayout;
  /** Manage IPv6 iptables too (design §4.6: false when IPv6 is disabled). */
  ipv6: boolean;
  /** Periodic full resync (re-read the kernel, repair drift); 0 disables the timer. */
  resyncPeriodMs: number;
  /** Watch `ip monitor route` and resync routes soon after any change (drift repair). */
  routeMonitor: boolean;
  /** Kilo's routing table for encapsulation (1107). */
  kiloTable: number;
  /**
   * Test/bench hook: run every command inside this network namespace (and mount namespace) via
   * nsenter. In production leave it null: the worker acts on its process's own namespaces.
   */
  nsenter: { net: string; mount?: string } | null;
}

export const defaultDataplaneOptions: DataplaneOptions = {
  interface: 'kilo0',
  createInterface: true,
  wireguardMode: 'auto',
  wireguardGo: 'wireguard-go',
  uapiDir: '/var/run/wireguard',
  iptablesBackend: null,
  iptablesLayout: 'sets',
  ipv6: true,
  resyncPeriodMs: 30_000,
  routeMonitor: true,
  kiloTable: 1107,
  nsenter: null,
};

/** The reconcilers, one per kernel table. */
export type ReconcilerKind = 'link' | 'wireguard' | 'routes' | 'rules' | 'iptables' | 'tunnel' | 'cni';

export interface ReconcilerError {
  kind: ReconcilerKind;
  /** What failed (a route key, a peer key, a chain, …). */
  item: string;
  message: string;
}

/**
 * Why an item was not written as desired, without an error that a retry could cure:
 * `invalid` = refused before writing (a control character, a value out of the kernel's range);
 * `clamped` = written with a field brought into range or left out;
 * `refused` = the kernel refused it for good (the same input always fails): not retried until
 * the desired item changes.
 */
export type RejectReason = 'invalid' | 'clamped' | 'refused';

export interface Rejection extends ReconcilerError {
  reason: RejectReason;
  /** A summary entry stands for this many items (the list per pass is bounded); absent = 1. */
  count?: number;
}

export interface ReconcilerReport {
  kind: ReconcilerKind;
  /** Number of kernel objects written (added/changed/removed). */
  writes: number;
  /** Number of write batches / processes / UAPI messages used. */
  batches: number;
  /** Whether the kernel was re-read in this pass (false = the cached view was trusted). */
  read: boolean;
  durationMs: number;
  /** Failures a retry may cure (transient): they are retried with bounded backoff. */
  errors: ReconcilerError[];
  /** Items dropped, clamped or refused for good (each reported once, when it is first seen). */
  rejected: Rejection[];
}

export interface ApplyResult {
  /** 'apply' = a new desired state; 'resync' = periodic / drift repair; 'cleanup'. */
  cause: 'apply' | 'resync' | 'cleanup' | 'retry';
  ok: boolean;
  durationMs: number;
  reports: ReconcilerReport[];
  /** Total writes across reconcilers. */
  writes: number;
  errors: ReconcilerError[];
  /** Warnings: items not written as desired, never retried as they are (they do not make `ok` false). */
  rejected: Rejection[];
  /** Set by applyDelta when the worker does not hold the delta's base state: send it whole. */
  needFullState?: true;
}

export interface ObservedPeer {
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  persistentKeepalive: number;
  /** Unix seconds of the last handshake; 0 = never. */
  lastHandshake: number;
  rxBytes: number;
  txBytes: number;
}

export interface ObservedState {
  interface: string;
  /** 'kernel' | 'userspace' | null (no device reachable). */
  mode: 'kernel' | 'userspace' | null;
  /** pid of the wireguard-go process this worker spawned, if any. */
  ownedPid: number | null;
  up: boolean;
  mtu: number | null;
  listenPort: number;
  publicKey: string | null;
  peers: ObservedPeer[];
}

/** Counters the worker keeps; the main thread turns them into prom-client metrics. */
export interface DataplaneMetrics {
  /** kilo_iptables_operations_total: key = `${protocol}|${operation}|${table}|${chain}`. */
  iptablesOperations: Record<string, number>;
  /** kg_dataplane_writes_total by reconciler kind. */
  writes: Record<string, number>;
  /** kg_dataplane_batches_total by reconciler kind (restore calls, ip -batch runs, UAPI sets). */
  batches: Record<string, number>;
  /** kg_dataplane_errors_total by reconciler kind. */
  errors: Record<string, number>;
  /** kg_dataplane_rejected_total: key = `${kind}|${reason}`. */
  rejected: Record<string, number>;
  /** kg_dataplane_resyncs_total. */
  resyncs: number;
  /** Duration of the last pass per kind, ms. */
  lastDurationMs: Record<string, number>;
  /** kg_ipset_operations_total: key = `${operation}|${set}` (set `*` for reads); set by the I/O worker. */
  ipsetOperations?: Record<string, number>;
  /** kg_iptables_layout / kg_iptables_layout_fallback; set by the I/O worker. */
  iptablesLayout?: LayoutStatus;
  /** V8 heap in use by the I/O worker's isolate (set by the worker when asked). */
  heapBytes?: number;
  /** Physical memory the I/O worker's V8 heap holds (used or not): its share of the process RSS, short of code and stacks. */
  heapCommittedBytes?: number;
}

export interface CleanUpOptions {
  /** --clean-up-interface: also delete the WireGuard link (and stop wireguard-go). */
  interface: boolean;
}

/** Push events, sent by the worker over the MessagePort given as workerData.events. */
export type DataplaneEvent =
  | { type: 'applied'; result: ApplyResult }
  | { type: 'error'; error: ReconcilerError }
  | { type: 'log'; level: 'debug' | 'info' | 'warn' | 'error'; msg: string };

/** The worker's comlink API (workers/io-worker.ts). Plain request/response. */
export interface IoWorkerApi {
  /** Push events travel over the MessagePort passed as workerData.events (see workers/io-client.ts). */
  init(options: Partial<DataplaneOptions>): Promise<void>;
  /**
   * Apply a whole desired state, numbered `seq` (deltas name it as their base): an object or its
   * JSON text (parsed in the worker: one string copy to move).
   */
  apply(desired: DesiredState | string, seq: number): Promise<ApplyResult>;
  /** Apply a delta against the state numbered `delta.base` (made by diff/desired.ts). */
  applyDelta(delta: DesiredDelta): Promise<ApplyResult>;
  resync(): Promise<ApplyResult>;
  observe(): Promise<ObservedState>;
  metrics(): Promise<DataplaneMetrics>;
  cleanUp(options: CleanUpOptions): Promise<ApplyResult>;
  /** Stop timers and the route monitor (does not undo anything). */
  close(): Promise<void>;
}
