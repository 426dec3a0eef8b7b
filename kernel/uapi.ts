// The WireGuard text formats: keys (base64/hex), endpoints, the UAPI `get=1` reply and `wg show
// dump` parsed into a DeviceState, the checks a desired peer passes, and a device delta
// (diff/wireguard.ts) rendered as UAPI `set=1` messages (userspace) or `wg set` arguments (kernel).

import ipaddr from 'ipaddr.js';
import { canonicalCIDR, checkCIDR, clampInt, controlAt, show, textProblem } from './input-checks.js';

export function b64ToHex(b64: string): string {
  const buf = Buffer.from(b64, 'base64');
  if (buf.length !== 32) throw new Error(`invalid WireGuard key (want 32 bytes): ${b64}`);
  return buf.toString('hex');
}

export function hexToB64(hex: string): string {
  return Buffer.from(hex, 'hex').toString('base64');
}

export const ZERO_HEX = '0'.repeat(64);

/** Normalise an endpoint `ip:port` / `[v6]:port`; DNS names (unresolved) give null. */
export function canonicalEndpoint(ep: string | null): string | null {
  if (ep === null || ep === '') return null;
  let host: string;
  let port: string;
  if (ep.startsWith('[')) {
    const end = ep.indexOf(']');
    if (end < 0) return null;
    host = ep.slice(1, end);
    port = ep.slice(end + 2);
  } else {
    const c = ep.lastIndexOf(':');
    if (c < 0) return null;
    host = ep.slice(0, c);
    port = ep.slice(c + 1);
  }
  const zone = host.indexOf('%');
  const bare = zone < 0 ? host : host.slice(0, zone);
  // a zone is written as it is: only an interface name's characters (no control character, no space)
  if (zone >= 0 && !/^%[0-9A-Za-z_.-]{1,15}$/.test(host.slice(zone))) return null;
  if (!ipaddr.isValid(bare) || !/^[0-9]{1,5}$/.test(port)) return null;
  let addr = ipaddr.parse(bare);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  const p = Number(port);
  if (!Number.isInteger(p) || p <= 0 || p > 65535) return null;
  return addr.kind() === 'ipv6' ? `[${addr.toString()}${zone < 0 ? '' : host.slice(zone)}]:${p}` : `${addr.toString()}:${p}`;
}

/** A WireGuard key: the canonical base64 of 32 bytes (Buffer.from would skip stray characters). */
export function isWgKey(k: unknown): k is string {
  return typeof k === 'string' && k.length === 44 && Buffer.from(k, 'base64').toString('base64') === k;
}

/** A DNS `host:port` the agent has not resolved yet: no endpoint for now, and no warning. */
function unresolvedName(ep: string): boolean {
  const m = /^([A-Za-z0-9]([A-Za-z0-9-]{0,62})?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62})?)*\.?):(\d{1,5})$/.exec(ep);
  return m !== null && m[1].length <= 253 && Number(m[5]) >= 1 && Number(m[5]) <= 65535;
}

export interface PeerProblem {
  message: string;
  reason: 'invalid' | 'clamped';
}

/**
 * Check a desired peer field by field before it can become UAPI lines or `wg` arguments.
 * Drop the peer: a public key that is not a key. Drop the peer but leave the device's peer with
 * that key as it is (`hold`): a preshared key that is not a key (without it the peer could not
 * talk anyway; its value is never shown). Drop the field: an endpoint that is not `ip:port` with
 * a port in 1-65535 (a DNS name not resolved yet is no endpoint, silently), an allowed IP that is
 * not a CIDR. Clamp: a keepalive outside 0-65535 (the device refuses it, errno 22).
 */
