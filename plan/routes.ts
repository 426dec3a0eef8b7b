// Routes and policy rules (design §7), for leaders and non-leaders.
import { contains, network, oneAddress as oneAddressOf, type CIDR, type IP } from './addr.js';
import type { Encapsulator } from './encapsulation.js';
import { isLocalSegment, updateEndpoint, type Segment, type Topology } from './topology.js';
import type { Route, Rule } from './types.js';

export const KILO_TABLE = 1107;

export interface RouteOptions {
  /** The WireGuard device (`--interface`). */
  kiloIface: string;
  /** The device holding the private IP. */
  privIface: string;
  local: boolean;
  enc: Encapsulator;
  /** Reuse route objects across plans (memo.ts). */
  memo?: boolean;
}

/**
 * Divergence (design §16.15): Kilo hands host-bit CIDRs from allowed-location IPs and Peers
 * (`10.5.0.1/24`) to the kernel as route destinations, which the kernel rejects with EINVAL and
 * which aborts the whole route update. We route to the network (`10.5.0.0/24`), which is what
 * such a route means and what the kernel would hold; annotations, WireGuard and iptables keep the
 * host bits. Positional arguments, not a draft object: no garbage object per route.
 */
function toRoute(rdst: CIDR, rgw: IP | null, rdev: string | null, rsrc: IP | null, table: number | null, onlink: boolean, memo: boolean): Route {
  const dst = network(rdst).s;
  const gw = rgw?.s ?? null;
  // The no-op encapsulator has no device (Go uses link index 0); such routes name none.
  const dev = rdev ?? '';
  const src = rsrc?.s ?? null;
  // Memoised on the destination's (long-lived) CIDR object, like the iptables rules: a re-plan
  // returns the same route objects, and their diff keys are reused (diff/desired.ts).
  if (!memo) return { dst, gw, dev, src, table, protocol: 'static', onlink };
  const variants = routeMemo.get(rdst);
  if (variants) {
    for (const v of variants) if (v.gw === gw && v.dev === dev && v.src === src && v.table === table && v.onlink === onlink && v.dst === dst) return v;
  }
  const route: Route = Object.freeze({ dst, gw, dev, src, table, protocol: 'static', onlink });
  if (!variants) routeMemo.set(rdst, [route]);
  else if (variants.length < 4) variants.push(route);
  else variants[0] = route;
  return route;
}

const routeMemo = new WeakMap<CIDR, Route[]>();

/** Masking can make two routes identical, and the kernel holds one of them: drop the repeats. */
function finish(routes: Route[], masked: boolean): Route[] {
  // Only masking (or duplicate input addresses) can repeat a route; skip the check when no
  // destination lost host bits, which is the common case and keeps 10,000-route plans cheap.
  if (!masked) return routes;
  const seen = new Set<string>();
  const out: Route[] = [];
  for (const r of routes) {
    const k = `${r.dst} ${r.gw} ${r.dev} ${r.src} ${r.table} ${r.onlink}`;
    if (seen.has(k)) continue;
    seen.add(k);
    out.push(r);
  }
  return out;
}

function rule(src: CIDR | null, dst: CIDR | null, iif: string | null): Rule {
  // Quirk (design §16.19): no explicit priority; the kernel assigns one.
  return { src: src ? network(src).s : null, dst: dst?.s ?? null, iif, table: KILO_TABLE, priority: null };
}

