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
