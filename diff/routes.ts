// Pure route and policy-rule diff: desired (planner) vs the kernel's routes and rules as
// kernel/ip-format.ts parses them → `ip -batch` operations.
//
// Ownership (kernel/owner.ts): a route or rule is kg's when the kernel holds it with kg's
// protocol (KG_PROTO), in any table. Go Kilo's are adopted: a static route in Kilo's table (1107)
// or at a desired route's table and destination; an unspec rule that looks up Kilo's table or
// equals a desired rule. Adopted items are rewritten with KG_PROTO (or removed when not desired).
// Everything else, whatever its device or table, belongs to someone else and is never touched.

import type { Route } from '../plan/types.js';
import { KG_PROTO, RTPROT_STATIC, RTPROT_UNSPEC } from '../kernel/owner.js';
import { isIPv6 } from '../kernel/input-checks.js';
import { addRuleLine, checkRoute, deleteLine, deleteRuleLine, metricOf, replaceLine, routeKey, ruleKey, sameRoute, type KRoute, type KRule } from '../kernel/ip-format.js';

export interface RouteOp {
  kind: 'replace' | 'delete';
  key: string;
  route: KRoute;
  line: string;
}

/**
 * Desired routes keyed; the last of two desired routes with the same table+dst wins. Routes that
 * fail checkRoute go to `onReject`. `keys` (when given) receives each route's key in order.
 */
export function desiredRouteMap(routes: readonly Route[], onReject: (r: Route, problem: string, key: string | null) => void = () => {}, keys?: Array<string | null>): Map<string, KRoute> {
  const m = new Map<string, KRoute>();
  for (const r of routes) {
    const c = checkRoute(r);
    const k = c.ok ? routeKey(c.route) : c.key;
    if (c.ok) m.set(k!, c.route);
    else onReject(r, c.problem, c.key);
    keys?.push(k);
  }
  return m;
}

/** Is this kernel route kg's, or Go Kilo's to adopt? */
export function isOwnedRoute(r: KRoute, desired: ReadonlyMap<string, KRoute>, kiloTable: number): boolean {
  if (r.proto === KG_PROTO) return true;
  return r.proto === RTPROT_STATIC && (r.table === kiloTable || desired.has(routeKey(r)));
}

/**
 * The kernel routes that are kg's (or adopted), one per key, and the `extra` ones that share a
 * key with it (another metric, or a static twin of a kg route): those are removed.
 */
export function ownedRoutes(actual: readonly KRoute[], desired: ReadonlyMap<string, KRoute>, kiloTable: number): { owned: Map<string, KRoute>; extra: KRoute[] } {
  const owned = new Map<string, KRoute>();
  const extra: KRoute[] = [];
  const rank = (r: KRoute): number => (r.proto === KG_PROTO ? 2 : 0) + (r.metric === null || r.metric === (isIPv6(r.dst) ? 1024 : 0) ? 1 : 0);
  for (const r of actual) {
    if (!isOwnedRoute(r, desired, kiloTable)) continue;
    const key = routeKey(r);
    const cur = owned.get(key);
    if (cur === undefined) owned.set(key, r);
    else if (rank(r) > rank(cur)) {
      extra.push(cur);
      owned.set(key, r);
    } else extra.push(r);
  }
  return { owned, extra };
}

/**
 * The owned view with each kernel route that is the same as its desired one held as the desired
 * route, under the desired map's key: what writes would have left in it. A read-back's own
 * objects and strings (~2 MB at 10,000 routes) then go with the read instead of living on in the
 * cache until the next resync.
 */
export function withDesired(owned: ReadonlyMap<string, KRoute>, desired: ReadonlyMap<string, KRoute>): Map<string, KRoute> {
  const out = new Map<string, KRoute>();
  for (const [key, r] of desired) {
    const a = owned.get(key);
    if (a !== undefined && sameRoute(a, r)) out.set(key, r);
  }
  if (out.size < owned.size) for (const [key, a] of owned) if (!out.has(key)) out.set(key, a);
  return out;
}

/** Operations turning the owned kernel routes into the desired ones. */
export function diffRoutes(desired: ReadonlyMap<string, KRoute>, owned: ReadonlyMap<string, KRoute>, extra: readonly KRoute[] = []): RouteOp[] {
  const ops: RouteOp[] = [];
  for (const r of extra) ops.push({ kind: 'delete', key: routeKey(r), route: r, line: deleteLine(r) });
  for (const [key, r] of owned) {
    if (!desired.has(key)) ops.push({ kind: 'delete', key, route: r, line: deleteLine(r) });
  }
  for (const [key, r] of desired) {
    const a = owned.get(key);
    if (a !== undefined && sameRoute(a, r)) continue;
    // `replace` hits the route with the same metric only: one with another metric goes first
    if (a !== undefined && metricOf(a) !== metricOf(r)) ops.push({ kind: 'delete', key, route: a, line: deleteLine(a) });
    ops.push({ kind: 'replace', key, route: r, line: replaceLine(r) });
  }
  return ops;
}

export interface RuleOp {
  kind: 'add' | 'delete';
  key: string;
  rule: KRule;
  family: 'ipv4' | 'ipv6';
  line: string;
}

/** Is this kernel rule kg's, or Go Kilo's to adopt? */
export function isOwnedRule(r: KRule, desiredKeys: ReadonlySet<string>, kiloTable: number): boolean {
  if (r.proto === KG_PROTO) return true;
  return r.proto === RTPROT_UNSPEC && (r.table === kiloTable || desiredKeys.has(ruleKey(r)));
}

/**
 * Rules: only kg's (and adopted) kernel rules are compared; duplicates of a desired rule are
 * removed down to one; an adopted rule is replaced by the same rule with kg's protocol.
 */
export function diffRules(desired: readonly KRule[], actual: readonly KRule[], kiloTable: number): RuleOp[] {
  const want = new Map<string, KRule>();
  for (const k of desired) want.set(ruleKey(k), k);
  const wantKeys = new Set(want.keys());
  const ops: RuleOp[] = [];
  const have = new Set<string>();
  for (const a of actual) {
    if (!isOwnedRule(a, wantKeys, kiloTable)) continue;
    const key = ruleKey(a);
    const w = want.get(key);
    const priorityOk = w === undefined || w.priority === null || w.priority === a.priority;
    if (w !== undefined && !have.has(key) && priorityOk && a.proto === KG_PROTO) {
      have.add(key);
      continue;
    }
    ops.push({ kind: 'delete', key, rule: a, family: ruleFamily(a), line: deleteRuleLine(a) });
  }
  for (const [key, r] of want) {
    if (have.has(key)) continue;
    ops.push({ kind: 'add', key, rule: r, family: ruleFamily(r), line: addRuleLine(r) });
  }
  return ops;
}

function ruleFamily(r: KRule): 'ipv4' | 'ipv6' {
  return (r.src !== null && isIPv6(r.src)) || (r.dst !== null && isIPv6(r.dst)) ? 'ipv6' : 'ipv4';
}
