// Pure iptables diff: desired rule sets (the planner's IptablesJSON) against what `iptables-save`
// shows (kernel/iptables-save.ts) → table patches, rendered as one `iptables-restore
// --noflush` input per family. Also the incremental update of the desired chains for a delta.
//
// Ownership (what kg may change or delete):
//  * a chain listed in `chains`, previously applied by us, or one of Kilo's chain names
//    (KILO-NAT, KILO-IPIP) is owned whole: its contents are exactly our rules;
//  * in any other chain (POSTROUTING, FORWARD, INPUT, …) a rule is ours when its comment starts
//    with "Kilo:" (every rule Kilo generates carries one, design §8.2/§8.3), when it is one of the
//    desired rules of that chain, or when we applied it before.
// Everything else belongs to someone else and is never touched.

import type { Family, IptablesJSON, IptablesRule } from '../plan/types.js';
import { BUILTIN, chainProblem, isBuiltinChain, isKiloRuleKey, KILO_CHAINS, ruleKey, type IptOp, type IptOperation, type SavedTable, type TablePatch } from '../kernel/iptables-save.js';

/** Which desired rules to take (the reconciler's check; everything when absent). */
export type RuleFilter = (r: IptablesRule) => boolean;

/** Desired state of one (family, table). */
export interface DesiredTable {
  /** Chains Kilo must own (created, flushed to exactly their rules). */
  chains: Set<string>;
  /** chain → desired Kilo rule keys in order (prepend rules first, then append rules). */
  rules: Map<string, string[]>;
  /** chain → number of leading entries of `rules` that are prepend rules. */
  prependCount: Map<string, number>;
}

export type DesiredIptables = Map<Family, Map<string, DesiredTable>>;

function tableOf(d: DesiredIptables, family: Family, table: string): DesiredTable {
  let fam = d.get(family);
  if (!fam) d.set(family, (fam = new Map()));
  let t = fam.get(table);
  if (!t) fam.set(table, (t = { chains: new Set(), rules: new Map(), prependCount: new Map() }));
  return t;
}

/**
 * Group the planner's rules by family/table/chain. Prepend rules stand, in the order given, at the
 * top of their chain (the plan contract: prepend rules stand, in order, at the top); append
 * rules follow. Duplicate rules in one chain are kept once.
 */
export function buildDesired(ipt: IptablesJSON, families: readonly Family[] = ['ipv4', 'ipv6'], accept: RuleFilter = () => true): DesiredIptables {
  const d: DesiredIptables = new Map();
  for (const f of families) d.set(f, new Map());
  for (const c of ipt.chains) {
    if (!families.includes(c.family) || !(c.table in BUILTIN) || chainProblem(c.chain) !== null) continue;
    tableOf(d, c.family, c.table).chains.add(c.chain);
  }
  const seen = new Set<string>();
  const add = (r: IptablesRule, prepend: boolean): void => {
    if (!families.includes(r.family) || !accept(r)) return;
    const t = tableOf(d, r.family, r.table);
    const key = ruleKey(r.rule);
    const id = `${r.family}|${r.table}|${r.chain}|${key}`;
    if (seen.has(id)) return;
    seen.add(id);
    let list = t.rules.get(r.chain);
    if (!list) t.rules.set(r.chain, (list = []));
    list.push(key);
    if (prepend) t.prependCount.set(r.chain, (t.prependCount.get(r.chain) ?? 0) + 1);
  };
  for (const r of ipt.prepend) add(r, true);
  for (const r of ipt.append) add(r, false);
  return d;
}

/**
 * Align two key sequences: which elements of `a` and `b` are kept (a longest common subsequence
 * for sequences of distinct keys; duplicates are paired k-th occurrence with k-th occurrence).
 * O(n log n).
 */
export function align(a: readonly string[], b: readonly string[]): { keepA: Uint8Array; keepB: Uint8Array } {
  const keepA = new Uint8Array(a.length);
  const keepB = new Uint8Array(b.length);
  // equal prefix and suffix are kept as they are (the common case: a few rules changed)
  let pre = 0;
  while (pre < a.length && pre < b.length && a[pre] === b[pre]) {
    keepA[pre] = 1;
    keepB[pre] = 1;
    pre++;
  }
  let suf = 0;
  while (suf < a.length - pre && suf < b.length - pre && a[a.length - 1 - suf] === b[b.length - 1 - suf]) {
    keepA[a.length - 1 - suf] = 1;
    keepB[b.length - 1 - suf] = 1;
    suf++;
  }
  // keys that stand in the trimmed prefix/suffix must not be paired again in the middle
  const midA = a.slice(pre, a.length - suf);
  const midB = b.slice(pre, b.length - suf);
  const inner = alignLIS(midA, midB);
  keepA.set(inner.keepA, pre);
  keepB.set(inner.keepB, pre);
  return { keepA, keepB };
}

