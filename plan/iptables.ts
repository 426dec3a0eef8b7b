// iptables rule sets (design §8.2–8.4). The strings are Kilo's, byte for byte (misspelling
// included), so that a TS kg can take over a host a Go kg managed and the reverse.
import { oneAddress, type CIDR, type IP } from './addr.js';
import { encapsulationRules, type Encapsulator } from './encapsulation.js';
import type { Segment, Topology } from './topology.js';
import type { Family, IptablesChain, IptablesJSON, IptablesRule } from './types.js';

export interface IptablesOptions {
  cni: boolean;
  forwardRules: boolean;
  serviceCIDRs: readonly CIDR[];
  enc: Encapsulator;
  local: boolean;
  /** The local node's `location`, for the §8.3 IPIP allow list. */
  localNodeLocation: string;
  /** Reuse rule objects across plans (memo.ts). */
  memo?: boolean;
}

const fam = (c: CIDR): Family => (c.ip.v6 ? 'ipv6' : 'ipv4');
const comment = (text: string) => ['-m', 'comment', '--comment', text];

// The per-address rules are the bulk of a large plan (20,000 at 5,000 nodes): each is built as
// one array literal, without spreads.
const WG_RETURN = 'Kilo: do not NAT packets destined for WireGuared IPs';
const KNOWN_RETURN = 'Kilo: do not NAT packets destined for known IPs';
const PEER_RETURN = 'Kilo: do not NAT packets destined for peers';
const JUMP_NAT = 'Kilo: jump to NAT chain';

// Per-address rules are memoised (memo.ts) on the long-lived CIDR objects of the records: a re-plan
// hands back the very same rule objects, so their diff keys are reused too (diff/desired.ts).
// Frozen, because they are shared between plans.
type RuleMemo = WeakMap<CIDR, IptablesRule>;
function remember(m: RuleMemo, c: CIDR, r: IptablesRule): IptablesRule {
  Object.freeze(r.rule);
  m.set(c, Object.freeze(r));
  return r;
}
const returnMemo = new Map<string, RuleMemo>([WG_RETURN, KNOWN_RETURN, PEER_RETURN].map((t) => [t, new WeakMap()]));
const jumpMemo = { '-s': new WeakMap() as RuleMemo, '-d': new WeakMap() as RuleMemo };
function natReturn(d: CIDR, text: string, memo: boolean): IptablesRule {
  const m = memo ? returnMemo.get(text)! : null;
  const hit = m?.get(d);
  if (hit) return hit;
  const r: IptablesRule = { family: fam(d), table: 'nat', chain: 'KILO-NAT', rule: ['-d', d.s, '-m', 'comment', '--comment', text, '-j', 'RETURN'] };
  return m ? remember(m, d, r) : r;
}
function natJump(dir: '-s' | '-d', c: CIDR, memo: boolean): IptablesRule {
  const m = memo ? jumpMemo[dir] : null;
  const hit = m?.get(c);
  if (hit) return hit;
  const r: IptablesRule = { family: fam(c), table: 'nat', chain: 'POSTROUTING', rule: [dir, c.s, '-m', 'comment', '--comment', JUMP_NAT, '-j', 'KILO-NAT'] };
  return m ? remember(m, c, r) : r;
}

// A segment's own rules depend on the segment alone: a reused segment (topology.ts) hands back
// its list (memo.ts), one property read instead of one lookup per address.
/** Writes segment `s`'s own rules into `out` from index `at`; returns the next index. */
export function segmentReturns(s: Segment, out: IptablesRule[], at: number, memo: boolean): number {
  const hit = memo ? s.memo?.rules : undefined;
  if (hit) {
    for (let i = 0; i < hit.length; i++) out[at++] = hit[i];
    return at;
  }
  const start = at;
  // "WireGuared" is Kilo's spelling; the string is the rule's identity, so it stays.
  out[at++] = natReturn(s.wireGuard32, WG_RETURN, memo);
  for (let i = 0; i < s.allowedIPs.length; i++) out[at++] = natReturn(s.allowedIPs[i], KNOWN_RETURN, memo);
  if (memo && s.memo) s.memo.rules = out.slice(start, at);
  return at;
}

/**
 * Cross granularity (design §19.4): the location group's private IPs, in segment order, for the
 * IPIP allow list. Kilo's PR #328 finds no `location:` segment there and allows none, which drops
 * the location's own IPIP traffic; kg allows the group's, as location granularity does.
 */
function crossPrivateIPs(t: Topology): IP[] {
  const out: IP[] = [];
  for (const s of t.segments) if (t.sameLocation!.has(s.location)) for (const p of s.privateIPs) out.push(p);
  return out;
}

