// Routes and policy rules (spec §7), for leaders and non-leaders.
import { contains, network, oneAddress, type CIDR, type IP } from './addr.js';
import type { Encapsulator } from './encapsulation.js';
import { memoOn } from './memo.js';
import { updateEndpoint, type Topology } from './topology.js';
import type { Route, Rule } from './types.js';

export const KILO_TABLE = 1107;

export interface RouteOptions {
  /** The WireGuard device (`--interface`). */
  kiloIface: string;
  /** The device holding the private IP. */
  privIface: string;
  local: boolean;
  enc: Encapsulator;
}

interface RouteDraft {
  dst: CIDR;
  gw: IP | null;
  dev: string | null;
  src: IP | null;
  table: number | null;
  onlink: boolean;
}

/**
 * Divergence (spec §16.15): Kilo hands host-bit CIDRs from allowed-location IPs and Peers
 * (`10.5.0.1/24`) to the kernel as route destinations, which the kernel rejects with EINVAL and
 * which aborts the whole route update. We route to the network (`10.5.0.0/24`), which is what
 * such a route means and what the kernel would hold; annotations, WireGuard and iptables keep the
 * host bits.
 */
function toRoute(r: RouteDraft): Route {
  const dst = network(r.dst).s;
  const gw = r.gw?.s ?? null;
  // The no-op encapsulator has no device (Go uses link index 0); such routes name none.
  const dev = r.dev ?? '';
  const src = r.src?.s ?? null;
  // Memoised on the destination's (long-lived) CIDR object, like the iptables rules: a re-plan
  // returns the same route objects, and their diff keys are reused (diff/desired.ts).
  if (!memoOn()) return { dst, gw, dev, src, table: r.table, protocol: 'static', onlink: r.onlink };
  const variants = routeMemo.get(r.dst);
  if (variants) {
    for (const v of variants) if (v.gw === gw && v.dev === dev && v.src === src && v.table === r.table && v.onlink === r.onlink && v.dst === dst) return v;
  }
  const route: Route = Object.freeze({ dst, gw, dev, src, table: r.table, protocol: 'static', onlink: r.onlink });
  if (!variants) routeMemo.set(r.dst, [route]);
  else if (variants.length < 4) variants.push(route);
  else variants[0] = route;
  return route;
}

const routeMemo = new WeakMap<CIDR, Route[]>();

/** Drafts → routes; masking can make two drafts identical, and the kernel holds one of them. */
function finish(drafts: RouteDraft[]): Route[] {
  const routes = drafts.map(toRoute);
  // Only masking (or duplicate input addresses) can repeat a route; skip the check when no
  // destination lost host bits, which is the common case and keeps 10,000-route plans cheap.
  if (drafts.every((d, i) => d.dst.s === routes[i].dst)) return routes;
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
  // Quirk (spec §16.19): no explicit priority; the kernel assigns one.
  return { src: src ? network(src).s : null, dst: dst?.s ?? null, iif, table: KILO_TABLE, priority: null };
}