export function checkPeer<P extends DesiredPeerInput>(p: P): { peer: P | null; hold: boolean; problems: PeerProblem[] } {
  const problems: PeerProblem[] = [];
  if (!isWgKey(p?.publicKey)) return { peer: null, hold: false, problems: [{ message: `public key ${show(p?.publicKey)} is not a WireGuard key`, reason: 'invalid' }] };
  if (p.presharedKeySecret !== undefined && p.presharedKeySecret !== null && p.presharedKeySecret !== '' && !isWgKey(p.presharedKeySecret)) {
    return { peer: null, hold: true, problems: [{ message: 'the preshared key is not a WireGuard key: the peer is left as it is', reason: 'invalid' }] };
  }
  let endpoint: string | null = null;
  if (p.endpoint !== null && p.endpoint !== undefined && p.endpoint !== '') {
    const t = textProblem('endpoint', p.endpoint, 300);
    endpoint = t === null ? canonicalEndpoint(p.endpoint) : null;
    if (endpoint === null && (t !== null || !unresolvedName(p.endpoint))) problems.push({ message: `${t ?? `endpoint ${show(p.endpoint)} is not ip:port with a port in 1-65535`}: no endpoint set`, reason: 'invalid' });
  }
  const allowedIPs: string[] = [];
  for (const a of Array.isArray(p.allowedIPs) ? p.allowedIPs : []) {
    const c = checkCIDR('allowed IP', a);
    if (c.ok) allowedIPs.push(c.value);
    else problems.push({ message: `${c.problem}: left out`, reason: 'invalid' });
  }
  const ka = clampInt(p.persistentKeepalive ?? 0, 0, 65535);
  if (ka.clamped) problems.push({ message: `persistent keepalive ${show(p.persistentKeepalive)} is outside 0-65535: ${ka.value} used`, reason: 'clamped' });
  return { peer: { ...p, endpoint, allowedIPs: [...new Set(allowedIPs)], persistentKeepalive: ka.value }, hold: false, problems };
}

/** A peer as the device holds it. */
export interface DevicePeer {
  publicKey: string; // base64
  endpoint: string | null;
  allowedIPs: string[]; // canonical (masked) CIDRs
  persistentKeepalive: number;
  presharedKeyHex: string; // 64 zeros = none
  lastHandshake: number; // unix seconds, 0 = never
  rxBytes: number;
  txBytes: number;
}

export interface DeviceState {
  privateKeyHex: string | null;
  listenPort: number;
  peers: Map<string, DevicePeer>;
}

export interface DesiredPeerInput {
  publicKey: string;
  endpoint: string | null;
  allowedIPs: string[];
  persistentKeepalive: number;
  presharedKeySecret?: string;
}

/** One peer's delta. Absent fields are left as the device has them. */
export interface PeerDelta {
  publicKey: string;
  remove?: true;
  /** Peer does not exist yet. */
  create?: true;
  endpoint?: string;
  persistentKeepalive?: number;
  presharedKeyHex?: string;
  /** Replace the allowed-IP list with exactly these (set only when the device has extra entries). */
  replaceAllowedIPs?: string[];
  /** Add these allowed IPs (when the device has a subset of the desired ones). */
  addAllowedIPs?: string[];
}

export interface DeviceDelta {
  privateKeyHex?: string;
  listenPort?: number;
  peers: PeerDelta[];
}

/** `key=value`, refusing a value that would end the line early (the last guard behind checkPeer). */
function kv(key: string, value: string | number): string {
  const v = String(value);
  if (controlAt(v) >= 0) throw new Error(`refusing to write UAPI ${key}: the value has a control character`);
  return `${key}=${v}`;
}

/** The UAPI lines of one peer delta (`allowed` = the allowed-IP lines, split by the caller). */
function peerLines(p: PeerDelta): { head: string[]; allowed: string[] } {
  const head = [kv('public_key', b64ToHex(p.publicKey))];
  if (p.remove) return { head: [...head, 'remove=true'], allowed: [] };
  if (!p.create) head.push('update_only=true');
  if (p.presharedKeyHex !== undefined) head.push(kv('preshared_key', p.presharedKeyHex));
  if (p.endpoint !== undefined) head.push(kv('endpoint', p.endpoint));
  if (p.persistentKeepalive !== undefined) head.push(kv('persistent_keepalive_interval', p.persistentKeepalive));
  if (p.replaceAllowedIPs !== undefined) head.push('replace_allowed_ips=true');
  const allowed = [...(p.replaceAllowedIPs ?? []), ...(p.addAllowedIPs ?? [])].map((a) => kv('allowed_ip', a));
  return { head, allowed };
}

/** UAPI messages are cut at this size: each is sent in one write, whole (see renderUapiSets). */
export const UAPI_MESSAGE_BYTES = 32 * 1024;

