// When to run the next plan. A token bucket: a change after a quiet spell is planned at once
// (up to `burst` plans back to back), and sustained churn is held to one plan per interval on
// average, its changes coalesced into each plan. A fixed gap after every plan (what this
// replaced) delayed even a lone change that came soon after the previous plan.
export class Pacer {
  private tokens: number;
  private at: number;

  constructor(
    private readonly intervalMs: number,
    private readonly burst = 3,
    now = 0,
  ) {
    this.tokens = burst;
    this.at = now;
  }

  private refill(now: number): void {
    if (this.intervalMs <= 0) {
      this.tokens = this.burst;
    } else {
      this.tokens = Math.min(this.burst, this.tokens + Math.max(0, now - this.at) / this.intervalMs);
    }
    this.at = now;
  }

  /** Milliseconds to wait before the next plan may start (0: now). Does not take a token. */
  delay(now: number): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil((1 - this.tokens) * this.intervalMs);
  }

  /** A plan starts: it takes one token. */
  take(now: number): void {
    this.refill(now);
    this.tokens = Math.max(0, this.tokens - 1);
  }
}
