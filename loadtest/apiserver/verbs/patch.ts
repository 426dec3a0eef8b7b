// patch: merge, strategic merge or JSON patch, chosen by the request's content type.
import type { PatchType } from '../store.js';
import { StatusError } from '../types.js';
import type { VerbContext, VerbRequest } from './context.js';

export async function patch(s: VerbContext, { req, res, r }: VerbRequest): Promise<void> {
  const ct = (req.headers['content-type'] ?? '').split(';')[0].trim();
  const type: PatchType | undefined =
    ct === 'application/merge-patch+json' ? 'merge' : ct === 'application/strategic-merge-patch+json' ? 'strategic' : ct === 'application/json-patch+json' ? 'json' : undefined;
  if (!type) {
    throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json`);
  }
  const body = await s.readBody(req);
  const e = s.store.patch(r.t, r.ns, r.name!, type, body);
  s.counters.request('patch', r.t.resource, 200);
  return s.send(res, 200, e.json);
}
