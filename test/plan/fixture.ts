// Shared test fixtures for the planner (the §18 cluster of the behaviour spec) and small helpers.
import fc from 'fast-check';
import { parseCIDR } from '../../plan/addr.js';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import { parseCluster, plan, type PlanOptions } from '../../plan/plan.js';
import type { Granularity } from '../../plan/types.js';
import type { Strategy } from '../../plan/encapsulation.js';

/** A valid, deterministic WireGuard public key. */
export const key = (n: number): string => Buffer.alloc(32, n).toString('base64');

export const NOW = 1_764_160_000;

export function nodeObj(name: string, ann: Record<string, string>, podCIDR?: string, labels: Record<string, string> = {}): NodeObject {
  return { metadata: { name, annotations: ann, labels }, spec: podCIDR === undefined ? {} : { podCIDR } };
}

export function peerObj(name: string, spec: Record<string, unknown>): PeerObject {
  return { metadata: { name }, spec: spec as PeerObject['spec'] };
}

/**
 * The fixture of design §18: a (location 1, private endpoint, internal IP, keepalive), b (location
 * 2, the same internal IP value as a, one allowed-location IP), c (location 2), d (location 1
 * without internal IP); peer a with two allowed IPs and no endpoint, peer b with one allowed IP
 * and an endpoint.
 */
export function specNodes(): NodeObject[] {
  const base = (i: number) => ({
    'kilo.squat.ai/endpoint': `10.1.0.${i}:51820`,
    'kilo.squat.ai/key': key(i),
    'kilo.squat.ai/last-seen': String(NOW),
  });
  return [
    nodeObj('a', { ...base(1), 'kilo.squat.ai/internal-ip': '192.168.0.1/32', 'kilo.squat.ai/location': '1', 'kilo.squat.ai/persistent-keepalive': '25' }, '10.2.1.0/24'),
    nodeObj('b', { ...base(2), 'kilo.squat.ai/internal-ip': '192.168.0.1/32', 'kilo.squat.ai/location': '2', 'kilo.squat.ai/allowed-location-ips': '192.168.178.3/32' }, '10.2.2.0/24'),
    nodeObj('c', { ...base(3), 'kilo.squat.ai/internal-ip': '192.168.0.2/32', 'kilo.squat.ai/location': '2' }, '10.2.3.0/24'),
    nodeObj('d', { ...base(4), 'kilo.squat.ai/location': '1' }, '10.2.4.0/24'),
  ];
}

export function specPeers(): PeerObject[] {
  return [
    peerObj('a', { allowedIPs: ['10.5.0.1/24', '10.5.0.2/24'], publicKey: key(11) }),
    peerObj('b', { allowedIPs: ['10.5.0.3/24'], publicKey: key(12), endpoint: { dnsOrIP: { ip: '192.168.0.1' }, port: 51820 } }),
  ];
}

export interface Opts {
  granularity?: Granularity;
  encapsulate?: Strategy;
  local?: boolean;
  cni?: boolean;
  compatibility?: string;
  forward?: boolean;
  serviceCIDRs?: string[];
  subnet?: string;
  now?: number;
}

export function options(hostname: string, o: Opts = {}): PlanOptions {
  return {
    hostname,
    granularity: o.granularity ?? 'location',
    subnet: parseCIDR(o.subnet ?? '10.4.0.0/16')!,
    encapsulate: o.encapsulate ?? 'never',
    local: o.local ?? false,
    cni: o.cni ?? true,
    compatibility: o.compatibility ?? '',
    iptablesForwardRules: o.forward ?? false,
    serviceCIDRs: (o.serviceCIDRs ?? []).map((s) => parseCIDR(s)!),
    interface: 'kilo0',
    mtu: 'auto',
    privateInterface: 'eth0',
    tunnelInterface: 'tunl0',
    now: o.now ?? NOW + 5,
  };
}

export function planFor(nodes: NodeObject[], peers: PeerObject[], hostname: string, o: Opts = {}) {
  return plan(parseCluster(nodes, peers, 'topology.kubernetes.io/region'), options(hostname, o));
}

/** What the random-cluster generators (property, sequence and fleet tests) say about one node. */
export interface GenNode {
  publicEP: boolean;
  loc: number;
  internal: boolean;
  leader: boolean;
  /** Seconds of persistent keepalive (true: 5), none when falsy. */
  keepalive: boolean | number;
  /** Allowed-location IPs: 5 is a /16 over the others' /24s, so claims collide and nest. */
  alip: number | null;
}

/** The GenNode fields every random-cluster generator draws the same way (keepalive as on/off). */
export const genNodeFields = {
  loc: fc.integer({ min: 0, max: 3 }),
  internal: fc.boolean(),
  leader: fc.boolean(),
  publicEP: fc.boolean(),
  alip: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null }),
  keepalive: fc.boolean(),
};

/** Node i's annotations as the generators write them (one shape for every property test). */
export function genAnnotations(g: GenNode, i: number, lastSeen: number, port = 51820): Record<string, string> {
  const ann: Record<string, string> = {
    'kilo.squat.ai/endpoint': g.publicEP ? `198.51.100.${i + 1}:${port}` : `10.0.${g.loc}.${i + 1}:${port}`,
    'kilo.squat.ai/key': key(i + 1),
    'kilo.squat.ai/last-seen': String(lastSeen),
    'kilo.squat.ai/location': `l${g.loc}`,
  };
  if (g.internal) ann['kilo.squat.ai/internal-ip'] = `10.0.${g.loc}.${i + 1}/24`;
  if (g.leader) ann['kilo.squat.ai/leader'] = '';
  if (g.keepalive) ann['kilo.squat.ai/persistent-keepalive'] = g.keepalive === true ? '5' : String(g.keepalive);
  if (g.alip !== null) ann['kilo.squat.ai/allowed-location-ips'] = g.alip === 5 ? '172.16.0.0/16' : `172.16.${g.alip}.0/24`;
  return ann;
}
