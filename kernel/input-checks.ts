// The one check every kernel writer runs on the values it writes (ip -batch lines, iptables-restore
// input, WireGuard UAPI key=value lines, wg arguments): defence in depth behind the planner's
// parsers. A value with a control character (C0 or DEL; a newline above all, which would start a
// new command in a line-based format) or out of the kernel's range is refused or clamped here,
// item by item, so that one bad item is dropped with a warning and the rest of its table is
// written. Pure functions; the reconcilers (dataplane/) report what they drop.
//
// Hardening (departs from Kilo): Go Kilo hands such values to netlink and wgctrl as they are; a bad
// one fails its whole reconcile (a keepalive of 70000 fails every peer) and is retried forever.

import ipaddr from 'ipaddr.js';

/**
 * Memo of canonical forms (the same CIDRs come back in every desired state). Bounded above the
 * distinct CIDRs of a 10,000-node cluster (~50,000) so that churn cannot grow it by more than ~10 MB.
 */
const memo = new Map<string, string>();
const MEMO_MAX = 131_072;
function remember(k: string, v: string): string {
  if (memo.size >= MEMO_MAX) memo.clear();
  // An input already canonical is keyed by the result itself: one string, not two, and never a
  // slice of a kernel read-back text (V8 keeps a whole text alive for a substring of it).
  memo.set(k === v ? v : k, v);
  return v;
}

/** `10.5.0.1/24` → `10.5.0.0/24`; bare IPs get /32 or /128; IPv6 in RFC 5952 form. */
export function canonicalCIDR(s: string): string {
  const hit = memo.get(s);
  if (hit !== undefined) return hit;
  return remember(s, fastV4CIDR(s) ?? slowCanonicalCIDR(s));
}

/**
 * canonicalCIDR of a dotted quad (four decimal octets of 1-3 digits, ≤ 255, leading zeros read as
 * decimal) with an optional `/` length of 1-2 digits ≤ 32, without a regular expression (the first
 * pass at 5,000 nodes checks ~60,000 CIDRs). Always a new string, never the input: that may be a
 * slice of a kernel read-back text (see remember). null = anything else (the slow path decides).
 */
