// iptables reconciler: one `iptables-save` per family to read, one `iptables-restore --noflush`
// per family (all changed tables, each committed atomically) to write, with only the changed
// lines. A failing batch is retried chain by chain so that one bad rule never blocks the rest.

import type { Family, IptablesJSON, IptablesRule } from '../plan/types.js';
import type { IptablesBackend, ReconcilerError, ReconcilerReport } from '../ipc/dataplane.js';
import {
  appliedFrom,
  applyPatchToSaved,
  buildDesired,
  diffTable,
  patchDesired,
  parseSave,
  renderRestore,
  type AppliedIptables,
  type DesiredIptables,
  type IptOp,
  type SavedTable,
  type TablePatch,
} from '../diff/iptables.js';
import type { Exec } from './exec.js';

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

  constructor(
    private readonly exec: Exec,
    opts: { backend: IptablesBackend | null; ipv6: boolean },
    private readonly count: OpCounter = () => {},
  ) {
    this.backend = opts.backend;
    this.families = opts.ipv6 ? ['ipv4', 'ipv6'] : ['ipv4'];
  }

  async getBackend(): Promise<IptablesBackend> {
    if (this.backend === null) this.backend = await detectBackend(this.exec);
    return this.backend;
  }

  /** Forget the cached kernel view: the next pass re-reads. */
  invalidate(): void {
    this.cache.clear();
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
    this.desired = buildDesired(ipt, this.families);
    this.dirty = null;
  }

  /** Incremental update for one splice of the planner's prepend/append list (`old` = before it). */
  patch(part: 'prepend' | 'append', old: readonly IptablesRule[], splice: { start: number; deleteCount: number; items: readonly IptablesRule[] }): void {
    if (this.desired === null) this.desired = buildDesired({ chains: [], prepend: [], append: [] }, this.families);
    const touched = patchDesired(this.desired, part, old, splice.start, splice.deleteCount, splice.items);
    if (this.dirty !== null) for (const c of touched) this.dirty.add(c);
  }

  /**
   * Bring the kernel to the desired state. `reread` forces a fresh read (resync); otherwise the
   * cached view (kept in step with every successful write) is trusted.
   */
  async reconcile(reread: boolean): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report: ReconcilerReport = { kind: 'iptables', writes: 0, batches: 0, read: false, durationMs: 0, errors: [] };
    const desired = this.desired ?? buildDesired({ chains: [], prepend: [], append: [] }, this.families);
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
    if (report.errors.length === 0 && (this.dirty === null || report.read)) this.applied = appliedFrom(desired);
    this.dirty = report.errors.length === 0 ? new Set() : null;
    report.durationMs = performance.now() - t0;
    return report;
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
      const p = diffTable(t, dfam.get(t), saved.get(t), afam.get(t), only?.get(t));
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
    const r = await this.exec.run(tools.restore, ['--noflush', '--wait'], renderRestore(patches));
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
        const rr = await this.exec.run(tools.restore, ['--noflush', '--wait'], renderRestore([one]));
        report.batches++;
        if (rr.code === 0) {
          for (const op of one.ops) this.count(family, op);
          report.writes += lines.length;
        } else {
          const err: ReconcilerError = { kind: 'iptables', item: `${family} ${p.table} ${chain}`, message: rr.stderr.trim().split('\n').slice(0, 3).join('; ') };
          report.errors.push(err);
        }
      }
    }
    this.cache.set(family, null);
  }

  /** Remove every chain and rule of ours (spec §8.9 / §11.7); others' rules stay. */
  async cleanUp(): Promise<ReconcilerReport> {
    this.desired = buildDesired({ chains: [], prepend: [], append: [] }, this.families);
    this.dirty = null;
    const r = await this.reconcile(true);
    this.applied = new Map();
    return r;
  }
}
