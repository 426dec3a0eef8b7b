// iptables reconciler: one `iptables-save` per family to read, one `iptables-restore --noflush`
// per family (all changed tables, each committed atomically; its input written to a file first,
// dataplane/exec.ts) to write, with only the changed lines. Desired rules that cannot be written
// (kernel/iptables-save.ts ruleProblem) are dropped with a warning. A failing batch is retried chain by
// chain; a chain that still fails is searched for the rules iptables refuses on their own
// (`iptables-restore --test`, in halves): those are left out until they change, the rest is written.

import type { Family, IptablesJSON, IptablesRule } from '../plan/types.js';
import type { IptablesBackend, ReconcilerError, ReconcilerReport } from '../ipc/dataplane.js';
import { applyPatchToSaved, parseSave, renderRestore, type IptOp, type SavedTable, type TablePatch, ruleProblem, isBuiltinChain } from '../kernel/iptables-save.js';
import { appliedFrom, buildDesired, diffTable, patchDesired, type AppliedIptables, type DesiredIptables } from '../diff/iptables.js';
import { DesiredSets, placeSetRules, setLayoutOf, setMemberOf, type IptablesLayout } from '../diff/ipsets.js';
import { DEFAULT_MAXELEM } from '../kernel/ipset.js';
import { IpsetReconciler } from './ipsets.js';
import { show } from '../kernel/input-checks.js';
import type { Exec } from './exec.js';
import { newReport, Rejections } from './report.js';

/** At most this many `--test` runs to find the refused rules of one chain (each bad rule costs ~log2 n). */
const MAX_TESTS = 64;

/**
 * The keys of `keys` that fail on their own: `test(subset)` says whether a subset passes. Halves
 * are tried in turn, so b bad rules among n cost about b·log2(n) tests; at most `budget` tests.
 */
export async function findRefused(keys: readonly string[], test: (subset: readonly string[]) => Promise<boolean>, budget = MAX_TESTS): Promise<string[]> {
  let left = budget;
  const bad: string[] = [];
  const walk = async (xs: readonly string[]): Promise<void> => {
    if (xs.length === 0 || left <= 0) return;
    left--;
    if (await test(xs)) return;
    if (xs.length === 1) {
      bad.push(xs[0]);
      return;
    }
    const mid = xs.length >> 1;
    await walk(xs.slice(0, mid));
    await walk(xs.slice(mid));
  };
  await walk(keys);
  return bad;
}

export interface IptablesTools {
  save: string;
  restore: string;
}

export function toolsFor(backend: IptablesBackend, family: Family): IptablesTools {
  const base = family === 'ipv4' ? 'iptables' : 'ip6tables';
  return { save: `${base}-${backend}-save`, restore: `${base}-${backend}-restore` };
}

/**
 * Pick the backend the host uses, the way Kubernetes' iptables-wrapper does: the one that holds
 * more rules wins; on a tie, the one `iptables` (the distribution's alternative) points to.
 */
export async function detectBackend(exec: Exec): Promise<IptablesBackend> {
  const count = async (b: IptablesBackend): Promise<number> => {
    let n = 0;
    for (const f of ['ipv4', 'ipv6'] as const) {
      const r = await exec.run(toolsFor(b, f).save, []);
      if (r.code !== 0) return -1;
      for (const l of r.stdout.split('\n')) if (l.startsWith('-A ')) n++;
    }
    return n;
  };
  const [legacy, nft] = await Promise.all([count('legacy'), count('nft')]);
  if (legacy < 0 && nft < 0) throw new Error('neither iptables-legacy-save nor iptables-nft-save works (install the iptables package)');
  if (legacy > nft) return 'legacy';
  if (nft > legacy) return 'nft';
  const v = await exec.run('iptables', ['-V']);
  return v.stdout.includes('nf_tables') || v.code !== 0 ? 'nft' : 'legacy';
}

export type OpCounter = (family: Family, op: IptOp) => void;

const PROTO: Record<Family, string> = { ipv4: 'IPv4', ipv6: 'IPv6' };
export function protocolLabel(f: Family): string {
  return PROTO[f];
}