/** What the routes of one plan are built with: the list, its masking flag, the per-segment memo, §7.2. */
function routeBuilder(t: Topology, o: RouteOptions) {
  let out: Route[] = [];
  let masked = false;
  const memo = o.memo === true;
  const oneAddress = (ip: IP): CIDR => oneAddressOf(ip, memo);
  const add = (dst: CIDR, gw: IP | null, dev: string | null, src: IP | null, table: number | null, onlink: boolean): void => {
    const r = toRoute(dst, gw, dev, src, table, onlink, memo);
    if (r.dst !== dst.s) masked = true;
    out.push(r);
  };
  /**
   * The routes of one remote segment, memoised on the (reused) segment together with what else
   * they depend on (memo.ts): a re-plan after a one-node change rebuilds the routes of one
   * segment, not of 5,000. From the memo when `deps` are unchanged, else from `make`.
   */
  const remote = (s: Segment, deps: readonly unknown[], make: () => void): void => {
    const c = s.memo?.routes;
    if (c && c.deps.length === deps.length && c.deps.every((d, i) => d === deps[i])) {
      for (const r of c.routes) out.push(r);
      masked ||= c.masked;
      return;
    }
    const start = out.length;
    const before = masked;
    masked = false;
    make();
    if (s.memo) s.memo.routes = { deps, routes: out.slice(start), masked };
    masked ||= before;
  };
  const rules: Rule[] = [];
  const { enc } = o;
  const strategy = enc.strategy;
  const privateIP = t.privateIP;
  const tunl = enc.tunnel;

  // encapsulateRoute (design §7.2).
  const addEncap = (dst: CIDR, gw: IP | null, dev: string | null, src: IP | null, table: number | null, onlink: boolean): void => {
    if (strategy === 'always' || (strategy === 'crosssubnet' && privateIP && !(gw && contains(privateIP, gw)))) {
      dev = tunl;
      if (privateIP && !src) src = privateIP.ip;
    }
    add(dst, gw, dev, src, table, onlink);
  };
  const crossesSubnet = (ip: IP) =>
    strategy === 'always' || (strategy === 'crosssubnet' && !(privateIP && contains(privateIP, ip)));

  const result = (): RoutesResult => ({ routes: finish(out, masked), rules, masked });
  /** The routes built since the last call, without the de-duplication of masked ones (see remoteSegmentRoutes). */
  const raw = (): { routes: Route[]; masked: boolean } => {
    const r = { routes: out, masked };
    out = [];
    masked = false;
    return r;
  };
  return { add, addEncap, remote, crossesSubnet, oneAddress, rules, result, raw, memo, enc, strategy, privateIP, tunl };
}

/** Routes and rules; `masked`: some destination lost host bits, so repeats were dropped (finish). */
export interface RoutesResult {
  routes: Route[];
  rules: Rule[];
  masked: boolean;
}

type RouteBuilder = ReturnType<typeof routeBuilder>;

/** §7.3: a non-leader's gateway to everything else, its segment's leader (`own`: the local segment). */
function leaderGateway(t: Topology, enc: Encapsulator, own: Segment | undefined): IP | null {
  if (!own) return null;
  const ep = updateEndpoint(t.discoveredEndpoints, own.endpoint, own.key, own.persistentKeepalive);
  return enc.gw(ep?.ip ?? null, own.privateIPs[own.leader] ?? null, own.cniCompatibilityIPs[own.leader], own.cidrs[own.leader]);
}

/** §7.3: a remote segment's routes on a non-leader, through the leader at `gw`. */
function remoteViaLeader(b: RouteBuilder, o: RouteOptions, s: Segment, gw: IP | null): void {
  const { addEncap, remote, oneAddress, memo, strategy, privateIP, tunl } = b;
  const dev = o.privIface;
  const make = (): void => {
    addEncap(s.wireGuard32, gw, dev, null, null, true);
    for (const c of s.cidrs) if (c) addEncap(c, gw, dev, null, null, true);
    for (const p of s.privateIPs) addEncap(oneAddress(p), gw, dev, null, null, true);
    for (let i = 0; i < s.allowedLocationIPs.length; i++) addEncap(s.allowedLocationIPs[i], gw, dev, null, null, true); // no iterator per segment
  };
  // Without memoisation (one-shot plans), no deps list per segment.
  if (memo) remote(s, [gw, o.privIface, strategy, privateIP, tunl], make);
  else make();
}

/** §7.3: a non-leader sends everything to its segment's leader. */
function nonLeaderRoutes(t: Topology, o: RouteOptions, b: RouteBuilder): RoutesResult {
  const { add, addEncap, crossesSubnet, oneAddress, rules, enc, privateIP, tunl } = b;
  const gw = leaderGateway(t, enc, t.segments.find((s) => s.location === t.location));
  const viaLeader = (dst: CIDR): void => addEncap(dst, gw, o.privIface, null, null, true);
  for (const s of t.segments) {
    if (s.location !== t.location) {
      remoteViaLeader(b, o, s, gw);
      continue;
    }
    viaLeader(s.wireGuard32);
    if (o.local) {
      for (let i = 0; i < s.cidrs.length; i++) {
        const pip = s.privateIPs[i];
        if (!pip || (privateIP && pip.s === privateIP.ip.s)) continue;
        const nodeGw = enc.gw(null, pip, s.cniCompatibilityIPs[i], s.cidrs[i]);
        const cidr = s.cidrs[i];
        if (cidr) addEncap(cidr, nodeGw, o.privIface, null, null, true);
        if (crossesSubnet(pip)) {
          add(oneAddress(pip), nodeGw, tunl, privateIP?.ip ?? null, KILO_TABLE, true);
          rules.push(rule(t.subnet, oneAddress(pip), null));
        }
      }
    }
  }
  for (const p of t.peers) for (const a of p.allowedIPs) viaLeader(a);
  return b.result();
}

