// Pure iptables diff: desired rule sets (the planner's IptablesJSON) against what `iptables-save`
// shows → the lines of one `iptables-restore --noflush` input per family. No I/O here.
//
// Ownership (what kg may change or delete):
//  * a chain listed in `chains`, previously applied by us, or one of Kilo's chain names
//    (KILO-NAT, KILO-IPIP) is owned whole: its contents are exactly our rules;
//  * in any other chain (POSTROUTING, FORWARD, INPUT, …) a rule is ours when its comment starts
//    with "Kilo:" (every rule Kilo generates carries one, spec §8.2/§8.3), when it is one of the
//    desired rules of that chain, or when we applied it before.
// Everything else belongs to someone else and is never touched.

import type { Family, IptablesJSON, IptablesRule } from '../plan/types.js';
import { checkCIDR, isIPv6, show, textProblem } from './kernel-input.js';

export const KILO_CHAINS: ReadonlySet<string> = new Set(['KILO-NAT', 'KILO-IPIP']);

const BUILTIN: Record<string, ReadonlySet<string>> = {
  filter: new Set(['INPUT', 'FORWARD', 'OUTPUT']),
  nat: new Set(['PREROUTING', 'INPUT', 'OUTPUT', 'POSTROUTING']),
  mangle: new Set(['PREROUTING', 'INPUT', 'FORWARD', 'OUTPUT', 'POSTROUTING']),
  raw: new Set(['PREROUTING', 'OUTPUT']),
  security: new Set(['INPUT', 'FORWARD', 'OUTPUT']),
};

export function isBuiltinChain(table: string, chain: string): boolean {
  return BUILTIN[table]?.has(chain) ?? false;
}

/** Split one iptables-save line into arguments (double quotes, backslash escapes). */
export function tokenize(line: string): string[] {
  const out: string[] = [];
  let cur = '';
  let inQ = false;
  let has = false;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (inQ) {
      if (c === '\\' && i + 1 < line.length && (line[i + 1] === '"' || line[i + 1] === '\\')) {
        cur += line[++i];
      } else if (c === '"') inQ = false;
      else cur += c;
    } else if (c === '"') {
      inQ = true;
      has = true;
    } else if (c === ' ' || c === '\t') {
      if (has || cur.length > 0) out.push(cur);
      cur = '';
      has = false;
    } else {
      cur += c;
    }
  }
  if (has || cur.length > 0) out.push(cur);
  return out;
}

