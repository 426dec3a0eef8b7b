// Route reconciler: reads kg's routes (and Go Kilo's static ones, to adopt) in all tables of both
// families, writes the difference with one `ip -force -batch` from a file (dataplane/exec.ts).
// Failed lines are reported one by one (the rest of the batch still runs): transient failures
// are retried by the worker with backoff; a line the kernel refuses for good is not written
// again until its desired route changes.

import type { Route } from '../plan/types.js';
import type { ReconcilerReport } from '../ipc/dataplane.js';
import { checkRoute, failedBatchLines, MAIN_TABLE, parseIpRoutes, routeKey, type KRoute } from '../kernel/ip-format.js';
import { desiredRouteMap, diffRoutes, ownedRoutes, withDesired, type RouteOp } from '../diff/routes.js';
import { KG_PROTO, RTPROT_STATIC } from '../kernel/owner.js';
import { canonicalCIDR, permanentIpError, show } from '../kernel/input-checks.js';
import type { Exec } from './exec.js';
import { newReport, Rejections } from './report.js';

const noop = (): void => {};

/** The protocols read: kg's own, and static (Go Kilo's, adopted where they match). */
const READ_PROTOS = [KG_PROTO, RTPROT_STATIC];

/** kg's and static routes, all tables, both families (one `ip -batch` of two listings per family). */
export async function readRoutes(exec: Exec): Promise<KRoute[]> {
  const input = READ_PROTOS.map((p) => `route show table all proto ${p}`).join('\n') + '\n';
  const out: KRoute[] = [];
  const runs = await Promise.all(['-4', '-6'].map((f) => exec.run('ip', [f, '-N', '-j', '-batch', '-'], input)));
  for (const r of runs) {
    if (r.code !== 0) throw new Error(`ip route show: ${r.stderr.trim()}`);
    const lists = r.stdout.split('\n').filter((l) => l.trim().length > 0);
    if (lists.length !== READ_PROTOS.length) throw new Error(`ip route show: expected ${READ_PROTOS.length} listings, got ${lists.length}`);
    lists.forEach((l, i) => out.push(...parseIpRoutes(l, READ_PROTOS[i])));
  }
  return out;
}

export class RouteReconciler {
  private desired = new Map<string, KRoute>();
  /** Owned kernel routes as last read/written (null = re-read). */
  private cache: Map<string, KRoute> | null = null;
  /** Keys whose desired route failed its check: the kernel's route there is left as it is. */
  private held = new Set<string>();
  /** Keys whose route the kernel refused for good → the refused line (not written again while desired unchanged). */
  private refused = new Map<string, string>();
  private readonly pending = new Rejections('routes');
  /** The kernel's routes read ahead of the first desired state (prime), used once by the next non-rereading pass. */
  private primed: KRoute[] | null = null;

  constructor(
    private readonly exec: Exec,
    private readonly kiloTable: number,
  ) {}

  /**
   * Read the kernel's routes now, while the agent lists the cluster, for the first pass to diff
   * against (its read is then off the start-up path). A failed read is left to that pass.
   */
  async prime(): Promise<void> {
    if (this.cache !== null) return;
    this.primed = await readRoutes(this.exec).catch(() => null);
  }

  /** Keys to look at in the next pass; null = all (a full diff). */
  private dirty: Set<string> | null = null;

  private reject(r: Route, problem: string, key: string | null): void {
    this.pending.add(`route ${show(r?.dst)}`, problem, 'invalid');
    if (key !== null) this.held.add(key);
  }

  /** Take the whole desired list; returns each route's key in order (null: a route with none, dropped). */
  setDesired(routes: readonly Route[]): Array<string | null> {
    this.held.clear();
    const keys: Array<string | null> = [];
    this.desired = desiredRouteMap(routes, (r, problem, key) => this.reject(r, problem, key), keys);
    for (const k of this.refused.keys()) if (!this.desired.has(k)) this.refused.delete(k);
    this.dirty = null;
    return keys;
  }