/**
 * Render a delta as UAPI `set=1` requests of at most `maxBytes` each, every one a complete
 * message ending with its blank line, split between peers (a peer with more allowed IPs than fit
 * continues in the next message with `update_only`). wireguard-go applies each line as it reads
 * it, and at the end of the stream it applies a last line even without its newline: a writer
 * killed mid-message could leave `allowed_ip=10.1.2.0/2` of `…/24`. A small message goes to the
 * socket in one write, so it arrives whole or not at all.
 */
export function renderUapiSets(d: DeviceDelta, maxBytes = UAPI_MESSAGE_BYTES): string[] {
  const out: string[] = [];
  let cur: string[] = ['set=1'];
  let size = 6;
  let peers = 0;
  const flush = (): void => {
    if (cur.length > 1) out.push(cur.join('\n') + '\n\n');
    cur = ['set=1'];
    size = 6;
    peers = 0;
  };
  const push = (lines: string[]): void => {
    for (const l of lines) {
      cur.push(l);
      size += l.length + 1;
    }
  };
  if (d.privateKeyHex !== undefined) push([kv('private_key', d.privateKeyHex)]);
  if (d.listenPort !== undefined) push([kv('listen_port', d.listenPort)]);
  for (const p of d.peers) {
    const { head, allowed } = peerLines(p);
    const need = [...head, ...allowed].reduce((a, l) => a + l.length + 1, 0);
    if (peers > 0 && size + need > maxBytes) flush();
    push(head);
    peers++;
    for (const l of allowed) {
      if (size + l.length + 1 > maxBytes && cur.length > head.length + 1) {
        flush();
        push([kv('public_key', b64ToHex(p.publicKey)), 'update_only=true']);
        peers++;
      }
      push([l]);
    }
  }
  flush();
  return out;
}

/** Render a delta as one UAPI `set=1` request (terminated by the blank line). */
export function renderUapiSet(d: DeviceDelta): string {
  return renderUapiSets(d, Infinity)[0] ?? 'set=1\n\n';
}

/**
 * Render a delta as `wg set <iface> …` argument lists for a kernel device, at most `chunk` peers
 * per invocation (wg itself splits each invocation into netlink messages that fit; chunking
 * also bounds argv). Keys that must come from files (private key, PSKs) are passed as
 * /dev/fd/N paths by the caller: here they are returned in `secrets` and referenced by index.
 * Allowed IPs of an existing peer are always given whole (the kernel path replaces the list
 * in one netlink message, atomically).
 */
export function renderWgSet(
  iface: string,
  d: DeviceDelta,
  desiredAllowed: ReadonlyMap<string, readonly string[]>,
  chunk = 500,
): { args: string[][]; secrets: string[] } {
  const secrets: string[] = [];
  const secretRef = (hex: string): string => {
    secrets.push(Buffer.from(hex, 'hex').toString('base64'));
    return `@secret${secrets.length - 1}`;
  };
  const head: string[] = ['set', iface];
  if (d.privateKeyHex !== undefined) head.push('private-key', secretRef(d.privateKeyHex));
  if (d.listenPort !== undefined) head.push('listen-port', String(d.listenPort));
  const all: string[][] = [];
  let cur = [...head];
  let n = 0;
  for (const p of d.peers) {
    cur.push('peer', p.publicKey);
    if (p.remove) cur.push('remove');
    else {
      if (p.presharedKeyHex !== undefined) cur.push('preshared-key', p.presharedKeyHex === ZERO_HEX ? '/dev/null' : secretRef(p.presharedKeyHex));
      if (p.endpoint !== undefined) cur.push('endpoint', p.endpoint);
      if (p.persistentKeepalive !== undefined) cur.push('persistent-keepalive', String(p.persistentKeepalive));
      if (p.replaceAllowedIPs !== undefined || p.addAllowedIPs !== undefined) {
        const list = p.create ? (p.addAllowedIPs ?? []) : (desiredAllowed.get(p.publicKey) ?? p.replaceAllowedIPs ?? []);
        cur.push('allowed-ips', list.join(','));
      }
    }
    if (++n >= chunk) {
      all.push(cur);
      cur = ['set', iface];
      n = 0;
    }
  }
  if (cur.length > 2 || all.length === 0) all.push(cur);
  // the last guard behind checkPeer: no argument with a control character reaches `wg`
  for (const a of all) for (const x of a) if (controlAt(x) >= 0) throw new Error('refusing to run wg set: an argument has a control character');
  return { args: all, secrets };
}

