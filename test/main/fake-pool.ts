// A stand-in for the planner pool in tests of the logic above it: it records what it was asked
// and answers what the test says (by default a ready plan with a whole state). Plans can be held
// open to test what happens while one is in flight.
import type { PlanAnswer, PlanSummary, PlanTask } from '../../ipc/planner.js';

export const readySummary = (o: Partial<PlanSummary> = {}): PlanSummary => ({
  hostname: 'self', ready: true, leader: false, location: '', wireGuardCIDR: '', readyNodes: 1, readyPeers: 0,
  wgPeers: 0, routes: 0, rules: 0, iptablesRules: 0, warnings: [], discoveredEndpoints: null, natCandidates: 0, ...o,
});

export type FakeAnswer = PlanAnswer | ((task: Omit<PlanTask, 'kind' | 'v'>) => PlanAnswer);

export class FakePool {
  readonly tasks: Omit<PlanTask, 'kind' | 'v'>[] = [];
  /** Answers in order; when they run out, `fallback`. */
  readonly answers: FakeAnswer[] = [];
  fallback: FakeAnswer = (): PlanAnswer => ({ ok: true, summary: readySummary(), full: '{}', seq: this.tasks.length, planMs: 0, parseMs: 0 });
  /** While set, plans wait for `release()`. */
  hold = false;
  private waiting: (() => void)[] = [];
  readonly nodes = new Map<string, unknown>();
  readonly calls: string[] = [];

  plan(task: Omit<PlanTask, 'kind' | 'v'>): Promise<PlanAnswer> {
    this.tasks.push(task);
    const a = this.answers.shift() ?? this.fallback;
    const answer = () => (typeof a === 'function' ? a(task) : a);
    if (!this.hold) return Promise.resolve(answer());
    return new Promise((resolve) => this.waiting.push(() => resolve(answer())));
  }

  release(): void {
    this.hold = false;
    for (const w of this.waiting.splice(0)) w();
  }

  setNode(name: string, obj: unknown): void {
    this.calls.push(`setNode ${name}`);
    this.nodes.set(name, obj);
  }

  deleteNode(name: string): void {
    this.calls.push(`deleteNode ${name}`);
    this.nodes.delete(name);
  }

  setLastSeen(name: string, lastSeen: number): void {
    this.calls.push(`setLastSeen ${name} ${lastSeen}`);
  }

  setPeer(name: string): void {
    this.calls.push(`setPeer ${name}`);
  }

  deletePeer(name: string): void {
    this.calls.push(`deletePeer ${name}`);
  }
}
