// Memoisation across plans. The agent's planner worker keeps parsed records for hours and
// re-plans after each change: there, deriving routes, rules and peers from the same record
// objects as last time and handing back the same (frozen) output objects turns a 5,000-node
// re-plan into mostly lookups, and lets the diff compare keys by pointer. A one-shot plan
// (`kg plan`, the fleet check) parses fresh records every time: memo tables would only add work
// and garbage, so memoisation is on only inside plan(…, { reuse: true }).

let enabled = false;

export function memoOn(): boolean {
  return enabled;
}

/** Runs `f` with memoisation on or off (restored afterwards; plans are synchronous). */
export function withMemo<T>(on: boolean, f: () => T): T {
  const before = enabled;
  enabled = on;
  try {
    return f();
  } finally {
    enabled = before;
  }
}
