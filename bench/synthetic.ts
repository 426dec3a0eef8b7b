// Synthetic clusters for benchmarks and capacity planning: N Kilo nodes in L locations plus P
// Peers, as the Node and Peer objects kg reads. Deterministic: the same shape gives the same
// objects, so runs can be compared.
import type { NodeObject } from '../plan/node.js';
import type { PeerObject } from '../plan/peer.js';

export interface ClusterShape {
  nodes: number;
  locations: number;
  peers: number;
  /** Unix seconds written as every node's last-seen. */
  now: number;
  /**
   * Dual stack (design §20.2): node i also gets the IPv6 pod CIDR fd45:<i>::/64 (second in
   * spec.podCIDRs) and the IPv6 internal IP fd77::<i + 1>/64 (dual-stack-internal-ip).
   */
  dualStack?: boolean;
}

/** A valid WireGuard public key derived from an index (not a real key pair: planning needs none). */
export function syntheticKey(i: number, salt = 0): string {
  const b = Buffer.alloc(32, 0x5a);
  b.writeUInt32BE(i >>> 0, 0);
  b.writeUInt32BE(salt >>> 0, 4);
  return b.toString('base64');
}

const quad = (a: number, i: number) => `${a}.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;

export function syntheticNodes(s: ClusterShape): NodeObject[] {
  const out: NodeObject[] = [];
  for (let i = 0; i < s.nodes; i++) {
    const loc = i % s.locations;
    // The first node of each location has a public endpoint, so it leads (design §5.3).
    const pod = `10.${64 + ((i >> 8) & 127)}.${i & 255}.0/24`;
    const endpoint = i < s.locations ? `198.18.${(i >> 8) & 255}.${i & 255}:51820` : `${quad(172, i + 0x100000)}:51820`;
    out.push({
      metadata: {
        name: `node-${String(i).padStart(5, '0')}`,
        labels: { 'topology.kubernetes.io/region': `location-${String(loc).padStart(3, '0')}`, 'kubernetes.io/os': 'linux' },
        annotations: {
          'kilo.squat.ai/endpoint': endpoint,
          'kilo.squat.ai/internal-ip': `${quad(172, i + 0x100000)}/12`,
          'kilo.squat.ai/key': syntheticKey(i),
          'kilo.squat.ai/last-seen': String(s.now),
          'kilo.squat.ai/wireguard-ip': '',
          'kilo.squat.ai/discovered-endpoints': '{}',
          'kilo.squat.ai/granularity': 'location',
          'node.alpha.kubernetes.io/ttl': '0',
          ...(s.dualStack ? { 'kilo.squat.ai/dual-stack-internal-ip': `fd77::${(i + 1).toString(16)}/64` } : {}),
        },
      },
      spec: s.dualStack ? { podCIDR: pod, podCIDRs: [pod, `fd45:${i.toString(16)}::/64`] } : { podCIDR: pod },
    });
  }
  return out;
}

export function syntheticPeers(s: ClusterShape): PeerObject[] {
  const out: PeerObject[] = [];
  for (let j = 0; j < s.peers; j++) {
    out.push({
      metadata: { name: `peer-${String(j).padStart(4, '0')}` },
      spec: { allowedIPs: [`10.250.${(j >> 8) & 255}.${j & 255}/32`], publicKey: syntheticKey(j, 1), persistentKeepalive: 25 },
    });
  }
  return out;
}

/** The name of node `i` (the node used for single-node plans is 0, a leader). */
export const syntheticName = (i: number) => `node-${String(i).padStart(5, '0')}`;
