// get: one object, as JSON, a Table or its metadata.
import { table } from '../discovery.js';
import type { VerbContext, VerbRequest } from './context.js';
import { metadataOf, wantsMetadata, wantsTable } from './media.js';

export function get(s: VerbContext, { req, res, r }: VerbRequest): void {
  const e = s.store.get(r.t, r.ns, r.name!);
  s.counters.request('get', r.t.resource, 200);
  if (wantsTable(req)) return s.send(res, 200, table(r.t, [e.obj], e.obj.metadata.resourceVersion ?? ''));
  if (wantsMetadata(req)) return s.send(res, 200, metadataOf(e.json));
  return s.send(res, 200, e.json);
}
