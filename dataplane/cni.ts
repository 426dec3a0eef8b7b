// CNI conflist (design §10.2): rewritten only when the IPAM range differs from the pod CIDR, and
// then atomically (temporary file in the same directory + rename), mode 0644.

import { readFile, rename, writeFile, unlink } from 'node:fs/promises';
import { dirname, basename, join } from 'node:path';
import type { DesiredState, ReconcilerReport } from '../ipc/dataplane.js';
import { rewriteConflist } from '../plan/cni.js';
import { newReport } from './report.js';

export class CniReconciler {
  private desired: DesiredState['cni'] = null;
  /** The state last found or made right on disk; passes in between skip the file (a resync reads it). */
  private verified: DesiredState['cni'] = null;

  setDesired(d: DesiredState['cni']): void {
    this.desired = d;
  }

  async reconcile(reread = true): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const d = this.desired;
    const current = !reread && d !== null && this.verified?.path === d.path && this.verified.podCIDR === d.podCIDR && this.verified.podCIDR2 === d.podCIDR2;
    const report = newReport('cni');
    report.read = !current;
    if (d !== null && !current) {
      this.verified = null;
      try {
        const cur = await readFile(d.path, 'utf8');
        const r = rewriteConflist(cur, d.podCIDR, d.podCIDR2);
        if ('error' in r) report.errors.push({ kind: 'cni', item: d.path, message: r.error });
        else if (r.text !== null && r.text !== cur) {
          const tmp = join(dirname(d.path), `.${basename(d.path)}.kg-${process.pid}.tmp`);
          try {
            await writeFile(tmp, r.text, { mode: 0o644 });
            await rename(tmp, d.path);
          } catch (e) {
            await unlink(tmp).catch(() => {});
            throw e;
          }
          report.writes++;
          report.batches++;
        }
        if (report.errors.length === 0) this.verified = { ...d };
      } catch (e) {
        report.errors.push({ kind: 'cni', item: d.path, message: (e as Error).message });
      }
    }
    report.durationMs = performance.now() - t0;
    return report;
  }
}
