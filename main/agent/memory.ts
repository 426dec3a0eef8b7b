// V8 lets a heap grow to several times its live size before a full collection (tuned for
// throughput); the agent's work per event is small, so it trades a little GC time for memory.
// Not below 50%: less made the main thread run full mark-compacts every few seconds under
// heartbeat churn (measurements: README).
import { setFlagsFromString } from 'node:v8';

/** Grow a heap by at most 50% over its live size between full collections (process-wide). */
export function tuneHeap(): void {
  setFlagsFromString('--heap-growing-percent=50');
}
