// The fleet check: is the mesh as a whole right? Pure functions over the plans of every node.
//
// Every ready node's pod CIDR must be reachable from every other ready node and from every Peer
// by following, hop by hop, what each node would program: its main routing table (longest
// prefix match) and, for routes through the WireGuard interface, its cryptokey table (longest
// prefix match over the peers' allowed IPs). The receiving end of a WireGuard hop must accept
// the packet's source address from the sender (WireGuard drops packets whose source is not in
// the sending peer's allowed IPs), so an asymmetric peering fails the walk too. Walks end at
// the destination node, or fail on a missing route (blackhole), a hop to a node that is not
// ready or unknown, a hop to a Peer, or a node visited twice (loop).
//
// Besides reachability: WireGuard peering between leaders is symmetric, and no allowed IP is
// claimed twice on one interface. compareKernel() compares a real agent's kernel to its plan.
//
// Scope: IPv4 destinations and sources (the simulator's clusters are IPv4); IPv6 pod CIDRs are
// counted as unchecked, never silently passed. Only the main routing table is walked: Kilo's
// table 1107 and its rules carry encapsulated traffic to private IPs, not pod traffic.
//
// Per node, compileNode() turns a plan into two typed arrays indexed by destination (every node's
// pod CIDR, then every Peer's first allowed IP): the routing decision and the cryptokey owner.
// That keeps a 5,000-node fleet at 2 × 5,100 small integers per node, small enough to move
// between threads, where 5,000 plans of 5,000 routes each would not fit in memory.
import type { PlanJSON } from '../../plan/types.js';
import { canonicalEndpoint, type DeviceState } from '../../kernel/uapi.js';
import { normalizeRule, ruleKey as kRuleKey, sameRoute, type KRoute, type KRule } from '../../kernel/ip-format.js';
import { desiredRouteMap } from '../../diff/routes.js';
import { isKiloRuleKey, type SavedTable } from '../../kernel/iptables-save.js';
import type { SavedSet } from '../../kernel/ipset.js';
import { setLayoutOf, type DesiredSets } from '../../diff/ipsets.js';
import { buildDesired } from '../../diff/iptables.js';
import { KG_PROTO } from '../../kernel/owner.js';

/** Routing decision codes (non-negative values are the next hop's node index). */
export const NO_ROUTE = -1;
export const VIA_WG = -2;
export const LOCAL = -3;
/** A route through a gateway that is no node's private IP (or no device at all). */
export const UNKNOWN_GW = -4;
export const UNCHECKED = -5;
/** Cryptokey owner codes. */
export const NO_PEER = -1;
export const UNKNOWN_KEY = -4;

/** What every compiler and verifier must agree on: the fleet's nodes and Peers, by index. */
export interface FleetIndex {
  /** Node names in name order; index = node index. */
  names: string[];
  ready: boolean[];
  /** Whether the node's own plan makes it a leader (fill in after planning; only verifyFleet reads it). */
  leader: boolean[];
  /** Node public keys ('' when none). */
  keys: string[];
  /** Pod CIDR text per node (null when none). */
  podCIDRs: (string | null)[];
  /** Private IP text per node (no prefix), for gateways. */
  privateIPs: (string | null)[];
  /** Ready Peers: name, public key, allowed IPs. Peer p has index names.length + p. */
  peers: { name: string; publicKey: string; allowedIPs: string[] }[];
  /** The WireGuard interface name (--interface). */
  kiloIface: string;
}

/** Per-node lookups derived from a FleetIndex (rebuilt in each thread: Maps clone poorly). */
export interface IndexLookups {
  /** Destination addresses (uint32; -1 = not IPv4 or absent): nodes, then Peers. */
  addr: Float64Array;
  byName: Map<string, number>;
  /** Public key → node index (of a ready node) or names.length + p (a Peer). */
  byKey: Map<string, number>;
  /** Private IP → node index. */
  byPrivateIP: Map<string, number>;
  /** Keys held by two nodes or Peers. */
  sharedKeys: string[];
}

export function parseV4(s: string): number {
  // By hand: 25 million route and allowed-IP texts at 5,000 nodes; a regex was the hot spot.
  let n = 0;
  let part = 0;
  let digits = 0;
  let dots = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c >= 48 && c <= 57) {
      part = part * 10 + (c - 48);
      if (++digits > 3 || part > 255) return -1;
    } else if (c === 46 && digits > 0 && dots < 3) {
      n = n * 256 + part;
      part = 0;
      digits = 0;
      dots++;
    } else return -1;
  }
  if (dots !== 3 || digits === 0) return -1;
  return n * 256 + part;
}

