// IPIP tunnel device (design §9.3, §9.7): create tunl0 if missing, MTU = private interface MTU − 20,
// up, and exactly one address (the first IP of the pod CIDR, /32). Hosts without the ipip
// module (like the development machine) report a clear, non-fatal error and nothing else stops.

import type { ReconcilerReport } from '../ipc/dataplane.js';
import type { Exec } from './exec.js';
import { checkWantedLink, planLink, readLink, type LinkInfo, type WantedLink } from './link.js';
import { newReport } from './report.js';

export interface DesiredTunnel {
  dev: string;
  address: string | null;
  privIface?: string | null;
}

/** What the tunnel link must look like (design §9.3): MTU = private interface MTU − 20, up, the address. */
export function wantedTunnel(desired: DesiredTunnel, privMtu: number | null): WantedLink {
  return { mtu: privMtu === null ? null : privMtu - 20, address: desired.address, up: true };
}

/** The `ip -batch` lines that bring an existing tunnel link to the desired state. */
export function planTunnel(link: LinkInfo, desired: DesiredTunnel, privMtu: number | null): string[] {
  return planLink(link, desired.dev, wantedTunnel(desired, privMtu));
}

/** Is this error text the kernel saying it has no IPIP support? */
export function ipipUnsupported(stderr: string): boolean {
  return /No such device|Unknown device type|not supported/i.test(stderr);
}

export class TunnelReconciler {
  private desired: DesiredTunnel | null = null;
  private created = false;

  constructor(private readonly exec: Exec) {}

  setDesired(d: DesiredTunnel | null): void {
    this.desired = d;
  }

  /** The desired tunnel last brought about without error (skip the link read when unchanged). */
  private done: string | null = null;
  /** The checked link last warned about: a warning is given once per desired change. */
  private warned: string | null = null;

  async reconcile(reread = true): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report = newReport('tunnel');
    const d = this.desired;
    const id = JSON.stringify(d);
    if (d !== null && (reread || this.done !== id)) {
      report.read = true;
      const named = checkWantedLink(d.dev, { mtu: null, address: null, up: true });
      if (named.want === null) {
        if (this.warned !== id) for (const p of named.problems) report.rejected.push({ kind: 'tunnel', item: d.dev, message: p.message, reason: p.reason });
        this.warned = id;
        report.durationMs = performance.now() - t0;
        return report;
      }
      let link = await readLink(this.exec, d.dev);
      if (!link.exists) {
        const r = await this.exec.run('ip', ['tunnel', 'add', d.dev, 'mode', 'ipip']);
        report.batches++;
        if (r.code !== 0 && !/File exists/.test(r.stderr)) {
          const why = ipipUnsupported(r.stderr) ? 'kernel has no IPIP support' : 'ip tunnel add failed';
          report.errors.push({ kind: 'tunnel', item: d.dev, message: `${why}: ${r.stderr.trim()}` });
        } else {
          this.created = true;
          report.writes++;
          link = await readLink(this.exec, d.dev);
        }
      }
      if (link.exists) {
        const priv = d.privIface ? (await readLink(this.exec, d.privIface)).mtu : null;
        const checked = checkWantedLink(d.dev, wantedTunnel(d, priv));
        const warnId = JSON.stringify([id, priv]);
        if (checked.problems.length > 0 && this.warned !== warnId) for (const p of checked.problems) report.rejected.push({ kind: 'tunnel', item: d.dev, message: p.message, reason: p.reason });
        this.warned = warnId;
        const lines = planLink(link, d.dev, checked.want!);
        if (lines.length > 0) {
          const r = await this.exec.batch('ip', ['-force', '-batch', '-'], lines);
          report.batches++;
          if (r.code !== 0) report.errors.push({ kind: 'tunnel', item: d.dev, message: r.stderr.trim() });
          else report.writes += lines.length;
        }
      }
    }
    this.done = report.errors.length === 0 ? id : null;
    report.durationMs = performance.now() - t0;
    return report;
  }

  /** Delete the tunnel's addresses, then try to delete the device (the kernel's fallback tunl0 cannot be). */
  async cleanUp(): Promise<ReconcilerReport> {
    const report = newReport('tunnel');
    report.read = true;
    const d = this.desired;
    if (d === null || checkWantedLink(d.dev, { mtu: null, address: null, up: false }).want === null) return report;
    const link = await readLink(this.exec, d.dev);
    if (link.exists) {
      for (const a of link.addrs) {
        const r = await this.exec.run('ip', ['addr', 'del', a, 'dev', d.dev]);
        if (r.code === 0) report.writes++;
      }
      const r = await this.exec.run('ip', ['link', 'del', d.dev]);
      if (r.code === 0) report.writes++;
      else if (this.created) report.errors.push({ kind: 'tunnel', item: d.dev, message: r.stderr.trim() });
    }
    return report;
  }
}
