// The iproute2 text formats: routes and policy rules as `ip -j route` / `ip -j rule` print them,
// parsed into the kernel's form (KRoute, KRule, keyed by what the kernel keys them by), the checks
// a desired route or rule passes before it can become a line, and the `ip -batch` lines.

import type { Route, Rule } from '../plan/types.js';
import { KG_PROTO, RTPROT_UNSPEC, protoNumber } from './owner.js';
import { canonicalCIDR, canonicalIP, checkCIDR, checkIP, ifNameProblem, isIPv6, isInt, show } from './input-checks.js';

export const MAIN_TABLE = 254;
const DEFAULT_TABLE = 253;
const LOCAL_TABLE = 255;
/** Route tables and rule priorities are u32 in the kernel; table 0 means "unspecified". */
const U32_MAX = 0xffffffff;

/** A route as read from the kernel (and as desired, after checking). */
export interface KRoute {
  dst: string;
  gw: string | null;
  dev: string;
  src: string | null;
  /** Numeric table; main = 254. */
  table: number;
  onlink: boolean;
  /** Routing protocol number (KG_PROTO for desired routes). */
  proto: number;
  /** The kernel's metric (priority); null = the default (0 for IPv4, 1024 for IPv6). */
  metric: number | null;
}

export function routeKey(r: { table: number; dst: string }): string {
  return `${r.table}|${r.dst}`;
}

/** A desired route checked for the kernel: the route, or why not (with its key when known). */
export type CheckedRoute = { ok: true; route: KRoute } | { ok: false; problem: string; key: string | null };

/**
 * Check every field of a desired route before it can become an `ip -batch` line. Each failure
 * drops the route (a route with a wrong field is not the route the plan meant): a table outside
 * 1-2^32-1 or the kernel's own local/default tables, a destination that is not a CIDR with a
 * valid prefix length, a gateway or source that is not an IP of the destination's family, a
 * device that is not a valid interface name, a control character anywhere.
 */
export function checkRoute(r: Route): CheckedRoute {
  const table = r.table ?? MAIN_TABLE;
  if (!isInt(table, 1, U32_MAX) || table === LOCAL_TABLE || table === DEFAULT_TABLE) {
    return { ok: false, problem: `table ${show(r.table)} is out of range (1-${U32_MAX}, not local or default)`, key: null };
  }
  const dst = checkCIDR('destination', r.dst);
  if (!dst.ok) return { ok: false, problem: dst.problem, key: null };
  const key = routeKey({ table, dst: dst.value });
  const v6 = isIPv6(dst.value);
  const addr = (field: string, v: string | null): { ok: true; value: string | null } | { ok: false; problem: string } => {
    if (v === null || v === undefined) return { ok: true, value: null };
    const c = checkIP(field, v);
    if (!c.ok) return c;
    if (isIPv6(c.value) !== v6) return { ok: false, problem: `${field} ${show(v)} is not of the destination's family` };
    return c;
  };
  const gw = addr('gateway', r.gw);
  if (!gw.ok) return { ok: false, problem: gw.problem, key };
  const src = addr('source', r.src);
  if (!src.ok) return { ok: false, problem: src.problem, key };
  const dev = r.dev ?? '';
  if (dev !== '') {
    const p = ifNameProblem('device', dev);
    if (p !== null) return { ok: false, problem: p, key };
  } else if (gw.value === null) return { ok: false, problem: 'neither a gateway nor a device', key };
  return { ok: true, route: { dst: dst.value, gw: gw.value, dev, src: src.value, table, onlink: r.onlink === true, proto: KG_PROTO, metric: null } };
}

/** A desired route in kernel form; throws when it cannot be written (see checkRoute). */
export function normalizeRoute(r: Route): KRoute {
  const c = checkRoute(r);
  if (!c.ok) throw new Error(`route ${show(r.dst)}: ${c.problem}`);
  return c.route;
}

const TABLE_NAMES: Record<string, number> = { main: 254, local: 255, default: 253 };

function tableNum(t: unknown): number {
  if (t === undefined || t === null) return MAIN_TABLE;
  if (typeof t === 'number') return t;
  const s = String(t);
  return TABLE_NAMES[s] ?? Number(s);
}

/**
 * Parse `ip [-N] -j route show table all [proto N]` output. `proto`: the listing was filtered by
 * this protocol (ip then omits the field); else the field is read (a number with -N).
 */
export function parseIpRoutes(json: string, proto?: number): KRoute[] {
  const text = json.trim();
  if (text.length === 0) return [];
  const arr = JSON.parse(text) as Array<Record<string, unknown>>;
  const out: KRoute[] = [];
  for (const o of arr) {
    if (typeof o.dst !== 'string' || o.dst === 'default' || o.nexthops !== undefined) continue;
    if (o.type !== undefined && o.type !== 'unicast' && o.type !== '1') continue;
    const flags = Array.isArray(o.flags) ? (o.flags as string[]) : [];
    out.push({
      dst: canonicalCIDR(o.dst),
      gw: typeof o.gateway === 'string' ? canonicalIP(o.gateway) : null,
      dev: typeof o.dev === 'string' ? o.dev : '',
      src: typeof o.prefsrc === 'string' ? canonicalIP(o.prefsrc) : null,
      table: tableNum(o.table),
      onlink: flags.includes('onlink'),
      proto: proto ?? protoNumber(o.protocol),
      metric: typeof o.metric === 'number' ? o.metric : null,
    });
  }
  return out;
}

export function metricOf(r: KRoute): number {
  return r.metric ?? (isIPv6(r.dst) ? 1024 : 0);
}

