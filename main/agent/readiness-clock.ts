// The clock readiness is judged by, frozen through API outages. No agent can heartbeat while the
// API is down, so on reconnection every node would look stale and be torn down until its next
// check-in (the Go agent does that, design §16.46). The outage's length is taken off the clock until every node
// had a full readiness window to check in again; a node that really died still drops out, late
// by the outage's length.
export class ReadinessClock {
  private outageStart: number | null = null;
  private frozenSeconds = 0;
  private frozenUntil = 0;

  /** `now`: Unix seconds. */
  constructor(private readonly now: () => number) {}

  /** Unix seconds as readiness sees them. */
  read(): number {
    const now = this.now();
    if (this.outageStart !== null) return this.outageStart - this.frozenSeconds;
    if (now >= this.frozenUntil) this.frozenSeconds = 0;
    return now - this.frozenSeconds;
  }

  get frozen(): boolean {
    return this.outageStart !== null;
  }

  /** The API was lost: the clock stops. */
  freeze(): void {
    if (this.outageStart === null) this.outageStart = this.now();
  }

  /** The API is back: the clock runs behind by the outage for `windowSeconds`; returns the outage's length. */
  thaw(windowSeconds: number): number {
    if (this.outageStart === null) return 0;
    const now = this.now();
    const outage = now - this.outageStart;
    this.frozenSeconds += outage;
    this.frozenUntil = now + windowSeconds;
    this.outageStart = null;
    return outage;
  }
}
