// Pure route and policy-rule diff: desired (planner) vs the kernel's `ip -j route` / `ip -j rule`
// → `ip -batch` lines. No I/O here.
//
// Ownership (spec §7.7, improved): a kernel route is Kilo's when its protocol is static, it lives
// in a table Kilo uses (main, 1107, any table of a desired route) and it either goes through a
// Kilo device (the WireGuard link, the tunnel), is desired, or was applied by us before. A policy
// rule is Kilo's when it looks up a Kilo table other than main (1107). Nothing else is touched.

import ipaddr from 'ipaddr.js';
import type { Route, Rule } from '../plan/types.js';

export const MAIN_TABLE = 254;

const V4 = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/;
/** Memo of canonical forms (the same CIDRs come back in every desired state). */
const memo = new Map<string, string>();
const MEMO_MAX = 500_000;
function remember(k: string, v: string): string {
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(k, v);
  return v;
}

/** `10.5.0.1/24` → `10.5.0.0/24`; bare IPs get /32 or /128; IPv6 in RFC 5952 form. */
export function canonicalCIDR(s: string): string {
  const hit = memo.get(s);
  if (hit !== undefined) return hit;
  const m = V4.exec(s);
  if (m) {
    const o = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
    const len = m[5] === undefined ? 32 : Number(m[5]);
    if (o.every((x) => x <= 255) && len <= 32) {
      const n = ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
      const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
      const v = (n & mask) >>> 0;
      return remember(s, `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}/${len}`);
    }
  }
  return remember(s, slowCanonicalCIDR(s));
}

function slowCanonicalCIDR(s: string): string {
  const slash = s.indexOf('/');
  const addrText = slash < 0 ? s : s.slice(0, slash);
  let addr = ipaddr.parse(addrText);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  const max = addr.kind() === 'ipv4' ? 32 : 128;
  const len = slash < 0 ? max : Number(s.slice(slash + 1));
  if (!Number.isInteger(len) || len < 0 || len > max) throw new Error(`invalid prefix length in ${s}`);
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
  let addr = ipaddr.parse(s);
  if (addr.kind() === 'ipv6' && (addr as ipaddr.IPv6).isIPv4MappedAddress()) addr = (addr as ipaddr.IPv6).toIPv4Address();
  return addr.toString();
}

export function isIPv6(s: string): boolean {
  return s.includes(':');
}

/** A route as read from the kernel (and as desired, after normalisation). */
export interface KRoute {
  dst: string;
  gw: string | null;
  dev: string;
  src: string | null;
  /** Numeric table; main = 254. */
  table: number;
  onlink: boolean;
  /** true when the kernel route has protocol static (always true for desired ones). */
  static: boolean;
}

export function routeKey(r: { table: number; dst: string }): string {
  return `${r.table}|${r.dst}`;
}

export function normalizeRoute(r: Route): KRoute {
  return {
    dst: canonicalCIDR(r.dst),
    gw: r.gw === null ? null : canonicalIP(r.gw),
    dev: r.dev,
    src: r.src === null ? null : canonicalIP(r.src),
    table: r.table ?? MAIN_TABLE,
    onlink: r.onlink,
    static: true,
  };
}

const TABLE_NAMES: Record<string, number> = { main: 254, local: 255, default: 253 };

function tableNum(t: unknown): number {
  if (t === undefined || t === null) return MAIN_TABLE;
  if (typeof t === 'number') return t;
  const s = String(t);
  return TABLE_NAMES[s] ?? Number(s);
}

/**
 * Parse `ip -j route show table all [proto static]` output. `assumeStatic` = the listing was
 * filtered by `proto static` (ip then omits the protocol field).
 */
