// Policy-rule reconciler: `ip -N -d -j rule show` for both families, one `ip -force -batch` per
// family (from a file) for the difference. kg's rules carry its protocol (kernel/owner.ts); Go
// Kilo's (unspec, looking up Kilo's table or equal to a desired rule) are adopted. A rule the
// kernel refuses for good is not written again until it changes.

import type { Rule } from '../plan/types.js';
import type { ReconcilerReport } from '../ipc/dataplane.js';
import { checkRule, failedBatchLines, parseIpRules, ruleKey, type KRule } from '../kernel/ip-format.js';
import { diffRules } from '../diff/routes.js';
import { permanentIpError, show } from '../kernel/input-checks.js';
import type { Exec } from './exec.js';
import { newReport, Rejections } from './report.js';

const noop = (): void => {};

/** Every policy rule of both families, with protocols (-d) as numbers (-N). */
export async function readRules(exec: Exec): Promise<KRule[]> {
  const [v4, v6] = await Promise.all([exec.run('ip', ['-4', '-N', '-d', '-j', 'rule', 'show']), exec.run('ip', ['-6', '-N', '-d', '-j', 'rule', 'show'])]);
  if (v4.code !== 0) throw new Error(`ip rule show: ${v4.stderr.trim()}`);
  // IPv6 may be disabled: then there simply are no IPv6 rules.
  return [...parseIpRules(v4.stdout), ...(v6.code === 0 ? parseIpRules(v6.stdout) : [])];
}

export class RuleReconciler {
  private desired: KRule[] = [];
  private cache: KRule[] | null = null;
  /** Rules the kernel refused for good, by key → the refused line. */
  private refused = new Map<string, string>();
  private readonly pending = new Rejections('rules');
  /** The kernel's rules read ahead of the first desired state (prime), used once by the next non-rereading pass. */
  private primed: KRule[] | null = null;

  constructor(
    private readonly exec: Exec,
    private readonly kiloTable: number,
  ) {}

  /** Read the kernel's rules now, for the first pass to diff against (see RouteReconciler.prime). */
  async prime(): Promise<void> {
    if (this.cache !== null) return;
    this.primed = await readRules(this.exec).catch(() => null);
  }

  setDesired(rules: readonly Rule[]): void {
    this.desired = [];
    for (const r of rules) {
      const c = checkRule(r);
      if (!c.ok) {
        this.pending.add(`rule ${show(`${r?.src ?? '-'} ${r?.dst ?? '-'} ${r?.iif ?? '-'} ${r?.table}`)}`, c.problem, 'invalid');
        continue;
      }
      if (c.note !== null) this.pending.add(`rule ${ruleKey(c.rule)}`, c.note, 'clamped');
      this.desired.push(c.rule);
    }
    const keys = new Set(this.desired.map(ruleKey));
    for (const k of this.refused.keys()) if (!keys.has(k)) this.refused.delete(k);
  }

  invalidate(): void {
    this.cache = null;
    this.primed = null;
  }

  /** One pass; `ready`: what must be there before anything is written (the devices rules name). */
  async reconcile(reread: boolean, ready?: Promise<unknown>): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report = newReport('rules');
    this.pending.drain(report);
    try {
      let actual = reread ? null : this.cache;
      const primed = reread ? null : this.primed;
      this.primed = null;
      if (actual === null) {
        actual = primed ?? (await readRules(this.exec));
        report.read = true;
      }
      const ops = diffRules(this.desired, actual, this.kiloTable).filter((o) => o.kind === 'delete' || this.refused.get(o.key) !== o.line);
      let ok = true;
      const done = new Set<(typeof ops)[number]>();
      if (ops.length > 0) await ready?.then(noop, noop);
      for (const family of ['ipv4', 'ipv6'] as const) {
        const fops = ops.filter((o) => o.family === family).sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'delete' ? -1 : 1));
        if (fops.length === 0) continue;
        const args = family === 'ipv6' ? ['-6', '-force', '-batch', '-'] : ['-force', '-batch', '-'];
        const r = await this.exec.batch('ip', args, fops.map((o) => o.line));
        report.batches++;
        const failed = r.code === 0 ? new Map<number, string>() : failedBatchLines(r.stderr);
        if (r.code !== 0 && failed.size === 0) failed.set(0, r.stderr.trim() || `ip exited ${r.code}`);
        fops.forEach((op, i) => {
          const err = failed.get(i + 1) ?? failed.get(0);
          if (err === undefined) {
            report.writes++;
            done.add(op);
          } else if (op.kind === 'add' && !failed.has(0) && permanentIpError(err, op.line)) {
            this.refused.set(op.key, op.line);
            report.rejected.push({ kind: 'rules', item: op.line, message: `${err} (not retried until the rule changes)`, reason: 'refused' });
          } else {
            report.errors.push({ kind: 'rules', item: op.line, message: err });
            ok = false;
          }
        });
      }
      if (ok) {
        // keep the cached view in step (priorities the kernel picked stay unknown: not compared)
        const deleted = new Set(ops.filter((o) => o.kind === 'delete' && done.has(o)).map((o) => o.rule));
        this.cache = [...actual.filter((r) => !deleted.has(r)), ...ops.filter((o) => o.kind === 'add' && done.has(o)).map((o) => o.rule)];
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
    this.refused.clear();
    this.pending.clear();
    return this.reconcile(true);
  }
}
