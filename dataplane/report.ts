// Reports of one reconciler pass, and the rejections a reconciler collects while it takes in a
// desired state (reported with its next pass, once each, bounded in number).

import type { ReconcilerKind, ReconcilerReport, RejectReason, Rejection } from '../ipc/dataplane.js';

export function newReport(kind: ReconcilerKind): ReconcilerReport {
  return { kind, writes: 0, batches: 0, read: false, durationMs: 0, errors: [], rejected: [] };
}

/** At most this many rejections are listed per pass; the rest become one summary entry with a count. */
export const MAX_LISTED = 50;

export class Rejections {
  private list: Rejection[] = [];
  private more = new Map<RejectReason, number>();

  constructor(private readonly kind: ReconcilerKind) {}

  add(item: string, message: string, reason: RejectReason): void {
    if (this.list.length < MAX_LISTED) this.list.push({ kind: this.kind, item, message, reason });
    else this.more.set(reason, (this.more.get(reason) ?? 0) + 1);
  }

  /** Move what was collected into `report`. */
  drain(report: ReconcilerReport): void {
    report.rejected.push(...this.list);
    for (const [reason, count] of this.more) report.rejected.push({ kind: this.kind, item: `${count} more`, message: `${count} more items ${reason} (not listed)`, reason, count });
    this.list = [];
    this.more.clear();
  }

  clear(): void {
    this.list = [];
    this.more.clear();
  }
}
