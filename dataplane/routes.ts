// Route reconciler: reads `ip -j route show table all proto static` (both families), writes the
// difference with one `ip -force -batch -`. Failed lines are reported one by one (the rest of the
// batch still runs) and retried by the worker with backoff.

import type { Route } from '../plan/types.js';
import type { ReconcilerReport } from '../ipc/dataplane.js';
import {
  desiredRouteMap,
  diffRoutes,
  failedBatchLines,
  MAIN_TABLE,
  canonicalCIDR,
  normalizeRoute,
  ownedRoutes,
  parseIpRoutes,
  routeKey,
  type KRoute,
  type RouteOp,
} from '../diff/routes.js';
import type { Exec } from './exec.js';

export async function readStaticRoutes(exec: Exec): Promise<KRoute[]> {
  const [v4, v6] = await Promise.all([
    exec.run('ip', ['-4', '-j', 'route', 'show', 'table', 'all', 'proto', 'static']),
    exec.run('ip', ['-6', '-j', 'route', 'show', 'table', 'all', 'proto', 'static']),
  ]);
  if (v4.code !== 0) throw new Error(`ip route show: ${v4.stderr.trim()}`);
  if (v6.code !== 0) throw new Error(`ip -6 route show: ${v6.stderr.trim()}`);
  return [...parseIpRoutes(v4.stdout, true), ...parseIpRoutes(v6.stdout, true)];
}

export class RouteReconciler {
  private desired = new Map<string, KRoute>();
  /** Owned kernel routes as last read/written (null = re-read). */
  private cache: Map<string, KRoute> | null = null;
  /** Keys we wrote (so that leftovers through non-Kilo devices, e.g. eth0, are removed later). */
  private applied = new Set<string>();
  private devices = new Set<string>();

  constructor(
    private readonly exec: Exec,
    private readonly kiloTable: number,
  ) {}

  setDevices(devs: Iterable<string>): void {
    this.devices = new Set(devs);
  }

  /** Keys to look at in the next pass; null = all (a full diff). */
  private dirty: Set<string> | null = null;

  setDesired(routes: readonly Route[]): void {
    this.desired = desiredRouteMap(routes);
    this.dirty = null;
  }

  /** Incremental update: these desired routes went away, these came. O(changed). */
  patch(removed: readonly Route[], added: readonly Route[]): void {
    const dirty = this.dirty;
    for (const r of removed) {
      const n = normalizeRoute(r);
      const k = routeKey(n);
      this.desired.delete(k);
      dirty?.add(k);
    }
    for (const r of added) {
      const n = normalizeRoute(r);
      const k = routeKey(n);
      this.desired.set(k, n);
      dirty?.add(k);
    }
  }

  invalidate(): void {
    this.cache = null;
  }

  /**
   * A route monitor saw the kernel delete (table, dst). When it is one of our desired routes,
   * forget it in the cached view and mark it dirty: the next pass re-adds just that route.
   */
  noteDeleted(key: string): boolean {
    if (!this.desired.has(key)) return false;
    this.cache?.delete(key);
    this.dirty?.add(key);
    return true;
  }

  private tables(): Set<number> {
    const t = new Set<number>([this.kiloTable]);
    for (const r of this.desired.values()) if (r.table !== MAIN_TABLE) t.add(r.table);
    return t;
  }

  async reconcile(reread: boolean): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report: ReconcilerReport = { kind: 'routes', writes: 0, batches: 0, read: false, durationMs: 0, errors: [] };
    try {
      let owned = reread ? null : this.cache;
      const full = owned === null || this.dirty === null;
      let ops: RouteOp[];
      if (owned === null) {
        const actual = await readStaticRoutes(this.exec);
        owned = ownedRoutes(actual, this.desired, { devices: this.devices, tables: this.tables(), applied: this.applied });
        report.read = true;
        ops = diffRoutes(this.desired, owned);
      } else if (this.dirty !== null) {
        // only the keys that changed since the last pass
        const want = new Map<string, KRoute>();
        const have = new Map<string, KRoute>();
        for (const k of this.dirty) {
          const d = this.desired.get(k);
          const a = owned.get(k);
          if (d) want.set(k, d);
          if (a) have.set(k, a);
        }
        ops = diffRoutes(want, have);
      } else {
        ops = diffRoutes(this.desired, owned);
      }
      this.dirty = new Set();
      if (ops.length > 0) {
        // deletes first: a route that moved table/attributes never collides with its old self
        ops.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'delete' ? -1 : 1));
        const r = await this.exec.run('ip', ['-force', '-batch', '-'], ops.map((o) => o.line).join('\n') + '\n');
        report.batches++;
        const failed = r.code === 0 ? new Map<number, string>() : failedBatchLines(r.stderr);
        // Routes the kernel refused (a missing device, say) are retried on the next pass, without
        // a re-read of the whole table: at 10,000 routes that read costs more than the pass.
        const retry: string[] = [];
        if (r.code !== 0 && failed.size === 0) failed.set(0, r.stderr.trim() || `ip exited ${r.code}`);
        ops.forEach((op, i) => {
          const err = failed.get(i + 1);
          if (err !== undefined) {
            // a delete of a route that is already gone is success
            if (op.kind === 'delete' && /No such process|not found/i.test(err)) {
              owned!.delete(op.key);
              return;
            }
            report.errors.push({ kind: 'routes', item: op.line, message: err });
            retry.push(op.key);
            return;
          }
          report.writes++;
          if (op.kind === 'delete') {
            owned!.delete(op.key);
            this.applied.delete(op.key);
          } else {
            owned!.set(op.key, op.route);
            this.applied.add(op.key);
          }
        });
        if (failed.has(0)) report.errors.push({ kind: 'routes', item: 'batch', message: failed.get(0)! });
        // A failure not tied to a line leaves the kernel's state unknown: re-read next time.
        if (failed.has(0)) owned = null;
        else for (const k of retry) this.dirty.add(k);
      }
      if (full && owned) for (const k of this.desired.keys()) if (owned.has(k)) this.applied.add(k);
      this.cache = owned;
    } catch (e) {
      report.errors.push({ kind: 'routes', item: 'read', message: (e as Error).message });
      this.cache = null;
    }
    if (this.cache === null) this.dirty = null;
    report.durationMs = performance.now() - t0;
    return report;
  }

  /** Remove every route of ours (spec §7.7.4, including table 1107), nothing else. */
  async cleanUp(): Promise<ReconcilerReport> {
    this.desired = new Map();
    this.dirty = null;
    const r = await this.reconcile(true);
    this.applied.clear();
    return r;
  }

  /** Keys of routes we hold (tests / observe). */
  appliedKeys(): string[] {
    return [...this.applied];
  }
}


/** The (table|dst) key of an `ip monitor route` "Deleted …" line, or null for any other line. */
export function deletedRouteKey(line: string): string | null {
  const tok = line.trim().split(/\s+/);
  if (tok[0] !== 'Deleted') return null;
  let i = 1;
  if (['unicast', 'local', 'broadcast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'multicast', 'anycast'].includes(tok[i])) {
    if (tok[i] !== 'unicast') return null;
    i++;
  }
  const dst = tok[i];
  if (!dst || dst === 'default') return null;
  const ti = tok.indexOf('table');
  const tname = ti > 0 ? tok[ti + 1] : 'main';
  const table = tname === 'main' ? MAIN_TABLE : Number(tname);
  if (!Number.isInteger(table)) return null;
  try {
    return routeKey({ table, dst: canonicalCIDR(dst) });
  } catch {
    return null;
  }
}