export function parseIpRoutes(json: string, assumeStatic: boolean): KRoute[] {
  const text = json.trim();
  if (text.length === 0) return [];
  const arr = JSON.parse(text) as Array<Record<string, unknown>>;
  const out: KRoute[] = [];
  for (const o of arr) {
    if (typeof o.dst !== 'string' || o.dst === 'default' || o.nexthops !== undefined) continue;
    if (o.type !== undefined && o.type !== 'unicast') continue;
    const proto = o.protocol;
    const flags = Array.isArray(o.flags) ? (o.flags as string[]) : [];
    out.push({
      dst: canonicalCIDR(o.dst),
      gw: typeof o.gateway === 'string' ? canonicalIP(o.gateway) : null,
      dev: typeof o.dev === 'string' ? o.dev : '',
      src: typeof o.prefsrc === 'string' ? canonicalIP(o.prefsrc) : null,
      table: tableNum(o.table),
      onlink: flags.includes('onlink'),
      static: assumeStatic ? proto === undefined || proto === 'static' || proto === 4 : proto === 'static' || proto === 4,
    });
  }
  return out;
}

export function sameRoute(a: KRoute, b: KRoute): boolean {
  return a.dst === b.dst && a.gw === b.gw && a.dev === b.dev && a.src === b.src && a.table === b.table && a.onlink === b.onlink;
}

function routeArgs(r: KRoute): string {
  let s = r.dst;
  if (r.gw !== null) s += ` via ${r.gw}`;
  if (r.dev) s += ` dev ${r.dev}`;
  if (r.onlink) s += ' onlink';
  if (r.src !== null) s += ` src ${r.src}`;
  s += ' proto static';
  if (r.table !== MAIN_TABLE) s += ` table ${r.table}`;
  return s;
}

export function replaceLine(r: KRoute): string {
  return `route replace ${routeArgs(r)}`;
}

export function deleteLine(r: KRoute): string {
  let s = `route del ${r.dst}`;
  if (r.gw !== null) s += ` via ${r.gw}`;
  if (r.dev) s += ` dev ${r.dev}`;
  s += ' proto static';
  if (r.table !== MAIN_TABLE) s += ` table ${r.table}`;
  return s;
}

export interface RouteOp {
  kind: 'replace' | 'delete';
  key: string;
  route: KRoute;
  line: string;
}

export interface RouteOwnership {
  /** Devices that are Kilo's (WireGuard link, tunnel): static routes through them are ours. */
  devices: ReadonlySet<string>;
  /** Tables Kilo uses besides main (1107). */
  tables: ReadonlySet<number>;
  /** Keys of routes we applied before. */
  applied: ReadonlySet<string>;
}

/** Desired routes keyed; the last of two desired routes with the same table+dst wins. */
export function desiredRouteMap(routes: readonly Route[]): Map<string, KRoute> {
  const m = new Map<string, KRoute>();
  for (const r of routes) {
    const k = normalizeRoute(r);
    m.set(routeKey(k), k);
  }
  return m;
}

/** Kernel routes that belong to Kilo. */
export function ownedRoutes(actual: readonly KRoute[], desired: ReadonlyMap<string, KRoute>, own: RouteOwnership): Map<string, KRoute> {
  const m = new Map<string, KRoute>();
  for (const r of actual) {
    if (!r.static) continue;
    if (r.table !== MAIN_TABLE && !own.tables.has(r.table)) continue;
    const key = routeKey(r);
    if (own.devices.has(r.dev) || desired.has(key) || own.applied.has(key) || own.tables.has(r.table)) m.set(key, r);
  }
  return m;
}

/** Operations turning the owned kernel routes into the desired ones. */
export function diffRoutes(desired: ReadonlyMap<string, KRoute>, owned: ReadonlyMap<string, KRoute>): RouteOp[] {
  const ops: RouteOp[] = [];
  for (const [key, r] of owned) {
    if (!desired.has(key)) ops.push({ kind: 'delete', key, route: r, line: deleteLine(r) });
  }
  for (const [key, r] of desired) {
    const a = owned.get(key);
    if (a === undefined || !sameRoute(a, r)) ops.push({ kind: 'replace', key, route: r, line: replaceLine(r) });
  }
  return ops;
}

// ---------------------------------------------------------------------------------------------
// Policy rules

export interface KRule {
  src: string | null;
  dst: string | null;
  iif: string | null;
  table: number;
  priority: number | null;
}

export function ruleKey(r: KRule): string {
  return `${r.src ?? '-'}|${r.dst ?? '-'}|${r.iif ?? '-'}|${r.table}`;
}

