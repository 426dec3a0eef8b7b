// delete (one object, with optional preconditions) and deletecollection (every object matching
// the selectors).
import { and, fieldSelector, labelSelector } from '../selectors.js';
import { parseItem } from '../store.js';
import type { VerbContext, VerbRequest } from './context.js';
import { apiVersionOf } from './media.js';

export async function deleteOne(s: VerbContext, { req, res, r }: VerbRequest): Promise<void> {
  const body = (await s.readBody(req)) as { preconditions?: { resourceVersion?: string; uid?: string } } | undefined;
  const e = s.store.delete(r.t, r.ns, r.name!, body?.preconditions);
  s.counters.request('delete', r.t.resource, 200);
  return s.send(res, 200, e.json);
}

export function deleteCollection(s: VerbContext, { res, r, q }: VerbRequest): void {
  const filter = and(labelSelector(q.get('labelSelector')), fieldSelector(q.get('fieldSelector')));
  const l = s.store.list(r.t, { namespace: r.ns, filter });
  const deleted = l.items.map((i) => parseItem(i)).map((o) => s.store.delete(r.t, o.metadata.namespace, o.metadata.name!).obj);
  s.counters.request('deletecollection', r.t.resource, 200);
  return s.send(res, 200, { kind: r.t.listKind, apiVersion: apiVersionOf(r.t), metadata: { resourceVersion: String(s.store.rv) }, items: deleted });
}
