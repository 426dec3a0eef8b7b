// A full collection once a burst is over. V8 keeps the heap a burst grew to (the first plan, a
// whole desired state, a kernel read-back) until its next full collection, which a quiet agent
// may not run for minutes; a forced one gives the pages back to the system within a second.
import { getHeapSpaceStatistics, getHeapStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null = null;
let timer: NodeJS.Timeout | null = null;
let settleTimer: NodeJS.Timeout | null = null;

/**
 * V8 gives back the young generation a burst grew (1 MiB up to the isolate's limit, in both
 * semispaces) only in a full collection that runs once allocation has been quiet for ~5 s
 * (Heap::ReduceNewSpaceSize: throughput over its last 5 s under 1 KB/ms), or in its memory
 * reducer's, which a forced collection right after the burst pre-empts and which then may never
 * come. So a burst's collection is followed by one more after SETTLE_MS of quiet, when the young
 * generation is above V8's initial size (at 5,000 nodes: 2–4 MB per worker, the soak's step at
 * the first resync; measurements: README).
 */
export const SETTLE_MS = 6_000;
const INITIAL_NEW_SPACE = 1 << 20;

/** The young generation's capacity, bytes. */
export function newSpaceBytes(): number {
  return getHeapSpaceStatistics().find((s) => s.space_name === 'new_space')?.space_size ?? 0;
}

function armSettle(): void {
  if (settleTimer !== null) clearTimeout(settleTimer);
  settleTimer = setTimeout(() => {
    settleTimer = null;
    // Not re-armed by its own collection: one per burst, whatever V8 decides.
    if (newSpaceBytes() > INITIAL_NEW_SPACE) fullCollection();
  }, SETTLE_MS);
  settleTimer.unref();
}

/** A task ran: a pending settling collection waits for SETTLE_MS of quiet again. */
export function deferSettle(): void {
  if (settleTimer !== null) armSettle();
}

/**
 * Runs a full, compacting collection of this isolate now (`--expose-gc` is set on first use:
 * V8's own gc()). Compacting: after a burst the survivors are spread thin over many pages, and
 * a page goes back to the system only when it is empty (V8 compacts only where its heuristics
 * say; the flag is process-wide, so it is set for this collection alone). A settling one follows
 * once the thread has been quiet (SETTLE_MS).
 */
export function collectGarbage(): void {
  fullCollection();
  if (newSpaceBytes() > INITIAL_NEW_SPACE) armSettle();
}

function fullCollection(): void {
  if (gc === null) {
    setFlagsFromString('--expose-gc');
    gc = runInNewContext('gc') as () => void;
  }
  setFlagsFromString('--compact-on-every-full-gc');
  try {
    gc();
  } finally {
    setFlagsFromString('--no-compact-on-every-full-gc');
  }
}

/**
 * A full collection once the current task has answered (after `delayMs`; calls meanwhile fold
 * into one); never keeps the thread alive.
 */
export function collectGarbageSoon(delayMs = 0): void {
  if (timer !== null) clearTimeout(timer);
  timer = setTimeout(() => {
    timer = null;
    collectGarbage();
  }, delayMs);
  timer.unref();
}

/** The clock, timers and heap an IdleCollector runs on (a test gives it its own). */
export interface CollectorTimers {
  now(): number;
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
  /** The isolate's heap in use, bytes. */
  heapUsed(): number;
}

const realTimers: CollectorTimers = {
  now: () => performance.now(),
  heapUsed: () => getHeapStatistics().used_heap_size,
  // Never keeps the thread alive.
  setTimeout: (fn, ms) => setTimeout(fn, ms).unref(),
  clearTimeout: (h) => clearTimeout(h as NodeJS.Timeout),
};

export interface IdleCollectorOptions {
  /** The thread has run no task for this long: the burst is over. */
  idleMs: number;
  /** At most one collection per this long, urgent ones aside (and not counted). */
  minIntervalMs: number;
  /** A requested collection waits no longer than this for the thread to be idle (endless churn). */
  maxWaitMs: number;
  /**
   * The heap in use grew this much since the last collection: collect at once, burst or not, so
   * that a long burst does not hold twice its live heap (V8's own limit) until it ends.
   */
  growthBytes: number;
}

/**
 * The planner's collection after its full plans: under churn (dual stack, or a change inside the
 * local location in cross granularity) every re-plan is a full plan, and a compacting collection
 * after each would cost more than the plan. So it runs once the thread is idle, at most once per
 * interval, or at once when the heap grew by growthBytes; after the first plan and a plan after a
 * snapshot (urgent) it runs at once.
 */
export const PLANNER_GC: IdleCollectorOptions = { idleMs: 500, minIntervalMs: 10_000, maxWaitMs: 60_000, growthBytes: 16 << 20 };

/** One collection after a burst of requests is over (see PLANNER_GC). */
export class IdleCollector {
  private timer: unknown = null;
  /** When the last collection that was not urgent ran. */
  private last = -Infinity;
  /** The heap in use after the last collection (null: none yet). */
  private floor: number | null = null;
  /** When the pending collection was first requested (null: none pending). */
  private since: number | null = null;
  private urgent = false;

  constructor(private readonly collect: () => void, private readonly o: IdleCollectorOptions = PLANNER_GC, private readonly t: CollectorTimers = realTimers) {}

  /**
   * Asks for a collection once the thread is idle; `urgent` (or a heap grown by growthBytes): as
   * soon as the current task is over.
   */
  request(urgent = false): void {
    this.since ??= this.t.now();
    this.urgent ||= urgent || (this.floor !== null && this.t.heapUsed() - this.floor >= this.o.growthBytes);
    this.arm();
  }

  /** A task ran: a pending collection waits until the thread is idle again. */
  busy(): void {
    if (this.since !== null) this.arm();
  }

  private arm(): void {
    if (this.timer !== null) this.t.clearTimeout(this.timer);
    const now = this.t.now();
    // Urgent: once the current task has answered, as the first plan's collection always ran.
    const at = this.urgent ? now : Math.max(Math.min(now + this.o.idleMs, this.since! + this.o.maxWaitMs), this.last + this.o.minIntervalMs);
    this.timer = this.t.setTimeout(() => this.fire(), Math.max(0, at - now));
  }

  private fire(): void {
    this.timer = null;
    this.since = null;
    // The interval is between collections that waited for it: the start-up's first plan is
    // urgent, and the full re-plan right after it (the agent's own node changed) is then
    // collected once idle, not 10 s later.
    if (!this.urgent) this.last = this.t.now();
    this.urgent = false;
    this.collect();
    this.floor = this.t.heapUsed();
  }
}