export function normalizeRule(r: Rule): KRule {
  return {
    src: r.src === null ? null : canonicalCIDR(r.src),
    dst: r.dst === null ? null : canonicalCIDR(r.dst),
    iif: r.iif,
    table: r.table,
    priority: r.priority,
  };
}

/** Parse `ip -j rule show` (either family). */
export function parseIpRules(json: string): KRule[] {
  const text = json.trim();
  if (text.length === 0) return [];
  const arr = JSON.parse(text) as Array<Record<string, unknown>>;
  const out: KRule[] = [];
  for (const o of arr) {
    if (o.fwmark !== undefined || o.action !== undefined && o.action !== 'to_tbl') continue;
    const cidr = (addr: unknown, len: unknown): string | null => {
      if (typeof addr !== 'string' || addr === 'all') return null;
      const l = typeof len === 'number' ? len : isIPv6(addr) ? 128 : 32;
      return canonicalCIDR(`${addr}/${l}`);
    };
    out.push({
      src: cidr(o.src, o.srclen),
      dst: cidr(o.dst, o.dstlen),
      iif: typeof o.iif === 'string' ? o.iif : null,
      table: tableNum(o.table),
      priority: typeof o.priority === 'number' ? o.priority : null,
    });
  }
  return out;
}

function ruleSelector(r: KRule): string {
  let s = '';
  if (r.src !== null) s += ` from ${r.src}`;
  if (r.dst !== null) s += ` to ${r.dst}`;
  if (r.iif !== null) s += ` iif ${r.iif}`;
  return s;
}

export interface RuleOp {
  kind: 'add' | 'delete';
  key: string;
  rule: KRule;
  family: 'ipv4' | 'ipv6';
  line: string;
}

function ruleFamily(r: KRule): 'ipv4' | 'ipv6' {
  return (r.src !== null && isIPv6(r.src)) || (r.dst !== null && isIPv6(r.dst)) ? 'ipv6' : 'ipv4';
}

/**
 * Rules: `tables` are the lookup tables that mark a rule as Kilo's (1107 and the desired ones;
 * never main/local/default). Duplicates of a desired rule are removed down to one.
 */
export function diffRules(desired: readonly Rule[], actual: readonly KRule[], tables: ReadonlySet<number>): RuleOp[] {
  const want = new Map<string, KRule>();
  for (const r of desired) {
    const k = normalizeRule(r);
    want.set(ruleKey(k), k);
  }
  const ops: RuleOp[] = [];
  const have = new Set<string>();
  for (const a of actual) {
    if (!tables.has(a.table) || a.table === MAIN_TABLE || a.table === 255 || a.table === 253) continue;
    const key = ruleKey(a);
    const w = want.get(key);
    const priorityOk = w === undefined || w.priority === null || w.priority === a.priority;
    if (w !== undefined && !have.has(key) && priorityOk) {
      have.add(key);
      continue;
    }
    const pref = a.priority !== null ? ` pref ${a.priority}` : '';
    ops.push({ kind: 'delete', key, rule: a, family: ruleFamily(a), line: `rule del${ruleSelector(a)} lookup ${a.table}${pref}` });
  }
  for (const [key, r] of want) {
    if (have.has(key)) continue;
    const pref = r.priority !== null ? ` pref ${r.priority}` : '';
    ops.push({ kind: 'add', key, rule: r, family: ruleFamily(r), line: `rule add${ruleSelector(r)} lookup ${r.table}${pref}` });
  }
  return ops;
}

/** Which lines of an `ip -force -batch` run failed: parse its "Command failed -:N" messages. */
export function failedBatchLines(stderr: string): Map<number, string> {
  const out = new Map<number, string>();
  const lines = stderr.split('\n');
  let msg: string[] = [];
  for (const l of lines) {
    const m = /^Command failed -:(\d+)\s*$/.exec(l);
    if (m) {
      out.set(Number(m[1]), msg.join(' ').trim() || 'failed');
      msg = [];
    } else if (l.trim().length > 0) msg.push(l.trim());
  }
  return out;
}
