// Prometheus metrics. The hot paths bump plain numbers; prom-client reads them at scrape time,
// so fan-out to many watchers costs no metric calls per write.
import { Counter, Gauge, Registry } from 'prom-client';

export class SimCounters {
  requests = new Map<string, number>(); // "verb code resource" → count
  bytesSent = 0;
  watchEventsSent = 0;
  watchBytesSent = 0;
  watchersOpened = 0;
  slowWatchersClosed = 0;
  watchers = 0;

  request(verb: string, resource: string, code: number): void {
    const k = `${verb}\u0000${code}\u0000${resource}`;
    this.requests.set(k, (this.requests.get(k) ?? 0) + 1);
  }

  totalRequests(): number {
    let n = 0;
    for (const v of this.requests.values()) n += v;
    return n;
  }
}

export function buildRegistry(c: SimCounters, store: { counters: { writes: number }; rv: number; objectCounts(): Record<string, number> }): Registry {
  const reg = new Registry();
  // prom-client counters only go up through inc(); collect() adds the difference since the last
  // scrape so the exposed value always equals the plain counter.
  const mirror = (name: string, help: string, read: () => number): void => {
    let last = 0;
    new Counter({
      name,
      help,
      registers: [reg],
      collect() {
        const v = read();
        if (v > last) this.inc(v - last);
        last = v;
      },
    });
  };
  mirror('apisim_writes_total', 'Committed writes (create, update, patch, delete).', () => store.counters.writes);
  mirror('apisim_watch_events_sent_total', 'Watch events written to watchers (one per watcher per event).', () => c.watchEventsSent);
  mirror('apisim_watch_bytes_sent_total', 'Bytes of watch events written to watchers.', () => c.watchBytesSent);
  mirror('apisim_bytes_sent_total', 'Response body bytes sent, watches included.', () => c.bytesSent);
  mirror('apisim_watches_opened_total', 'Watch requests accepted.', () => c.watchersOpened);
  mirror('apisim_slow_watchers_closed_total', 'Watches closed because their client did not keep up.', () => c.slowWatchersClosed);
  const lastReq = new Map<string, number>();
  new Counter({
    name: 'apisim_requests_total',
    help: 'API requests by verb, resource and HTTP code.',
    labelNames: ['verb', 'resource', 'code'],
    registers: [reg],
    collect() {
      for (const [k, v] of c.requests) {
        const [verb, code, resource] = k.split('\u0000');
        const d = v - (lastReq.get(k) ?? 0);
        if (d > 0) this.inc({ verb, resource, code }, d);
        lastReq.set(k, v);
      }
    },
  });
  new Gauge({ name: 'apisim_watchers', help: 'Open watches.', registers: [reg], collect() { this.set(c.watchers); } });
  new Gauge({ name: 'apisim_resource_version', help: 'Current resourceVersion.', registers: [reg], collect() { this.set(store.rv); } });
  new Gauge({
    name: 'apisim_objects',
    help: 'Stored objects by resource.',
    labelNames: ['resource'],
    registers: [reg],
    collect() {
      for (const [r, n] of Object.entries(store.objectCounts())) this.set({ resource: r }, n);
    },
  });
  return reg;
}