export function sameRoute(a: KRoute, b: KRoute): boolean {
  return a.dst === b.dst && a.gw === b.gw && a.dev === b.dev && a.src === b.src && a.table === b.table && a.onlink === b.onlink && a.proto === b.proto && metricOf(a) === metricOf(b);
}

export function replaceLine(r: KRoute): string {
  let s = `route replace ${r.dst}`;
  if (r.gw !== null) s += ` via ${r.gw}`;
  if (r.dev) s += ` dev ${r.dev}`;
  if (r.onlink) s += ' onlink';
  if (r.src !== null) s += ` src ${r.src}`;
  s += ` proto ${KG_PROTO}`;
  if (r.table !== MAIN_TABLE) s += ` table ${r.table}`;
  return s;
}

/** Deletes name the route exactly, protocol and metric included: never another one with the same prefix. */
export function deleteLine(r: KRoute): string {
  let s = `route del ${r.dst}`;
  if (r.gw !== null) s += ` via ${r.gw}`;
  if (r.dev) s += ` dev ${r.dev}`;
  s += ` proto ${r.proto}`;
  if (r.metric !== null) s += ` metric ${r.metric}`;
  if (r.table !== MAIN_TABLE) s += ` table ${r.table}`;
  return s;
}

// ---------------------------------------------------------------------------------------------
// Policy rules

export interface KRule {
  src: string | null;
  dst: string | null;
  iif: string | null;
  table: number;
  priority: number | null;
  /** Protocol number (KG_PROTO for desired rules; 0 = unspec, Go Kilo's). */
  proto: number;
}

export function ruleKey(r: { src: string | null; dst: string | null; iif: string | null; table: number }): string {
  return `${r.src ?? '-'}|${r.dst ?? '-'}|${r.iif ?? '-'}|${r.table}`;
}

export type CheckedRule = { ok: true; rule: KRule; note: string | null } | { ok: false; problem: string; key: string | null };

/**
 * Check a desired rule: CIDRs of one family, a valid input interface name, a table in 1-2^32-1,
 * and at least a source or a destination (a rule with neither would send all traffic to the
 * table; Go Kilo refuses it too, design §7.7.1). A priority outside 0-2^32-1 is dropped (the
 * kernel picks one, as for every Kilo rule) and said in `note`.
 */
export function checkRule(r: Rule): CheckedRule {
  if (!isInt(r.table, 1, U32_MAX)) return { ok: false, problem: `table ${show(r.table)} is out of range (1-${U32_MAX})`, key: null };
  const cidr = (field: string, v: string | null): { ok: true; value: string | null } | { ok: false; problem: string } => (v === null || v === undefined ? { ok: true, value: null } : checkCIDR(field, v));
  const src = cidr('source', r.src);
  if (!src.ok) return { ok: false, problem: src.problem, key: null };
  const dst = cidr('destination', r.dst);
  if (!dst.ok) return { ok: false, problem: dst.problem, key: null };
  if (src.value === null && dst.value === null) return { ok: false, problem: 'neither a source nor a destination', key: null };
  if (src.value !== null && dst.value !== null && isIPv6(src.value) !== isIPv6(dst.value)) return { ok: false, problem: 'source and destination of different families', key: null };
  if (r.iif !== null && r.iif !== undefined) {
    const p = ifNameProblem('input interface', r.iif);
    if (p !== null) return { ok: false, problem: p, key: null };
  }
  const iif = r.iif ?? null;
  let priority = r.priority ?? null;
  let note: string | null = null;
  if (priority !== null && !isInt(priority, 0, U32_MAX)) {
    note = `priority ${show(priority)} is out of range (0-${U32_MAX}): left to the kernel`;
    priority = null;
  }
  return { ok: true, rule: { src: src.value, dst: dst.value, iif, table: r.table, priority, proto: KG_PROTO }, note };
}

/** A desired rule in kernel form; throws when it cannot be written (see checkRule). */
export function normalizeRule(r: Rule): KRule {
  const c = checkRule(r);
  if (!c.ok) throw new Error(`rule: ${c.problem}`);
  return c.rule;
}

/** Selectors kg does not model: a rule with any of them is someone else's, never equal to ours. */
const FOREIGN_SELECTORS = ['fwmark', 'oif', 'tos', 'dsfield', 'ipproto', 'sport', 'dport', 'uid_range', 'l3mdev', 'not', 'suppress_prefixlen', 'suppress_ifgroup', 'goto', 'realms', 'flowlabel'];

/**
 * Parse `ip -N -d -j rule show` (either family). Without -d, ip omits the unspec and kernel
 * protocols: a rule without the field reads as unspec.
 */
export function parseIpRules(json: string): KRule[] {
  const text = json.trim();
  if (text.length === 0) return [];
  const arr = JSON.parse(text) as Array<Record<string, unknown>>;
  const out: KRule[] = [];
  for (const o of arr) {
    if (FOREIGN_SELECTORS.some((k) => o[k] !== undefined)) continue;
    if (o.action !== undefined && o.action !== 'to_tbl' && o.action !== '1') continue;
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
      proto: o.protocol === undefined ? RTPROT_UNSPEC : protoNumber(o.protocol),
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

export function addRuleLine(r: KRule): string {
  return `rule add${ruleSelector(r)} lookup ${r.table}${r.priority !== null ? ` pref ${r.priority}` : ''} protocol ${KG_PROTO}`;
}

/** With its priority and protocol, a delete names exactly the rule that was read. */
export function deleteRuleLine(r: KRule): string {
  return `rule del${ruleSelector(r)} lookup ${r.table}${r.priority !== null ? ` pref ${r.priority}` : ''} protocol ${r.proto}`;
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