/** What we applied last time, per family/table: owned chains and our rules per shared chain. */
export interface AppliedTable {
  chains: Set<string>;
  rules: Map<string, Set<string>>;
}

export type AppliedIptables = Map<Family, Map<string, AppliedTable>>;

/** Rewrite an owned chain whole when the edit script is at least this share of its length. */
const REWRITE_RATIO = 0.5;

/** Chains a full diff visits: desired ones, ones with desired rules, and existing ones that are owned or hold rules of ours. */
function chainsToVisit(
  desiredChains: ReadonlySet<string>,
  desiredRules: ReadonlyMap<string, string[]>,
  actualChains: ReadonlyMap<string, string[]>,
  applied: AppliedTable | undefined,
  owned: (c: string) => boolean,
): Set<string> {
  const visit = new Set<string>([...desiredChains, ...desiredRules.keys()]);
  for (const [c, rules] of actualChains) {
    if (owned(c)) visit.add(c);
    else {
      const mine = applied?.rules.get(c);
      if (rules.some((k) => isKiloRuleKey(k) || (mine?.has(k) ?? false))) visit.add(c);
    }
  }
  return visit;
}

/** An owned chain that stays: created, edited, or rewritten whole when the edit script is long. */
function ownedChainEdits(chain: string, have: readonly string[] | undefined, want: readonly string[]): Edit[] {
  const whole = (head: IptOperation): Edit[] => [{ line: `:${chain} - [0:0]`, op: head }, ...want.map((k): Edit => ({ line: `-A ${chain} ${k}`, op: 'AppendUnique' }))];
  if (have === undefined) return whole('NewChain');
  const edits = chainEdits(chain, have, want, () => true, 0, true);
  if (edits.length === 0) return edits;
  return edits.length >= Math.max(1, want.length * REWRITE_RATIO) ? whole('ClearChain') : edits;
}

/**
 * Diff one table. `actual` null = the table is unknown to the kernel (treated as empty).
 * Returns null when nothing must change.
 */
export function diffTable(
  table: string,
  desired: DesiredTable | undefined,
  actual: SavedTable | undefined,
  applied: AppliedTable | undefined,
  /** Restrict the diff to these chains (an incremental pass); undefined = every chain. */
  only?: ReadonlySet<string>,
  /** Desired rules to leave out (the kernel refused them for good). */
  skip?: (chain: string, key: string) => boolean,
): TablePatch | null {
  const actualChains = actual?.chains ?? new Map<string, string[]>();
  const desiredChains = desired?.chains ?? new Set<string>();
  const desiredRules = desired?.rules ?? new Map<string, string[]>();
  const owned = (c: string): boolean =>
    desiredChains.has(c) || KILO_CHAINS.has(c) || (applied?.chains.has(c) ?? false);

  const ruleLines: string[] = [];
  const chainDeletes: string[] = [];
  const ops: IptOp[] = [];
  const chainLines = new Map<string, string[]>();
  const push = (chain: string, line: string, op: IptOperation): void => {
    ruleLines.push(line);
    ops.push({ operation: op, table, chain });
    let l = chainLines.get(chain);
    if (!l) chainLines.set(chain, (l = []));
    l.push(line);
  };

  const visit = only ?? chainsToVisit(desiredChains, desiredRules, actualChains, applied, owned);
  // Owned custom chains first (so jump targets exist), then shared chains; deleted chains last.
  const order = [...visit].sort((x, y) => Number(!owned(x) || isBuiltinChain(table, x)) - Number(!owned(y) || isBuiltinChain(table, y)));
  for (const chain of order) {
    const all = desiredRules.get(chain) ?? [];
    const want = skip ? all.filter((k) => !skip(chain, k)) : all;
    const have = actualChains.get(chain);
    const isOwned = owned(chain) && !isBuiltinChain(table, chain);
    if (isOwned) {
      const keep = desiredChains.has(chain) || all.length > 0;
      if (!keep) {
        if (have !== undefined) chainDeletes.push(chain);
        continue;
      }
      for (const e of ownedChainEdits(chain, have, want)) push(chain, e.line, e.op);
    } else {
      const mine = applied?.rules.get(chain);
      const wantSet = new Set(want);
      const isMine = (k: string): boolean => isKiloRuleKey(k) || wantSet.has(k) || (mine?.has(k) ?? false);
      const prepends = desired?.prependCount.get(chain) ?? 0;
      const skipped = skip ? all.slice(0, prepends).filter((k) => skip(chain, k)).length : 0;
      const edits = chainEdits(chain, have ?? [], want, isMine, prepends - skipped, false);
      for (const e of edits) push(chain, e.line, e.op);
    }
  }
  // Our rules (jumps included) are gone before the chains they target are deleted.
  const lines = [...ruleLines];
  for (const chain of chainDeletes) {
    lines.push(`-F ${chain}`, `-X ${chain}`);
    ops.push({ operation: 'ClearChain', table, chain }, { operation: 'DeleteChain', table, chain });
    let l = chainLines.get(chain);
    if (!l) chainLines.set(chain, (l = []));
    l.push(`-F ${chain}`, `-X ${chain}`);
  }
  if (lines.length === 0) return null;
  return { table, lines, ops, chainLines };
}