/** A copy of a substring: what is kept of a reply must not be a slice that keeps the whole reply alive. */
function own(v: string): string {
  return v.length < 13 ? v : Buffer.from(v, 'utf8').toString('utf8');
}

/** Parse a UAPI `get=1` reply. */
export function parseUapiGet(text: string): { state: DeviceState; errno: number } {
  const state: DeviceState = { privateKeyHex: null, listenPort: 0, peers: new Map() };
  let errno = 0;
  let cur: DevicePeer | null = null;
  let hsSec = 0;
  let hsNsec = 0;
  const finish = (): void => {
    if (cur) cur.lastHandshake = hsSec + hsNsec / 1e9;
    hsSec = 0;
    hsNsec = 0;
  };
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const eq = line.indexOf('=');
    if (eq < 0) continue;
    const k = line.slice(0, eq);
    const v = line.slice(eq + 1);
    switch (k) {
      case 'private_key':
        state.privateKeyHex = own(v);
        break;
      case 'listen_port':
        state.listenPort = Number(v);
        break;
      case 'public_key': {
        finish();
        const key = hexToB64(v);
        cur = { publicKey: key, endpoint: null, allowedIPs: [], persistentKeepalive: 0, presharedKeyHex: ZERO_HEX, lastHandshake: 0, rxBytes: 0, txBytes: 0 };
        state.peers.set(key, cur);
        break;
      }
      case 'endpoint':
        if (cur) cur.endpoint = canonicalEndpoint(v) ?? own(v);
        break;
      case 'allowed_ip':
        if (cur) cur.allowedIPs.push(canonicalCIDR(v));
        break;
      case 'persistent_keepalive_interval':
        if (cur) cur.persistentKeepalive = Number(v);
        break;
      case 'preshared_key':
        // a copy (not a slice that keeps the whole reply alive); the usual zero key shared
        if (cur) cur.presharedKeyHex = v === ZERO_HEX ? ZERO_HEX : own(v);
        break;
      case 'last_handshake_time_sec':
        hsSec = Number(v);
        break;
      case 'last_handshake_time_nsec':
        hsNsec = Number(v);
        break;
      case 'rx_bytes':
        if (cur) cur.rxBytes = Number(v);
        break;
      case 'tx_bytes':
        if (cur) cur.txBytes = Number(v);
        break;
      case 'errno':
        errno = Number(v);
        break;
    }
  }
  finish();
  if (state.privateKeyHex === ZERO_HEX) state.privateKeyHex = null;
  return { state, errno };
}

/** Parse `wg show <iface> dump` (kernel devices). */
export function parseWgDump(text: string): DeviceState {
  const state: DeviceState = { privateKeyHex: null, listenPort: 0, peers: new Map() };
  const lines = text.split('\n').filter((l) => l.length > 0);
  if (lines.length === 0) return state;
  const head = lines[0].split('\t');
  state.privateKeyHex = head[0] && head[0] !== '(none)' ? b64ToHex(head[0]) : null;
  state.listenPort = Number(head[2]) || 0;
  for (const l of lines.slice(1)) {
    const f = l.split('\t');
    // public-key preshared-key endpoint allowed-ips latest-handshake rx tx keepalive
    const key = own(f[0]);
    state.peers.set(key, {
      publicKey: key,
      presharedKeyHex: f[1] && f[1] !== '(none)' ? b64ToHex(f[1]) : ZERO_HEX,
      endpoint: f[2] && f[2] !== '(none)' ? canonicalEndpoint(f[2]) ?? own(f[2]) : null,
      allowedIPs: f[3] && f[3] !== '(none)' ? f[3].split(',').map(canonicalCIDR) : [],
      lastHandshake: Number(f[4]) || 0,
      rxBytes: Number(f[5]) || 0,
      txBytes: Number(f[6]) || 0,
      persistentKeepalive: f[7] && f[7] !== 'off' ? Number(f[7]) : 0,
    });
  }
  return state;
}