/** Quote one argument for iptables-restore input. */
export function quoteArg(a: string): string {
  if (a.length > 0 && !/[\s"'\\]/.test(a)) return a;
  return '"' + a.replace(/\\/g, '\\\\').replace(/"/g, '\\"') + '"';
}

const PROTO_NAMES: Record<string, string> = { '1': 'icmp', '4': 'ipencap', '6': 'tcp', '17': 'udp', '41': 'ipv6', '58': 'ipv6-icmp' };
const HEADER_OPTS = ['-s', '-d', '-i', '-o', '-p'];

/**
 * Put a rule's arguments in the order iptables-save prints them: the header matches
 * (`-s -d -i -o -p`, each with an optional leading `!`) first, then the rest in the given order.
 * So a planner rule written as `-m comment --comment X -s C -j ACCEPT` still matches the kernel.
 */
export function canonicalArgs(args: readonly string[]): string[] {
  const header = new Map<string, string[]>();
  const rest: string[] = [];
  let i = 0;
  let seenTarget = false;
  while (i < args.length) {
    const neg = args[i] === '!' && i + 1 < args.length && HEADER_OPTS.includes(args[i + 1]);
    const opt = neg ? args[i + 1] : args[i];
    if (!seenTarget && HEADER_OPTS.includes(opt) && !header.has(opt) && i + (neg ? 2 : 1) < args.length) {
      let val = args[i + (neg ? 2 : 1)];
      if (opt === '-p') val = PROTO_NAMES[val] ?? val;
      header.set(opt, neg ? ['!', opt, val] : [opt, val]);
      i += neg ? 3 : 2;
      continue;
    }
    if (args[i] === '-j' || args[i] === '-g') seenTarget = true;
    rest.push(args[i]);
    i++;
  }
  const out: string[] = [];
  for (const o of HEADER_OPTS) {
    const h = header.get(o);
    if (h) out.push(...h);
  }
  out.push(...rest);
  return out;
}

const keyMemo = new Map<string, string>();
/** The rule key: its canonical arguments rendered as iptables-restore reads them. */
export function ruleKey(args: readonly string[]): string {
  const raw = args.join('\u0001');
  const hit = keyMemo.get(raw);
  if (hit !== undefined) return hit;
  if (keyMemo.size >= 500_000) keyMemo.clear();
  const k = canonicalArgs(args).map(quoteArg).join(' ');
  keyMemo.set(raw, k);
  return k;
}

export function isKiloRuleKey(key: string): boolean {
  return key.includes('--comment "Kilo:') || key.includes('--comment Kilo:');
}

/** One table of `iptables-save` output. */
export interface SavedTable {
  /** chain name → rule keys in order. Every chain the table has is present. */
  chains: Map<string, string[]>;
}

/** Parse `iptables-save` output (any number of tables). */
export function parseSave(text: string): Map<string, SavedTable> {
  const tables = new Map<string, SavedTable>();
  let cur: SavedTable | null = null;
  for (const raw of text.split('\n')) {
    const line = raw.trimEnd();
    if (line.length === 0 || line[0] === '#') continue;
    if (line[0] === '*') {
      cur = { chains: new Map() };
      tables.set(line.slice(1).trim(), cur);
    } else if (cur === null) {
      continue;
    } else if (line[0] === ':') {
      const name = line.slice(1).split(' ')[0];
      if (!cur.chains.has(name)) cur.chains.set(name, []);
    } else if (line.startsWith('-A ')) {
      const sp = line.indexOf(' ', 3);
      const chain = sp < 0 ? line.slice(3) : line.slice(3, sp);
      const args = sp < 0 ? [] : tokenize(line.slice(sp + 1));
      let list = cur.chains.get(chain);
      if (!list) cur.chains.set(chain, (list = []));
      list.push(ruleKey(args));
    } else if (line === 'COMMIT') {
      cur = null;
    }
  }
  return tables;
}

/** iptables chain names: at most 28 characters (XT_EXTENSION_MAXNAMELEN - 1), no white space, not an option. */
export function chainProblem(chain: unknown): string | null {
  const t = textProblem('chain', chain, 64);
  if (t !== null) return t;
  const c = chain as string;
  if (c.length === 0 || c.length > 28 || /\s/.test(c) || c[0] === '-' || c[0] === '!') return `chain ${show(c)} is not a valid chain name`;
  return null;
}

const ADDRESS_OPTS = new Set(['-s', '-d', '--source', '--destination', '--src', '--dst']);

/**
 * Why a desired rule cannot be written to iptables-restore (null = it can): a family or table
 * iptables does not have, a bad chain name, an argument with a control character (a newline
 * would start a rule of its own in restore input: `-I INPUT 1 -j ACCEPT`) or longer than the
 * kernel keeps (a comment holds 255 bytes), or an address match that is not a CIDR of the rule's
 * family (iptables would look a name up in DNS).
 */
export function ruleProblem(r: IptablesRule): string | null {
  if (r?.family !== 'ipv4' && r?.family !== 'ipv6') return `family ${show(r?.family)} is not ipv4 or ipv6`;
  if (typeof r.table !== 'string' || !(r.table in BUILTIN)) return `table ${show(r.table)} is not an iptables table`;
  const c = chainProblem(r.chain);
  if (c !== null) return c;
  if (!Array.isArray(r.rule) || r.rule.length === 0 || r.rule.length > 64) return 'the rule is not a list of 1-64 arguments';
  for (let i = 0; i < r.rule.length; i++) {
    const a = r.rule[i];
    const t = textProblem('argument', a, r.rule[i - 1] === '--comment' ? 255 : 256);
    if (t !== null) return t;
    if (ADDRESS_OPTS.has(r.rule[i - 1])) {
      const cidr = checkCIDR('address', a);
      if (!cidr.ok) return cidr.problem;
      if (isIPv6(cidr.value) !== (r.family === 'ipv6')) return `address ${show(a)} is not ${r.family}`;
    }
  }
  return null;
}

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
 * top of their chain (spec plan-format: "prepend rules must stand, in order, at the top"); append
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

/** One iptables operation, named as Kilo's kilo_iptables_operations_total names them. */
export type IptOperation = 'AppendUnique' | 'InsertUnique' | 'Delete' | 'ClearChain' | 'DeleteChain' | 'NewChain' | 'ListChains';

export interface IptOp {
  operation: IptOperation;
  table: string;
  chain: string;
}

export interface TablePatch {
  table: string;
  /** Lines between `*table` and `COMMIT`, in order. */
  lines: string[];
  ops: IptOp[];
  /** Chains this patch concerns (for isolating a failing chain). */
  chainLines: Map<string, string[]>;
}

/** What we applied last time, per family/table: owned chains and our rules per shared chain. */
export interface AppliedTable {
  chains: Set<string>;
  rules: Map<string, Set<string>>;
}
export type AppliedIptables = Map<Family, Map<string, AppliedTable>>;

/** Rewrite an owned chain whole when the edit script is at least this share of its length. */
const REWRITE_RATIO = 0.5;

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

  // chains to visit: desired chains, chains with desired rules, existing owned chains, existing
  // chains holding rules of ours.
  const visit = new Set<string>(only ?? [...desiredChains, ...desiredRules.keys()]);
  for (const [c, rules] of only ? [] : actualChains) {
    if (owned(c)) visit.add(c);
    else {
      const mine = applied?.rules.get(c);
      if (rules.some((k) => isKiloRuleKey(k) || (mine?.has(k) ?? false))) visit.add(c);
    }
  }

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
      if (have === undefined) {
        push(chain, `:${chain} - [0:0]`, 'NewChain');
        for (const k of want) push(chain, `-A ${chain} ${k}`, 'AppendUnique');
        continue;
      }
      const edits = chainEdits(chain, have, want, () => true, 0, true);
      if (edits.length === 0) continue;
      if (edits.length >= Math.max(1, want.length * REWRITE_RATIO)) {
        push(chain, `:${chain} - [0:0]`, 'ClearChain');
        for (const k of want) push(chain, `-A ${chain} ${k}`, 'AppendUnique');
      } else {
        for (const e of edits) push(chain, e.line, e.op);
      }
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

interface Edit {
  line: string;
  op: IptOperation;
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

/** The lines of a restore input for several table patches (one family). */
export function renderRestore(patches: readonly TablePatch[]): string[] {
  const out: string[] = [];
  for (const p of patches) out.push(`*${p.table}`, ...p.lines, 'COMMIT');
  return out;
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

/** Apply a patch to a parsed table in memory (keeps a cached view in step with the kernel). */
export function applyPatchToSaved(saved: SavedTable, patch: TablePatch): void {
  for (const line of patch.lines) {
    if (line[0] === ':') {
      const name = line.slice(1).split(' ')[0];
      saved.chains.set(name, []);
      continue;
    }
    const sp1 = line.indexOf(' ');
    const cmd = line.slice(0, sp1);
    const rest = line.slice(sp1 + 1);
    const sp2 = rest.indexOf(' ');
    const chain = sp2 < 0 ? rest : rest.slice(0, sp2);
    const arg = sp2 < 0 ? '' : rest.slice(sp2 + 1);
    let list = saved.chains.get(chain);
    if (!list && cmd !== '-X') saved.chains.set(chain, (list = []));
    switch (cmd) {
      case '-A':
        list!.push(arg);
        break;
      case '-I': {
        const sp = arg.indexOf(' ');
        const n = Number(arg.slice(0, sp));
        list!.splice(n - 1, 0, arg.slice(sp + 1));
        break;
      }
      case '-D': {
        if (/^\d+$/.test(arg)) list!.splice(Number(arg) - 1, 1);
        else {
          const at = list!.indexOf(arg);
          if (at >= 0) list!.splice(at, 1);
        }
        break;
      }
      case '-F':
        saved.chains.set(chain, []);
        break;
      case '-X':
        saved.chains.delete(chain);
        break;
    }
  }
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
    list.splice(part === 'prepend' ? before : pc + before, removed, ...add);
    if (part === 'prepend') t.prependCount.set(chain, pc + add.length - removed);
  }
  return touched;
}
