// Host discovery at start-up (design §4.2–4.5): which private IP becomes the internal IP, which
// public IP becomes the endpoint, and the underlay MTU. The choice is pure over what `ip -j`
// reports, so it is table-tested; `readHost` is the one side effect (start-up only).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { lookup } from 'node:dns/promises';
import { byText, cidr, contains, isPublic, oneAddress, parseCIDR, parseIP, sortIPs, type CIDR, type IP } from '../../plan/addr.js';

const run = promisify(execFile);

export interface HostLink {
  ifindex: number;
  ifname: string;
  mtu: number;
  addrs: { local: string; prefixlen: number }[];
}

export interface HostRoute {
  dst: string;
  dev?: string;
}

export interface HostView {
  links: HostLink[];
  routes: HostRoute[];
  /** Addresses the hostname resolves to (hosts file + DNS), or the hostname itself if an IP. */
  hostnameIPs: string[];
}

export interface Discovered {
  privateIP: CIDR | null;
  publicIP: CIDR | null;
  /** The interface holding the private IP (for routes and the encapsulator). */
  privateIface: string | null;
  defaultIface: string | null;
  /** Default-route device MTU − 80, or 1420 when unknown (design §4.4). */
  autoMTU: number;
  /** Design §20.2: the other family's address on the private interface (absent: none found). */
  privateIP2?: CIDR | null;
}

/** isLocal: loopback, link-local unicast, link-local multicast. */
function isLocal(ip: IP): boolean {
  if (!ip.v6) {
    const a = ip.n >>> 24;
    const b = (ip.n >>> 16) & 255;
    return a === 127 || (a === 169 && b === 254) || (ip.n >>> 8) === 0xe00000;
  }
  const b = ip.b!;
  const loop = b.every((x, i) => (i === 15 ? x === 1 : x === 0));
  return loop || (b[0] === 0xfe && (b[1] & 0xc0) === 0x80) || (b[0] === 0xff && (b[1] & 0x0f) === 0x02);
}

function classify(list: CIDR[]): { pub: CIDR[]; priv: CIDR[] } {
  const pub: CIDR[] = [];
  const priv: CIDR[] = [];
  for (const c of list) {
    if (isLocal(c.ip)) continue;
    (isPublic(c.ip) ? pub : priv).push(c);
  }
  return { pub: sortIPs(pub), priv: sortIPs(priv) };
}

const linkCIDRs = (l: HostLink): CIDR[] =>
  l.addrs.flatMap((a) => {
    const ip = parseIP(a.local);
    return ip ? [cidr(ip, a.prefixlen)] : [];
  });

/**
 * getIP (design §4.2): hostname group, then default-route group, then all interfaces; ignored
 * interfaces (the WireGuard link, kube-bridge) are dropped, `--internal-cidr` filters private
 * candidates only.
 */
export function discover(view: HostView, o: { ignore: string[]; internalCIDRs: CIDR[] }): Discovered {
  const links = [...view.links].sort((a, b) => byText(a.ifname, b.ifname));
  const ignore = new Set<string>();
  for (const l of links) {
    if (!o.ignore.includes(l.ifname)) continue;
    for (const c of linkCIDRs(l)) ignore.add(c.s).add(oneAddress(c.ip).s);
  }
  const hostname: CIDR[] = [];
  for (const h of view.hostnameIPs) {
    const ip = parseIP(h);
    if (!ip) continue;
    outer: for (const l of links) {
      for (const c of linkCIDRs(l).sort((a, b) => byText(a.ip.s, b.ip.s))) {
        if (c.ip.s === ip.s) {
          hostname.push(cidr(ip, c.bits));
          break outer;
        }
      }
    }
  }
  const def = view.routes.find((r) => r.dst === 'default' || r.dst === '0.0.0.0/0' || r.dst === '::/0');
  const defLink = def?.dev ? links.find((l) => l.ifname === def.dev) ?? null : null;
  const g1 = classify(hostname);
  const g2 = classify(defLink ? linkCIDRs(defLink) : []);
  const g3 = classify(links.flatMap(linkCIDRs));
  let priv = [...g1.priv, ...g2.priv, ...g3.priv].filter((c) => !ignore.has(c.s));
  const pub = [...g1.pub, ...g2.pub, ...g3.pub].filter((c) => !ignore.has(c.s));
  if (o.internalCIDRs.length > 0) priv = priv.filter((c) => o.internalCIDRs.some((n) => contains(n, c.ip)));
  if (priv.length === 0 && pub.length === 0) throw new Error('no valid IP was found');
  const privateIP = priv[0] ?? null;
  const publicIP = pub[0] ?? privateIP;
  const privateIface = privateIP ? links.find((l) => linkCIDRs(l).some((c) => c.ip.s === privateIP.ip.s))?.ifname ?? null : null;
  const privateIP2 = secondFamilyIP(links, privateIface, privateIP, ignore);
  return { privateIP, publicIP, privateIface, defaultIface: defLink?.ifname ?? null, autoMTU: defLink ? defLink.mtu - 80 : 1420, ...(privateIP2 ? { privateIP2 } : {}) };
}