/** An IPv4 CIDR as [network, bits], or null for IPv6 or malformed text. */
export function parseV4CIDR(s: string): [number, number] | null {
  const i = s.indexOf('/');
  const a = parseV4(i < 0 ? s : s.slice(0, i));
  if (a < 0) return null;
  let bits = 32;
  if (i >= 0) {
    const t = s.slice(i + 1);
    bits = t.length > 0 && t.length <= 2 ? Number(t) : NaN;
  }
  if (!Number.isInteger(bits) || bits < 0 || bits > 32) return null;
  return [maskOf(a, bits), bits];
}

function maskOf(a: number, bits: number): number {
  return bits === 0 ? 0 : (a & (0xffffffff << (32 - bits))) >>> 0;
}

/** Longest-prefix match over IPv4 prefixes: one map per prefix length that occurs. */
export class Lpm<T> {
  private readonly byLen = new Map<number, Map<number, T>>();
  private lens: number[] = [];

  /** Adds a prefix; returns false when the same prefix was already present (the first stays). */
  add(net: number, bits: number, v: T): boolean {
    let m = this.byLen.get(bits);
    if (!m) {
      this.byLen.set(bits, (m = new Map()));
      this.lens = [...this.byLen.keys()].sort((a, b) => b - a);
    }
    const k = maskOf(net, bits);
    if (m.has(k)) return false;
    m.set(k, v);
    return true;
  }

  lookup(a: number): T | undefined {
    for (const bits of this.lens) {
      const v = this.byLen.get(bits)!.get(maskOf(a, bits));
      if (v !== undefined) return v;
    }
    return undefined;
  }
}

export function lookups(ix: FleetIndex): IndexLookups {
  const N = ix.names.length;
  const addr = new Float64Array(N + ix.peers.length).fill(-1);
  const byName = new Map<string, number>();
  const byKey = new Map<string, number>();
  const byPrivateIP = new Map<string, number>();
  const sharedKeys: string[] = [];
  const claim = (k: string, i: number) => {
    if (!k) return;
    if (byKey.has(k)) sharedKeys.push(k);
    else byKey.set(k, i);
  };
  ix.names.forEach((n, i) => {
    byName.set(n, i);
    const c = ix.podCIDRs[i] ? parseV4CIDR(ix.podCIDRs[i]!) : null;
    // A pod's address: the first host of the CIDR (the CNI bridge holds it on the node).
    if (c && ix.ready[i]) addr[i] = c[1] >= 31 ? c[0] : c[0] + 1;
    if (ix.privateIPs[i]) byPrivateIP.set(ix.privateIPs[i]!, i);
  });
  // A segment is keyed by its leader; a non-leader's key in a table is caught by the walk.
  ix.names.forEach((_, i) => ix.ready[i] && claim(ix.keys[i], i));
  ix.peers.forEach((p, j) => {
    claim(p.publicKey, N + j);
    const c = p.allowedIPs.length ? parseV4CIDR(p.allowedIPs[0]) : null;
    if (c) addr[N + j] = c[1] >= 31 ? c[0] : c[0] + 1;
  });
  return { addr, byName, byKey, byPrivateIP, sharedKeys };
}

/** One node's (or Peer's) forwarding, compiled against the fleet's destinations. */
export interface CompiledNode {
  /** Node index, or names.length + p for a Peer. */
  index: number;
  /** Per destination: the next hop's node index, or NO_ROUTE, VIA_WG, LOCAL, UNKNOWN_GW, UNCHECKED. */
  next: Int32Array | Int16Array;
  /** Per destination (or source): the WireGuard peer owning the address (index), NO_PEER or UNKNOWN_KEY. */
  wgOwner: Int32Array | Int16Array;
  /** Node/Peer indices of this node's WireGuard peers (UNKNOWN_KEY for a key nobody holds). */
  wgPeers: number[];
  /** Allowed IPs claimed by two peers of this interface: "cidr: peerA, peerB". */
  duplicates: string[];
}

/** The parts of a plan the fleet check reads (PlanJSON has them all). */
export type PlanForCheck = Pick<PlanJSON, 'hostname' | 'routes'> & { wireguard: Pick<PlanJSON['wireguard'], 'applied' | 'peers'> };

