// watch: a stream of events from a resourceVersion (or the current state as ADDED events first),
// with bookmarks, selectors and the client's representation; a too-old resourceVersion is an
// in-stream 410, as the watch cache answers it.
import { and, fieldSelector, labelSelector } from '../selectors.js';
import { eventLine, parseItem, type StoredEvent } from '../store.js';
import { StatusError } from '../types.js';
import type { VerbContext, VerbRequest } from './context.js';
import { JSON_CT, metadataOf, wantsMetadata, wantsTable } from './media.js';
import { WatchConn } from './watch-conn.js';

export function watch(s: VerbContext, { req, res, r, q, injectGone }: VerbRequest): void {
  let fs = q.get('fieldSelector');
  if (r.name !== undefined) fs = fs ? `${fs},metadata.name=${r.name}` : `metadata.name=${r.name}`;
  const filter = and(labelSelector(q.get('labelSelector')), fieldSelector(fs));
  const rvParam = q.get('resourceVersion') ?? '';
  const allowBookmarks = q.get('allowWatchBookmarks') === 'true';
  const sie = q.get('sendInitialEvents');
  if (sie === 'true') {
    if (q.get('resourceVersionMatch') !== 'NotOlderThan') {
      throw new StatusError(422, 'Invalid', 'resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan');
    }
    if (!allowBookmarks) throw new StatusError(422, 'Invalid', 'allowWatchBookmarks: Forbidden: sendInitialEvents requires allowWatchBookmarks=true');
  }
  let fromRv: number | undefined;
  if (rvParam !== '' && rvParam !== '0') {
    fromRv = Number(rvParam);
    if (!Number.isInteger(fromRv) || fromRv < 0) throw new StatusError(400, 'BadRequest', `invalid resource version: ${rvParam}`);
  }
  // rv unset or "0" means "get state and start": synthetic ADDED events for what exists now.
  const initial = sie === 'true' || (sie === null && fromRv === undefined);
  const asTable = wantsTable(req);
  const asMetadata = !asTable && wantsMetadata(req);
  const w = new WatchConn(s, r.t, res, r.t.namespaced ? r.ns : undefined, filter, asTable, allowBookmarks, asMetadata);
  const stalled = s.faults.settings.stallWatches;
  s.counters.request('watch', r.t.resource, 200);
  s.counters.watchersOpened++;
  w.gen = s.generationOf(res) ?? s.gen;
  res.writeHead(200, s.headers(res, { 'content-type': JSON_CT, 'cache-control': 'no-cache, private', 'transfer-encoding': 'chunked' }));
  // A stalled (half-open) watch never even shows its headers.
  if (!stalled) res.flushHeaders();
  res.socket?.setNoDelay(true);
  if (injectGone) {
    w.errorEvent(new StatusError(410, 'Expired', 'too old resource version: injected fault'));
    res.end();
    return;
  }
  let reg: { backlog: StoredEvent[]; cancel: () => void };
  try {
    reg = s.store.watch(r.t, w, fromRv ?? s.store.rv);
  } catch (err) {
    // Too old: like the watch cache, answer 200 and an in-stream ERROR 410, then end.
    w.errorEvent(err instanceof StatusError ? err : new StatusError(500, 'InternalError', String(err)));
    res.end();
    return;
  }
  s.watches.add(w);
  s.counters.watchers = s.watches.size;
  const timeout = q.get('timeoutSeconds') ? Number(q.get('timeoutSeconds')) : s.watchTimeout * (1 + Math.random());
  w.timer = setTimeout(() => res.end(), Math.max(0, timeout) * 1000);
  res.on('close', () => {
    w.closed = true;
    clearTimeout(w.timer);
    reg.cancel();
    s.watches.delete(w);
    s.counters.watchers = s.watches.size;
  });
  if (stalled) {
    w.stalled = true;
    return;
  }
  if (initial) {
    const l = s.store.list(r.t, { namespace: w.namespace, filter });
    for (const it of l.items) w.burst += it.json.length + 32;
    res.once('drain', () => (w.burst = 0));
    for (const it of l.items) {
      if (asTable) w.write(w.tableLine('ADDED', parseItem(it)));
      else if (asMetadata) w.write(Buffer.from(JSON.stringify({ type: 'ADDED', object: metadataOf(it.json) }) + '\n'));
      else w.write(eventLine('ADDED', it.json));
    }
    if (sie === 'true') w.bookmark(s.store.rv, true);
  } else {
    for (const ev of reg.backlog) w.deliver(ev);
  }
}
