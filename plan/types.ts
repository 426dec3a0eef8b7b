// The planner's output: plain data, safe to structured-clone between threads.
// These types are the `kg plan` JSON contract (format 1, `PlanJSON`): tests, benchmarks and
// people read it, so a field is never renamed or dropped.

export type Family = 'ipv4' | 'ipv6';
/** `cross`: a WireGuard tunnel between every two nodes of different locations (design §19). */
export type Granularity = 'location' | 'full' | 'cross';

/** Endpoint as printed by `kg plan`. `resolved` is `ip:port` / `[v6]:port` when known. */
export interface EndpointJSON {
  host: string;
  port: number;
  resolved: string | null;
}

export interface NodeJSON {
  name: string;
  ready: boolean;
  location: string;
  endpoint: EndpointJSON | null;
  internalIP: string | null;
  noInternalIP: boolean;
  subnet: string | null;
  key: string | null;
  leader: boolean;
  lastSeen: number;
  persistentKeepalive: number;
  wireGuardIP: string | null;
  discoveredEndpoints: Record<string, string>;
  allowedLocationIPs: string[];
  granularity: Granularity | '';
  /** Design §20.2: the second family's pod CIDR and internal IP; only on nodes that have either. */
  dualStack?: { subnet: string | null; internalIP: string | null };
}

export interface PeerJSON {
  name: string;
  ready: boolean;
  allowedIPs: string[];
  endpoint: EndpointJSON | null;
  publicKey: string;
  presharedKey: boolean;
  persistentKeepalive: number;
}

export interface SegmentJSON {
  location: string;
  leader: number;
  hostnames: string[];
  endpoint: EndpointJSON | null;
  key: string;
  persistentKeepalive: number;
  allowedIPs: string[];
  cidrs: (string | null)[];
  privateIPs: string[];
  wireGuardIP: string;
  allowedLocationIPs: string[];
  /** Cross granularity only: the segment's location group (`location:<name>`, null: none; design §19.1). */
  nodeLocation?: string | null;
}

/** A route as `ip route` would hold it. Kilo installs every route with protocol static. */
export interface Route {
  dst: string;
  gw: string | null;
  dev: string;
  src: string | null;
  table: number | null;
  protocol: 'static';
  onlink: boolean;
}

/** A policy rule; Kilo never sets a priority (the kernel picks one, design §16.19). */
export interface Rule {
  src: string | null;
  dst: string | null;
  iif: string | null;
  table: number;
  priority: number | null;
}

export interface WireGuardPeer {
  publicKey: string;
  /** IP-first endpoint text (`ip:port`, `[v6]:port`, or a DNS `host:port` not yet resolved). */
  endpoint: string | null;
  allowedIPs: string[];
  persistentKeepalive: number;
  presharedKey: boolean;
}

export interface WireGuardJSON {
  applied: boolean;
  interface: string;
  listenPort: number;
  publicKey: string;
  mtu: number;
  peers: WireGuardPeer[];
}

export interface IptablesChain {
  family: Family;
  table: string;
  chain: string;
}

export interface IptablesRule extends IptablesChain {
  /** The arguments that follow `-A CHAIN` in `iptables-save` output. */
  rule: string[];
}

export interface IptablesJSON {
  chains: IptablesChain[];
  prepend: IptablesRule[];
  append: IptablesRule[];
}

/** Design §20: what `kg plan` prints of the second family (`dualStack`; absent for single-stack input). */
export interface DualStackJSON {
  family: Family;
  /** `--dual-stack-subnet`. */
  subnet: string;
  /** As `wireGuardCIDR`: the leader's second-family WireGuard IP with the subnet's prefix, else the subnet. */
  wireGuardCIDR: string;
  /** The local node's second-family pod CIDR and internal IP. */
  podCIDR: string | null;
  internalIP: string | null;
  /** false: the local node takes no part in the second family (see `warnings`). */
  active: boolean;
  segments: DualSegmentJSON[];
}

export interface DualSegmentJSON {
  location: string;
  hostnames: string[];
  allowedIPs: string[];
  cidrs: (string | null)[];
  privateIPs: string[];
  wireGuardIP: string;
}

export interface PlanJSON {
  format: 1;
  hostname: string;
  granularity: Granularity;
  location: string;
  leader: boolean;
  wireGuardCIDR: string;
  nodes: NodeJSON[];
  peers: PeerJSON[];
  segments: SegmentJSON[];
  routes: Route[];
  rules: Rule[];
  wireguard: WireGuardJSON;
  iptables: IptablesJSON;
  cni: unknown | null;
  /**
   * The tunnel device and the address kg gives it (design §9.7: the pod CIDR's first address as
   * a /32), or null when kg sets none (`--encapsulate=never`, `--local=false`, no-op or Flannel).
   * An addition to format 1.
   */
  tunnel: { dev: string; address: string } | null;
  warnings: string[];
  /** Design §20: only when `--dual-stack-subnet` is set and a ready node has a pod CIDR of its family. */
  dualStack?: DualStackJSON;
  /** Cross granularity only: the local node's location group (null: none; design §19.1). */
  nodeLocation?: string | null;
}