/** Shared memory: the fleet planner's workers verify destination ranges over every node's arrays without copies. */
function newArray(n: number, size: number): Int32Array | Int16Array {
  return size < 32_000 ? new Int16Array(new SharedArrayBuffer(2 * n)) : new Int32Array(new SharedArrayBuffer(4 * n));
}

function compileWG(ix: FleetIndex, lk: IndexLookups, index: number, peers: readonly { publicKey: string; allowedIPs: readonly string[] }[], name: string): Omit<CompiledNode, 'next'> {
  const D = lk.addr.length;
  const wg = new Lpm<number>();
  const seen = new Map<string, string>();
  const duplicates: string[] = [];
  const wgPeers: number[] = [];
  for (const p of peers) {
    const owner = lk.byKey.get(p.publicKey) ?? UNKNOWN_KEY;
    wgPeers.push(owner);
    for (const a of p.allowedIPs) {
      const c = parseV4CIDR(a);
      // The kernel masks allowed IPs, so 10.0.0.1/24 and 10.0.0.0/24 are one claim.
      const key = c ? `${c[0]}/${c[1]}` : a.toLowerCase();
      const prev = seen.get(key);
      if (prev !== undefined) duplicates.push(`${name}: allowed IP ${a} claimed by ${prev} and ${p.publicKey}`);
      else seen.set(key, p.publicKey);
      if (c) wg.add(c[0], c[1], owner);
    }
  }
  const wgOwner = newArray(D, D + ix.names.length);
  for (let j = 0; j < D; j++) wgOwner[j] = lk.addr[j] < 0 ? NO_PEER : (wg.lookup(lk.addr[j]) ?? NO_PEER);
  return { index, wgOwner, wgPeers, duplicates };
}

/** Compiles one node's plan. */
export function compileNode(ix: FleetIndex, lk: IndexLookups, plan: PlanForCheck): CompiledNode {
  const me = lk.byName.get(plan.hostname);
  if (me === undefined) throw new Error(`plan for ${plan.hostname}: not a node of the fleet`);
  const D = lk.addr.length;
  const routes = new Lpm<{ dev: string; gw: string | null }>();
  for (const r of plan.routes) {
    if (r.table !== null && r.table !== 254) continue;
    const c = parseV4CIDR(r.dst);
    if (c) routes.add(c[0], c[1], { dev: r.dev, gw: r.gw });
  }
  const w = compileWG(ix, lk, me, plan.wireguard.applied ? plan.wireguard.peers : [], plan.hostname);
  const next = newArray(D, D + ix.names.length);
  for (let j = 0; j < D; j++) {
    if (lk.addr[j] < 0) next[j] = UNCHECKED;
    else if (j === me) next[j] = LOCAL;
    else {
      const r = routes.lookup(lk.addr[j]);
      if (!r) next[j] = NO_ROUTE;
      else if (r.dev === ix.kiloIface) next[j] = VIA_WG;
      else next[j] = r.gw !== null ? (lk.byPrivateIP.get(r.gw) ?? UNKNOWN_GW) : UNKNOWN_GW;
    }
  }
  return { ...w, next };
}

/** Compiles a Peer's configuration (kgctl showconf peer): everything goes through WireGuard. */
export function compilePeer(ix: FleetIndex, lk: IndexLookups, p: number, conf: readonly { publicKey: string; allowedIPs: readonly string[] }[]): CompiledNode {
  const N = ix.names.length;
  const w = compileWG(ix, lk, N + p, conf, `peer ${ix.peers[p].name}`);
  const next = newArray(lk.addr.length, lk.addr.length + N).fill(VIA_WG);
  return { ...w, next };
}

export interface VerifyReport {
  ok: boolean;
  readyNodes: number;
  peers: number;
  /** Source → destination walks made, and how many reached their destination. */
  paths: number;
  reached: number;
  /** Destinations not checked (IPv6 or no pod CIDR). */
  unchecked: number;
  /** Failures by kind, and the first few of each. */
  failures: Record<string, number>;
  examples: string[];
  hops: { max: number; mean: number };
  ms: number;
}

const MAX_EXAMPLES = 20;

/**
 * Verifies the fleet: `nodes[i]` is node i's compiled plan (null if not planned), `peers[p]` the
 * compiled configuration of Peer p.
 */
