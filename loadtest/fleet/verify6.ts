// The fleet check's IPv6 half (design §20): the second family of a dual-stack fleet, walked hop
// by hop by the very walk of verify.ts (verifyFleet), over IPv6 destinations compiled here. A
// node's IPv6 pod address is a destination when its own plan says it takes part in the IPv6
// half (`dualStack.active`); the others are counted as unchecked, as the IPv4 walk counts what it
// cannot check. Peers are IPv4 destinations only (their allowed IPs of both families are the first
// family's, design §20.3).
import { parseCIDR } from '../../plan/addr.js';
import type { PlanJSON } from '../../plan/types.js';
import { NO_PEER, NO_ROUTE, UNCHECKED, UNKNOWN_GW, UNKNOWN_KEY, VIA_WG, LOCAL, type CompiledNode, type FleetIndex, type IndexLookups, type PlanForCheck } from './verify.js';

/** An IPv6 CIDR as [masked network, bits], or null (IPv4, malformed). */
export function parseV6CIDR(s: string): [bigint, number] | null {
  const c = parseCIDR(s.includes('/') ? s : `${s}/128`);
  if (!c || !c.ip.v6) return null;
  let n = 0n;
  for (const b of c.ip.b!) n = (n << 8n) | BigInt(b);
  return [mask(n, c.bits), c.bits];
}

const ALL = (1n << 128n) - 1n;
function mask(n: bigint, bits: number): bigint {
  return bits === 0 ? 0n : n & (ALL ^ ((1n << BigInt(128 - bits)) - 1n));
}

/** The IPv6 view of a fleet: destinations are the nodes' IPv6 pod addresses (the CIDR's first host). */
export interface Lookups6 {
  /** Per node: its IPv6 pod address, or null (not a destination). */
  addr: (bigint | null)[];
  byPrivateIP: Map<string, number>;
  byPrefix: Map<number, Map<bigint, number[]>>;
  /** For verifyFleet: the index and lookups it walks with (addresses as 0/-1 markers). */
  ix: FleetIndex;
  lk: IndexLookups;
}

/** The IPv6 lookups of a fleet: `podCIDRs6[i]` for the nodes taking part, `privateIPs6[i]` as gateways. */
export function lookups6(ix: FleetIndex, podCIDRs6: readonly (string | null)[], privateIPs6: readonly (string | null)[]): Lookups6 {
  const N = ix.names.length;
  const addr: (bigint | null)[] = new Array(N).fill(null);
  const byPrivateIP = new Map<string, number>();
  const marks = new Float64Array(N).fill(-1);
  for (let i = 0; i < N; i++) {
    const c = podCIDRs6[i] ? parseV6CIDR(podCIDRs6[i]!) : null;
    if (c && ix.ready[i]) {
      addr[i] = c[1] >= 127 ? c[0] : c[0] + 1n;
      marks[i] = 0;
    }
    const p = privateIPs6[i] ? parseCIDR(`${privateIPs6[i]!.split('/')[0]}/128`) : null;
    if (p) byPrivateIP.set(p.ip.s, i);
  }
  const byKey = new Map<string, number>();
  const sharedKeys: string[] = [];
  ix.names.forEach((_, i) => {
    const k = ix.keys[i];
    if (!ix.ready[i] || !k) return;
    if (byKey.has(k)) sharedKeys.push(k);
    else byKey.set(k, i);
  });
  const ix6: FleetIndex = { ...ix, podCIDRs: [...podCIDRs6], privateIPs: [...privateIPs6], peers: [] };
  if (ix.groups) ix6.groupGateless = privateIPs6.map((p) => !p);
  const lk: IndexLookups = { addr: marks, byName: new Map(ix.names.map((n, i) => [n, i])), byKey, byPrivateIP: new Map(), sharedKeys, cover: { bits: 0, key: '', dests: [] }, byPrefix: [], claims: new Map(), stamp: 0 };
  return { addr, byPrivateIP, byPrefix: new Map(), ix: ix6, lk };
}

/** The destinations inside an IPv6 prefix (per prefix length: masked address → destinations). */
function cover(l: Lookups6, net: bigint, bits: number): readonly number[] {
  let m = l.byPrefix.get(bits);
  if (!m) {
    l.byPrefix.set(bits, (m = new Map()));
    l.addr.forEach((a, j) => {
      if (a === null) return;
      const k = mask(a, bits);
      const list = m!.get(k);
      if (list) list.push(j);
      else m!.set(k, [j]);
    });
  }
  return m.get(net) ?? [];
}

/** One node's IPv6 forwarding compiled for verifyFleet: its main-table routes and its WireGuard peers' allowed IPs. */
export function compileNode6(l: Lookups6, plan: PlanForCheck): CompiledNode {
  const me = l.lk.byName.get(plan.hostname);
  if (me === undefined) throw new Error(`plan for ${plan.hostname}: not a node of the fleet`);
  const N = l.addr.length;
  const next = new Int32Array(N).fill(NO_ROUTE);
  const bits = new Int16Array(N).fill(-1);
  for (const r of plan.routes) {
    if (r.table !== null && r.table !== 254) continue;
    const c = parseV6CIDR(r.dst);
    if (!c) continue;
    const decision = r.dev === l.ix.kiloIface ? VIA_WG : r.gw !== null ? (l.byPrivateIP.get(r.gw) ?? UNKNOWN_GW) : UNKNOWN_GW;
    for (const j of cover(l, c[0], c[1])) {
      if (c[1] <= bits[j]) continue; // of equal prefixes the first holds (the kernel refuses the second)
      bits[j] = c[1];
      next[j] = decision;
    }
  }
  for (let j = 0; j < N; j++) if (l.addr[j] === null) next[j] = UNCHECKED;
  if (l.addr[me] !== null) next[me] = LOCAL;
  const wgOwner = new Int32Array(N).fill(NO_PEER);
  const best = new Int16Array(N).fill(-1);
  const wgPeers: number[] = [];
  const duplicates: string[] = [];
  const claimed = new Map<string, string>();
  for (const p of plan.wireguard.applied ? plan.wireguard.peers : []) {
    const owner = l.lk.byKey.get(p.publicKey) ?? UNKNOWN_KEY;
    wgPeers.push(owner);
    for (const a of p.allowedIPs) {
      const c = parseV6CIDR(a);
      if (!c) continue;
      const key = `${c[0]}/${c[1]}`;
      const prev = claimed.get(key);
      if (prev !== undefined) duplicates.push(`${plan.hostname}: allowed IP ${a} claimed by ${prev} and ${p.publicKey}`);
      else claimed.set(key, p.publicKey);
      for (const j of cover(l, c[0], c[1])) {
        if (c[1] > best[j]) {
          best[j] = c[1];
          wgOwner[j] = owner;
        }
      }
    }
  }
  return { index: me, next, wgOwner, wgPeers: Int32Array.from(wgPeers), duplicates };
}

/** A node's IPv6 pod CIDR as the fleet check reads it from its plan: when it takes part (design §20.3). */
export function ipv6Destination(j: Pick<PlanJSON, 'dualStack'>): string | null {
  return j.dualStack?.active ? j.dualStack.podCIDR : null;
}
