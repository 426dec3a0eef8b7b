// ipset reconciler (the set layout, design §8.10): one `ipset save` to read, one `ipset restore
// -exist` (input written to a file first, dataplane/exec.ts) to write. Elements are filled before
// the iptables rules are written, so every set a rule names exists; sets no longer desired are
// destroyed after the rules, once nothing refers to them.

import type { Family } from '../plan/types.js';
import type { IptablesLayout, LayoutStatus, ReconcilerReport } from '../ipc/dataplane.js';
import { ipsetProblem, parseIpsetSave, probeLines, probeSetName, type SavedSet } from '../kernel/ipset.js';
import { applyIpsetLines, destroyLines, fillLines, type DesiredSets } from '../diff/ipsets.js';
import type { Exec } from './exec.js';

/**
 * Can the set layout run here? One `ipset restore` that creates and destroys a small hash:net set
 * per family (design §8.11). Asked once per I/O worker start; any failure means `kilo` for this
 * run, with what is missing and what to do in `problem`.
 */
export async function resolveLayout(exec: Exec, requested: IptablesLayout, families: readonly Family[], pid = process.pid): Promise<LayoutStatus> {
  if (requested === 'kilo') return { requested, effective: 'kilo', problem: null };
  const r = await exec.run('ipset', ['restore'], probeLines(probeSetName(pid), families).join('\n') + '\n');
  if (r.code === 0) return { requested, effective: 'sets', problem: null };
  return { requested, effective: 'kilo', problem: ipsetProblem(r.code, r.stderr).message };
}

/** The warning logged when the set layout falls back: what happened, what it costs, what to do. */
export function fallbackWarning(s: LayoutStatus): string {
  return (
    `--iptables-layout=${s.requested} cannot run: ${s.problem}. ` +
    'kg uses the kilo layout (one iptables rule per address, as the Go agent) for this run: the mesh works, ' +
    'but a node change rewrites per-address rules and packets walk chains as long as the cluster. ' +
    'Fix ipset and restart kg, or set --iptables-layout=kilo to choose this layout; ' +
    'kg_iptables_layout_fallback is 1 until then. Sets of an earlier run stay in the kernel until ipset works again.'
  );
}

/** The operation and set of one `ipset restore` line (a swap's `-new` twin counts as its set). */
function opOf(line: string): string {
  const w = line.split(' ', 2);
  return `${w[0]}|${(w[1] ?? '*').replace(/-new$/, '')}`;
}

export class IpsetReconciler {
  /** Our sets as the kernel holds them (kept in step with every successful write); null = re-read. */
  private cache: Map<string, SavedSet> | null = null;
  /** kg_ipset_operations_total: `operation|set` → lines the kernel took (`save|*` = reads). */
  readonly operations: Record<string, number> = {};

  private count(key: string): void {
    this.operations[key] = (this.operations[key] ?? 0) + 1;
  }

  constructor(
    private readonly exec: Exec,
    /** In the Kilo layout sets are only cleaned up: a host without the ipset tool has none of ours. */
    private readonly required: boolean,
    readonly maxelem: number,
  ) {}

  invalidate(): void {
    this.cache = null;
  }

  private async read(): Promise<Map<string, SavedSet>> {
    const r = await this.exec.run('ipset', ['save']);
    this.count('save|*');
    if (r.code !== 0) {
      if (!this.required) return new Map();
      // ipset became unusable after the start-up probe (design §8.11): say what is missing
      const p = ipsetProblem(r.code, r.stderr);
      throw new Error(`ipset save: ${p.message}${p.cause === 'other' ? '' : '; or run with --iptables-layout=kilo'}`);
    }
    return parseIpsetSave(r.stdout);
  }

  /** Create the desired sets and bring their elements in (only the changed ones when the cache is trusted). */
  async fill(d: DesiredSets, reread: boolean, report: ReconcilerReport): Promise<void> {
    let saved = reread && this.required ? null : this.cache;
    let only = d.dirty;
    if (saved === null) {
      saved = await this.read();
      this.cache = saved;
      only = null;
    }
    const lines = fillLines(d, saved, this.maxelem, only);
    d.dirty = null;
    try {
      await this.write(saved, lines, report);
    } catch (e) {
      // ipset stops at the first failing line: write set by set, so that one set (a full one)
      // does not keep the others from their elements
      await this.fillEach(d, (e as Error).message, report);
    }
    d.dirty = new Map();
  }

  private async fillEach(d: DesiredSets, first: string, report: ReconcilerReport): Promise<void> {
    const saved = await this.read();
    this.cache = saved;
    const bySet = new Map<string, string[]>();
    for (const line of fillLines(d, saved, this.maxelem, null)) {
      const set = line.split(' ')[1].replace(/-new$/, '');
      bySet.get(set)?.push(line) ?? bySet.set(set, [line]);
    }
    const failed: string[] = [];
    for (const lines of bySet.values()) {
      try {
        await this.write(this.cache ?? saved, lines, report);
      } catch (e) {
        failed.push((e as Error).message);
      }
    }
    this.cache = null;
    throw new Error(failed.length > 0 ? failed.join('; ') : first);
  }

  /** Destroy our sets that are no longer desired (their rules are gone by now). */
  async prune(d: DesiredSets, report: ReconcilerReport): Promise<void> {
    if (this.cache === null) return;
    await this.write(this.cache, destroyLines(d, this.cache), report);
  }

  private async write(saved: Map<string, SavedSet>, lines: string[], report: ReconcilerReport): Promise<void> {
    if (lines.length === 0) return;
    const r = await this.exec.batch('ipset', ['restore', '-exist'], lines);
    report.batches++;
    if (r.code !== 0) {
      // ipset applies line by line: what came before the failing line is in; re-read next time
      const at = /Error in line (\d+)/.exec(r.stderr);
      for (const line of lines.slice(0, at === null ? 0 : Number(at[1]) - 1)) this.count(opOf(line));
      this.cache = null;
      throw new Error(`ipset restore: ${r.stderr.trim().split('\n').slice(0, 2).join('; ')}`);
    }
    applyIpsetLines(saved, lines);
    for (const line of lines) this.count(opOf(line));
    report.writes += lines.length;
  }
}