export function verifyFleet(
  ix: FleetIndex, lk: IndexLookups, nodes: readonly (CompiledNode | null)[], peers: readonly CompiledNode[],
  /** Part of the work, for parallel verification: destinations [from, to) and whether to run the interface checks. */
  part: { from: number; to: number; interfaceChecks: boolean } = { from: 0, to: Number.MAX_SAFE_INTEGER, interfaceChecks: true },
): VerifyReport {
  const t0 = performance.now();
  const N = ix.names.length;
  const failures: Record<string, number> = {};
  const examples: string[] = [];
  const fail = (kind: string, text: string) => {
    failures[kind] = (failures[kind] ?? 0) + 1;
    if (examples.length < MAX_EXAMPLES) examples.push(`${kind}: ${text}`);
  };
  const label = (i: number) => (i >= N ? `peer ${ix.peers[i - N]?.name ?? i}` : ix.names[i] ?? String(i));
  const checks = part.interfaceChecks;
  if (checks) for (const k of lk.sharedKeys) fail('shared-key', `public key ${k} is held by two nodes or Peers`);

  const ready: number[] = [];
  for (let i = 0; i < N; i++) {
    if (!ix.ready[i]) continue;
    if (!nodes[i]) checks && fail('unplanned', `${ix.names[i]} is ready but has no plan`);
    else ready.push(i);
  }
  // Interface checks: duplicate allowed IPs, unknown keys, symmetric peering between leaders.
  const compiledAll = checks ? [...ready.map((i) => nodes[i]!), ...peers] : [];
  for (const c of compiledAll) {
    for (const d of c.duplicates) fail('duplicate-allowed-ip', d);
    if (c.wgPeers.includes(UNKNOWN_KEY)) fail('unknown-peer-key', `${label(c.index)} has a WireGuard peer whose key no ready leader or Peer holds`);
  }
  const peerSets = new Map<number, Set<number>>();
  if (checks) for (const i of ready) if (ix.leader[i]) peerSets.set(i, new Set(nodes[i]!.wgPeers));
  for (const [a, set] of peerSets) {
    for (const b of set) {
      if (b < 0 || b >= N) continue;
      const back = peerSets.get(b);
      if (!back) fail('asymmetric-peering', `${ix.names[a]} peers with ${label(b)}, which is not a ready leader`);
      else if (!back.has(a)) fail('asymmetric-peering', `${ix.names[a]} peers with ${ix.names[b]}, but ${ix.names[b]} does not peer with ${ix.names[a]}`);
    }
  }

  // Reachability: every ready node's pod address from every other ready node and every Peer.
  let paths = 0;
  let reached = 0;
  let unchecked = 0;
  let hopSum = 0;
  let hopMax = 0;
  const sources = [...ready, ...peers.map((_, p) => N + p)];
  const compiledOf = (i: number): CompiledNode | null => (i >= N ? (peers[i - N] ?? null) : (nodes[i] ?? null));
  const visited = new Int32Array(N + peers.length).fill(-1);
  let stamp = 0;
  for (const dst of ready) {
    if (dst < part.from || dst >= part.to) continue;
    if (lk.addr[dst] < 0) {
      unchecked++;
      continue;
    }
    for (const src of sources) {
      if (src === dst) continue;
      paths++;
      stamp++;
      const srcAddrIdx = src; // a node's pod address and a Peer's first allowed IP share the index space
      let h = src;
      let hops = 0;
      let ok = false;
      for (;;) {
        if (h === dst) {
          ok = true;
          break;
        }
        if (visited[h] === stamp) {
          fail('loop', `${label(src)} → ${ix.names[dst]}: ${label(h)} visited twice`);
          break;
        }
        visited[h] = stamp;
        const c = compiledOf(h)!;
        const r = c.next[dst];
        let k: number;
        if (r === VIA_WG) {
          k = c.wgOwner[dst];
          if (k === NO_PEER || k === UNKNOWN_KEY) {
            fail('blackhole', `${label(src)} → ${ix.names[dst]}: ${label(h)} routes into WireGuard but no peer allows ${ix.podCIDRs[dst]}`);
            break;
          }
          if (k >= N) {
            fail('misroute', `${label(src)} → ${ix.names[dst]}: ${label(h)} sends it to ${label(k)}`);
            break;
          }
          const rc = nodes[k];
          if (!rc || !ix.ready[k]) {
            fail('dead-hop', `${label(src)} → ${ix.names[dst]}: ${label(h)} sends it through WireGuard to ${label(k)}, which is not ready`);
            break;
          }
          if (!ix.leader[k]) {
            fail('dead-hop', `${label(src)} → ${ix.names[dst]}: ${label(h)} sends it through WireGuard to ${ix.names[k]}, which leads no segment`);
            break;
          }
          // The receiver must attribute the packet's source to the sender, or WireGuard drops it.
          if (lk.addr[srcAddrIdx] >= 0 && rc.wgOwner[srcAddrIdx] !== h) {
            fail('source-rejected', `${label(src)} → ${ix.names[dst]}: ${ix.names[k]} drops packets from ${label(src)} arriving from ${label(h)} (allowed IPs)`);
            break;
          }
        } else if (r >= 0) {
          k = r;
          if (!nodes[k] || !ix.ready[k]) {
            fail('dead-hop', `${label(src)} → ${ix.names[dst]}: ${label(h)} routes it via ${label(k)}, which is not ready`);
            break;
          }
        } else {
          const why = r === NO_ROUTE ? 'no route' : r === UNKNOWN_GW ? 'a route through a gateway that is no node' : `decision ${r}`;
          fail('blackhole', `${label(src)} → ${ix.names[dst]}: ${label(h)} has ${why} for ${ix.podCIDRs[dst]}`);
          break;
        }
        h = k;
        hops++;
      }
      if (ok) {
        reached++;
        hopSum += hops;
        if (hops > hopMax) hopMax = hops;
      }
    }
  }
  const ok = Object.keys(failures).length === 0;
  return {
    ok, readyNodes: ready.length, peers: peers.length, paths, reached, unchecked, failures, examples,
    hops: { max: hopMax, mean: reached ? hopSum / reached : 0 }, ms: performance.now() - t0,
  };
}

