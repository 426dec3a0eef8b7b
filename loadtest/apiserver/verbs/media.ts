// How an object is represented in a response: JSON as stored, a Table (kubectl get), or
// metadata only (PartialObjectMetadata, as metadata informers ask for it).
import type http from 'node:http';
import type { StoredEvent } from '../store.js';
import type { KubeObject, ResourceType } from '../types.js';

export const JSON_CT = 'application/json';

export function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

export function wantsTable(req: http.IncomingMessage): boolean {
  return /as=Table/.test(req.headers.accept ?? '');
}

/**
 * Metadata-only responses (`Accept: application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1`),
 * as client-go's metadata informers ask for them: watchers that need no spec or status receive a
 * fraction of the bytes. A client must still accept full objects from servers that ignore it.
 */
export function wantsMetadata(req: http.IncomingMessage): boolean {
  return /as=PartialObjectMetadata/.test(req.headers.accept ?? '');
}

/** An object as a metadata-only (PartialObjectMetadata) response carries it. */
export function partialObjectMetadata(o: KubeObject): object {
  return { kind: 'PartialObjectMetadata', apiVersion: 'meta.k8s.io/v1', metadata: o.metadata };
}

export function metadataOf(json: Buffer): object {
  return partialObjectMetadata(JSON.parse(json.toString('utf8')) as KubeObject);
}

// One metadata line per stored event, however many watchers receive it.
const metadataLines = new WeakMap<StoredEvent, Buffer>();
export function metadataLine(type: string, ev: StoredEvent): Buffer {
  if (type !== ev.type) return Buffer.from(JSON.stringify({ type, object: metadataOf(ev.json) }) + '\n');
  let b = metadataLines.get(ev);
  if (!b) metadataLines.set(ev, (b = Buffer.from(JSON.stringify({ type, object: metadataOf(ev.json) }) + '\n')));
  return b;
}
