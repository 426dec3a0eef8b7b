// When the own node checks in (design §11.4). Readers drop a node whose last-seen is two periods
// old (§2.4), and Go retries a failed write only a period later, when that window runs out.
// Hardening (departs from Kilo): a failed check-in is retried with jittered backoff inside the
// window; a long outage falls back to Go's one attempt per period. The writes are Go's.

/** The first retry's nominal delay; periods shorter than 16 s scale it down (period / 16). */
export const CHECK_IN_RETRY_BASE_MS = 1000;
/** Retries within one window, at most (kubelet's lease renewal allows 5 per 10 s interval). */
export const MAX_CHECK_IN_RETRIES = 8;

export interface CheckInResult {
  ok: boolean;
  /** The server's Retry-After of a failed write, if it sent one. */
  retryAfterMs: number | null;
}

export interface CheckInDelayInput {
  periodMs: number;
  /** Consecutive failed attempts (0: the last one succeeded). */
  failures: number;
  /** Time since the last successful check-in: the age of the last-seen readers hold. */
  sinceOkMs: number;
  retryAfterMs?: number | null;
  /** [0, 1); Math.random by default. */
  random?: () => number;
}

/**
 * The delay before the next check-in attempt:
 *  - after a success, one period;
 *  - after the k-th failure in a row, while the last published last-seen is still inside the
 *    readers' window (two periods): min(base·2^(k−1), period/4), jittered to [½, 1] of it so
 *    that a fleet does not retry in step, and never past the window's end, where the regular
 *    attempt falls; after MAX_CHECK_IN_RETRIES retries, straight to that regular attempt;
 *  - once the window has run out (a long outage), one period, as Go does;
 *  - never sooner than the server's Retry-After.
 * Within one window that is at most MAX_CHECK_IN_RETRIES + 1 writes of a failing node.
 */
export function nextCheckInDelayMs(o: CheckInDelayInput): number {
  const p = o.periodMs;
  const retryAfter = o.retryAfterMs ?? 0;
  if (o.failures === 0) return p;
  const toWindowEnd = 2 * p - o.sinceOkMs;
  if (toWindowEnd <= 0) return Math.max(p, retryAfter);
  if (o.failures > MAX_CHECK_IN_RETRIES) return Math.max(toWindowEnd, retryAfter);
  const base = Math.min(CHECK_IN_RETRY_BASE_MS, p / 16);
  const d = Math.min(base * 2 ** (o.failures - 1), p / 4);
  const jittered = d / 2 + (o.random ?? Math.random)() * (d / 2);
  return Math.max(retryAfter, Math.min(toWindowEnd, jittered));
}

export interface CheckInLoopOptions {
  /** The current period (adaptive heartbeats change it). */
  periodMs: () => number;
  /** One check-in write; it must not throw (failures are results). */
  attempt: () => Promise<CheckInResult>;
  /** Milliseconds, monotonic; performance.now by default. */
  now?: () => number;
  random?: () => number;
  /** Called when a failed attempt is to be retried (for the log). */
  onRetry?: (inMs: number, failures: number) => void;
}

/** Runs check-ins on nextCheckInDelayMs's schedule until stopped. One attempt at a time. */
export class CheckInLoop {
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failures = 0;
  private lastOk: number;
  private readonly now: () => number;

  constructor(private readonly o: CheckInLoopOptions) {
    this.now = o.now ?? (() => performance.now());
    this.lastOk = this.now();
  }

  /** Starts the schedule: the first check-in comes one period from now (the node was just published). */
  start(): void {
    this.lastOk = this.now();
    this.arm(this.o.periodMs());
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = null;
  }

  private arm(ms: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.run(), ms);
    this.timer.unref?.();
  }

  private async run(): Promise<void> {
    this.timer = null;
    let r: CheckInResult;
    try {
      r = await this.o.attempt();
    } catch {
      r = { ok: false, retryAfterMs: null };
    }
    if (r.ok) {
      this.failures = 0;
      this.lastOk = this.now();
    } else {
      this.failures++;
    }
    const delay = nextCheckInDelayMs({ periodMs: this.o.periodMs(), failures: this.failures, sinceOkMs: this.now() - this.lastOk, retryAfterMs: r.retryAfterMs, random: this.o.random });
    if (this.failures > 0) this.o.onRetry?.(delay, this.failures);
    this.arm(delay);
  }
}
