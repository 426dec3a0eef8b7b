// The set layout (--iptables-layout=sets, design §8.10): the planner's per-address rules whose
// count grows with the cluster become elements of ipsets, matched by one rule per set; the rest
// of Kilo's layout stays. Pure: which rule is a set member, the desired elements (counted, since
// two rules may name one network), the set rules of each chain, and the `ipset restore` lines
// that bring saved sets to the desired ones.
//
// Every set rule stands at the top of its chain, in a fixed order. That reorders nothing that
// matters: the members of a set share one verdict, and the rules they move ahead of are either of
// the same verdict (KILO-NAT RETURNs, FORWARD ACCEPTs) or jumps to KILO-NAT, whose outcome depends
// on the packet alone (a second jump into it decides the same).

import type { Family, IptablesJSON, IptablesRule } from '../plan/types.js';
import { elementsOf, setHeader, type SavedSet } from '../kernel/ipset.js';
import { ruleKey } from '../kernel/iptables-save.js';
import { buildDesired, spliceLead, type DesiredIptables, type RuleFilter } from './iptables.js';

export type { IptablesLayout } from '../ipc/dataplane.js';

interface SetKind {
  table: string;
  chain: string;
  dir: '-s' | '-d';
  comment: string;
  target: string;
  /** Short name: the set is `kilo4-<name>` / `kilo6-<name>`. */
  name: string;
}

const FWD = (what: string, name: string): SetKind[] => [
  { table: 'filter', chain: 'FORWARD', dir: '-s', comment: `Kilo: forward packets from ${what}`, target: 'ACCEPT', name: `fwd-${name}-src` },
  { table: 'filter', chain: 'FORWARD', dir: '-d', comment: `Kilo: forward packets to ${what}`, target: 'ACCEPT', name: `fwd-${name}-dst` },
];

/** The planner's per-address rules that become sets (plan/iptables.ts), in the order their set rules stand. */
const KINDS: readonly SetKind[] = [
  // "WireGuared" is Kilo's spelling (plan/iptables.ts).
  { table: 'nat', chain: 'KILO-NAT', dir: '-d', comment: 'Kilo: do not NAT packets destined for WireGuared IPs', target: 'RETURN', name: 'nat-wg' },
  { table: 'nat', chain: 'KILO-NAT', dir: '-d', comment: 'Kilo: do not NAT packets destined for known IPs', target: 'RETURN', name: 'nat-known' },
  { table: 'nat', chain: 'KILO-NAT', dir: '-d', comment: 'Kilo: do not NAT packets destined for peers', target: 'RETURN', name: 'nat-peers' },
  { table: 'nat', chain: 'POSTROUTING', dir: '-d', comment: 'Kilo: jump to NAT chain', target: 'KILO-NAT', name: 'jump-dst' },
  { table: 'nat', chain: 'POSTROUTING', dir: '-s', comment: 'Kilo: jump to NAT chain', target: 'KILO-NAT', name: 'jump-src' },
  ...FWD('the pod subnet', 'pod'),
  ...FWD('allowed location IPs', 'aloc'),
  ...FWD('private IPs', 'priv'),
];

const kindIndex = new Map<string, number>(KINDS.map((k, i) => [`${k.table}|${k.chain}|${k.dir}|${k.comment}|${k.target}`, i]));

export interface SetMember {
  /** The set's full name. */
  set: string;
  elements: readonly string[];
}

const memberMemo = new WeakMap<IptablesRule, SetMember | null>();

/** The set and elements a planned rule becomes, or null when it stays a rule. */
export function setMemberOf(r: IptablesRule): SetMember | null {
  const hit = memberMemo.get(r);
  if (hit !== undefined) return hit;
  const m = findMember(r);
  if (r !== null && typeof r === 'object') memberMemo.set(r, m);
  return m;
}

