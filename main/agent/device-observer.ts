// The WireGuard device's peers as last read, for NAT discovery (design §6.7): plans use the last reading
// rather than reading the device on every change (the read would sit on the critical path).
import type { IoClient } from '../../workers/io-client.js';
import type { Logger } from '../log.js';

export type ObservedPeer = { publicKey: string; endpoint: string | null; lastHandshake: number };

export interface DeviceObserverOptions {
  io: Pick<IoClient, 'observe'>;
  log: Logger;
  /** How many the last plan could discover an endpoint for (null: no plan yet). */
  candidates: () => number | null;
  /** The reading changed: plan again. */
  changed: () => void;
}

/** A read occupies the I/O worker: after an apply at most one per 5 s, the periodic one always. */
const MIN_GAP_MS = 5_000;

export class DeviceObserver {
  /** The last reading (null: none yet). */
  observed: ObservedPeer[] | null = null;
  private observing = false;
  private lastRead = 0;
  private stopped = false;

  constructor(private readonly o: DeviceObserverOptions) {}

  stop(): void {
    this.stopped = true;
  }

  /** Reads the device in the background (`force`: the periodic read); a change asks for a plan. */
  refresh(force = false): void {
    if (this.observing || this.stopped) return;
    if (this.o.candidates() === 0) {
      // No keepalive node and no Peer: discovery cannot find anything; the device is not read.
      if (this.observed === null || this.observed.length > 0) {
        this.observed = [];
        this.o.changed();
      }
      return;
    }
    if (!force && Date.now() - this.lastRead < MIN_GAP_MS) return;
    this.lastRead = Date.now();
    this.observing = true;
    this.o.io.observe()
      .then((st) => {
        // Only peers that completed a handshake can yield a discovered endpoint.
        const next = st.peers.filter((p) => p.lastHandshake > 0).map((p) => ({ publicKey: p.publicKey, endpoint: p.endpoint, lastHandshake: p.lastHandshake }));
        const key = (x: ObservedPeer[] | null) => JSON.stringify(x?.map((p) => [p.publicKey, p.endpoint]) ?? null);
        const changed = key(next) !== key(this.observed);
        this.observed = next;
        if (changed) this.o.changed();
      })
      .catch((e: Error) => this.o.log.warn('could not read the WireGuard device', { error: e.message }))
      .finally(() => (this.observing = false));
  }
}