/** The per-table record of what we now own, after a successful apply of `desired`. */
export function appliedFrom(desired: DesiredIptables): AppliedIptables {
  const out: AppliedIptables = new Map();
  for (const [f, tables] of desired) {
    const m = new Map<string, AppliedTable>();
    for (const [t, d] of tables) {
      const rules = new Map<string, Set<string>>();
      for (const [c, keys] of d.rules) if (!d.chains.has(c)) rules.set(c, new Set(keys));
      m.set(t, { chains: new Set(d.chains), rules });
    }
    out.set(f, m);
  }
  return out;
}

/**
 * Incremental update of the desired chains for one splice of the planner's prepend or append
 * list (`old` = the list before the splice). Returns the chains touched, as `family|table|chain`.
 */
export function patchDesired(
  d: DesiredIptables,
  part: 'prepend' | 'append',
  old: readonly IptablesRule[],
  start: number,
  deleteCount: number,
  items: readonly IptablesRule[],
  /** The same filter buildDesired was given: rules it refuses do not count in positions either. */
  accept: RuleFilter = () => true,
  /** Entries at the head of a chain's list that are not the planner's (the set rules, diff/ipsets.ts). */
  lead: (chain: string) => number = () => 0,
): Set<string> {
  const id = (r: IptablesRule): string => (accept(r) ? `${r.family}|${r.table}|${r.chain}` : '');
  const touched = new Set<string>();
  for (let i = start; i < start + deleteCount; i++) touched.add(id(old[i]));
  for (const r of items) touched.add(id(r));
  touched.delete('');
  for (const c of touched) {
    const [family, table, chain] = c.split('|') as [Family, string, string];
    const fam = d.get(family);
    if (!fam) continue; // a family we do not manage
    let before = 0;
    for (let i = 0; i < start; i++) if (id(old[i]) === c) before++;
    let removed = 0;
    for (let i = start; i < start + deleteCount; i++) if (id(old[i]) === c) removed++;
    const add = items.filter((r) => id(r) === c).map((r) => ruleKey(r.rule));
    const t = tableOf(d, family, table);
    let list = t.rules.get(chain);
    if (!list) t.rules.set(chain, (list = []));
    const pc = t.prependCount.get(chain) ?? 0;
    list.splice(part === 'prepend' ? lead(c) + before : pc + before, removed, ...add);
    if (part === 'prepend') t.prependCount.set(chain, pc + add.length - removed);
  }
  return touched;
}

function alignLIS(a: readonly string[], b: readonly string[]): { keepA: Uint8Array; keepB: Uint8Array } {
  const occ = new Map<string, number[]>();
  for (let i = 0; i < a.length; i++) {
    const l = occ.get(a[i]);
    if (l) l.push(i);
    else occ.set(a[i], [i]);
  }
  const used = new Map<string, number>();
  // pairs (bIndex, aIndex) in b order
  const bIdx: number[] = [];
  const aIdx: number[] = [];
  for (let j = 0; j < b.length; j++) {
    const l = occ.get(b[j]);
    if (!l) continue;
    const u = used.get(b[j]) ?? 0;
    if (u >= l.length) continue;
    used.set(b[j], u + 1);
    bIdx.push(j);
    aIdx.push(l[u]);
  }
  // longest increasing subsequence of aIdx
  const n = aIdx.length;
  const tails: number[] = [];
  const prev = new Int32Array(n).fill(-1);
  for (let k = 0; k < n; k++) {
    let lo = 0;
    let hi = tails.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (aIdx[tails[mid]] < aIdx[k]) lo = mid + 1;
      else hi = mid;
    }
    if (lo > 0) prev[k] = tails[lo - 1];
    tails[lo] = k;
  }
  const keepA = new Uint8Array(a.length);
  const keepB = new Uint8Array(b.length);
  let k = tails.length > 0 ? tails[tails.length - 1] : -1;
  while (k >= 0) {
    keepA[aIdx[k]] = 1;
    keepB[bIdx[k]] = 1;
    k = prev[k];
  }
  return { keepA, keepB };
}

