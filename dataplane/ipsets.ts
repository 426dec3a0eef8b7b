// ipset reconciler (the set layout, design §8.10): one `ipset save` to read, one `ipset restore
// -exist` (input written to a file first, dataplane/exec.ts) to write. Elements are filled before
// the iptables rules are written, so every set a rule names exists; sets no longer desired are
// destroyed after the rules, once nothing refers to them.

import type { ReconcilerReport } from '../ipc/dataplane.js';
import { parseIpsetSave, type SavedSet } from '../kernel/ipset.js';
import { applyIpsetLines, destroyLines, fillLines, type DesiredSets } from '../diff/ipsets.js';
import type { Exec } from './exec.js';

export class IpsetReconciler {
  /** Our sets as the kernel holds them (kept in step with every successful write); null = re-read. */
  private cache: Map<string, SavedSet> | null = null;

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
    if (r.code !== 0) {
      if (!this.required) return new Map();
      throw new Error(`ipset save: ${r.stderr.trim().split('\n')[0]}`);
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
      this.cache = null;
      throw new Error(`ipset restore: ${r.stderr.trim().split('\n').slice(0, 2).join('; ')}`);
    }
    applyIpsetLines(saved, lines);
    report.writes += lines.length;
  }
}
