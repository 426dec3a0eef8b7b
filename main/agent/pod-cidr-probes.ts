// GETs of the Nodes that have no pod CIDR yet (a new Node before the IPAM controller assigned
// one): the metadata-only watch cannot show it when it comes, and a Node without one is not ready (design §2.4.1).
import type { NodeObject } from '../../plan/node.js';
import { dualPodCIDRs } from './node-record.js';
import type { KubeClient } from '../../watch/kube.js';
import type { Logger } from '../log.js';

export interface PodCIDRProbesOptions {
  client: Pick<KubeClient, 'request'>;
  log: Logger;
  /** Hands a found pod CIDR to the held record (Reflector.amend). */
  found: (name: string, podCIDR: string, podCIDRs?: string[]) => void;
}

/** At most 4 GETs at a time, each Node backing off from 1 s, doubling up to 5 min. */
export class PodCIDRProbes {
  private readonly probes = new Map<string, { next: number; delayMs: number; inflight: boolean }>();
  private inflight = 0;
  private stopped = false;

  constructor(private readonly o: PodCIDRProbesOptions) {}

  get size(): number {
    return this.probes.size;
  }

  /** A Node was seen: probe it now if it has no pod CIDR (and is not probed already). */
  seen(name: string, obj: NodeObject): void {
    if (obj.spec?.podCIDR || this.probes.has(name)) return;
    this.probes.set(name, { next: 0, delayMs: 1000, inflight: false });
    this.run();
  }

  forget(name: string): void {
    this.probes.delete(name);
  }

  stop(): void {
    this.stopped = true;
  }

  /** Starts the probes that are due. */
  run(): void {
    const now = Date.now();
    for (const [name, p] of this.probes) {
      if (this.inflight >= 4 || this.stopped) return;
      if (p.inflight || now < p.next) continue;
      p.inflight = true;
      this.inflight++;
      void this.o.client
        .request('GET', `/api/v1/nodes/${encodeURIComponent(name)}`, { timeoutMs: 10_000 })
        .then((body) => {
          const podCIDR = (body as NodeObject | null)?.spec?.podCIDR;
          if (!podCIDR) throw new Error('no pod CIDR yet');
          this.probes.delete(name);
          this.o.found(name, podCIDR, dualPodCIDRs(body as NodeObject));
        })
        .catch((err: Error) => {
          this.o.log.debug('node has no pod CIDR yet', { node: name, error: err.message });
          p.next = Date.now() + p.delayMs;
          p.delayMs = Math.min(p.delayMs * 2, 300_000);
        })
        .finally(() => {
          p.inflight = false;
          this.inflight--;
        });
    }
  }
}
