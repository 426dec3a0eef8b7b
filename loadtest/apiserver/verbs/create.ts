// create (POST to a collection): the body must be an object of the collection's kind.
import { StatusError, type KubeObject } from '../types.js';
import type { VerbContext, VerbRequest } from './context.js';
import { apiVersionOf } from './media.js';

export async function create(s: VerbContext, { req, res, r }: VerbRequest): Promise<void> {
  const body = (await s.readBody(req)) as KubeObject;
  if (!body || typeof body !== 'object') throw new StatusError(400, 'BadRequest', 'empty body');
  if (body.kind && body.kind !== r.t.kind) throw new StatusError(400, 'BadRequest', `the API version in the data (${body.apiVersion}) does not match the expected API version (${apiVersionOf(r.t)})`);
  const e = s.store.create(r.t, body, r.ns);
  s.counters.request('create', r.t.resource, 201);
  return s.send(res, 201, e.json);
}
