// NAT endpoint discovery: which endpoints the local device learned are worth publishing.
import { parseEndpoint } from './endpoint.js';
import { nodeReady, type MeshNode, type UDPAddr } from './node.js';
import { peerReady } from './peer.js';
import type { Cluster } from './plan.js';

/** What the device says of its peers: the input of discovery. */
export type NATObservation = ReadonlyArray<{ publicKey: string; endpoint: string | null; lastHandshake: number }>;

/**
 * NAT endpoint discovery (design §6.7): from the device peers, the endpoints of ready nodes with a
 * keepalive and of ready Peers, whenever a handshake happened. Keys are base64 public keys.
 */
export function discoverNATEndpoints(
  devicePeers: NATObservation,
  nodes: ReadonlyArray<{ key: string | null; persistentKeepalive: number }>,
  peers: ReadonlyArray<{ publicKey: string }>,
): Record<string, string> {
  const byKey = new Map(devicePeers.map((p) => [p.publicKey, p]));
  const out: Record<string, string> = {};
  for (const n of nodes) {
    if (n.key === null) continue;
    const d = byKey.get(n.key);
    if (d && n.persistentKeepalive !== 0 && d.lastHandshake !== 0 && d.endpoint !== null) out[n.key] = d.endpoint;
  }
  for (const p of peers) {
    const d = byKey.get(p.publicKey);
    if (d && d.lastHandshake !== 0 && d.endpoint !== null) out[p.publicKey] = d.endpoint;
  }
  return out;
}

/** A node NAT discovery could find an endpoint for: it has a key and a persistent keepalive. */
export const isNATNode = (n: MeshNode): boolean => n.persistentKeepalive !== 0 && n.key !== null;

/**
 * Who NAT discovery could find an endpoint for: ready NAT nodes (by name) and ready Peers. Their
 * count tells the agent whether reading the device is worth it.
 */
export function natTargets(c: Cluster, now: number): { nodes: Map<string, MeshNode>; peers: { publicKey: string }[] } {
  const nodes = new Map<string, MeshNode>();
  for (const n of c.nodes) if (isNATNode(n) && nodeReady(n, now)) nodes.set(n.name, n);
  return { nodes, peers: c.peers.filter(peerReady).map((p) => ({ publicKey: p.publicKey! })) };
}

/** discoverNATEndpoints over the targets, as addresses. */
export function natDiscovery(observed: NATObservation, nodes: ReadonlyMap<string, MeshNode>, peers: readonly { publicKey: string }[]): Map<string, UDPAddr> {
  const found = discoverNATEndpoints(observed, [...nodes.values()], peers);
  const out = new Map<string, UDPAddr>();
  for (const [key, text] of Object.entries(found)) {
    const e = parseEndpoint(text);
    if (e?.ip) out.set(key, { ip: e.ip, port: e.port, zone: '' });
  }
  return out;
}
