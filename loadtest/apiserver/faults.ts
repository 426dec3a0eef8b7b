// Faults on command. Rates are deterministic (an accumulator, not a coin toss) so that a test
// can say exactly which requests fail.

export interface FaultSettings {
  /** Extra delay before every API request is answered. */
  latencyMs: number;
  /** Fraction (0..1) of API requests answered with `errorStatus`: the first after setting, then every (1/rate)-th. */
  errorRate: number;
  errorStatus: number;
  /** Fraction (0..1) of API requests answered 429 Too Many Requests with Retry-After. */
  throttleRate: number;
  retryAfterSeconds: number;
  /** The next N list/watch requests answer 410 Gone. */
  goneCount: number;
  /** How a watch gets its 410: as the HTTP status, or as an in-stream ERROR event. */
  goneMode: 'http' | 'stream';
  /** Watches (open and new) stop receiving anything but stay open: a half-open connection. */
  stallWatches: boolean;
  /** Verbs (get, list, watch, create, update, patch, delete, …) the error and throttle faults hit; empty: every verb. */
  verbs: string[];
}

export const DEFAULT_FAULTS: FaultSettings = {
  latencyMs: 0,
  errorRate: 0,
  errorStatus: 500,
  throttleRate: 0,
  retryAfterSeconds: 1,
  goneCount: 0,
  goneMode: 'http',
  stallWatches: false,
  verbs: [],
};

export type FaultDecision = { kind: 'none' } | { kind: 'error'; status: number } | { kind: 'throttle'; retryAfter: number } | { kind: 'gone'; mode: 'http' | 'stream' };

/** Hooks the server installs so faults can act on live connections. */
export interface FaultTargets {
  dropWatches(abrupt: boolean): number;
  onStallChange(stalled: boolean): void;
  restart(opts: RestartOptions): Promise<void>;
}

/**
 * A restart as a real kube-apiserver goes through it (each phase optional, all 0 by default:
 * the old server ends every watch at once and the new one serves at once):
 *  1. the old server stops accepting connections; open watches keep being served for `graceMs`
 *     (graceful termination, up to 60 s on a real one) and then end; other requests on its
 *     connections are answered with `Connection: close`;
 *  2. nothing listens for `downMs`;
 *  3. the new server listens, and for `initializingMs` its watch cache initialises: watches and
 *     the lists it cannot hand to etcd get `429 storage is (re)initializing` with Retry-After
 *     (KEP-4568, `refusedWhileInitializing`); gets, writes, cheap lists and discovery are served;
 *  4. its watch history starts once it has initialised (unless `keepHistory`), so a watch from
 *     an older resourceVersion gets 200 and an in-stream ERROR 410, as the watch cache answers it.
 */
export interface RestartOptions {
  /** Keep the watch history (default false: a restarted server's watch cache starts empty, so old resourceVersions get 410). */
  keepHistory?: boolean;
  /** How long the port stays closed. */
  downMs?: number;
  /** How long the old server keeps serving its open watches once the restart began. */
  graceMs?: number;
  /** How long the new server answers cache reads with 429 before it serves them. */
  initializingMs?: number;
  /** Retry-After of those 429s (a real server asks for 1 s). */
  retryAfterSeconds?: number;
}

/**
 * Whether a watch cache that is (re)initialising refuses this request (KEP-4568, on by default
 * since Kubernetes 1.31): watches from a resourceVersion (a watch without one is served by etcd)
 * and lists with a selector or without a limit; gets and writes go to etcd, and so do lists with
 * a limit and no selector (their cost is bounded).
 */
export function refusedWhileInitializing(verb: string, q: URLSearchParams): boolean {
  if (verb === 'watch') return (q.get('resourceVersion') ?? '') !== '';
  if (verb !== 'list') return false;
  const selector = !!q.get('labelSelector') || !!q.get('fieldSelector');
  return selector || !(Number(q.get('limit') ?? 0) > 0);
}

/** The Status a kube-apiserver sends while a watch cache initialises (status 429). */
export const INITIALIZING_MESSAGE = 'storage is (re)initializing';

export class Faults {
  settings: FaultSettings = { ...DEFAULT_FAULTS };
  private errAcc = 0;
  private throttleAcc = 0;
  /** Counts of injected faults, for tests and metrics. */
  readonly injected = { error: 0, throttle: 0, gone: 0, dropped: 0, restarts: 0, initializing: 0 };
  /** Until when (Date.now()) the restarted server's watch cache initialises, and its Retry-After. */
  private initUntil = 0;
  private initRetryAfter = 1;

  constructor(private readonly targets: FaultTargets) {}

  set(s: Partial<FaultSettings>): FaultSettings {
    const wasStalled = this.settings.stallWatches;
    this.settings = { ...this.settings, ...s };
    // Start the accumulators one step short of firing, so the first request after the fault is
    // set fails and every (1/rate)-th one after it.
    if (s.errorRate !== undefined) this.errAcc = 1 - this.settings.errorRate;
    if (s.throttleRate !== undefined) this.throttleAcc = 1 - this.settings.throttleRate;
    if (wasStalled !== this.settings.stallWatches) this.targets.onStallChange(this.settings.stallWatches);
    return this.settings;
  }

  clear(): FaultSettings {
    return this.set({ ...DEFAULT_FAULTS });
  }

  /** Closes every open watch. `abrupt` resets the TCP connections instead of ending the streams. */
  dropWatches(abrupt = false): number {
    const n = this.targets.dropWatches(abrupt);
    this.injected.dropped += n;
    return n;
  }

  stall(on = true): void {
    this.set({ stallWatches: on });
  }

  /** Restarts the listener on the same port with the stored objects kept. */
  async restart(opts: RestartOptions = {}): Promise<void> {
    this.injected.restarts++;
    await this.targets.restart(opts);
  }

  /** Starts the new server's initialising phase (restart step 3). */
  startInitializing(ms: number, retryAfterSeconds = 1): void {
    this.initUntil = Date.now() + ms;
    this.initRetryAfter = retryAfterSeconds;
  }

  get initializing(): boolean {
    return Date.now() < this.initUntil;
  }

  /** The Retry-After (seconds) if the initialising watch cache refuses this request, else null. */
  refuseInitializing(verb: string, q: URLSearchParams): number | null {
    if (!this.initializing || !refusedWhileInitializing(verb, q)) return null;
    this.injected.initializing++;
    return this.initRetryAfter;
  }

  /** Decides the fate of one API request. */
  decide(verb: string): FaultDecision {
    const s = this.settings;
    if (s.goneCount > 0 && (verb === 'list' || verb === 'watch')) {
      s.goneCount--;
      this.injected.gone++;
      return { kind: 'gone', mode: s.goneMode };
    }
    if (s.verbs.length > 0 && !s.verbs.includes(verb)) return { kind: 'none' };
    if (s.throttleRate > 0) {
      this.throttleAcc += s.throttleRate;
      if (this.throttleAcc >= 1 - 1e-9) {
        this.throttleAcc -= 1;
        this.injected.throttle++;
        return { kind: 'throttle', retryAfter: s.retryAfterSeconds };
      }
    }
    if (s.errorRate > 0) {
      this.errAcc += s.errorRate;
      if (this.errAcc >= 1 - 1e-9) {
        this.errAcc -= 1;
        this.injected.error++;
        return { kind: 'error', status: s.errorStatus };
      }
    }
    return { kind: 'none' };
  }
}