/** §7.4: a remote segment's routes on the leader, through WireGuard to the segment's IP. */
function remoteViaSegment(t: Topology, b: RouteBuilder, o: RouteOptions, s: Segment): void {
  const { add, remote, oneAddress, memo, privateIP } = b;
  const src = privateIP?.ip ?? null;
  const ep = updateEndpoint(t.discoveredEndpoints, s.endpoint, s.key, s.persistentKeepalive);
  const make = (): void => {
    const epIP = ep?.ip?.s;
    const gw = s.wireGuardIP;
    for (let i = 0; i < s.cidrs.length; i++) {
      const c = s.cidrs[i];
      if (c) add(c, gw, o.kiloIface, src, null, true);
      // A node reachable only through its endpoint address cannot be routed to through it.
      if (s.privateIPs.length === 0 || !s.privateIPs[i] || s.privateIPs[i].s === epIP) continue;
      add(oneAddress(s.privateIPs[i]), gw, o.kiloIface, src, null, true);
    }
    for (let i = 0; i < s.allowedLocationIPs.length; i++) add(s.allowedLocationIPs[i], gw, o.kiloIface, src, null, true); // no iterator per segment
  };
  if (memo) remote(s, [ep, o.kiloIface, src], make);
  else make();
}

/** §7.4: the leader routes other segments through WireGuard. */
function leaderRoutes(t: Topology, o: RouteOptions, b: RouteBuilder): RoutesResult {
  const { add, addEncap, crossesSubnet, oneAddress, rules, enc, strategy, privateIP, tunl } = b;
  for (const s of t.segments) {
    // In cross granularity the location's other nodes are routed as the local segment's (design §19.3).
    if (isLocalSegment(t, s)) {
      if (o.local && privateIP) {
        for (let i = 0; i < s.cidrs.length; i++) {
          const pip = s.privateIPs[i];
          if (!pip || pip.s === privateIP.ip.s) continue;
          const nodeGw = enc.gw(null, pip, s.cniCompatibilityIPs[i], s.cidrs[i]);
          const cidr = s.cidrs[i];
          if (cidr) addEncap(cidr, nodeGw, o.privIface, null, null, true);
          if (crossesSubnet(pip)) {
            add(oneAddress(pip), nodeGw, tunl, privateIP.ip, KILO_TABLE, true);
            rules.push(rule(t.subnet, oneAddress(pip), null));
            rules.push(rule(null, oneAddress(pip), o.kiloIface));
          }
        }
      } else if (!o.local && privateIP && strategy !== 'never') {
        // §7.4b: return traffic from WireGuard to same-location nodes through the CNI overlay.
        for (let i = 0; i < s.cidrs.length; i++) {
          const pip = s.privateIPs[i];
          if (!pip || pip.s === privateIP.ip.s) continue;
          const nodeGw = enc.gw(null, pip, s.cniCompatibilityIPs[i], s.cidrs[i]);
          if (nodeGw && nodeGw.s !== pip.s) {
            add(oneAddress(pip), nodeGw, tunl, null, KILO_TABLE, true);
            rules.push(rule(null, oneAddress(pip), o.kiloIface));
          }
        }
      }
      continue;
    }
    remoteViaSegment(t, b, o, s);
  }
  const src = privateIP?.ip ?? null;
  for (const p of t.peers) {
    for (const a of p.allowedIPs) add(a, null, o.kiloIface, src, null, false);
  }
  return b.result();
}

export function routes(t: Topology, o: RouteOptions): RoutesResult {
  const b = routeBuilder(t, o);
  return t.leader ? leaderRoutes(t, o, b) : nonLeaderRoutes(t, o, b);
}

/**
 * The routes of remote segments, each exactly as routes(t, o) lists them for it (before the
 * de-duplication of masked routes); `own` is the local segment. For incremental re-plans
 * (replan.ts), which rebuild the segments a change touched and keep the others' routes.
 */
export function remoteSegmentRoutes(t: Topology, o: RouteOptions, own: Segment | undefined): (s: Segment) => { routes: Route[]; masked: boolean } {
  const b = routeBuilder(t, o);
  const gw = t.leader ? null : leaderGateway(t, b.enc, own);
  return (s) => {
    if (t.leader) remoteViaSegment(t, b, o, s);
    else remoteViaLeader(b, o, s, gw);
    return b.raw();
  };
}
