// The property tests' packet walk: a packet followed hop by hop over the plans' main-table
// routes and WireGuard allowed IPs, in the family of its destination (dual stack: design §20).
import { contains, network, parseCIDR, parseIP } from '../../plan/addr.js';
import type { PlanJSON } from '../../plan/types.js';

/** The item whose CIDRs hold `dst` with the longest prefix. */
export function lpm<T>(items: readonly T[], cidrOf: (t: T) => string[], dst: string): T | null {
  const ip = parseIP(dst)!;
  let best: T | null = null;
  let bits = -1;
  for (const it of items) {
    for (const c of cidrOf(it)) {
      const cc = network(parseCIDR(c)!);
      if (contains(cc, ip) && cc.bits > bits) [best, bits] = [it, cc.bits];
    }
  }
  return best;
}

/**
 * Follows one packet from node `from` towards `dst` (either family); returns the node that owns
 * dst, or a failure. `wgHops` collects the WireGuard hops taken, as [from, to].
 */
export function deliver(all: Map<string, PlanJSON>, from: string, dst: string, wgHops: [string, string][] = []): string {
  const any = [...all.values()][0];
  const v6 = dst.includes(':');
  const internal = (n: PlanJSON['nodes'][number]) => (v6 ? n.dualStack?.internalIP : n.internalIP);
  const pod = (n: PlanJSON['nodes'][number]) => (v6 ? n.dualStack?.subnet : n.subnet);
  const byInternal = new Map(any.nodes.filter((n) => n.ready && internal(n)).map((n) => [internal(n)!.split('/')[0], n.name]));
  const byKey = new Map(any.nodes.filter((n) => n.ready).map((n) => [n.key!, n.name]));
  let at = from;
  const path = [at];
  for (let hop = 0; hop < 2 * all.size + 2; hop++) {
    const p = all.get(at)!;
    const own = pod(p.nodes.find((n) => n.name === at)!);
    if (own && contains(parseCIDR(own)!, parseIP(dst)!)) return at;
    const r = lpm(p.routes.filter((x) => x.table === null), (x) => [x.dst], dst);
    if (!r) return `no route at ${at} (${path.join('→')})`;
    let next: string | undefined;
    if (r.dev === 'kilo0') {
      const peer = lpm(p.wireguard.peers, (x) => x.allowedIPs, dst);
      if (!p.wireguard.applied || !peer) return `blackhole in WireGuard at ${at}`;
      next = byKey.get(peer.publicKey);
      if (next) wgHops.push([at, next]);
    } else {
      next = r.gw ? byInternal.get(r.gw) : undefined;
    }
    if (!next || !all.has(next)) return `next hop ${r.gw ?? r.dev} from ${at} is not a ready node`;
    at = next;
    path.push(at);
  }
  return `loop: ${path.join('→')}`;
}