export class IptablesReconciler {
  private backend: IptablesBackend | null;
  private readonly families: Family[];
  /** Cached kernel view per family (null = must re-read). */
  private cache = new Map<Family, Map<string, SavedTable> | null>();
  private applied: AppliedIptables = new Map();
  private desired: DesiredIptables | null = null;
  /** Rules iptables refused on their own, as `family|table|chain|key`: left out while desired. */
  private refused = new Set<string>();
  private readonly pending = new Rejections('iptables');
  /** Each desired rule object is checked once (deltas bring the same objects back as `old`). */
  private checked = new WeakMap<IptablesRule, boolean>();
  private readonly accept = (r: IptablesRule): boolean => {
    let ok = this.checked.get(r);
    if (ok === undefined) {
      const problem = ruleProblem(r);
      ok = problem === null;
      if (!ok) this.pending.add(`${show(r?.family)} ${show(r?.table)} ${show(r?.chain)} ${show(Array.isArray(r?.rule) ? r.rule.join(' ') : r?.rule)}`, problem!, 'invalid');
      if (r !== null && typeof r === 'object') this.checked.set(r, ok);
    }
    return ok;
  };
  /** The set layout's desired sets (in the Kilo layout always empty: ours are only cleaned up). */
  private sets: DesiredSets;
  private readonly ipsets: IpsetReconciler;
  /** How many set rules head each chain's desired list (`family|table|chain`). */
  private lead = new Map<string, number>();
  /** The rules the chain diff takes: in the set layout, set members are not rules. */
  private readonly ruleAccept = (r: IptablesRule): boolean => this.accept(r) && (this.layout === 'kilo' || setMemberOf(r) === null);
  private readonly skip = (family: Family, table: string) => (chain: string, key: string): boolean => this.refused.has(`${family}|${table}|${chain}|${key}`);

  constructor(
    private readonly exec: Exec,
    // No default layout: the agent's is `sets` (--iptables-layout), and a default here that
    // differed from it let tests and benchmarks measure the other layout without saying so.
    opts: { backend: IptablesBackend | null; ipv6: boolean; layout: IptablesLayout; maxelem?: number },
    private readonly count: OpCounter = () => {},
  ) {
    this.backend = opts.backend;
    this.families = opts.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
    this.layout = opts.layout;
    this.sets = new DesiredSets(this.families);
    this.ipsets = new IpsetReconciler(exec, this.layout === 'sets', opts.maxelem ?? DEFAULT_MAXELEM);
  }

  readonly layout: IptablesLayout;

  /** kg_ipset_operations_total's counts (`operation|set`): the set writes inside this reconciler's writes. */
  ipsetOperations(): Record<string, number> {
    return { ...this.ipsets.operations };
  }

  async getBackend(): Promise<IptablesBackend> {
    if (this.backend === null) this.backend = await detectBackend(this.exec);
    return this.backend;
  }

  /** Forget the cached kernel view: the next pass re-reads. */
  invalidate(): void {
    this.cache.clear();
    this.ipsets.invalidate();
  }

  private async read(family: Family): Promise<Map<string, SavedTable>> {
    const tools = toolsFor(await this.getBackend(), family);
    const r = await this.exec.run(tools.save, []);
    if (r.code !== 0) throw new Error(`${tools.save}: ${r.stderr.trim()}`);
    const parsed = parseSave(r.stdout);
    for (const t of parsed.keys()) this.count(family, { operation: 'ListChains', table: t, chain: '*' });
    this.cache.set(family, parsed);
    return parsed;
  }

  /** Chains (`family|table|chain`) to look at in the next pass; null = all. */
  private dirty: Set<string> | null = null;

  setDesired(ipt: IptablesJSON): void {
    if (this.layout === 'sets') ({ desired: this.desired, sets: this.sets, lead: this.lead } = setLayoutOf(ipt, this.families, this.accept));
    else {
      this.desired = buildDesired(ipt, this.families, this.accept);
      this.sets = new DesiredSets(this.families);
      this.lead = new Map();
    }
    this.dirty = null;
    // a refused rule that is no longer desired is forgotten: if it comes back, it is tried again
    for (const id of this.refused) {
      const [f, t, c, ...k] = id.split('|');
      if (!(this.desired.get(f as Family)?.get(t)?.rules.get(c)?.includes(k.join('|')) ?? false)) this.refused.delete(id);
    }
  }

