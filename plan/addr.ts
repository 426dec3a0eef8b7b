// IP and CIDR values with Go's parsing rules (net.ParseIP / net.ParseCIDR), because every node
// of a mixed cluster must accept and reject exactly the same annotation values.
//
// ipaddr.js formats IPv6 (RFC 5952), but it also accepts forms Go rejects (`010.0.0.1`, `127.1`,
// zones, hex/octal IPv4 parts), so parsing is done here with Go's grammar.
import ipaddr from 'ipaddr.js';

export interface IP {
  readonly v6: boolean;
  /**
   * IPv4 as a 32-bit number (0 for IPv6), stored signed (`| 0`): 128.0.0.0 and above would
   * otherwise be doubles, and V8 then boxes the field of every IP in a heap number of its own.
   * Read it with `>>>` (octets, unsigned order) or compare it masked (`&`); never as unsigned.
   */
  readonly n: number;
  /** IPv6 bytes (16); null for IPv4 (IPv4-mapped IPv6 is converted to IPv4, design §0.1). */
  readonly b: Uint8Array | null;
  /** Canonical text: dotted quad, or RFC 5952. */
  readonly s: string;
}

/** An address plus prefix length. The address keeps host bits unless built by `network()`. */
export interface CIDR {
  readonly ip: IP;
  readonly bits: number;
  /** `address/bits`, host bits preserved (design §0.2). */
  readonly s: string;
}

const HEX_GROUP_RE = /^[0-9a-fA-F]{1,4}$/;

/** A strict dotted quad (no leading zeros, exactly four parts) as a uint32, or -1 (IPs store it `| 0`). */
function v4Number(s: string): number {
  let n = 0;
  let parts = 0;
  let i = 0;
  const len = s.length;
  while (i <= len) {
    const start = i;
    let v = 0;
    while (i < len) {
      const c = s.charCodeAt(i);
      if (c < 48 || c > 57) break;
      v = v * 10 + (c - 48);
      i++;
    }
    const digits = i - start;
    if (digits === 0 || digits > 3 || v > 255 || (digits > 1 && s.charCodeAt(start) === 48)) return -1;
    n = n * 256 + v;
    parts++;
    if (i === len) break;
    if (s.charCodeAt(i) !== 46 || parts === 4) return -1;
    i++;
  }
  return parts === 4 ? n : -1;
}

const v4Text = (n: number) => `${n >>> 24}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}`;

export function ipv4(n: number): IP {
  return { v6: false, n: n | 0, b: null, s: v4Text(n >>> 0) };
}

function v6Bytes(s: string): Uint8Array | null {
  // Go rejects zones in net.ParseIP and anything that is not hex groups, one `::`, and an
  // optional trailing dotted quad (itself without leading zeros).
  if (s.length < 2 || s.indexOf(':') < 0) return null;
  const out = new Uint8Array(16);
  const dbl = s.indexOf('::');
  if (dbl >= 0 && s.indexOf('::', dbl + 1) >= 0) return null;
  const parseSide = (part: string, allowV4Tail: boolean): number[] | null => {
    if (part === '') return [];
    const groups = part.split(':');
    const words: number[] = [];
    for (let i = 0; i < groups.length; i++) {
      const g = groups[i];
      if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
        const v4 = v4Number(g);
        if (v4 < 0) return null;
        words.push(v4 >>> 16, v4 & 0xffff);
        continue;
      }
      if (!HEX_GROUP_RE.test(g)) return null;
      words.push(parseInt(g, 16));
    }
    return words;
  };
  let words: number[];
  if (dbl >= 0) {
    const head = parseSide(s.slice(0, dbl), false);
    const tail = parseSide(s.slice(dbl + 2), true);
    if (!head || !tail || head.length + tail.length > 7) return null;
    words = [...head, ...new Array(8 - head.length - tail.length).fill(0), ...tail];
  } else {
    const all = parseSide(s, true);
    if (!all || all.length !== 8) return null;
    words = all;
  }
  for (let i = 0; i < 8; i++) {
    out[2 * i] = words[i] >> 8;
    out[2 * i + 1] = words[i] & 0xff;
  }
  return out;
}

function isMapped(b: Uint8Array): boolean {
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Builds an IP from raw bytes (4 or 16), converting IPv4-mapped IPv6 to IPv4. */
export function ipFromBytes(bytes: Uint8Array): IP {
  if (bytes.length === 16 && isMapped(bytes)) bytes = bytes.subarray(12);
  if (bytes.length === 4) return ipv4(((bytes[0] << 24) | (bytes[1] << 16) | (bytes[2] << 8) | bytes[3]) >>> 0);
  return { v6: true, n: 0, b: bytes, s: new ipaddr.IPv6(Array.from(bytes)).toRFC5952String() };
}

/** The address bytes (4 or 16). */
export function ipBytes(ip: IP): Uint8Array {
  if (ip.b) return ip.b;
  return Uint8Array.of(ip.n >>> 24, (ip.n >>> 16) & 255, (ip.n >>> 8) & 255, ip.n & 255);
}

/** Go's net.ParseIP: strict dotted quads, IPv6 without zones. Returns null when Go would. */
export function parseIP(s: string): IP | null {
  if (s.indexOf(':') < 0) {
    const n = v4Number(s);
    return n < 0 ? null : { v6: false, n: n | 0, b: null, s };
  }
  const b = v6Bytes(s);
  return b ? ipFromBytes(b) : null;
}


/**
 * Go's net.ParseCIDR, keeping the address as written (what Kilo's normalizeIP returns).
 * An IPv4-mapped address with a /96+ prefix becomes IPv4 with prefix-96, as Go prints it.
 */
export function parseCIDR(s: string): CIDR | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const addr = s.slice(0, slash);
  // The mask is read in place (no substring per CIDR). Go's dtoi accepts leading zeros but
  // nothing else; cap the length to avoid huge numbers.
  const maskLen = s.length - slash - 1;
  if (maskLen === 0 || maskLen > 6) return null;
  let bits = 0;
  for (let i = slash + 1; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return null;
    bits = bits * 10 + (c - 48);
  }
  const isV6Text = addr.indexOf(':') >= 0;
  const ip = parseIP(addr);
  if (!ip) return null;
  if (bits > (isV6Text ? 128 : 32)) return null;
  if (isV6Text && !ip.v6) bits = Math.max(0, bits - 96);
  // Already canonical text (the common case): keep the input string rather than build it again.
  if (ip.s === addr && (maskLen === 1 || s.charCodeAt(slash + 1) !== 48) && (ip.v6 || !isV6Text)) return { ip, bits, s };
  return cidr(ip, bits);
}