/** One report from the reports of disjoint parts (destination ranges). */
export function mergeReports(parts: readonly VerifyReport[], ms: number): VerifyReport {
  const failures: Record<string, number> = {};
  for (const p of parts) for (const [k, v] of Object.entries(p.failures)) failures[k] = (failures[k] ?? 0) + v;
  const reached = parts.reduce((a, p) => a + p.reached, 0);
  return {
    ok: parts.every((p) => p.ok), readyNodes: parts[0]?.readyNodes ?? 0, peers: parts[0]?.peers ?? 0,
    paths: parts.reduce((a, p) => a + p.paths, 0), reached, unchecked: parts.reduce((a, p) => a + p.unchecked, 0),
    failures, examples: parts.flatMap((p) => p.examples).slice(0, MAX_EXAMPLES),
    hops: { max: Math.max(0, ...parts.map((p) => p.hops.max)), mean: reached ? parts.reduce((a, p) => a + p.hops.mean * p.reached, 0) / reached : 0 },
    ms,
  };
}

/** What a node's kernel holds, read in its network namespace (loadtest/fleet/kernel.ts). */
export interface KernelState {
  /** kg's routes (and static ones), both families (dataplane/routes.ts readRoutes). */
  routes: KRoute[];
  /** Policy rules (any table; only Kilo's table is compared). */
  rules: KRule[];
  /** The WireGuard device, or null when there is none. */
  wireguard: DeviceState | null;
  /** iptables-save output per family, parsed. */
  iptables: { ipv4: Map<string, SavedTable>; ipv6?: Map<string, SavedTable> };
  /** kg's ipsets; when it holds any, the kernel is compared with the plan in the set layout (design §8.10). */
  ipsets?: Map<string, SavedSet>;
}

/** The set layout's elements: every non-empty set holds exactly the planned elements; no other set of kg's. */
function compareSets(want: DesiredSets, have: Map<string, SavedSet>): string[] {
  const out: string[] = [];
  for (const [name, s] of want.sets) {
    const h = have.get(name);
    if (s.counts.size === 0) {
      if (h) out.push(`ipset ${name} not in the plan`);
      continue;
    }
    if (!h) {
      out.push(`ipset ${name} missing`);
      continue;
    }
    for (const e of s.counts.keys()) if (!h.elements.has(e)) out.push(`ipset ${name}: ${e} missing`);
    for (const e of h.elements) if (!s.counts.has(e)) out.push(`ipset ${name}: ${e} not in the plan`);
  }
  // (sets of a family not compared, kilo6-* when only IPv4 is, are left out)
  const prefixes = new Set([...want.sets.keys()].map((n) => n.slice(0, 6)));
  for (const name of have.keys()) if (!want.sets.has(name) && prefixes.has(name.slice(0, 6))) out.push(`ipset ${name} not in the plan`);
  return out;
}

