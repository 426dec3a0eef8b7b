// A list+watch loop that never gives up (the client library's informer stops for good on any
// error but 410). It lists in pages, watches from the last resourceVersion with bookmarks,
// relists on 410 Gone (HTTP or in-stream), backs off with jitter on other errors (honouring
// Retry-After), and aborts a watch that has gone silent (a half-open connection). After every
// relist it emits the difference against what it held, deletes included, so consumers never miss
// an object that vanished while the watch was down. A line it cannot decode, or one too long to
// be an event, ends the watch and relists: the event it held is otherwise lost.
import { INVALID_REASONS, InvalidResponseError, KubeError, type InvalidReason } from './kube-error.js';
import type { KubeClient } from './kube.js';
import type { DropPaths } from './list-items.js';
import { decodeWatchEvent, type KubeObject, type WatchEvent } from './watch-event.js';

export type { KubeObject };

export type ReflectorEvent<T> =
  | { type: 'add'; name: string; obj: T }
  | { type: 'update'; name: string; obj: T; old: T }
  | { type: 'delete'; name: string; old: T };

/** What the reflector logs through; main/log.ts's Logger is one (watch/ imports nothing above it). */
export interface WatchLog {
  debug(msg: string, f?: Record<string, unknown>): void;
  info(msg: string, f?: Record<string, unknown>): void;
  warn(msg: string, f?: Record<string, unknown>): void;
  error(msg: string, f?: Record<string, unknown>): void;
}

export interface ReflectorStats {
  lists: number;
  relists: number;
  watches: number;
  watchRestarts: number;
  watchErrors: number;
  events: number;
  bookmarks: number;
  bytes: number;
  stalls: number;
  /** Responses that could not be used, by reason; each one relisted. */
  invalid: Record<InvalidReason, number>;
}

export interface ReflectorOptions<T> {
  client: KubeClient;
  /** Collection path, e.g. `/api/v1/nodes`. */
  path: string;
  /** Converts a full object into the record the consumer keeps (slim, plain data). */
  slim: (obj: KubeObject) => T;
  onEvent: (e: ReflectorEvent<T>) => void;
  /** Called after every complete list (the first one means "synced"). */
  onSynced?: () => void;
  /**
   * Called after each page of the first list, once its items were passed on: before the first
   * sync nothing is planned, so consumers can take each page while the next one is fetched.
   */
  onPage?: () => void;
  log: WatchLog;
  pageSize?: number;
  /** Server-side watch timeout; randomised in [t, 2t) as client-go does. */
  watchTimeoutSeconds?: number;
  /** Abort a watch that delivered nothing (not even a bookmark) for this long. */
  watchdogMs?: number;
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  requestTimeoutMs?: number;
  /** Members of listed items that `slim` never reads, dropped before they are parsed (a Node's `status`). */
  listDrop?: DropPaths;
  /**
   * Accept header of the watch (not the list), e.g. a metadata-only watch. A server may ignore
   * it and send full objects: `slim` must take either.
   */
  watchAccept?: string;
  /**
   * Completes a watched record from the one held before (what a metadata-only watch leaves out
   * and is immutable, like a Node's pod CIDR). It may return `old` itself, updated in place, to
   * keep the held record: the event then leaves nothing behind for the old generation.
   */
  merge?: (fresh: T, old: T | undefined) => T;
}

class Gone extends Error {}

// The abort listener goes when the sleep ends either way: the signal lives as long as the
// reflector, and one listener left per retry grew without bound through a long outage.
const sleep = (ms: number, signal: AbortSignal) =>
  new Promise<void>((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });

export class Reflector<T> {
  readonly store = new Map<string, T>();
  readonly stats: ReflectorStats = {
    lists: 0, relists: 0, watches: 0, watchRestarts: 0, watchErrors: 0, events: 0, bookmarks: 0, bytes: 0, stalls: 0,
    invalid: Object.fromEntries(INVALID_REASONS.map((r) => [r, 0])) as Record<InvalidReason, number>,
  };
  private rv = '';
  private synced = false;
  private stopper = new AbortController();
  private loop: Promise<void> | null = null;
  private failures = 0;
  /** Invalid responses in a row: they back off apart from `failures`, which every good list clears. */
  private strikes = 0;
  /** False from a failed list/watch until the next list or accepted watch: the API is unreachable. */
  connected = false;

  constructor(private readonly o: ReflectorOptions<T>) {}

  get hasSynced(): boolean {
    return this.synced;
  }

  get resourceVersion(): string {
    return this.rv;
  }

  /**
   * Amends a held record with what was fetched out of band (e.g. a GET for the fields a
   * metadata-only watch leaves out) and emits it as an update. No-op when the object is gone.
   */
  amend(name: string, f: (cur: T) => T): void {
    const old = this.store.get(name);
    if (old === undefined) return;
    const obj = f(old);
    if (obj === old) return;
    this.store.set(name, obj);
    this.o.onEvent({ type: 'update', name, obj, old });
  }

