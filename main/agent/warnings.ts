// The planner's warnings as the agent reports them: each one counted and logged once, when it
// first appears, and forgotten when it goes away. Every plan returns the cluster's warnings
// again (a bad annotation stays until someone fixes it); counting them per plan turned one bad
// annotation into thousands of counts and log lines an hour.

/** Log lines per update at most; the rest are summed up in one line (a first plan may bring thousands). */
export const MAX_LOGGED = 20;

export class WarningLog {
  /**
   * The current warnings. A warning's text names the node or Peer and the annotation (and the
   * bad value, quoted short): a different bad value is a new warning.
   */
  private current = new Set<string>();

  get size(): number {
    return this.current.size;
  }

  /** Takes a plan's warnings; returns the new ones (in order) and how many went away. */
  update(warnings: readonly string[]): { added: string[]; cleared: number } {
    const next = new Set(warnings);
    const added: string[] = [];
    for (const w of next) if (!this.current.has(w)) added.push(w);
    let cleared = 0;
    for (const w of this.current) if (!next.has(w)) cleared++;
    this.current = next;
    return { added, cleared };
  }
}