export function cidr(ip: IP, bits: number): CIDR {
  return { ip, bits, s: `${ip.s}/${bits}` };
}

// One CIDR object per IP object when plans reuse records (memo.ts): repeated plans hand out the
// same CIDRs, and everything memoised on them downstream (routes, iptables rules, their diff
// keys) is reused instead of rebuilt.
const oneAddressMemo = new WeakMap<IP, CIDR>();

/** The prefix length of one address: 32 or 128 (design §0.4). */
export function hostBits(ip: IP): number {
  return ip.v6 ? 128 : 32;
}

/** A new one-address CIDR of an IP; oneAddress hands out the same one when plans reuse records. */
export function hostCIDR(ip: IP): CIDR {
  return cidr(ip, hostBits(ip));
}

/** The one-address CIDR of an IP: /32 or /128 (design §0.4); with `memo`, the same one per IP object. */
export function oneAddress(ip: IP, memo = false): CIDR {
  if (!memo) return hostCIDR(ip);
  let c = oneAddressMemo.get(ip);
  if (c === undefined) oneAddressMemo.set(ip, (c = hostCIDR(ip)));
  return c;
}

/** A 32-bit mask for a prefix length 0..32. */
const mask4 = (bits: number) => (bits === 0 ? 0 : -1 << (32 - bits)); // signed, as IP.n

/** The network CIDR (host bits cleared). */
export function network(c: CIDR): CIDR {
  if (!c.ip.v6) {
    const n = c.ip.n & mask4(c.bits);
    return n === c.ip.n ? c : cidr(ipv4(n), c.bits);
  }
  const b = c.ip.b!;
  const out = new Uint8Array(16);
  let changed = false;
  for (let i = 0; i < 16; i++) {
    const left = c.bits - i * 8;
    out[i] = left >= 8 ? b[i] : left <= 0 ? 0 : b[i] & (0xff << (8 - left));
    if (out[i] !== b[i]) changed = true;
  }
  return changed ? cidr(ipFromBytes(out), c.bits) : c;
}

/** Contains(cidr, ip): ip masked with the prefix equals the cidr's address masked (design §0.5). */
export function contains(c: CIDR, ip: IP): boolean {
  if (c.ip.v6 !== ip.v6) return false;
  if (!ip.v6) {
    const m = mask4(c.bits);
    return (c.ip.n & m) === (ip.n & m);
  }
  const a = c.ip.b!;
  const b = ip.b!;
  const full = c.bits >> 3;
  for (let i = 0; i < full; i++) if (a[i] !== b[i]) return false;
  const rem = c.bits & 7;
  if (rem === 0) return true;
  const m = (0xff << (8 - rem)) & 0xff;
  return (a[full] & m) === (b[full] & m);
}

export function intersects(a: CIDR, b: CIDR): boolean {
  return contains(a, b.ip) || contains(b, a.ip);
}

/** The next address, or null when it leaves `within` (design §5.5, without Go's overflow quirk). */
export function nextIP(ip: IP, within: CIDR): IP | null {
  let next: IP;
  if (!ip.v6) {
    if (ip.n === -1) return null; // 255.255.255.255
    next = ipv4(ip.n + 1);
  } else {
    const b = ip.b!.slice();
    for (let i = 15; i >= 0; i--) {
      b[i] = (b[i] + 1) & 0xff;
      if (b[i] !== 0) break;
      if (i === 0) return null; // wrapped around the whole address space
    }
    next = ipFromBytes(b);
  }
  return contains(within, next) ? next : null;
}

/**
 * Kilo's isPublic (design §4.2): only 10/8, 172.16/12, 192.168/16 and fd00::/16 are private;
 * everything else, CGNAT and most ULAs included, counts as public. Kept narrow on purpose:
 * leader election on every node depends on it.
 */
export function isPublic(ip: IP | null | undefined): boolean {
  if (!ip) return false;
  if (!ip.v6) {
    const a = ip.n >>> 24;
    const b = (ip.n >>> 16) & 255;
    return !(a === 10 || (a === 172 && b >= 16 && b <= 31) || (a === 192 && b === 168));
  }
  return !(ip.b![0] === 0xfd && ip.b![1] === 0x00);
}

/** `ip:port`, or `[v6]:port`. */
export function hostPort(ip: IP, port: number): string {
  return ip.v6 ? `[${ip.s}]:${port}` : `${ip.s}:${port}`;
}

/** Byte-wise string order (design §0.6). */
export function byText(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Kilo's sortIPs: IPv4 before IPv6, then by CIDR text. */
export function sortIPs(list: CIDR[]): CIDR[] {
  return [...list].sort((a, b) => (a.ip.v6 === b.ip.v6 ? byText(a.s, b.s) : a.ip.v6 ? 1 : -1));
}