  start(): void {
    if (!this.loop) this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.stopper.abort();
    await this.loop;
  }

  private backoff(retryAfterMs: number | null): number {
    this.failures = Math.min(this.failures + 1, 20);
    return this.delay(this.failures, retryAfterMs);
  }

  private delay(attempt: number, retryAfterMs: number | null): number {
    const base = this.o.backoffInitialMs ?? 200;
    const max = this.o.backoffMaxMs ?? 30_000;
    const exp = Math.min(max, base * 2 ** (attempt - 1));
    // Full jitter keeps a fleet of agents from retrying in lockstep after an API outage.
    const jittered = exp / 2 + Math.random() * (exp / 2);
    return Math.min(max, Math.max(retryAfterMs ?? 0, jittered));
  }

  private async run(): Promise<void> {
    const signal = this.stopper.signal;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.list(signal);
          needList = false;
          this.failures = 0;
        }
        await this.watch(signal);
        this.failures = 0;
        this.strikes = 0;
      } catch (e) {
        if (signal.aborted) break;
        if (e instanceof InvalidResponseError) {
          // Hardening (departs from Kilo): client-go skips an event type it does not know and
          // resumes from the last resourceVersion after an undecodable line, which replays the
          // same line or loses the event. A relist cannot miss it; strikes pace a server that
          // keeps sending junk (each good list clears `failures`, not these).
          this.stats.invalid[e.reason]++;
          this.stats.watchErrors++;
          this.connected = false;
          needList = true;
          this.strikes = Math.min(this.strikes + 1, 20);
          const wait = this.delay(this.strikes, null);
          this.o.log.warn('invalid list or watch response; relisting', { path: this.o.path, reason: e.reason, bytes: e.bytes, retryInMs: Math.round(wait) });
          await sleep(wait, signal);
          continue;
        }
        if (e instanceof Gone) {
          this.stats.relists++;
          this.o.log.info('resource version too old; relisting', { path: this.o.path, resourceVersion: this.rv });
          needList = true;
          await sleep(Math.random() * 100, signal);
          continue;
        }
        this.stats.watchErrors++;
        this.connected = false;
        const wait = this.backoff(e instanceof KubeError ? e.retryAfterMs : null);
        this.o.log.warn('list/watch failed; retrying', { path: this.o.path, error: (e as Error).message, retryInMs: Math.round(wait) });
        await sleep(wait, signal);
      }
    }
  }

  private async list(signal: AbortSignal): Promise<void> {
    const seen = new Map<string, T>();
    // Until the first sync, each page is passed on as it arrives (nothing plans before the sync, and
    // the consumer's work overlaps the next page's fetch); a relist keeps the view it had until the
    // new one is whole.
    const stream = !this.synced;
    let cont = '';
    let rv = '';
    for (let page = 0; page < 100_000; page++) {
      const q = new URLSearchParams({ limit: String(this.o.pageSize ?? 500) });
      if (cont) q.set('continue', cont);
      const items = new Map<string, T>();
      let body: { metadata?: { resourceVersion?: string; continue?: string }; items?: KubeObject[] };
      try {
        // Item by item as the page arrives: each whole object dies young, only its slim record stays.
        body = await this.o.client.requestList(`${this.o.path}?${q}`, (text) => this.listed(text, items), { signal, timeoutMs: this.o.requestTimeoutMs ?? 60_000, drop: this.o.listDrop });
      } catch (e) {
        // An expired continue token: start the list again from a fresh snapshot.
        if (e instanceof KubeError && e.status === 410) {
          this.stats.relists++;
          seen.clear();
          cont = '';
          continue;
        }
        throw e;
      }
      if (!body || !Array.isArray(body.items)) throw new InvalidResponseError(`list ${this.o.path}: response has no items`, 'not_object', 0);
      for (const [name, obj] of items) seen.set(name, obj);
      if (stream) {
        for (const [name, obj] of items) this.put(name, obj);
        this.o.onPage?.();
      }
      rv = body.metadata?.resourceVersion ?? rv;
      cont = body.metadata?.continue ?? '';
      if (!cont) break;
    }
    // Watching from '' would start at "now" and lose what changed since the list.
    if (typeof rv !== 'string' || rv === '') throw new InvalidResponseError(`list ${this.o.path}: response has no resourceVersion`, 'no_resource_version', 0);
    this.stats.lists++;
    // Emit the difference: adds and updates for what is listed, deletes for what vanished.
    if (!stream) for (const [name, obj] of seen) this.put(name, obj);
    for (const [name, old] of [...this.store]) {
      if (!seen.has(name)) {
        this.store.delete(name);
        this.o.onEvent({ type: 'delete', name, old });
      }
    }
    this.rv = rv;
    this.synced = true;
    this.connected = true;
    this.o.onSynced?.();
  }

  /** A listed record held and passed on: an add, or an update of what was held. */
  private put(name: string, obj: T): void {
    const old = this.store.get(name);
    this.store.set(name, obj);
    this.o.onEvent(old === undefined ? { type: 'add', name, obj } : { type: 'update', name, obj, old });
  }

  /** One listed item: parsed, and kept slim under its name (an item without one is skipped). */
  private listed(text: string, seen: Map<string, T>): void {
    let item: KubeObject | null;
    try {
      item = JSON.parse(text) as KubeObject | null;
    } catch {
      throw new InvalidResponseError(`list ${this.o.path}: an item is not JSON (${text.length} bytes)`, 'not_json', text.length);
    }
    const name = item?.metadata?.name;
    if (typeof name !== 'string' || name === '') return;
    seen.set(name, this.o.slim(item!));
  }

  private async watch(signal: AbortSignal): Promise<void> {
    const t = this.o.watchTimeoutSeconds ?? 300;
    const timeout = Math.floor(t + Math.random() * t);
    const q = new URLSearchParams({ watch: 'true', resourceVersion: this.rv, allowWatchBookmarks: 'true', timeoutSeconds: String(timeout) });
    const ctl = new AbortController();
    const abort = () => ctl.abort();
    signal.addEventListener('abort', abort, { once: true });
    const watchdogMs = this.o.watchdogMs ?? Math.max(90_000, (timeout + 30) * 1000);
    let stalled = false;
    // The watchdog re-arms itself from the time of the last bytes: no timer churn per event.
    let lastBytes = performance.now();
    const check = () => {
      const silent = performance.now() - lastBytes;
      if (silent >= watchdogMs) {
        stalled = true;
        ctl.abort();
      } else timer = setTimeout(check, watchdogMs - silent);
    };
    let timer = setTimeout(check, watchdogMs);
    const pet = () => {
      lastBytes = performance.now();
    };
    let gone = false;
    let failure: Error | null = null;
    this.stats.watches++;
    try {
      await this.o.client.stream(`${this.o.path}?${q}`, {
        onOpen: () => {
          this.connected = true;
        },
        onBytes: (n) => {
          this.stats.bytes += n;
          pet();
        },
        onLine: (line) => {
          if (gone || failure) return;
          const ev = decodeWatchEvent(line);
          // Errors are recorded and end the stream; throwing from a stream callback would not
          // reach this loop.
          let err: Error | 'gone' | null;
          if ('error' in ev) err = new InvalidResponseError(`watch ${this.o.path}: undecodable event (${ev.error})`, ev.error, Buffer.byteLength(line));
          else {
            try {
              err = this.handle(ev);
            } catch (e) {
              // A consumer or converter bug must not kill the watch: report it and go on.
              this.o.log.error('watch: event handling failed', { path: this.o.path, error: (e as Error).message });
              err = null;
            }
          }
          if (err === 'gone') gone = true;
          else if (err) failure = err;
          if (err) ctl.abort();
        },
      }, ctl.signal, this.o.watchAccept);
    } catch (e) {
      if (gone) throw new Gone();
      if (failure) throw failure;
      if (e instanceof KubeError && e.status === 410) throw new Gone();
      if (stalled) {
        this.stats.stalls++;
        this.stats.watchRestarts++;
        this.o.log.warn('watch went silent; restarting it', { path: this.o.path, silentMs: watchdogMs });
        return;
      }
      throw e;
    } finally {
      clearTimeout(timer);
      signal.removeEventListener('abort', abort);
    }
    if (gone) throw new Gone();
    if (failure) throw failure;
    // The server ended the watch (its timeout): resume from the last resourceVersion.
    this.stats.watchRestarts++;
  }

  private handle(ev: WatchEvent): Error | 'gone' | null {
    switch (ev.type) {
      case 'BOOKMARK':
        this.stats.bookmarks++;
        this.rv = ev.rv;
        return null;
      case 'ERROR':
        if (ev.code === 410) return 'gone';
        return new KubeError(`watch ${this.o.path}: ${ev.message}`, ev.code);
      default: {
        const name = ev.name;
        this.stats.events++;
        this.rv = ev.rv;
        const old = this.store.get(name);
        if (ev.type === 'DELETED') {
          if (old === undefined) return null;
          this.store.delete(name);
          this.o.onEvent({ type: 'delete', name, old });
          return null;
        }
        const fresh = this.o.slim(ev.object);
        const rec = this.o.merge ? this.o.merge(fresh, old) : fresh;
        this.store.set(name, rec);
        this.o.onEvent(old === undefined ? { type: 'add', name, obj: rec } : { type: 'update', name, obj: rec, old });
        return null;
      }
    }
  }
}