  /** Incremental update: the routes at these keys went away, these came (their keys returned in order). O(changed). */
  patch(removed: ReadonlyArray<string | null>, added: readonly Route[]): Array<string | null> {
    const dirty = this.dirty;
    for (const k of removed) {
      if (k === null) continue;
      this.desired.delete(k);
      this.held.delete(k);
      this.refused.delete(k);
      dirty?.add(k);
    }
    return added.map((r) => {
      const c = checkRoute(r);
      if (c.ok) {
        const k = routeKey(c.route);
        this.desired.set(k, c.route);
        this.held.delete(k);
        dirty?.add(k);
        return k;
      }
      this.reject(r, c.problem, c.key);
      if (c.key !== null) dirty?.add(c.key);
      return c.key;
    });
  }

  invalidate(): void {
    this.cache = null;
    this.primed = null;
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

  /** Drop what must not be written now: deletes at held keys, replaces the kernel refused for good. */
  private writable(ops: RouteOp[]): RouteOp[] {
    if (this.held.size === 0 && this.refused.size === 0) return ops;
    return ops.filter((op) => {
      if (op.kind === 'delete') return !this.held.has(op.key);
      const line = this.refused.get(op.key);
      if (line === undefined) return true;
      if (line === op.line) return false;
      this.refused.delete(op.key); // the desired route changed: try the new one
      return true;
    });
  }

  /** One pass; `ready`: what must be there before anything is written (the devices routes name). */
  async reconcile(reread: boolean, ready?: Promise<unknown>): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report = newReport('routes');
    this.pending.drain(report);
    try {
      let owned = reread ? null : this.cache;
      let ops: RouteOp[];
      const primed = reread ? null : this.primed;
      this.primed = null;
      if (owned === null) {
        const actual = primed ?? (await readRoutes(this.exec));
        const o = ownedRoutes(actual, this.desired, this.kiloTable);
        report.read = true;
        ops = diffRoutes(this.desired, o.owned, o.extra);
        owned = withDesired(o.owned, this.desired);
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
      ops = this.writable(ops);
      this.dirty = new Set();
      if (ops.length > 0) {
        await ready?.then(noop, noop);
        // deletes first: a route that moved table/attributes never collides with its old self
        ops.sort((a, b) => (a.kind === b.kind ? 0 : a.kind === 'delete' ? -1 : 1));
        const r = await this.exec.batch('ip', ['-force', '-batch', '-'], ops.map((o) => o.line));
        report.batches++;
        const failed = r.code === 0 ? new Map<number, string>() : failedBatchLines(r.stderr);
        // Routes the kernel refused (a missing device, say) are retried on the next pass, without
        // a re-read of the whole table: at 10,000 routes that read costs more than the pass.
        const retry: string[] = [];
        if (r.code !== 0 && failed.size === 0) failed.set(0, r.stderr.trim() || `ip exited ${r.code}`);
        const cached = owned;
        ops.forEach((op, i) => {
          const err = failed.get(i + 1);
          if (err !== undefined && !(op.kind === 'delete' && /No such process|not found/i.test(err))) {
            if (op.kind === 'replace' && permanentIpError(err, op.line)) {
              this.refused.set(op.key, op.line);
              report.rejected.push({ kind: 'routes', item: op.line, message: `${err} (not retried until the route changes)`, reason: 'refused' });
            } else {
              report.errors.push({ kind: 'routes', item: op.line, message: err });
              retry.push(op.key);
            }
            return;
          }
          if (err === undefined) report.writes++;
          // a delete of a route that is already gone is success
          if (op.kind === 'delete') {
            if (cached.get(op.key) === op.route) cached.delete(op.key);
          } else cached.set(op.key, op.route);
        });
        if (failed.has(0)) report.errors.push({ kind: 'routes', item: 'batch', message: failed.get(0)! });
        // A failure not tied to a line leaves the kernel's state unknown: re-read next time.
        if (failed.has(0)) owned = null;
        else for (const k of retry) this.dirty.add(k);
      }
      this.cache = owned;
    } catch (e) {
      report.errors.push({ kind: 'routes', item: 'read', message: (e as Error).message });
      this.cache = null;
    }
    if (this.cache === null) this.dirty = null;
    report.durationMs = performance.now() - t0;
    return report;
  }

  /** Remove every route of ours (design §7.7.4, including table 1107), nothing else. */
  async cleanUp(): Promise<ReconcilerReport> {
    this.desired = new Map();
    this.held.clear();
    this.refused.clear();
    this.pending.clear();
    this.dirty = null;
    return this.reconcile(true);
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