/**
 * Edit script for one chain. `all` = every rule in the chain now; the rules for which `isMine`
 * holds form our subsequence, which must become `want`. Foreign rules keep their places.
 * Deletes in owned chains go by number; in shared chains by rule spec (so that a rule another
 * writer inserted meanwhile is never hit). New prepend rules go right after our previous rule
 * (position 1 when none); new append rules right before our next kept rule, else at the end.
 */
function chainEdits(
  chain: string,
  all: readonly string[],
  want: readonly string[],
  isMine: (k: string) => boolean,
  prependCount: number,
  ownedChain: boolean,
): Edit[] {
  const mineIdx: number[] = [];
  const mineKeys: string[] = [];
  for (let i = 0; i < all.length; i++) {
    if (isMine(all[i])) {
      mineIdx.push(i);
      mineKeys.push(all[i]);
    }
  }
  if (mineKeys.length === want.length) {
    let same = true;
    for (let i = 0; i < want.length && same; i++) same = mineKeys[i] === want[i];
    if (same) return [];
  }
  const { keepA, keepB } = align(mineKeys, want);
  const edits: Edit[] = [];
  // Phase 1: deletes (by number from the bottom up in owned chains; by spec in shared chains).
  const keptAbs: number[] = []; // absolute index, after the deletes, of each kept rule in order
  let deleted = 0;
  for (let i = 0; i < mineKeys.length; i++) {
    if (keepA[i]) keptAbs.push(mineIdx[i] - deleted);
    else deleted++;
  }
  if (ownedChain) {
    for (let i = mineKeys.length - 1; i >= 0; i--) if (!keepA[i]) edits.push({ line: `-D ${chain} ${mineIdx[i] + 1}`, op: 'Delete' });
  } else {
    for (let i = 0; i < mineKeys.length; i++) if (!keepA[i]) edits.push({ line: `-D ${chain} ${mineKeys[i]}`, op: 'Delete' });
  }
  // Phase 2: inserts, positions on the chain as it stands after the deletes.
  let inserted = 0;
  let lastPos = 0; // 1-based position of our previous rule (kept or inserted), 0 = none
  let c = 0; // next kept rule
  let pendingAppend: string[] = [];
  for (let j = 0; j < want.length; j++) {
    if (keepB[j]) {
      const at = keptAbs[c++];
      for (const k of pendingAppend) {
        edits.push({ line: `-I ${chain} ${at + inserted + 1} ${k}`, op: 'InsertUnique' });
        inserted++;
      }
      pendingAppend = [];
      lastPos = at + inserted + 1;
    } else if (j < prependCount) {
      edits.push({ line: `-I ${chain} ${lastPos + 1} ${want[j]}`, op: 'InsertUnique' });
      inserted++;
      lastPos++;
    } else {
      pendingAppend.push(want[j]);
    }
  }
  for (const k of pendingAppend) edits.push({ line: `-A ${chain} ${k}`, op: 'AppendUnique' });
  return edits;
}

interface Edit {
  line: string;
  op: IptOperation;
}

/**
 * Put `keys` at the head of a chain's desired list in place of its `had` leading entries (the set
 * rules, diff/ipsets.ts); they count as prepend rules.
 */
export function spliceLead(d: DesiredIptables, family: Family, table: string, chain: string, had: number, keys: readonly string[]): void {
  // nothing to put and nothing to take: no entry (an empty one would make the chain desired)
  if (!d.has(family) || (had === 0 && keys.length === 0)) return;
  const t = tableOf(d, family, table);
  let list = t.rules.get(chain);
  if (!list) t.rules.set(chain, (list = []));
  list.splice(0, had, ...keys);
  t.prependCount.set(chain, (t.prependCount.get(chain) ?? 0) - had + keys.length);
}
