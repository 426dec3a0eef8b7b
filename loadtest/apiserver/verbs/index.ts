// The simulator's verbs: which one a request is, and its handler.
import type { Route, VerbHandler } from './context.js';
import { create } from './create.js';
import { deleteCollection, deleteOne } from './delete.js';
import { get } from './get.js';
import { list } from './list.js';
import { patch } from './patch.js';
import { update } from './update.js';
import { watch } from './watch.js';

export const VERBS: Record<string, VerbHandler> = {
  watch, list, get, create, update, patch, delete: deleteOne, deletecollection: deleteCollection,
};

/** The Kubernetes verb of a request that is not a watch. */
export function verbOf(method: string, r: Route): string {
  const item = r.name !== undefined;
  switch (method) {
    case 'GET': return item ? 'get' : 'list';
    case 'POST': return item ? 'unknown' : 'create';
    case 'PUT': return item ? 'update' : 'unknown';
    case 'PATCH': return item ? 'patch' : 'unknown';
    case 'DELETE': return item ? 'delete' : 'deletecollection';
    default: return 'unknown';
  }
}
