// A synthetic desired dataplane shaped like the planner's full-granularity output on a leader:
// for every remote node one WireGuard peer, three routes and three KILO-NAT rules, plus the
// fixed chains and jumps of design §8.2. Used by the benchmark and the netns tests.

import { createHash } from 'node:crypto';
import type { IptablesRule, Route } from '../plan/types.js';
import type { DesiredPeer, DesiredState } from '../ipc/dataplane.js';

export interface FixtureOptions {
  nodes: number;
  iface?: string;
  /** Underlay device name (must exist, carrying `privateIP`). */
  privIface?: string;
  privateIP?: string;
  privateKey: string;
  /** Also emit IPv6 rules/routes for the first few nodes. */
  ipv6?: boolean;
  /** Extra version counter: change to alter node `changed`'s data. */
  changed?: number;
  /** Leave node `omit` out entirely (a node leaving the mesh). */
  omit?: number;
}

/** Deterministic 32-byte "public key" for node i (any 32 bytes are a valid key to wireguard-go). */
export function nodeKey(i: number): string {
  return createHash('sha256').update(`kg-node-${i}`).digest().toString('base64');
}

export function podCIDR(i: number): string {
  return `10.${42 + (i >> 8)}.${i & 255}.0/24`;
}
export function wgIP(i: number): string {
  return `10.4.${i >> 8}.${i & 255}`;
}
export function privIP(i: number): string {
  return `172.16.${i >> 8}.${i & 255}`;
}
export function alIP(i: number): string {
  return `10.200.${i >> 8}.${i & 255}/32`;
}

const C = (s: string): string[] => ['-m', 'comment', '--comment', s];

export function fixture(o: FixtureOptions): DesiredState {
  const iface = o.iface ?? 'kilo0';
  const src = o.privateIP ?? privIP(1);
  const peers: DesiredPeer[] = [];
  const routes: Route[] = [];
  const prepend: IptablesRule[] = [];
  const nat = (rule: string[], chain = 'KILO-NAT'): IptablesRule => ({ family: 'ipv4', table: 'nat', chain, rule });
  prepend.push(nat(['-s', podCIDR(1), ...C('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT'], 'POSTROUTING'));
  prepend.push({ family: 'ipv4', table: 'filter', chain: 'FORWARD', rule: [...C('Kilo: forward packets from the pod subnet'), '-s', podCIDR(1), '-j', 'ACCEPT'] });
  prepend.push({ family: 'ipv4', table: 'filter', chain: 'FORWARD', rule: [...C('Kilo: forward packets to the pod subnet'), '-d', podCIDR(1), '-j', 'ACCEPT'] });
  for (let i = 1; i <= o.nodes; i++) {
    if (i === o.omit) continue;
    const v = i === 2 && o.changed ? o.changed : 0;
    prepend.push(nat(['-d', `${wgIP(i)}/32`, ...C('Kilo: do not NAT packets destined for WireGuared IPs'), '-j', 'RETURN']));
    prepend.push(nat(['-d', podCIDR(i), ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN']));
    prepend.push(nat(['-d', `${privIP(i)}/32`, ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN']));
    if (v) prepend.push(nat(['-d', `10.201.0.${v & 255}/32`, ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN']));
    if (i === 1) continue; // the local node
    const allowed = [podCIDR(i), `${privIP(i)}/32`, `${wgIP(i)}/32`, alIP(i)];
    if (v) allowed.push(`10.201.0.${v & 255}/32`);
    peers.push({
      publicKey: nodeKey(i),
      endpoint: `192.168.${i >> 8}.${i & 255}:51820`,
      allowedIPs: allowed,
      persistentKeepalive: 0,
      presharedKey: false,
    });
    const r = (dst: string): Route => ({ dst, gw: wgIP(i), dev: iface, src, table: null, protocol: 'static', onlink: true });
    routes.push(r(podCIDR(i)), r(`${privIP(i)}/32`), r(alIP(i)));
    if (v) routes.push(r(`10.201.0.${v & 255}/32`));
  }
  const chains = [
    { family: 'ipv4' as const, table: 'nat', chain: 'KILO-NAT' },
    ...(o.ipv6 ? [{ family: 'ipv6' as const, table: 'nat', chain: 'KILO-NAT' }] : []),
  ];
  const append: IptablesRule[] = [nat([...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'])];
  if (o.ipv6) {
    append.push({ family: 'ipv6', table: 'nat', chain: 'KILO-NAT', rule: [...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'] });
    prepend.push({ family: 'ipv6', table: 'nat', chain: 'KILO-NAT', rule: ['-d', 'fd00:4::2/128', ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN'] });
    prepend.push({ family: 'ipv6', table: 'nat', chain: 'POSTROUTING', rule: ['-s', 'fd00:42::/64', ...C('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT'] });
    routes.push({ dst: 'fd00:42:2::/64', gw: null, dev: iface, src: null, table: null, protocol: 'static', onlink: false });
  }
  return {
    interface: iface,
    wireguard: { privateKey: o.privateKey, listenPort: 51820, mtu: 1420, address: `${wgIP(1)}/16`, peers },
    routes,
    rules: [],
    iptables: { chains, prepend, append },
    tunnel: null,
    cni: null,
  };
}
