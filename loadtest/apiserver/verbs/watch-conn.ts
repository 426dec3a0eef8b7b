// One open watch stream: filters the store's events for its client, writes them in the client's
// representation, and closes itself when the client falls too far behind.
import type http from 'node:http';
import { tableColumns, tableRow } from '../discovery.js';
import type { SimCounters } from '../metrics.js';
import type { Selector } from '../selectors.js';
import { eventLine, type StoredEvent, type StoreWatcher } from '../store.js';
import type { KubeObject, ResourceType, StatusError } from '../types.js';
import { apiVersionOf, metadataLine } from './media.js';

/** What a watch stream needs of its server. */
export interface WatchServer {
  readonly counters: SimCounters;
  readonly maxBacklog: number;
}

/** One open watch stream. */
export class WatchConn implements StoreWatcher {
  closed = false;
  stalled = false;
  /** Bytes of the initial synthetic events still tolerated in the send buffer. */
  burst = 0;
  lastRv = 0;
  timer: NodeJS.Timeout | undefined;
  namespace?: string;
  /** The server generation (restart count) that accepted it: a restart's grace ends it. */
  gen = 0;

  constructor(
    readonly srv: WatchServer,
    readonly t: ResourceType,
    readonly res: http.ServerResponse,
    ns: string | undefined,
    readonly filter: Selector | undefined,
    readonly asTable: boolean,
    readonly bookmarks: boolean,
    readonly asMetadata = false,
  ) {
    this.namespace = ns;
  }

  write(buf: Buffer, events = 1): void {
    if (this.closed || this.res.destroyed) return;
    this.res.write(buf);
    const c = this.srv.counters;
    c.watchEventsSent += events;
    c.watchBytesSent += buf.length;
    c.bytesSent += buf.length;
    // A real API server drops a watcher whose buffer fills up rather than slowing everyone down.
    // The initial-events burst (a whole list's worth) is allowed on top until it has drained.
    if (this.res.writableLength > this.srv.maxBacklog + this.burst) {
      c.slowWatchersClosed++;
      this.res.destroy();
    }
  }

  deliver(ev: StoredEvent): void {
    if (this.closed || this.stalled) return;
    let type: string = ev.type;
    if (this.filter) {
      const meta = (labels: Record<string, string> | undefined) => ({ metadata: { name: ev.name, namespace: ev.namespace, labels } }) as KubeObject;
      const now = this.filter(meta(ev.labels));
      if (ev.type === 'MODIFIED') {
        const before = this.filter(meta(ev.prevLabels));
        if (now && !before) type = 'ADDED';
        else if (!now && before) type = 'DELETED';
        else if (!now) return;
      } else if (!now) return;
    }
    this.lastRv = ev.rv;
    if (this.asTable) {
      this.write(this.tableLine(type, JSON.parse(ev.json.toString('utf8')) as KubeObject));
    } else if (this.asMetadata) {
      this.write(metadataLine(type, ev));
    } else {
      this.write(type === ev.type ? ev.line : eventLine(type, ev.json));
    }
  }

  tableLine(type: string, obj: KubeObject): Buffer {
    const tbl = { kind: 'Table', apiVersion: 'meta.k8s.io/v1', metadata: { resourceVersion: obj.metadata.resourceVersion }, columnDefinitions: tableColumns(this.t), rows: [tableRow(this.t, obj)] };
    return Buffer.from(JSON.stringify({ type, object: tbl }) + '\n');
  }

  bookmark(rv: number, initialEventsEnd = false): void {
    const md = initialEventsEnd
      ? `{"resourceVersion":"${rv}","creationTimestamp":null,"annotations":{"k8s.io/initial-events-end":"true"}}`
      : `{"resourceVersion":"${rv}","creationTimestamp":null}`;
    this.write(Buffer.from(`{"type":"BOOKMARK","object":{"kind":"${this.t.kind}","apiVersion":"${apiVersionOf(this.t)}","metadata":${md}}}\n`));
  }

  errorEvent(err: StatusError): void {
    this.write(Buffer.from(JSON.stringify({ type: 'ERROR', object: err.toStatus() }) + '\n'));
  }

  close(abrupt = false): void {
    if (this.closed) return;
    if (abrupt) this.res.destroy();
    else this.res.end();
  }
}