export function routes(t: Topology, o: RouteOptions): { routes: Route[]; rules: Rule[] } {
  const out: RouteDraft[] = [];
  const rules: Rule[] = [];
  const { enc } = o;
  const strategy = enc.strategy;
  const privateIP = t.privateIP;
  const tunl = enc.tunnel;

  // encapsulateRoute (spec §7.2).
  const encap = (r: RouteDraft): RouteDraft => {
    if (strategy === 'always' || (strategy === 'crosssubnet' && privateIP && !(r.gw && contains(privateIP, r.gw)))) {
      r.dev = tunl;
      if (privateIP && !r.src) r.src = privateIP.ip;
    }
    return r;
  };
  const crossesSubnet = (ip: IP) =>
    strategy === 'always' || (strategy === 'crosssubnet' && !(privateIP && contains(privateIP, ip)));

  if (!t.leader) {
    // §7.3: everything goes to the local segment's leader.
    let gw: IP | null = null;
    for (const s of t.segments) {
      if (s.location !== t.location) continue;
      const ep = updateEndpoint(t.discoveredEndpoints, s.endpoint, s.key, s.persistentKeepalive);
      gw = enc.gw(ep?.ip ?? null, s.privateIPs[s.leader] ?? null, s.cniCompatibilityIPs[s.leader], s.cidrs[s.leader]);
      break;
    }
    const viaLeader = (dst: CIDR): RouteDraft => encap({ dst, gw, dev: o.privIface, src: null, table: null, onlink: true });
    for (const s of t.segments) {
      out.push(viaLeader(oneAddress(s.wireGuardIP)));
      if (s.location === t.location) {
        if (o.local) {
          for (let i = 0; i < s.cidrs.length; i++) {
            const pip = s.privateIPs[i];
            if (!pip || (privateIP && pip.s === privateIP.ip.s)) continue;
            const nodeGw = enc.gw(null, pip, s.cniCompatibilityIPs[i], s.cidrs[i]);
            const cidr = s.cidrs[i];
            if (cidr) out.push(encap({ dst: cidr, gw: nodeGw, dev: o.privIface, src: null, table: null, onlink: true }));
            if (crossesSubnet(pip)) {
              out.push({ dst: oneAddress(pip), gw: nodeGw, dev: tunl, src: privateIP?.ip ?? null, table: KILO_TABLE, onlink: true });
              rules.push(rule(t.subnet, oneAddress(pip), null));
            }
          }
        }
        continue;
      }
      for (const c of s.cidrs) if (c) out.push(viaLeader(c));
      for (const p of s.privateIPs) out.push(viaLeader(oneAddress(p)));
      for (const a of s.allowedLocationIPs) out.push(viaLeader(a));
    }
    for (const p of t.peers) for (const a of p.allowedIPs) out.push(viaLeader(a));
    return { routes: finish(out), rules };
  }

  // §7.4: the leader routes other segments through WireGuard.
  const src = privateIP?.ip ?? null;
  for (const s of t.segments) {
    if (s.location === t.location) {
      if (o.local && privateIP) {
        for (let i = 0; i < s.cidrs.length; i++) {
          const pip = s.privateIPs[i];
          if (!pip || pip.s === privateIP.ip.s) continue;
          const nodeGw = enc.gw(null, pip, s.cniCompatibilityIPs[i], s.cidrs[i]);
          const cidr = s.cidrs[i];
          if (cidr) out.push(encap({ dst: cidr, gw: nodeGw, dev: o.privIface, src: null, table: null, onlink: true }));
          if (crossesSubnet(pip)) {
            out.push({ dst: oneAddress(pip), gw: nodeGw, dev: tunl, src: privateIP.ip, table: KILO_TABLE, onlink: true });
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
            out.push({ dst: oneAddress(pip), gw: nodeGw, dev: tunl, src: null, table: KILO_TABLE, onlink: true });
            rules.push(rule(null, oneAddress(pip), o.kiloIface));
          }
        }
      }
      continue;
    }
    const ep = updateEndpoint(t.discoveredEndpoints, s.endpoint, s.key, s.persistentKeepalive);
    const epIP = ep?.ip?.s;
    const viaSegment = (dst: CIDR): RouteDraft => ({ dst, gw: s.wireGuardIP, dev: o.kiloIface, src, table: null, onlink: true });
    for (let i = 0; i < s.cidrs.length; i++) {
      const c = s.cidrs[i];
      if (c) out.push(viaSegment(c));
      // A node reachable only through its endpoint address cannot be routed to through it.
      if (s.privateIPs.length === 0 || !s.privateIPs[i] || s.privateIPs[i].s === epIP) continue;
      out.push(viaSegment(oneAddress(s.privateIPs[i])));
    }
    for (const a of s.allowedLocationIPs) out.push(viaSegment(a));
  }
  for (const p of t.peers) {
    for (const a of p.allowedIPs) out.push({ dst: a, gw: null, dev: o.kiloIface, src, table: null, onlink: false });
  }
  return { routes: finish(out), rules };
}