/**
 * Design §20.2: the second family's internal IP, the first address of the other family on the
 * interface holding the internal IP: private ones first, then global (IPv6 hosts mostly have
 * only global ones); never loopback or link-local.
 */
function secondFamilyIP(links: readonly HostLink[], iface: string | null, first: CIDR | null, ignore: ReadonlySet<string>): CIDR | null {
  const l = iface && first ? links.find((x) => x.ifname === iface) : undefined;
  if (!l) return null;
  const c = classify(linkCIDRs(l).filter((x) => x.ip.v6 !== first!.ip.v6 && !ignore.has(x.s)));
  return c.priv[0] ?? c.pub[0] ?? null;
}

/** Reads links, addresses and main-table routes of this network namespace, and resolves the hostname. */
export async function readHost(hostname: string): Promise<HostView> {
  const addr = JSON.parse((await run('ip', ['-j', 'addr', 'show'], { maxBuffer: 64 << 20 })).stdout) as {
    ifindex: number; ifname: string; mtu: number; addr_info?: { local: string; prefixlen: number }[];
  }[];
  const routes: HostRoute[] = [];
  for (const fam of ['-4', '-6']) {
    const out = (await run('ip', ['-j', fam, 'route', 'show', 'table', 'main'], { maxBuffer: 64 << 20 })).stdout;
    routes.push(...(JSON.parse(out || '[]') as HostRoute[]));
  }
  let hostnameIPs: string[] = [];
  if (parseIP(hostname)) hostnameIPs = [hostname];
  else {
    // Bounded: a host whose resolver is unreachable must not stall start-up for the resolver's
    // full retry cycle (10 s and more); an unresolvable hostname just skips this group.
    const timeout = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('timeout')), 2_000).unref());
    try {
      hostnameIPs = (await Promise.race([lookup(hostname, { all: true }), timeout])).map((a) => a.address);
    } catch {
      hostnameIPs = [];
    }
  }
  return {
    links: addr.map((l) => ({ ifindex: l.ifindex, ifname: l.ifname, mtu: l.mtu, addrs: (l.addr_info ?? []).map((a) => ({ local: a.local, prefixlen: a.prefixlen })) })),
    routes,
    hostnameIPs,
  };
}

/**
 * Design §9.5: with `--compatibility=cilium` the node publishes the first IPv4 address of link
 * `cilium_host`, with its prefix, as its CNI-compatibility IP (other nodes send IPIP to it, so
 * the packet crosses Cilium's overlay); none when the link or an IPv4 address is missing. Read
 * through `ip`, as Go reads netlink: whatever the link's state.
 */
export async function readCiliumHostIP(): Promise<CIDR | null> {
  let out: string;
  try {
    out = (await run('ip', ['-j', '-4', 'addr', 'show', 'dev', 'cilium_host'], { timeout: 10_000 })).stdout;
  } catch {
    return null; // no such link
  }
  return ciliumHostIP(out);
}

/** The first IPv4 address in `ip -j -4 addr show` output, as a CIDR. */
export function ciliumHostIP(ipJSON: string): CIDR | null {
  let links: { addr_info?: { family?: string; local?: string; prefixlen?: number }[] }[];
  try {
    links = JSON.parse(ipJSON || '[]');
  } catch {
    return null;
  }
  const a = (Array.isArray(links) ? links : []).flatMap((l) => l?.addr_info ?? []).find((x) => x?.family === 'inet' && typeof x.local === 'string');
  return a ? parseCIDR(`${a.local}/${a.prefixlen}`) : null;
}
