// WireGuard configurations (design §6.1–6.4): the leader's device, a Peer's view, a segment as a
// peer, and the `wg setconf` INI text.
import { endpointString } from './endpoint.js';
import { isLocalSegment, updateEndpoint, type Segment, type Topology } from './topology.js';
import type { WGPeer } from './wg-peer.js';

export type { WGPeer };

export interface WGConf {
  /** Absent for a Peer's configuration (no interface section). */
  iface: { privateKey: string | null; listenPort: number } | null;
  peers: WGPeer[];
}

/** §6.1: the local leader's device configuration; `memo`: reuse segment peers across plans (memo.ts). */
export function deviceConf(t: Topology, privateKey: string | null, listenPort: number, memo = false): WGConf {
  const peers: WGPeer[] = [];
  // In cross granularity no peer for the nodes of the local location (design §19.2).
  for (const s of t.segments) if (!isLocalSegment(t, s)) peers.push(segmentPeer(t, s, memo));
  for (const p of t.peers) {
    peers.push({
      publicKey: p.publicKey ?? '',
      endpoint: updateEndpoint(t.discoveredEndpoints, p.endpoint, p.publicKey, p.persistentKeepalive),
      allowedIPs: [...p.allowedIPs],
      persistentKeepalive: t.persistentKeepalive,
      presharedKey: p.presharedKey,
    });
  }
  return { iface: { privateKey, listenPort }, peers };
}

/** Remote segment `s` as a peer of the local device, as deviceConf lists it. */
export function segmentPeer(t: Topology, s: Segment, memo: boolean): WGPeer {
  const endpoint = updateEndpoint(t.discoveredEndpoints, s.endpoint, s.key, s.persistentKeepalive);
  // A segment's peer is memoised on the segment object (topology.ts reuses unchanged segments;
  // memo.ts), so a re-plan hands back the same frozen peers and what is derived from them.
  const cached = memo ? s.memo?.peer : undefined;
  if (cached && cached.endpoint === endpoint && cached.persistentKeepalive === t.persistentKeepalive) return cached;
  const peer: WGPeer = Object.freeze({
    publicKey: s.key,
    endpoint,
    // Shared, not copied, when there is nothing to append: 5,000 peers in full granularity.
    allowedIPs: s.allowedLocationIPs.length ? [...s.allowedIPs, ...s.allowedLocationIPs] : s.allowedIPs,
    // Quirk (design §16.13): the local node's keepalive applies to every peer.
    persistentKeepalive: t.persistentKeepalive,
    presharedKey: null,
  });
  if (memo && s.memo) s.memo.peer = peer;
  return peer;
}

/** §6.2: the configuration a Peer resource named `name` should run (kgctl showconf peer). */
export function peerConf(t: Topology, name: string): WGConf {
  const me = t.peers.find((p) => p.name === name);
  const pka = me?.persistentKeepalive ?? 0;
  const psk = me?.presharedKey ?? null;
  const peers: WGPeer[] = [];
  for (const s of t.segments) {
    peers.push({
      publicKey: s.key,
      endpoint: updateEndpoint(t.discoveredEndpoints, s.endpoint, s.key, s.persistentKeepalive),
      allowedIPs: [...s.allowedIPs, ...s.allowedLocationIPs],
      persistentKeepalive: pka,
      presharedKey: psk,
    });
  }
  for (const p of t.peers) {
    if (p.name === name) continue;
    peers.push({
      publicKey: p.publicKey ?? '',
      endpoint: updateEndpoint(t.discoveredEndpoints, p.endpoint, p.publicKey, p.persistentKeepalive),
      allowedIPs: [...p.allowedIPs],
      persistentKeepalive: pka,
      presharedKey: null,
    });
  }
  return { iface: null, peers };
}

/** §6.3: the local segment as one peer (kgctl showconf node --as-peer); null if absent. */
export function segmentAsPeer(t: Topology): WGPeer | null {
  const s = t.segments.find((x) => x.location === t.location);
  if (!s) return null;
  return { publicKey: s.key, endpoint: s.endpoint, allowedIPs: [...s.allowedIPs], persistentKeepalive: 0, presharedKey: null };
}

const ZERO = 'A'.repeat(43) + '=';

/** §6.4: `wg setconf`-compatible text. `redact` replaces the private key (for `kg plan -o text`). */
export function renderINI(c: WGConf, redact = false): string {
  const lines: string[] = [];
  if (c.iface) {
    lines.push('[Interface]');
    if (c.iface.privateKey && c.iface.privateKey !== ZERO) lines.push(`PrivateKey = ${redact ? '(redacted)' : c.iface.privateKey}`);
    lines.push(`ListenPort = ${c.iface.listenPort}`);
  }
  c.peers.forEach((p, i) => {
    if (c.iface || i > 0) lines.push('');
    lines.push('[Peer]');
    if (p.allowedIPs.length > 0) lines.push(`AllowedIPs = ${p.allowedIPs.map((a) => a.s).join(', ')}`);
    const ep = endpointString(p.endpoint);
    if (ep) lines.push(`Endpoint = ${ep}`);
    lines.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
    if (p.presharedKey && p.presharedKey !== ZERO) lines.push(`PresharedKey = ${redact ? '(redacted)' : p.presharedKey}`);
    if (p.publicKey && p.publicKey !== ZERO) lines.push(`PublicKey = ${p.publicKey}`);
  });
  return lines.length ? lines.join('\n') + '\n' : '';
}