  /** Incremental update for one splice of the planner's prepend/append list (`old` = before it). */
  patch(part: 'prepend' | 'append', old: readonly IptablesRule[], splice: { start: number; deleteCount: number; items: readonly IptablesRule[] }): void {
    if (this.desired === null) this.desired = buildDesired({ chains: [], prepend: [], append: [] }, this.families);
    if (this.layout === 'sets') {
      for (let i = splice.start; i < splice.start + splice.deleteCount; i++) this.countMember(old[i], -1);
      for (const r of splice.items) this.countMember(r, 1);
    }
    const touched = patchDesired(this.desired, part, old, splice.start, splice.deleteCount, splice.items, this.ruleAccept, (c) => this.lead.get(c) ?? 0);
    const toggled = this.sets.takeToggled();
    this.placeSetRules(toggled);
    if (this.dirty !== null) for (const c of [...touched, ...toggled]) this.dirty.add(c);
  }

  private countMember(r: IptablesRule, by: 1 | -1): void {
    const m = setMemberOf(r);
    if (m !== null && this.families.includes(r.family) && this.accept(r)) this.sets.change(m, by);
  }

  /** Put each chain's set rules (one per non-empty set) at its head. Chains as `family|table|chain`. */
  private placeSetRules(chains: Iterable<string>): void {
    if (this.desired === null) return;
    for (const c of chains) {
      const [f, t, chain] = c.split('|') as [Family, string, string];
      placeSetRules(this.desired, this.sets, this.lead, f, t, chain);
    }
  }