function findMember(r: IptablesRule): SetMember | null {
  const a = r?.rule;
  if (!Array.isArray(a) || a.length !== 8 || a[6] !== '-j') return null;
  // the two shapes the planner writes: address first (NAT) or comment first (FORWARD)
  const addrAt = a[0] === '-s' || a[0] === '-d' ? 0 : a[4] === '-s' || a[4] === '-d' ? 4 : -1;
  const commentAt = addrAt === 0 ? 2 : 0;
  if (addrAt < 0 || a[commentAt] !== '-m' || a[commentAt + 1] !== 'comment' || a[commentAt + 2] !== '--comment') return null;
  const i = kindIndex.get(`${r.table}|${r.chain}|${a[addrAt]}|${a[commentAt + 3]}|${a[7]}`);
  if (i === undefined) return null;
  const elements = elementsOf(a[addrAt + 1]);
  if (elements === null) return null;
  return { set: setName(r.family, KINDS[i]), elements };
}

function setName(f: Family, k: SetKind): string {
  return `kilo${f === 'ipv4' ? 4 : 6}-${k.name}`;
}

/** The rule key of the rule that matches set `k` (the planned rule with its address swapped for the set). */
function setRuleKey(f: Family, k: SetKind): string {
  const match = ['-m', 'set', '--match-set', setName(f, k), k.dir === '-s' ? 'src' : 'dst'];
  const comment = ['-m', 'comment', '--comment', k.comment];
  // the match stands where the planner puts the address: first in NAT rules, after the comment in FORWARD ones
  return ruleKey(k.table === 'nat' ? [...match, ...comment, '-j', k.target] : [...comment, ...match, '-j', k.target]);
}

export interface DesiredSet {
  family: Family;
  table: string;
  chain: string;
  order: number;
  /** The set rule's key. */
  rule: string;
  /** element → how many planned rules name it. */
  counts: Map<string, number>;
}

/**
 * The desired sets: filled from the planned rules, kept in step with deltas. `dirty` names the
 * elements changed since the last successful write (null = compare everything).
 */
export class DesiredSets {
  readonly sets = new Map<string, DesiredSet>();
  dirty: Map<string, Set<string>> | null = null;
  /** Sets that became empty or non-empty since the last `takeToggled` (their rule comes or goes). */
  private toggled = new Set<string>();

  constructor(families: readonly Family[]) {
    for (const f of families) {
      KINDS.forEach((k, order) => this.sets.set(setName(f, k), { family: f, table: k.table, chain: k.chain, order, rule: setRuleKey(f, k), counts: new Map() }));
    }
  }

  /** Count a member in (+1) or out (-1). */
  change(m: SetMember, by: 1 | -1): void {
    const s = this.sets.get(m.set);
    if (s === undefined) return; // a family we do not manage
    const before = s.counts.size;
    for (const e of m.elements) {
      const n = (s.counts.get(e) ?? 0) + by;
      if (n > 0) s.counts.set(e, n);
      else s.counts.delete(e);
      if ((n === 1 && by === 1) || n === 0) this.dirty?.get(m.set)?.add(e) ?? this.dirty?.set(m.set, new Set([e]));
    }
    if ((before === 0) !== (s.counts.size === 0)) this.toggled.add(`${s.family}|${s.table}|${s.chain}`);
  }

  /** The chains (`family|table|chain`) whose set rules changed since the last call. */
  takeToggled(): Set<string> {
    const t = this.toggled;
    this.toggled = new Set();
    return t;
  }

  /** The set rule keys of one chain, in order: one per non-empty set. */
  chainRules(family: Family, table: string, chain: string): string[] {
    const out: { order: number; rule: string }[] = [];
    for (const s of this.sets.values()) if (s.family === family && s.table === table && s.chain === chain && s.counts.size > 0) out.push(s);
    return out.sort((x, y) => x.order - y.order).map((s) => s.rule);
  }

  /** The chains that can hold set rules, as [family, table, chain]. */
  chains(): [Family, string, string][] {
    const seen = new Map<string, [Family, string, string]>();
    for (const s of this.sets.values()) seen.set(`${s.family}|${s.table}|${s.chain}`, [s.family, s.table, s.chain]);
    return [...seen.values()];
  }
}

/**
 * `ipset restore` lines that make the saved sets hold the desired elements (run before the rules
 * are written, so every set a rule names exists). Sets no longer desired are left for
 * `destroyLines`, after their rules are gone. A set of ours with another type or size is
 * rebuilt beside and swapped in. `only` = the changed elements per set (null = all).
 */
