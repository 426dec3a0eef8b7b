// Policy-rule reconciler: `ip -j rule show` for both families, one `ip -force -batch` per family
// for the difference. Only rules that look up a Kilo table (1107, or a desired rule's table that
// is not main/local/default) are Kilo's.

import type { Rule } from '../plan/types.js';
import type { ReconcilerReport } from '../ipc/dataplane.js';
import { diffRules, failedBatchLines, parseIpRules, type KRule } from '../diff/routes.js';
import type { Exec } from './exec.js';

export class RuleReconciler {
  private desired: Rule[] = [];
  private cache: KRule[] | null = null;

  constructor(
    private readonly exec: Exec,
    private readonly kiloTable: number,
  ) {}

  setDesired(rules: readonly Rule[]): void {
    this.desired = [...rules];
  }

  invalidate(): void {
    this.cache = null;
  }

  private tables(): Set<number> {
    const t = new Set<number>([this.kiloTable]);
    for (const r of this.desired) t.add(r.table);
    return t;
  }

  private async read(): Promise<KRule[]> {
    const [v4, v6] = await Promise.all([this.exec.run('ip', ['-4', '-j', 'rule', 'show']), this.exec.run('ip', ['-6', '-j', 'rule', 'show'])]);
    if (v4.code !== 0) throw new Error(`ip rule show: ${v4.stderr.trim()}`);
    // IPv6 may be disabled: then there simply are no IPv6 rules.
    return [...parseIpRules(v4.stdout), ...(v6.code === 0 ? parseIpRules(v6.stdout) : [])];
  }

  async reconcile(reread: boolean): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report: ReconcilerReport = { kind: 'rules', writes: 0, batches: 0, read: false, durationMs: 0, errors: [] };
    try {
      let actual = reread ? null : this.cache;
      if (actual === null) {
        actual = await this.read();
        report.read = true;
      }
      const ops = diffRules(this.desired, actual, this.tables());
      let ok = true;
      for (const family of ['ipv4', 'ipv6'] as const) {
        const fops = ops.filter((o) => o.family === family).sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'delete' ? -1 : 1));
        if (fops.length === 0) continue;
        const args = family === 'ipv6' ? ['-6', '-force', '-batch', '-'] : ['-force', '-batch', '-'];
        const r = await this.exec.run('ip', args, fops.map((o) => o.line).join('\n') + '\n');
        report.batches++;
        const failed = r.code === 0 ? new Map<number, string>() : failedBatchLines(r.stderr);
        if (r.code !== 0 && failed.size === 0) failed.set(0, r.stderr.trim() || `ip exited ${r.code}`);
        fops.forEach((op, i) => {
          const err = failed.get(i + 1) ?? failed.get(0);
          if (err !== undefined) {
            report.errors.push({ kind: 'rules', item: op.line, message: err });
            ok = false;
          } else report.writes++;
        });
      }
      if (ok) {
        // keep the cached view in step (priorities the kernel picked stay unknown: not compared)
        const deleted = new Set(ops.filter((o) => o.kind === 'delete').map((o) => o.rule));
        this.cache = [...actual.filter((r) => !deleted.has(r)), ...ops.filter((o) => o.kind === 'add').map((o) => o.rule)];
      } else this.cache = null;
    } catch (e) {
      report.errors.push({ kind: 'rules', item: 'read', message: (e as Error).message });
      this.cache = null;
    }
    report.durationMs = performance.now() - t0;
    return report;
  }

  async cleanUp(): Promise<ReconcilerReport> {
    this.desired = [];
    return this.reconcile(true);
  }
}