/** Differences between a plan and a kernel (empty = the kernel holds exactly the plan). */
export function compareKernel(plan: PlanJSON, k: KernelState, o: { families?: ('ipv4' | 'ipv6')[]; kiloTable?: number } = {}): string[] {
  const out: string[] = [];
  const families = o.families ?? ['ipv4'];
  // Routes: exactly the planned set of kg's routes.
  const want = desiredRouteMap(plan.routes);
  const have = new Map<string, KRoute>(k.routes.filter((r) => r.proto === KG_PROTO).map((r) => [`${r.table}|${r.dst}`, r] as const));
  for (const [key, r] of want as Map<string, KRoute>) {
    const h = have.get(key);
    if (!h) out.push(`route ${r.dst} (table ${r.table}) missing`);
    else if (!sameRoute(h, r)) out.push(`route ${r.dst} differs: kernel via ${h.gw} dev ${h.dev}, plan via ${r.gw} dev ${r.dev}`);
  }
  for (const [key, r] of have) if (!(want as Map<string, KRoute>).has(key)) out.push(`route ${r.dst} (table ${r.table}) not in the plan`);
  // Rules: Kilo's table.
  const table = o.kiloTable ?? 1107;
  const wantRules = new Set(plan.rules.map((r) => kRuleKey(normalizeRule(r))));
  const haveRules = new Set(k.rules.filter((r) => r.table === table).map(kRuleKey));
  for (const r of wantRules) if (!haveRules.has(r)) out.push(`rule ${r} missing`);
  for (const r of haveRules) if (!wantRules.has(r)) out.push(`rule ${r} not in the plan`);
  // WireGuard: the same peers, allowed IPs and endpoints.
  if (plan.wireguard.applied) {
    if (!k.wireguard) out.push(`WireGuard device ${plan.wireguard.interface} missing`);
    else {
      const dev = k.wireguard.peers;
      const norm = (xs: readonly string[]) => xs.map((a) => { const c = parseV4CIDR(a); return c ? `${c[0]}/${c[1]}` : a.toLowerCase(); }).sort().join(',');
      for (const p of plan.wireguard.peers) {
        const d = dev.get(p.publicKey);
        if (!d) {
          out.push(`WireGuard peer ${p.publicKey} missing`);
          continue;
        }
        if (norm(d.allowedIPs) !== norm(p.allowedIPs)) out.push(`WireGuard peer ${p.publicKey}: allowed IPs ${d.allowedIPs.join(',')} ≠ plan ${p.allowedIPs.join(',')}`);
        const pe = canonicalEndpoint(p.endpoint);
        if (pe !== null && canonicalEndpoint(d.endpoint) !== pe) out.push(`WireGuard peer ${p.publicKey}: endpoint ${d.endpoint} ≠ plan ${p.endpoint}`);
        if (d.persistentKeepalive !== p.persistentKeepalive) out.push(`WireGuard peer ${p.publicKey}: keepalive ${d.persistentKeepalive} ≠ plan ${p.persistentKeepalive}`);
      }
      const planned = new Set(plan.wireguard.peers.map((p) => p.publicKey));
      for (const key of dev.keys()) if (!planned.has(key)) out.push(`WireGuard peer ${key} not in the plan`);
    }
  }
  // iptables: chains Kilo owns hold exactly the plan's rules; elsewhere Kilo's rules in order.
  const layout = k.ipsets !== undefined && k.ipsets.size > 0 ? setLayoutOf(plan.iptables, families) : null;
  if (layout !== null) out.push(...compareSets(layout.sets, k.ipsets!));
  const desired = layout?.desired ?? buildDesired(plan.iptables, families);
  for (const f of families) {
    const saved = k.iptables[f];
    if (!saved) {
      out.push(`iptables (${f}) not read`);
      continue;
    }
    for (const [tname, t] of desired.get(f) ?? []) {
      const st = saved.get(tname);
      const chains = new Set([...t.chains, ...t.rules.keys()]);
      for (const chain of chains) {
        const wantRulesC = t.rules.get(chain) ?? [];
        const got = st?.chains.get(chain);
        if (!got) {
          out.push(`iptables ${f} ${tname} chain ${chain} missing`);
          continue;
        }
        const wantSet = new Set(wantRulesC);
        const mine = t.chains.has(chain) ? got : got.filter((r) => wantSet.has(r) || isKiloRuleKey(r));
        if (mine.join('\n') !== wantRulesC.join('\n')) out.push(`iptables ${f} ${tname} ${chain}: kernel has ${mine.length} rules, plan ${wantRulesC.length} (or another order)`);
      }
    }
  }
  return out;
}
