// NAT endpoint discovery: which endpoints the local device learned are worth publishing.

/**
 * NAT endpoint discovery (design §6.7): from the device peers, the endpoints of ready nodes with a
 * keepalive and of ready Peers, whenever a handshake happened. Keys are base64 public keys.
 */
export function discoverNATEndpoints(
  devicePeers: ReadonlyArray<{ publicKey: string; endpoint: string | null; lastHandshake: number }>,
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
