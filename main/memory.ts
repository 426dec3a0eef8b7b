// V8 heap growth for the agent's three isolates. By default V8 lets a heap grow to several times
// its live size before the next full collection, tuned for throughput: right after the first list
// (50 MB of Node JSON at 5,000 nodes) the main thread held ~120 MB of heap for ~40 MB live, and
// the agent sat at ~410 MB resident. The agent's work per event is small, so it trades a little
// GC time for memory. (Young generations stay at V8's size: smaller ones slowed the cold start's
// full plan and apply in the workers more than they saved.)
//
// Not below 50%: V8 starts incremental marking as soon as the old generation's headroom is
// smaller than the young generation's capacity (a scavenge could promote all of it). With 20%
// of ~37 MB live (7 MB) against a young generation grown to 16 MB, the main thread ran a full
// mark-compact every ~7 s under heartbeat churn alone (--trace-gc), in the runs where the young
// generation had grown: 1–2 points of a core.
import { setFlagsFromString } from 'node:v8';

/** Grow a heap by at most 50% over its live size between full collections (process-wide). */
export function tuneHeap(): void {
  setFlagsFromString('--heap-growing-percent=50');
}