export function fillLines(d: DesiredSets, saved: ReadonlyMap<string, SavedSet>, maxelem: number, only: Map<string, Set<string>> | null): string[] {
  const out: string[] = [];
  for (const [name, s] of d.sets) {
    if (s.counts.size === 0) continue;
    const header = setHeader(s.family, maxelem);
    const have = saved.get(name);
    const want = header.split(' ');
    if (have === undefined || have.header !== `${want[0]} ${want[2]} ${want[6]}`) {
      const target = have === undefined ? name : `${name}-new`;
      // a twin left by a rebuild that failed halfway holds elements no longer desired (and
      // `create -exist` would keep them): start it over
      if (target !== name && saved.has(target)) out.push(`destroy ${target}`);
      out.push(`create ${target} ${header}`);
      for (const e of s.counts.keys()) out.push(`add ${target} ${e}`);
      if (have !== undefined) out.push(`swap ${target} ${name}`, `destroy ${target}`);
      continue;
    }
    const check = only === null ? null : only.get(name);
    if (only !== null && check === undefined) continue;
    for (const e of check ?? s.counts.keys()) if (s.counts.has(e) && !have.elements.has(e)) out.push(`add ${name} ${e}`);
    for (const e of check ?? have.elements) if (!s.counts.has(e) && have.elements.has(e)) out.push(`del ${name} ${e}`);
  }
  return out;
}

/** `ipset restore` lines that destroy our saved sets that are not desired (after their rules are gone). */
export function destroyLines(d: DesiredSets, saved: ReadonlyMap<string, SavedSet>): string[] {
  const out: string[] = [];
  for (const name of saved.keys()) if ((d.sets.get(name)?.counts.size ?? 0) === 0) out.push(`destroy ${name}`);
  return out;
}

/** Keep a saved view in step with restore lines that succeeded. */
export function applyIpsetLines(saved: Map<string, SavedSet>, lines: readonly string[]): void {
  for (const line of lines) {
    const [cmd, name, arg, ...rest] = line.split(' ');
    if (cmd === 'create') saved.set(name, { header: `${arg} ${rest[1]} ${rest[5]}`, elements: new Set() });
    else if (cmd === 'add') saved.get(name)?.elements.add(arg);
    else if (cmd === 'del') saved.get(name)?.elements.delete(arg);
    else if (cmd === 'destroy') saved.delete(name);
    else if (cmd === 'swap') {
      const a = saved.get(name);
      const b = saved.get(arg);
      if (a && b) {
        saved.set(name, b);
        saved.set(arg, a);
      }
    }
  }
}

/** A whole plan in the set layout: the chains' rules (set rules at their heads), the sets, and each chain's number of set rules. */
export interface SetLayout {
  desired: DesiredIptables;
  sets: DesiredSets;
  /** `family|table|chain` → how many set rules head its list. */
  lead: Map<string, number>;
}

export function setLayoutOf(ipt: IptablesJSON, families: readonly Family[], accept: RuleFilter = () => true): SetLayout {
  const desired = buildDesired(ipt, families, (r) => accept(r) && setMemberOf(r) === null);
  const sets = new DesiredSets(families);
  for (const list of [ipt.prepend, ipt.append]) {
    for (const r of list) {
      const m = setMemberOf(r);
      if (m !== null && families.includes(r.family) && accept(r)) sets.change(m, 1);
    }
  }
  sets.takeToggled();
  const lead = new Map<string, number>();
  for (const [f, t, c] of sets.chains()) placeSetRules(desired, sets, lead, f, t, c);
  return { desired, sets, lead };
}

/** Put one chain's set rules (one per non-empty set) at its head, in place of the ones it had. */
export function placeSetRules(desired: DesiredIptables, sets: DesiredSets, lead: Map<string, number>, f: Family, t: string, chain: string): void {
  const id = `${f}|${t}|${chain}`;
  const keys = sets.chainRules(f, t, chain);
  spliceLead(desired, f, t, chain, lead.get(id) ?? 0, keys);
  lead.set(id, keys.length);
}