  /**
   * Bring the kernel to the desired state. `reread` forces a fresh read (resync); otherwise the
   * cached view (kept in step with every successful write) is trusted.
   */
  async reconcile(reread: boolean): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report = newReport('iptables');
    this.pending.drain(report);
    const desired = this.desired ?? buildDesired({ chains: [], prepend: [], append: [] }, this.families);
    // A set rule refused while its set was missing is tried again at each full pass.
    if (reread) for (const id of this.refused) if (id.includes('--match-set kilo')) this.refused.delete(id);
    // Sets first: every set a rule names exists before the rule is written.
    await this.setStep(report, () => this.ipsets.fill(this.sets, reread, report));
    // IPv4 and IPv6 are separate kernel tables and tools: side by side.
    await Promise.all(
      this.families.map(async (family) => {
        try {
          await this.reconcileFamily(family, desired, reread, report);
        } catch (e) {
          report.errors.push({ kind: 'iptables', item: family, message: (e as Error).message });
          this.cache.set(family, null);
        }
      }),
    );
    // Sets no longer desired go once their rules are gone (not after a failed rule write).
    if (report.errors.length === 0) await this.setStep(report, () => this.ipsets.prune(this.sets, report));
    if (report.errors.length === 0 && (this.dirty === null || report.read)) this.applied = appliedFrom(desired);
    this.dirty = report.errors.length === 0 ? new Set() : null;
    report.durationMs = performance.now() - t0;
    return report;
  }

  private async setStep(report: ReconcilerReport, step: () => Promise<void>): Promise<void> {
    try {
      await step();
    } catch (e) {
      report.errors.push({ kind: 'iptables', item: 'ipset', message: (e as Error).message });
    }
  }

  private patches(family: Family, desired: DesiredIptables, saved: Map<string, SavedTable>, dirty: Set<string> | null): TablePatch[] {
    const dfam = desired.get(family) ?? new Map();
    const afam = this.applied.get(family) ?? new Map();
    let only: Map<string, Set<string>> | null = null;
    if (dirty !== null) {
      only = new Map();
      for (const c of dirty) {
        const [f, t, chain] = c.split('|');
        if (f !== family) continue;
        if (!only.has(t)) only.set(t, new Set());
        only.get(t)!.add(chain);
      }
    }
    const tables = only ? new Set(only.keys()) : new Set<string>([...dfam.keys(), ...saved.keys()]);
    const out: TablePatch[] = [];
    for (const t of [...tables].sort()) {
      const p = diffTable(t, dfam.get(t), saved.get(t), afam.get(t), only?.get(t), this.refused.size > 0 ? this.skip(family, t) : undefined);
      if (p) out.push(p);
    }
    return out;
  }

  private async reconcileFamily(family: Family, desired: DesiredIptables, reread: boolean, report: ReconcilerReport): Promise<void> {
    let saved = reread ? null : this.cache.get(family) ?? null;
    let dirty = this.dirty;
    if (saved === null) {
      saved = await this.read(family);
      report.read = true;
      dirty = null;
    }
    const patches = this.patches(family, desired, saved, dirty);
    if (patches.length === 0) return;
    const tools = toolsFor(await this.getBackend(), family);
    const r = await this.exec.batch(tools.restore, ['--noflush', '--wait'], renderRestore(patches));
    report.batches++;
    if (r.code === 0) {
      for (const p of patches) {
        applyPatchToSaved(saved.get(p.table) ?? (saved.set(p.table, { chains: new Map() }), saved.get(p.table)!), p);
        for (const op of p.ops) this.count(family, op);
        report.writes += p.lines.length;
      }
      return;
    }
    // Isolate: re-read (part may have been committed), then one restore per chain.
    saved = await this.read(family);
    report.read = true;
    for (const p of this.patches(family, desired, saved, null)) {
      for (const [chain, lines] of p.chainLines) {
        const one: TablePatch = { table: p.table, lines, ops: p.ops.filter((o) => o.chain === chain), chainLines: new Map() };
        const message = await this.restoreChain(family, one, report);
        if (message === null) continue;
        // Which of the chain's rules does iptables refuse on their own? Those are left out (until
        // they change) and the chain is written without them. A chain whose rules all pass the
        // test failed for another reason: an error, retried.
        const refused = await this.findRefusedRules(family, p.table, chain, desired, report);
        if (refused.length === 0) {
          report.errors.push({ kind: 'iptables', item: `${family} ${p.table} ${chain}`, message } satisfies ReconcilerError);
          continue;
        }
        for (const k of refused) {
          this.refused.add(`${family}|${p.table}|${chain}|${k}`);
          report.rejected.push({ kind: 'iptables', item: `${family} ${p.table} ${chain} ${k}`, message: 'iptables refuses this rule (not retried until it changes)', reason: 'refused' });
        }
        const without = diffTable(p.table, desired.get(family)?.get(p.table), saved.get(p.table), this.applied.get(family)?.get(p.table), new Set([chain]), this.skip(family, p.table));
        const again = without === null ? null : await this.restoreChain(family, without, report);
        if (again !== null) report.errors.push({ kind: 'iptables', item: `${family} ${p.table} ${chain}`, message: again });
      }
    }
    this.cache.set(family, null);
  }

  /** One restore of one table patch; its error message, or null when it was committed. */
  private async restoreChain(family: Family, one: TablePatch, report: ReconcilerReport): Promise<string | null> {
    const tools = toolsFor(await this.getBackend(), family);
    const rr = await this.exec.batch(tools.restore, ['--noflush', '--wait'], renderRestore([one]));
    report.batches++;
    if (rr.code !== 0) return rr.stderr.trim().split('\n').slice(0, 3).join('; ');
    for (const op of one.ops) this.count(family, op);
    report.writes += one.lines.length;
    return null;
  }

  /** The desired rules of one chain that `iptables-restore --test` refuses alone (nothing is committed). */
  private async findRefusedRules(family: Family, table: string, chain: string, desired: DesiredIptables, report: ReconcilerReport): Promise<string[]> {
    const dt = desired.get(family)?.get(table);
    const keys = (dt?.rules.get(chain) ?? []).filter((k) => !this.refused.has(`${family}|${table}|${chain}|${k}`));
    if (keys.length === 0) return [];
    const tools = toolsFor(await this.getBackend(), family);
    // declare the table's own chains so that jumps between them resolve in the test
    const decl = [...new Set([...(dt?.chains ?? []), ...(isBuiltinChain(table, chain) ? [] : [chain])])].map((c) => `:${c} - [0:0]`);
    return findRefused(keys, async (subset) => {
      const r = await this.exec.batch(tools.restore, ['--noflush', '--wait', '--test'], [`*${table}`, ...decl, ...subset.map((k) => `-A ${chain} ${k}`), 'COMMIT']);
      report.batches++;
      return r.code === 0;
    });
  }

  /** Remove every chain and rule of ours (design §8.9 / §11.7); others' rules stay. */
  async cleanUp(): Promise<ReconcilerReport> {
    this.refused.clear();
    this.pending.clear();
    this.desired = buildDesired({ chains: [], prepend: [], append: [] }, this.families);
    this.sets = new DesiredSets(this.families);
    this.lead.clear();
    this.ipsets.invalidate();
    this.dirty = null;
    const r = await this.reconcile(true);
    this.applied = new Map();
    return r;
  }
}