function r(family: Family, table: string, chain: string, rule: string[]): IptablesRule {
  return { family, table, chain, rule };
}

export function iptablesRules(t: Topology, o: IptablesOptions): IptablesJSON {
  const memo = o.memo === true;
  const chains: IptablesChain[] = [];
  const append: IptablesRule[] = [];
  const prepend: IptablesRule[] = [];

  // §8.3, added first (§8.4), only when encapsulating with --local.
  if (o.enc.strategy !== 'never' && o.local) {
    const logical = t.segments.find((s) => s.location === `location:${o.localNodeLocation}`);
    const e = encapsulationRules(o.enc, t.sameLocation ? crossPrivateIPs(t) : logical?.privateIPs ?? []);
    chains.push(...e.chains);
    append.push(...e.append);
    prepend.push(...e.prepend);
  }

  chains.push({ family: 'ipv4', table: 'nat', chain: 'KILO-NAT' }, { family: 'ipv6', table: 'nat', chain: 'KILO-NAT' });
  for (const s of o.serviceCIDRs) {
    append.push(r(fam(s), 'nat', 'KILO-NAT', ['-d', s.s, ...comment('Kilo: do not NAT packets destined for service CIDRs'), '-j', 'RETURN']));
  }
  for (const family of ['ipv4', 'ipv6'] as Family[]) {
    append.push(r(family, 'nat', 'KILO-NAT', [...comment('Kilo: NAT remaining packets'), '-j', 'MASQUERADE']));
  }

  if (o.cni && t.subnet) {
    const sub = t.subnet;
    prepend.push(r(fam(sub), 'nat', 'POSTROUTING', ['-s', sub.s, ...comment('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT']));
    // The FORWARD rules put the comment before -s/-d, unlike iptables-save's order (design §16.20).
    const fwd = (c: CIDR, dir: '-s' | '-d', text: string) =>
      prepend.push(r(fam(c), 'filter', 'FORWARD', [...comment(text), dir, c.s, '-j', 'ACCEPT']));
    if (o.forwardRules && t.leader) {
      const own = t.segments.find((s) => s.location === t.location);
      if (own) {
        for (const c of own.cidrs) {
          if (!c) continue;
          fwd(c, '-s', 'Kilo: forward packets from the pod subnet');
          fwd(c, '-d', 'Kilo: forward packets to the pod subnet');
        }
        for (const a of own.allowedLocationIPs) {
          fwd(a, '-s', 'Kilo: forward packets from allowed location IPs');
          fwd(a, '-d', 'Kilo: forward packets to allowed location IPs');
        }
        for (const p of own.privateIPs) {
          fwd(oneAddress(p, memo), '-s', 'Kilo: forward packets from private IPs');
          fwd(oneAddress(p, memo), '-d', 'Kilo: forward packets to private IPs');
        }
      }
    } else if (o.forwardRules) {
      fwd(sub, '-s', "Kilo: forward packets from the node's pod subnet");
      fwd(sub, '-d', "Kilo: forward packets to the node's pod subnet");
    }
  }

  // The per-address rules, into an array of their exact count: growing a 20,000-rule array by
  // push copied and discarded its backing store over and over.
  let count = prepend.length;
  for (const s of t.segments) count += 1 + s.allowedIPs.length + (s.location === t.location ? s.allowedLocationIPs.length : 0);
  for (const p of t.peers) count += 2 * p.allowedIPs.length;
  const rules: IptablesRule[] = new Array(count);
  let n = 0;
  for (const x of prepend) rules[n++] = x;
  for (const s of t.segments) {
    n = segmentReturns(s, rules, n, memo);
    if (s.location === t.location) {
      // Allowed-location IPs are deliberately not exempted from NAT (design §8.2).
      for (const l of s.allowedLocationIPs) rules[n++] = natJump('-d', l, memo);
    }
  }
  for (const p of t.peers) {
    for (const a of p.allowedIPs) {
      rules[n++] = natJump('-s', a, memo);
      rules[n++] = natReturn(a, PEER_RETURN, memo);
    }
  }
  return { chains, prepend: rules, append };
}

/** Kilo's rule identity (design §8.1): `<table> -A <chain> <args>`, comment quoted, no family. */
export function ruleIdentity(x: IptablesRule): string {
  const args = x.rule.map((a, i) => (i > 0 && x.rule[i - 1] === '--comment' ? `"${a}"` : a));
  return `${x.table} -A ${x.chain} ${args.join(' ')}`;
}