export function fastV4CIDR(s: string): string | null {
  let n = 0;
  let i = 0;
  let len = 32;
  // fields 0-3: the octets (1-3 digits, each followed by "."; the last by "/" or the end), 4: the length
  for (let field = 0; field < 5; field++) {
    let v = 0;
    const start = i;
    for (; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + c - 48;
    }
    if (i === start || i - start > (field < 4 ? 3 : 2) || v > (field < 4 ? 255 : 32)) return null;
    if (field < 4) n = n * 256 + v;
    else len = v;
    if (i === s.length) {
      if (field < 3) return null;
      break;
    }
    const sep = s.charCodeAt(i++);
    if (field < 3 ? sep !== 46 : field !== 3 || sep !== 47) return null;
  }
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const v = (n & mask) >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}/${len}`;
}

/**
 * ipaddr.js also reads IPv4 in one-, two- and three-part and hex forms ("10", "0xa.1") and IPv6
 * zones; Go's parser and the kernel's tools do not, so neither does a kernel writer.
 */
function strictParse(text: string): ipaddr.IPv4 | ipaddr.IPv6 {
  let addr = ipaddr.parse(text);
  if (addr.kind() === 'ipv4' && !ipaddr.IPv4.isValidFourPartDecimal(text)) throw new Error(`not a dotted-quad IPv4 address: ${text}`);
  if (addr.kind() === 'ipv6') {
    if ((addr as ipaddr.IPv6).zoneId !== undefined) throw new Error(`an IPv6 zone is not an address: ${text}`);
    if ((addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  }
  return addr;
}

function slowCanonicalCIDR(s: string): string {
  const slash = s.indexOf('/');
  const addr = strictParse(slash < 0 ? s : s.slice(0, slash));
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  const lenText = slash < 0 ? String(max) : s.slice(slash + 1);
  // digits only: Number('') is 0, so a truncated "10.1.2.0/" must not become 0.0.0.0/0
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : -1;
  if (len < 0 || len > max) throw new Error(`invalid prefix length in ${s}`);
  const bytes = addr.toByteArray();
  for (let b = 0; b < bytes.length; b++) {
    const keep = Math.max(0, Math.min(8, len - b * 8));
    bytes[b] &= (0xff << (8 - keep)) & 0xff;
  }
  const net = ipaddr.fromByteArray(bytes);
  return `${net.toString()}/${len}`;
}

const V4IP = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})$/;
export function canonicalIP(s: string): string {
  const m = V4IP.exec(s);
  if (m && Number(m[1]) <= 255 && Number(m[2]) <= 255 && Number(m[3]) <= 255 && Number(m[4]) <= 255) {
    return `${Number(m[1])}.${Number(m[2])}.${Number(m[3])}.${Number(m[4])}`;
  }
  return strictParse(s).toString();
}

export function isIPv6(s: string): boolean {
  return s.includes(':');
}

const CONTROL = /[\x00-\x1f\x7f]/;

/** Index of the first control character (bytes < 0x20 and 0x7f) in `s`, or -1. */
export function controlAt(s: string): number {
  const m = CONTROL.exec(s);
  return m === null ? -1 : m.index;
}

/** A value as it may appear in a log line: quoted, control characters escaped, bounded. */
export function show(v: unknown): string {
  const s = typeof v === 'string' ? v : String(v);
  return JSON.stringify(s.length > 80 ? `${s.slice(0, 80)}…` : s);
}

/** Why `v` cannot be written as text (null = it can). */
export function textProblem(field: string, v: unknown, maxLength = 1024): string | null {
  if (typeof v !== 'string') return `${field} is not a string`;
  const at = controlAt(v);
  if (at >= 0) return `${field} ${show(v)} has a control character (0x${v.charCodeAt(at).toString(16).padStart(2, '0')} at ${at})`;
  if (v.length > maxLength) return `${field} is longer than ${maxLength} characters`;
  return null;
}

/** Linux's dev_valid_name: 1-15 bytes, not "." or "..", no "/", ":" or white space. */
export function ifNameProblem(field: string, v: unknown): string | null {
  const t = textProblem(field, v, 64);
  if (t !== null) return t;
  const s = v as string;
  if (s.length === 0 || Buffer.byteLength(s) > 15 || s === '.' || s === '..' || /[/:\s]/.test(s)) return `${field} ${show(s)} is not a valid interface name`;
  return null;
}

export type Checked<T> = { ok: true; value: T } | { ok: false; problem: string };

function parsed(field: string, v: unknown, parse: (s: string) => string, what: string): Checked<string> {
  const t = textProblem(field, v, 64);
  if (t !== null) return { ok: false, problem: t };
  try {
    return { ok: true, value: parse(v as string) };
  } catch {
    return { ok: false, problem: `${field} ${show(v)} is not ${what}` };
  }
}

/** A CIDR (a bare address means /32 or /128) in canonical form, host bits masked. */
export function checkCIDR(field: string, v: unknown): Checked<string> {
  return parsed(field, v, canonicalCIDR, 'a CIDR with a valid prefix length');
}

/** An IP address in canonical form. */
export function checkIP(field: string, v: unknown): Checked<string> {
  return parsed(field, v, canonicalIP, 'an IP address');
}

/** An interface address `ip/len`: host bits kept (10.4.0.1/16), the address in canonical form. */
export function checkIfAddr(field: string, v: unknown): Checked<string> {
  const t = textProblem(field, v, 64);
  if (t !== null) return { ok: false, problem: t };
  const s = v as string;
  const slash = s.indexOf('/');
  const bad = { ok: false as const, problem: `${field} ${show(s)} is not an address with a valid prefix length` };
  if (slash < 0) return bad;
  let ip: string;
  try {
    ip = canonicalIP(s.slice(0, slash));
  } catch {
    return bad;
  }
  const lenText = s.slice(slash + 1);
  const len = /^\d{1,3}$/.test(lenText) ? Number(lenText) : -1;
  if (len < 0 || len > (isIPv6(ip) ? 128 : 32)) return bad;
  return { ok: true, value: `${ip}/${len}` };
}

export function isInt(v: unknown, lo: number, hi: number): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v >= lo && v <= hi;
}

/** `v` brought into [lo, hi] (a non-number becomes lo); `clamped` says whether it changed. */
export function clampInt(v: unknown, lo: number, hi: number): { value: number; clamped: boolean } {
  if (isInt(v, lo, hi)) return { value: v, clamped: false };
  const n = typeof v === 'number' && !Number.isNaN(v) ? Math.round(v) : lo;
  return { value: Math.min(hi, Math.max(lo, n)), clamped: true };
}

/** Kernel link MTU bounds: ETH_MIN_MTU (68) to 65535 (tun, wireguard and veth maximum). */
export const MTU_MIN = 68;
export const MTU_MAX = 65535;

/**
 * Is this `ip` error about the input itself (the same line will always fail) rather than the
 * moment (a device or address that is not there yet, a busy kernel)? Unknown messages count as
 * transient: they keep the bounded retry, as before.
 */
export function permanentIpError(message: string, line: string): boolean {
  if (/is wrong|is expected rather than|any valid prefix is expected|Invalid prefix for given prefix length|Numerical result out of range|invalid table ID|garbage instead of|Invalid argument\s*$/i.test(message)) return true;
  // An onlink gateway is not looked up: "invalid" means it is a local, broadcast or multicast address.
  return /Nexthop has invalid gateway/i.test(message) && / onlink( |$)/.test(line);
}
