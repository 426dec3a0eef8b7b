// The iptables text formats: `iptables-save` output parsed into chains of rule keys (canonical
// argument text, the rule's identity), the checks a desired rule passes before it can become a
// restore line, and `iptables-restore --noflush` input rendered from table patches (diff/iptables.ts).

import type { IptablesRule } from '../plan/types.js';
import { checkCIDR, isIPv6, show, textProblem } from './input-checks.js';

export const KILO_CHAINS: ReadonlySet<string> = new Set(['KILO-NAT', 'KILO-IPIP']);

export const BUILTIN: Record<string, ReadonlySet<string>> = {
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
      // iptables-save prints no address match for 0.0.0.0/0 or ::/0 (it matches everything)
      if (!neg && (opt === '-s' || opt === '-d') && (val === '0.0.0.0/0' || val === '::/0')) {
        i += 2;
        continue;
      }
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

/** The lines of a restore input for several table patches (one family). */
export function renderRestore(patches: readonly TablePatch[]): string[] {
  const out: string[] = [];
  for (const p of patches) out.push(`*${p.table}`, ...p.lines, 'COMMIT');
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

