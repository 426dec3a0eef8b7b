// DNS endpoints of nodes and Peers, resolved in the background with a cache: one bad name never
// blocks a reconcile. A plan uses the addresses known so far; a new answer asks for another plan.
import { lookup } from 'node:dns/promises';
import { splitHostPort } from '../../plan/endpoint.js';
import type { Logger } from '../log.js';
import type { Metrics } from './metrics.js';

const REFRESH_MS = 30_000;

export interface DnsCacheOptions {
  log: Logger;
  metrics: Pick<Metrics, 'dnsFailures'>;
  /** An answer changed an address: plan again. */
  changed: () => void;
}

export class DnsCache {
  private readonly cache = new Map<string, { ip: string | null; at: number }>();

  constructor(private readonly o: DnsCacheOptions) {}

  /** The known addresses of `want` (`host:port` endpoints); stale or new names are looked up. */
  resolved(want: ReadonlySet<string>): [string, string][] {
    const out: [string, string][] = [];
    // Names no node or Peer uses any more are forgotten.
    for (const ep of this.cache.keys()) if (!want.has(ep)) this.cache.delete(ep);
    for (const ep of want) {
      const c = this.cache.get(ep);
      if (c?.ip) out.push([ep, c.ip]);
      if (!c || Date.now() - c.at > REFRESH_MS) {
        this.cache.set(ep, { ip: c?.ip ?? null, at: Date.now() });
        this.lookup(ep);
      }
    }
    return out;
  }

  private lookup(ep: string): void {
    const host = splitHostPort(ep)?.host ?? ep;
    lookup(host, { family: 4 })
      .catch(() => lookup(host))
      .then((a) => {
        const changed = this.cache.get(ep)?.ip !== a.address;
        this.cache.set(ep, { ip: a.address, at: Date.now() });
        if (changed) this.o.changed();
      })
      .catch((e: Error) => {
        this.o.metrics.dnsFailures.inc();
        this.o.log.warn('failed to resolve endpoint', { endpoint: ep, error: e.message });
      });
  }
}
