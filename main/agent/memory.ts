// V8 lets a heap grow to several times its live size before a full collection (tuned for
// throughput); the agent's work per event is small, so it trades a little GC time for memory.
// Not below 100%: the old generation's headroom must exceed what one scavenge of the young
// generation promotes, or V8 starts incremental marking at once and runs a full mark-compact
// after nearly every scavenge. With the Kubernetes client library gone from the main isolate
// its live heap is ~12 MB, and at 50% that happened every ~7 s under heartbeat churn
// (`--trace-gc`; measurements: README).
import { setFlagsFromString } from 'node:v8';

/** Grow a heap by at most 100% over its live size between full collections (process-wide). */
export function tuneHeap(): void {
  setFlagsFromString('--heap-growing-percent=100');
}

/** What a HeapTrimmer reads and does (a test gives it its own). */
export interface TrimmerHooks {
  /** The isolate's heap in use, bytes. */
  heapUsed(): number;
  /** Milliseconds, monotonic. */
  now(): number;
  /** A full, compacting collection (workers/gc.ts collectGarbage). */
  collect(): void;
}

/**
 * Under heartbeat churn the main isolate's old generation grows to about twice its live size
 * before V8 collects it (the 100% above: at 5,000 nodes and ~170 heartbeats/s, ~13 → ~21 MiB in
 * use and 16 → 24 MiB committed). A compacting collection once the heap has grown `growthBytes`
 * over what the last one left, at most once per `minIntervalMs`, gives that back for a few ms a
 * minute, without the lower growth factor's full collection every few seconds.
 */
export class HeapTrimmer {
  private floor: number | null = null;
  private last = -Infinity;

  constructor(private readonly h: TrimmerHooks, private readonly growthBytes = 4 << 20, private readonly minIntervalMs = 60_000) {}

  /** Called every second or so; true when it collected. */
  check(): boolean {
    const used = this.h.heapUsed();
    if (this.floor === null || used < this.floor) this.floor = used;
    const now = this.h.now();
    if (used - this.floor < this.growthBytes || now - this.last < this.minIntervalMs) return false;
    this.h.collect();
    this.last = now;
    this.floor = this.h.heapUsed();
    return true;
  }
}
