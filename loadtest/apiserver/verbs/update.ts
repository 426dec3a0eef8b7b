// update (PUT): the whole object replaced; the store checks resourceVersion conflicts.
import { StatusError, type KubeObject } from '../types.js';
import type { VerbContext, VerbRequest } from './context.js';

export async function update(s: VerbContext, { req, res, r }: VerbRequest): Promise<void> {
  const body = (await s.readBody(req)) as KubeObject;
  if (!body || typeof body !== 'object') throw new StatusError(400, 'BadRequest', 'empty body');
  const e = s.store.update(r.t, r.ns, r.name!, body);
  s.counters.request('update', r.t.resource, 200);
  return s.send(res, 200, e.json);
}
