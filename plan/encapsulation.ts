// Encapsulators (design §9): how a node reaches its leader and same-location nodes.
// Only what planning needs lives here (the gateway convention, the tunnel device name and the
// iptables rules of §8.3); creating tunnels is the dataplane's job.
import { hostBits, type CIDR, type IP } from './addr.js';
import type { Family, IptablesChain, IptablesRule } from './types.js';

export type Strategy = 'never' | 'crosssubnet' | 'always';
export const STRATEGIES: readonly Strategy[] = ['never', 'crosssubnet', 'always'];

export type EncapsulatorKind = 'ipip' | 'flannel' | 'cilium' | 'noop';

export interface Encapsulator {
  readonly kind: EncapsulatorKind;
  readonly strategy: Strategy;
  /** The tunnel device routes use when encapsulating, or null (no-op). */
  readonly tunnel: string | null;
  gw(endpointIP: IP | null, internalIP: IP | null, cniIP: CIDR | null, podCIDR: CIDR | null): IP | null;
}

/**
 * Picks the encapsulator. Quirk (design §16.23): any `--compatibility` other than flannel or
 * cilium silently means IPIP. A host without a private IP gets the no-op encapsulator, which
 * keeps the strategy but has no gateway and no device (design §4.3, §9.6).
 */
export function encapsulator(opts: {
  compatibility: string;
  strategy: Strategy;
  hasPrivateIP: boolean;
  tunnelInterface: string;
}): Encapsulator {
  const { strategy } = opts;
  if (!opts.hasPrivateIP) return { kind: 'noop', strategy, tunnel: null, gw: () => null };
  if (opts.compatibility === 'flannel') {
    // Flannel's VXLAN convention: a node is reached at its pod-CIDR network address.
    return { kind: 'flannel', strategy, tunnel: 'flannel.1', gw: (_e, _i, _c, pod) => pod?.ip ?? null };
  }
  if (opts.compatibility === 'cilium') {
    return { kind: 'cilium', strategy, tunnel: opts.tunnelInterface, gw: (_e, _i, cni, pod) => cni?.ip ?? pod?.ip ?? null };
  }
  return { kind: 'ipip', strategy, tunnel: opts.tunnelInterface, gw: (_e, internal) => internal };
}

/** `ipencap` is IP protocol 4 as named by the protocol database (Go builds hard-code it). */
export const IPIP_PROTOCOL = 'ipencap';

const FAMILIES: Family[] = ['ipv4', 'ipv6'];

/** §8.3: KILO-IPIP rules for IPIP and Cilium; Flannel and no-op add none. */
export function encapsulationRules(
  enc: Encapsulator,
  privateIPs: readonly IP[],
): { chains: IptablesChain[]; append: IptablesRule[]; prepend: IptablesRule[] } {
  if (enc.kind !== 'ipip' && enc.kind !== 'cilium') return { chains: [], append: [], prepend: [] };
  const chains = FAMILIES.map((family) => ({ family, table: 'filter', chain: 'KILO-IPIP' }));
  const input = (args: string[]) => FAMILIES.map((family) => ({ family, table: 'filter', chain: 'INPUT', rule: args }));
  const append = [
    ...input(['-p', IPIP_PROTOCOL, '-m', 'comment', '--comment', 'Kilo: jump to IPIP chain', '-j', 'KILO-IPIP']),
    ...input(['-p', IPIP_PROTOCOL, '-m', 'comment', '--comment', 'Kilo: reject other IPIP traffic', '-j', 'DROP']),
  ];
  const prepend = privateIPs.map((ip) => ({
    family: (ip.v6 ? 'ipv6' : 'ipv4') as Family,
    table: 'filter',
    chain: 'KILO-IPIP',
    // The text alone: no CIDR object per same-location node (5,000 in one location).
    rule: ['-s', `${ip.s}/${hostBits(ip)}`, '-m', 'comment', '--comment', 'Kilo: allow IPIP traffic', '-j', 'ACCEPT'],
  }));
  return { chains, append, prepend };
}
