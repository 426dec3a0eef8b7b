// list: a collection, filtered by label and field selectors, paged with limit and continue, at a
// resourceVersion; as JSON (the stored objects concatenated), a Table or metadata only.
import { table } from '../discovery.js';
import { and, fieldSelector, labelSelector, pinnedName } from '../selectors.js';
import { parseItem } from '../store.js';
import type { VerbContext, VerbRequest } from './context.js';
import { apiVersionOf, JSON_CT, metadataOf, wantsMetadata, wantsTable } from './media.js';

const COMMA = Buffer.from(',');
const LIST_TAIL = Buffer.from(']}');

export function list(s: VerbContext, { req, res, r, q }: VerbRequest): void {
  const fs = q.get('fieldSelector');
  const filter = and(labelSelector(q.get('labelSelector')), fieldSelector(fs));
  const limit = q.get('limit') ? Number(q.get('limit')) : undefined;
  const l = s.store.list(r.t, {
    namespace: r.ns,
    filter,
    name: pinnedName(fs),
    limit,
    continueToken: q.get('continue') ?? undefined,
    resourceVersion: q.get('resourceVersion') ?? undefined,
    resourceVersionMatch: q.get('resourceVersionMatch') ?? undefined,
  });
  s.counters.request('list', r.t.resource, 200);
  if (wantsTable(req)) {
    return s.send(res, 200, table(r.t, l.items.map(parseItem), String(l.rv), true, l.continueToken));
  }
  if (wantsMetadata(req)) {
    const metadata = { resourceVersion: String(l.rv), ...(l.continueToken ? { continue: l.continueToken } : {}), ...(l.remainingItemCount !== undefined ? { remainingItemCount: l.remainingItemCount } : {}) };
    return s.send(res, 200, { kind: 'PartialObjectMetadataList', apiVersion: 'meta.k8s.io/v1', metadata, items: l.items.map((it) => metadataOf(it.json)) });
  }
  const md = [`"resourceVersion":"${l.rv}"`];
  if (l.continueToken) md.push(`"continue":"${l.continueToken}"`);
  if (l.remainingItemCount !== undefined) md.push(`"remainingItemCount":${l.remainingItemCount}`);
  const head = Buffer.from(`{"kind":"${r.t.listKind}","apiVersion":"${apiVersionOf(r.t)}","metadata":{${md.join(',')}},"items":[`);
  // Stored objects are already JSON: the list is their concatenation, written with one writev.
  let total = head.length + LIST_TAIL.length + Math.max(0, l.items.length - 1);
  for (const i of l.items) total += i.json.length;
  res.writeHead(200, s.headers(res, { 'content-type': JSON_CT, 'content-length': String(total) }));
  res.cork();
  res.write(head);
  l.items.forEach((it, i) => {
    if (i > 0) res.write(COMMA);
    res.write(it.json);
  });
  res.end(LIST_TAIL);
  s.counters.bytesSent += total;
}
