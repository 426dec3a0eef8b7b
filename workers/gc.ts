// A full collection once a burst is over. V8 keeps the heap a burst grew to (the first plan, a
// whole desired state, a kernel read-back) until its next full collection, which a quiet agent
// may not run for minutes; a forced one gives the pages back to the system within a second.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

let gc: (() => void) | null = null;
let timer: NodeJS.Timeout | null = null;

/**
 * Runs a full, compacting collection of this isolate now (`--expose-gc` is set on first use:
 * V8's own gc()). Compacting: after a burst the survivors are spread thin over many pages, and
 * a page goes back to the system only when it is empty (V8 compacts only where its heuristics
 * say; the flag is process-wide, so it is set for this collection alone).
 */
export function collectGarbage(): void {
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
