// Pure WireGuard diff: desired peers vs the device's peers (kernel/uapi.ts parses them) →
// per-peer deltas, written as UAPI `set=1` messages or `wg set` arguments. Never replace_peers.

import { canonicalCIDR } from '../kernel/input-checks.js';
import { b64ToHex, canonicalEndpoint, ZERO_HEX, type DeviceDelta, type DesiredPeerInput, type DevicePeer, type DeviceState, type PeerDelta } from '../kernel/uapi.js';

/**
 * The delta from `device` to `desired`.
 * Endpoint policy: a peer's endpoint is written when the peer is new, when the device has none,
 * or when the desired endpoint changed since the last apply (`lastDesiredEndpoints`). A roamed
 * endpoint (the device learned another address from an authenticated packet) is otherwise left
 * alone; it becomes a discovered endpoint (design §6.7) and so comes back through the planner.
 * With no record for the peer (first apply after a start) a differing endpoint is written.
 */
export function diffDevice(
  device: DeviceState,
  /** `listenPort` undefined = leave the device's port as it is. */
  desired: { privateKeyHex: string; listenPort?: number; peers: readonly DesiredPeerInput[] },
  lastDesiredEndpoints: ReadonlyMap<string, string | null>,
): DeviceDelta {
  const delta: DeviceDelta = { peers: [] };
  if (device.privateKeyHex !== desired.privateKeyHex) delta.privateKeyHex = desired.privateKeyHex;
  if (desired.listenPort !== undefined && device.listenPort !== desired.listenPort) delta.listenPort = desired.listenPort;
  const want = new Set<string>();
  for (const p of desired.peers) {
    if (want.has(p.publicKey)) continue;
    want.add(p.publicKey);
    const allowed = [...new Set(p.allowedIPs.map(canonicalCIDR))];
    const ep = canonicalEndpoint(p.endpoint);
    const psk = p.presharedKeySecret ? b64ToHex(p.presharedKeySecret) : ZERO_HEX;
    const d = device.peers.get(p.publicKey);
    if (d === undefined) {
      const pd: PeerDelta = { publicKey: p.publicKey, create: true, persistentKeepalive: p.persistentKeepalive };
      if (ep !== null) pd.endpoint = ep;
      if (psk !== ZERO_HEX) pd.presharedKeyHex = psk;
      if (allowed.length > 0) pd.addAllowedIPs = allowed;
      delta.peers.push(pd);
      continue;
    }
    const pd: PeerDelta = { publicKey: p.publicKey };
    let changed = false;
    if (ep !== null && ep !== d.endpoint) {
      const last = lastDesiredEndpoints.get(p.publicKey);
      if (d.endpoint === null || last === undefined || last !== ep) {
        pd.endpoint = ep;
        changed = true;
      }
    }
    if (d.persistentKeepalive !== p.persistentKeepalive) {
      pd.persistentKeepalive = p.persistentKeepalive;
      changed = true;
    }
    if (d.presharedKeyHex !== psk) {
      pd.presharedKeyHex = psk;
      changed = true;
    }
    let same = d.allowedIPs.length === allowed.length;
    for (let i = 0; same && i < allowed.length; i++) same = d.allowedIPs[i] === allowed[i];
    if (same) {
      if (changed) delta.peers.push(pd);
      continue;
    }
    const have = new Set(d.allowedIPs);
    const wantSet = new Set(allowed);
    let lost = false;
    for (const a of have) if (!wantSet.has(a)) lost = true;
    if (lost) {
      pd.replaceAllowedIPs = allowed;
      changed = true;
    } else {
      const add = allowed.filter((a) => !have.has(a));
      if (add.length > 0) {
        pd.addAllowedIPs = add;
        changed = true;
      }
    }
    if (changed) delta.peers.push(pd);
  }
  for (const key of device.peers.keys()) {
    if (!want.has(key)) delta.peers.push({ publicKey: key, remove: true });
  }
  return delta;
}

export function isEmptyDelta(d: DeviceDelta): boolean {
  return d.privateKeyHex === undefined && d.listenPort === undefined && d.peers.length === 0;
}

/**
 * A device read back, with each peer that has a desired twin holding the desired peer's strings
 * (key, endpoint, allowed IPs) wherever they are equal: what writes would have left in it. The
 * read's own copies (~1 MB at 5,000 peers) then go with the read instead of living on in the
 * cached view until the next resync. Nothing is compared differently: equal strings only.
 */
export function shareDesired(device: DeviceState, desired: ReadonlyMap<string, DesiredPeerInput>): void {
  const peers = new Map<string, DevicePeer>();
  for (const [key, d] of device.peers) {
    const w = desired.get(key);
    if (w !== undefined) {
      d.publicKey = w.publicKey;
      if (d.endpoint !== null && d.endpoint === w.endpoint) d.endpoint = w.endpoint;
      if (d.allowedIPs.length === w.allowedIPs.length && d.allowedIPs.every((a, i) => a === w.allowedIPs[i])) d.allowedIPs = [...w.allowedIPs];
    }
    peers.set(d.publicKey, d);
  }
  device.peers = peers;
}
