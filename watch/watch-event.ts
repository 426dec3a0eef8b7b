// One line of a watch stream decoded into an event, or the reason it does not decode (a fixed
// set: the values of a metric label). The reflector restarts the watch and relists on any such
// reason: a line it cannot read is an event it would otherwise lose without a trace.
import type { InvalidReason } from './kube-error.js';

export interface KubeObject {
  metadata?: { name?: string; resourceVersion?: string };
}

export type WatchEvent =
  | { type: 'ADDED' | 'MODIFIED' | 'DELETED'; name: string; rv: string; object: KubeObject }
  | { type: 'BOOKMARK'; rv: string }
  | { type: 'ERROR'; code: number; message: string };

/** Longest server message kept from an ERROR event (it ends up in logs). */
const MAX_MESSAGE = 256;

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
const nonEmpty = (v: unknown): v is string => typeof v === 'string' && v !== '';

/** A server-written message, shortened: it is logged and must stay one short line. */
export function shortMessage(v: unknown, fallback: string): string {
  if (typeof v !== 'string' || v === '') return fallback;
  return v.length > MAX_MESSAGE ? `${v.slice(0, MAX_MESSAGE)}… (${v.length} characters)` : v;
}

export function decodeWatchEvent(line: string): WatchEvent | { error: InvalidReason } {
  let ev: unknown;
  try {
    ev = JSON.parse(line);
  } catch {
    return { error: 'not_json' };
  }
  if (!isObject(ev)) return { error: 'not_object' };
  const type = ev.type;
  if (type !== 'ADDED' && type !== 'MODIFIED' && type !== 'DELETED' && type !== 'BOOKMARK' && type !== 'ERROR') return { error: 'unknown_type' };
  const obj = ev.object;
  if (!isObject(obj)) return { error: type === 'ERROR' ? 'bad_status' : 'not_object' };
  if (type === 'ERROR') {
    // A Status: the code is what the reflector acts on (410 relists), so it must be one.
    const code = obj.code;
    if (typeof code !== 'number' || !Number.isInteger(code) || code < 100 || code > 599) return { error: 'bad_status' };
    return { type, code, message: shortMessage(obj.message, 'error event') };
  }
  const md = obj.metadata;
  if (!isObject(md)) return { error: type === 'BOOKMARK' ? 'no_resource_version' : 'no_name' };
  if (type !== 'BOOKMARK' && !nonEmpty(md.name)) return { error: 'no_name' };
  if (!nonEmpty(md.resourceVersion)) return { error: 'no_resource_version' };
  if (type === 'BOOKMARK') return { type, rv: md.resourceVersion };
  return { type, name: md.name as string, rv: md.resourceVersion, object: obj as KubeObject };
}
