// The object store: resourceVersions, a bounded per-resource event history (the "watch cache"),
// snapshots for exact/paginated lists, and synchronous watch fan-out.
//
// Performance model (5,000 ~10 KiB Nodes, a heartbeat each every 30 s, 50+ watchers): each write
// serializes the object once, into the watch-event line; the stored JSON is a view of that same
// Buffer, every watcher is handed the same Buffer, and lists concatenate stored Buffers instead
// of re-serializing objects. History keeps only Buffers (not parsed objects) so that a long
// history costs its bytes and nothing more.
import { randomUUID, randomBytes } from 'node:crypto';
import { BUILTIN_TYPES, INITIAL_NAMESPACES } from './resources.js';
import { jsonPatch, mergePatch, strategicMergePatch } from './patch.js';
import { StatusError, gone, notFound, resourceKey, type KubeObject, type ResourceType } from './types.js';

export type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

/** One entry of a resource's history; `line` is the complete newline-terminated watch event. */
export interface StoredEvent {
  type: EventType;
  rv: number;
  key: string;
  name: string;
  namespace: string;
  /** The object as of this event (a view into `line`). */
  json: Buffer;
  line: Buffer;
  labels: Record<string, string> | undefined;
  /** The object before this event (absent for ADDED). */
  prevJson?: Buffer;
  prevLabels?: Record<string, string>;
}

export interface Entry {
  obj: KubeObject;
  json: Buffer;
}

/** A snapshot item: JSON always, the parsed object on demand. */
export interface SnapItem {
  json: Buffer;
  obj?: KubeObject;
}

export interface StoreWatcher {
  /** Only events in this namespace ('' or undefined: all). */
  namespace?: string;
  deliver(ev: StoredEvent): void;
  /** The store ends a watch when its resource goes away (CRD deleted). */
  close(): void;
}

export type PatchType = 'merge' | 'strategic' | 'json';

export interface ListOptions {
  namespace?: string;
  filter?: (o: KubeObject) => boolean;
  /** Skip the scan: only this name can match (metadata.name field selector). */
  name?: string;
  limit?: number;
  continueToken?: string;
  resourceVersion?: string;
  resourceVersionMatch?: string;
}

export interface ListResult {
  rv: number;
  items: SnapItem[];
  continueToken?: string;
  remainingItemCount?: number;
}

export interface StoreOptions {
  /** Events kept per resource for watch resumption; older resourceVersions get 410. */
  historySize?: number;
  /** Lifetime of a list continue token (a real server's is bounded by etcd compaction, 5 min). */
  continueTtlMs?: number;
}

export interface StoreCounters {
  writes: number;
  eventsDelivered: number;
}

const PREFIX: Record<EventType, Buffer> = {
  ADDED: Buffer.from('{"type":"ADDED","object":'),
  MODIFIED: Buffer.from('{"type":"MODIFIED","object":'),
  DELETED: Buffer.from('{"type":"DELETED","object":'),
};
const SUFFIX = Buffer.from('}\n');

export function eventLine(type: string, json: Buffer): Buffer {
  const p = PREFIX[type as EventType] ?? Buffer.from(`{"type":"${type}","object":`);
  return Buffer.concat([p, json, SUFFIX]);
}

export function parseItem(i: SnapItem): KubeObject {
  if (!i.obj) i.obj = JSON.parse(i.json.toString('utf8')) as KubeObject;
  return i.obj;
}

function keyOf(ns: string | undefined, name: string): string {
  return ns ? `${ns}/${name}` : name;
}

/** State of one resource type. */
export class ResourceStore {
  readonly items = new Map<string, Entry>();
  readonly watchers = new Set<StoreWatcher>();
  private sorted: string[] | null = null;
  private ring: (StoredEvent | undefined)[];
  private head = 0; // index of the oldest event
  private count = 0;
  /** Watches and exact lists from a resourceVersion below this get 410 Gone. */
  compactedRv: number;
  private snapCache: { rv: number; items: Map<string, SnapItem> } | null = null;

  constructor(readonly type: ResourceType, readonly capacity: number, startRv: number) {
    this.ring = new Array(capacity);
    this.compactedRv = startRv;
  }

  sortedKeys(): string[] {
    if (!this.sorted) this.sorted = [...this.items.keys()].sort();
    return this.sorted;
  }

  record(ev: StoredEvent): void {
    if (ev.type !== 'MODIFIED') this.sorted = null;
    if (this.count === this.capacity) {
      const old = this.ring[this.head]!;
      this.compactedRv = old.rv;
      this.ring[this.head] = ev;
      this.head = (this.head + 1) % this.capacity;
    } else {
      this.ring[(this.head + this.count) % this.capacity] = ev;
      this.count++;
    }
  }

  /** Events with rv > fromRv, oldest first; throws 410 if the history no longer reaches back. */
  since(fromRv: number): StoredEvent[] {
    if (fromRv < this.compactedRv) throw tooOld(fromRv, this.compactedRv);
    const out: StoredEvent[] = [];
    // Binary search would do; the ring is scanned from the newest end because resumptions are
    // nearly always recent.
    for (let i = this.count - 1; i >= 0; i--) {
      const ev = this.ring[(this.head + i) % this.capacity]!;
      if (ev.rv <= fromRv) break;
      out.push(ev);
    }
    return out.reverse();
  }

  clearHistory(currentRv: number): void {
    this.ring = new Array(this.capacity);
    this.head = 0;
    this.count = 0;
    this.compactedRv = currentRv;
    this.snapCache = null;
  }

  /** The state as of `rv`, rebuilt by undoing later events (the path exact and paginated lists use). */
  snapshotAt(rv: number, currentRv: number): Map<string, SnapItem> {
    if (rv < this.compactedRv) throw tooOld(rv, this.compactedRv);
    if (this.snapCache && this.snapCache.rv === rv) return this.snapCache.items;
    const snap = new Map<string, SnapItem>();
    for (const [k, e] of this.items) snap.set(k, e);
    if (rv < currentRv) {
      const later = this.since(rv);
      for (let i = later.length - 1; i >= 0; i--) {
        const ev = later[i];
        if (ev.type === 'ADDED') snap.delete(ev.key);
        else snap.set(ev.key, { json: ev.prevJson! });
      }
    }
    this.snapCache = { rv, items: snap };
    return snap;
  }
}

function tooOld(rv: number, compacted: number): StatusError {
  return gone(`too old resource version: ${rv} (${compacted})`);
}

function conflict(t: ResourceType, name: string): StatusError {
  return new StatusError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${t.resource}${t.group ? '.' + t.group : ''} "${name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name, group: t.group, kind: t.resource },
  );
}

function apiVersionOf(t: ResourceType): string {
  return t.group ? `${t.group}/${t.version}` : t.version;
}

interface ContinueToken {
  rv: number;
  start: string;
  at: number;
}

export class Store {
  rv = 0;
  readonly types = new Map<string, ResourceType>();
  private readonly resources = new Map<string, ResourceStore>();
  readonly counters: StoreCounters = { writes: 0, eventsDelivered: 0 };
  readonly historySize: number;
  readonly continueTtlMs: number;
  /** Called after every committed event (metrics, tests). */
  onEvent: ((t: ResourceType, ev: StoredEvent) => void) | undefined;

  constructor(opts: StoreOptions = {}) {
    this.historySize = opts.historySize ?? 10_000;
    this.continueTtlMs = opts.continueTtlMs ?? 5 * 60_000;
    for (const t of BUILTIN_TYPES) this.register(t);
    const ns = this.type('', 'v1', 'namespaces');
    for (const n of INITIAL_NAMESPACES) {
      this.create(ns, { apiVersion: 'v1', kind: 'Namespace', metadata: { name: n }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } });
    }
  }

  register(t: ResourceType): void {
    const k = resourceKey(t);
    this.types.set(k, t);
    if (!this.resources.has(k)) this.resources.set(k, new ResourceStore(t, this.historySize, this.rv));
  }

  unregister(t: ResourceType): void {
    const k = resourceKey(t);
    const rs = this.resources.get(k);
    if (rs) {
      // A CRD's deletion deletes its objects (watchers see DELETED) and then ends their watches.
      for (const key of [...rs.items.keys()]) {
        const e = rs.items.get(key)!;
        this.delete(t, e.obj.metadata.namespace, e.obj.metadata.name!);
      }
      for (const w of rs.watchers) w.close();
      rs.watchers.clear();
    }
    this.types.delete(k);
    this.resources.delete(k);
  }

  /** Looks a served type up; throws 404 like a server asked for an unknown resource. */
  type(group: string, version: string, resource: string): ResourceType {
    const t = this.types.get(resourceKey({ group, version, resource }));
    if (!t) throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
    return t;
  }

  typeFor(kind: string, apiVersion?: string): ResourceType | undefined {
    for (const t of this.types.values()) if (t.kind === kind && (!apiVersion || apiVersionOf(t) === apiVersion)) return t;
    return undefined;
  }

  resource(t: ResourceType): ResourceStore {
    const rs = this.resources.get(resourceKey(t));
    if (!rs) throw new StatusError(404, 'NotFound', 'the server could not find the requested resource');
    return rs;
  }

  allResources(): ResourceStore[] {
    return [...this.resources.values()];
  }

  get(t: ResourceType, ns: string | undefined, name: string): Entry {
    const e = this.resource(t).items.get(keyOf(t.namespaced ? ns : undefined, name));
    if (!e) throw notFound(t, name);
    return e;
  }

  tryGet(t: ResourceType, ns: string | undefined, name: string): Entry | undefined {
    return this.resource(t).items.get(keyOf(t.namespaced ? ns : undefined, name));
  }

  private commit(t: ResourceType, rs: ResourceStore, type: EventType, key: string, obj: KubeObject, prev: Entry | undefined): Entry {
    const json = Buffer.from(JSON.stringify(obj));
    const line = eventLine(type, json);
    const view = line.subarray(PREFIX[type].length, line.length - SUFFIX.length);
    const ev: StoredEvent = {
      type,
      rv: this.rv,
      key,
      name: obj.metadata.name!,
      namespace: obj.metadata.namespace ?? '',
      json: view,
      line,
      labels: obj.metadata.labels,
      prevJson: prev?.json,
      prevLabels: prev?.obj.metadata.labels,
    };
    const entry: Entry = { obj, json: view };
    if (type === 'DELETED') rs.items.delete(key);
    else rs.items.set(key, entry);
    rs.record(ev);
    this.counters.writes++;
    for (const w of rs.watchers) {
      if (w.namespace && w.namespace !== ev.namespace) continue;
      w.deliver(ev);
    }
    this.onEvent?.(t, ev);
    this.afterCommit(t, type, obj);
    return entry;
  }

  /** Side effects a real control plane has: CRDs serve their API, namespaces own their objects. */
  private afterCommit(t: ResourceType, type: EventType, obj: KubeObject): void {
    if (t.group === 'apiextensions.k8s.io' && t.resource === 'customresourcedefinitions') {
      for (const rt of crdTypes(obj)) {
        if (type === 'DELETED') this.unregister(rt);
        else if (!this.types.has(resourceKey(rt))) this.register(rt);
      }
    } else if (t.group === '' && t.resource === 'namespaces' && type === 'DELETED') {
      const name = obj.metadata.name!;
      for (const rs of this.allResources()) {
        if (!rs.type.namespaced) continue;
        for (const e of [...rs.items.values()]) {
          if (e.obj.metadata.namespace === name) this.delete(rs.type, name, e.obj.metadata.name!);
        }
      }
    }
  }

  create(t: ResourceType, input: KubeObject, ns?: string): Entry {
    const rs = this.resource(t);
    const obj: KubeObject = { ...input, metadata: { ...(input.metadata ?? {}) } };
    const md = obj.metadata;
    if (t.namespaced) {
      const n = ns || md.namespace || 'default';
      if (md.namespace && ns && md.namespace !== ns) {
        throw new StatusError(400, 'BadRequest', 'the namespace of the provided object does not match the namespace sent on the request');
      }
      if (!this.resource(this.type('', 'v1', 'namespaces')).items.has(n)) {
        throw new StatusError(404, 'NotFound', `namespaces "${n}" not found`, { name: n, kind: 'namespaces' });
      }
      md.namespace = n;
    } else {
      delete md.namespace;
    }
    if (!md.name && md.generateName) md.name = md.generateName + randomBytes(4).toString('hex').slice(0, 5);
    if (!md.name) throw new StatusError(422, 'Invalid', `${t.kind} "" is invalid: metadata.name: Required value: name or generateName is required`);
    const key = keyOf(md.namespace, md.name);
    if (rs.items.has(key)) {
      throw new StatusError(409, 'AlreadyExists', `${t.resource}${t.group ? '.' + t.group : ''} "${md.name}" already exists`, {
        name: md.name,
        group: t.group,
        kind: t.resource,
      });
    }
    obj.apiVersion = apiVersionOf(t);
    obj.kind = t.kind;
    md.uid = randomUUID();
    md.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    if (t.group !== '') md.generation = 1;
    if (t.resource === 'customresourcedefinitions') validateCrd(obj, this);
    this.rv++;
    md.resourceVersion = String(this.rv);
    if (t.resource === 'customresourcedefinitions') setCrdStatus(obj);
    return this.commit(t, rs, 'ADDED', key, obj, undefined);
  }

  /** PUT semantics: 409 when the body's resourceVersion is set and stale. */
  update(t: ResourceType, ns: string | undefined, name: string, input: KubeObject): Entry {
    const rs = this.resource(t);
    const cur = this.get(t, ns, name);
    const rv = input.metadata?.resourceVersion;
    if (rv !== undefined && rv !== '' && rv !== cur.obj.metadata.resourceVersion) throw conflict(t, name);
    if (input.metadata?.name && input.metadata.name !== name) {
      throw new StatusError(400, 'BadRequest', `the name of the object (${input.metadata.name}) does not match the name on the URL (${name})`);
    }
    return this.replace(t, rs, cur, input);
  }

  patch(t: ResourceType, ns: string | undefined, name: string, type: PatchType, body: unknown): Entry {
    const rs = this.resource(t);
    const cur = this.get(t, ns, name);
    let next: KubeObject;
    if (type === 'merge') next = mergePatch(cur.obj, body);
    else if (type === 'strategic') {
      if (t.crdName) {
        throw new StatusError(415, 'UnsupportedMediaType', `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`);
      }
      next = strategicMergePatch(cur.obj, body);
    } else next = jsonPatch(cur.obj, body);
    if (typeof next !== 'object' || next === null || typeof next.metadata !== 'object') {
      throw new StatusError(422, 'Invalid', 'patch produced an invalid object');
    }
    const want = next.metadata.resourceVersion;
    if (want !== undefined && want !== cur.obj.metadata.resourceVersion) throw conflict(t, name);
    return this.replace(t, rs, cur, next);
  }

  private replace(t: ResourceType, rs: ResourceStore, cur: Entry, input: KubeObject): Entry {
    const old = cur.obj.metadata;
    const obj: KubeObject = { ...input, apiVersion: apiVersionOf(t), kind: t.kind };
    // Identity and server-owned fields cannot be changed by a client.
    obj.metadata = {
      ...(input.metadata ?? {}),
      name: old.name,
      uid: old.uid,
      creationTimestamp: old.creationTimestamp,
      resourceVersion: old.resourceVersion,
    };
    if (old.namespace) obj.metadata.namespace = old.namespace;
    else delete obj.metadata.namespace;
    if (old.generation !== undefined) {
      obj.metadata.generation = JSON.stringify(obj.spec) === JSON.stringify(cur.obj.spec) ? old.generation : old.generation + 1;
    }
    if (t.resource === 'customresourcedefinitions') {
      validateCrd(obj, this);
      // status is a subresource: writes to the main resource keep the server-set status.
      obj.status = cur.obj.status;
    }
    // A write that changes nothing is a no-op on a real server: no new resourceVersion, no event.
    if (JSON.stringify(obj) === cur.json.toString('utf8')) return cur;
    this.rv++;
    obj.metadata.resourceVersion = String(this.rv);
    return this.commit(t, rs, 'MODIFIED', keyOf(old.namespace, old.name!), obj, cur);
  }

  delete(t: ResourceType, ns: string | undefined, name: string, precondition?: { resourceVersion?: string; uid?: string }): Entry {
    const rs = this.resource(t);
    const cur = this.get(t, ns, name);
    if (precondition?.resourceVersion && precondition.resourceVersion !== cur.obj.metadata.resourceVersion) throw conflict(t, name);
    if (precondition?.uid && precondition.uid !== cur.obj.metadata.uid) throw conflict(t, name);
    this.rv++;
    const obj: KubeObject = { ...cur.obj, metadata: { ...cur.obj.metadata, resourceVersion: String(this.rv) } };
    return this.commit(t, rs, 'DELETED', keyOf(cur.obj.metadata.namespace, name), obj, cur);
  }

  /**
   * List with the API server's resourceVersion rules:
   *  - unset: the latest state (a consistent read);
   *  - "0": any state (served from the cache; here also the latest);
   *  - N with resourceVersionMatch=Exact: the state at exactly N (410 if compacted away);
   *  - N otherwise (NotOlderThan): at least as new as N (504 "too large" if N is in the future).
   * limit/continue paginate over one consistent snapshot; a token expires after continueTtlMs or
   * once its resourceVersion leaves the history (410).
   */
  list(t: ResourceType, o: ListOptions = {}): ListResult {
    const rs = this.resource(t);
    let atRv = this.rv;
    let start = '';
    let snap: Map<string, SnapItem> | undefined;
    if (o.continueToken) {
      const tok = decodeContinue(o.continueToken);
      if (Date.now() - tok.at > this.continueTtlMs || tok.rv < rs.compactedRv) {
        throw gone('The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter.');
      }
      atRv = tok.rv;
      start = tok.start;
    } else if (o.resourceVersion && o.resourceVersion !== '0') {
      const want = Number(o.resourceVersion);
      if (!Number.isInteger(want) || want < 0) throw new StatusError(400, 'BadRequest', `invalid resource version: ${o.resourceVersion}`);
      if (want > this.rv) {
        throw new StatusError(504, 'Timeout', `Too large resource version: ${want}, current: ${this.rv}`, {
          causes: [{ reason: 'ResourceVersionTooLarge', message: 'Too large resource version' }],
          retryAfterSeconds: 1,
        });
      }
      if (o.resourceVersionMatch === 'Exact') atRv = want;
    } else if (o.resourceVersionMatch === 'Exact') {
      throw new StatusError(400, 'BadRequest', 'resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided');
    }
    if (atRv !== this.rv) snap = rs.snapshotAt(atRv, this.rv);
    const source: ReadonlyMap<string, SnapItem> = snap ?? rs.items;
    const prefix = t.namespaced && o.namespace ? `${o.namespace}/` : '';
    const match = (key: string, item: SnapItem): boolean => {
      if (prefix && !key.startsWith(prefix)) return false;
      if (!o.filter) return true;
      return o.filter(parseItem(item));
    };
    if (o.name !== undefined) {
      const key = keyOf(t.namespaced ? o.namespace : undefined, o.name);
      const item = source.get(key);
      return { rv: atRv, items: item && match(key, item) ? [item] : [] };
    }
    const keys = snap ? [...snap.keys()].sort() : rs.sortedKeys();
    let i = 0;
    if (start) {
      // First key strictly after `start`.
      let lo = 0;
      let hi = keys.length;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (keys[mid] <= start) lo = mid + 1;
        else hi = mid;
      }
      i = lo;
    } else if (prefix) {
      while (i < keys.length && keys[i] < prefix) i++;
    }
    const limit = o.limit && o.limit > 0 ? o.limit : Infinity;
    const items: SnapItem[] = [];
    for (; i < keys.length && items.length < limit; i++) {
      const k = keys[i];
      if (prefix && !k.startsWith(prefix)) {
        if (k > prefix) break;
        continue;
      }
      const item = source.get(k)!;
      if (match(k, item)) items.push(item);
    }
    const res: ListResult = { rv: atRv, items };
    if (items.length === limit && i < keys.length) {
      const last = keys[i - 1];
      res.continueToken = encodeContinue({ rv: atRv, start: last, at: o.continueToken ? decodeContinue(o.continueToken).at : Date.now() });
      if (!o.filter) {
        let rest = 0;
        for (let j = i; j < keys.length; j++) if (!prefix || keys[j].startsWith(prefix)) rest++;
        res.remainingItemCount = rest;
      }
    }
    return res;
  }

  /**
   * Registers a watcher from `fromRv` and returns the events it missed (to be sent first) and
   * a cancel function. Registration and replay happen in one synchronous step, so no event can
   * fall between them.
   */
  watch(t: ResourceType, w: StoreWatcher, fromRv: number): { backlog: StoredEvent[]; cancel: () => void } {
    const rs = this.resource(t);
    const backlog = rs.since(fromRv).filter((ev) => !w.namespace || ev.namespace === w.namespace);
    rs.watchers.add(w);
    return { backlog, cancel: () => rs.watchers.delete(w) };
  }

  /** Drops every resource's history (as a restarted API server's watch cache has none). */
  clearHistory(): void {
    for (const rs of this.resources.values()) rs.clearHistory(this.rv);
  }

  objectCounts(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [k, rs] of this.resources) out[k] = rs.items.size;
    return out;
  }

  // Conveniences for tests and load generators.
  nodes(): ResourceType {
    return this.type('', 'v1', 'nodes');
  }

  patchAnnotations(t: ResourceType, ns: string | undefined, name: string, annotations: Record<string, string | null>): Entry {
    return this.patch(t, ns, name, 'merge', { metadata: { annotations } });
  }
}

function encodeContinue(t: ContinueToken): string {
  return Buffer.from(JSON.stringify(t)).toString('base64url');
}

function decodeContinue(s: string): ContinueToken {
  try {
    const t = JSON.parse(Buffer.from(s, 'base64url').toString('utf8')) as ContinueToken;
    if (typeof t.rv === 'number' && typeof t.start === 'string' && typeof t.at === 'number') return t;
  } catch {
    // fall through
  }
  throw new StatusError(400, 'BadRequest', 'continue key is not valid');
}

/** The resource types a CustomResourceDefinition serves. */
export function crdTypes(crd: KubeObject): ResourceType[] {
  const spec = crd.spec as
    | {
        group: string;
        scope: string;
        names: { plural: string; singular?: string; kind: string; listKind?: string; shortNames?: string[]; categories?: string[] };
        versions: { name: string; served: boolean; additionalPrinterColumns?: { name: string; type: string; jsonPath: string; description?: string }[] }[];
      }
    | undefined;
  if (!spec?.group || !spec.names?.plural || !Array.isArray(spec.versions)) return [];
  return spec.versions
    .filter((v) => v.served)
    .map((v) => ({
      group: spec.group,
      version: v.name,
      resource: spec.names.plural,
      kind: spec.names.kind,
      listKind: spec.names.listKind ?? `${spec.names.kind}List`,
      singular: spec.names.singular ?? spec.names.kind.toLowerCase(),
      namespaced: spec.scope === 'Namespaced',
      shortNames: spec.names.shortNames,
      categories: spec.names.categories,
      verbs: ['delete', 'deletecollection', 'get', 'list', 'patch', 'create', 'update', 'watch'],
      crdName: crd.metadata.name,
      columns: v.additionalPrinterColumns,
    }));
}

function validateCrd(crd: KubeObject, store: Store): void {
  const spec = crd.spec as { group?: string; names?: { plural?: string; kind?: string }; scope?: string; versions?: unknown[] } | undefined;
  const name = crd.metadata.name ?? '';
  const errs: string[] = [];
  if (!spec?.group) errs.push('spec.group: Required value');
  if (!spec?.names?.plural) errs.push('spec.names.plural: Required value');
  if (!spec?.names?.kind) errs.push('spec.names.kind: Required value');
  if (spec?.scope !== 'Cluster' && spec?.scope !== 'Namespaced') errs.push('spec.scope: Unsupported value');
  if (!Array.isArray(spec?.versions) || spec.versions.length === 0) errs.push('spec.versions: Invalid value: must have exactly one version marked as storage version');
  if (spec?.group && spec.names?.plural && name !== `${spec.names.plural}.${spec.group}`) {
    errs.push(`metadata.name: Invalid value: "${name}": must be spec.names.plural+"."+spec.group`);
  }
  if (errs.length) {
    throw new StatusError(422, 'Invalid', `CustomResourceDefinition.apiextensions.k8s.io "${name}" is invalid: ${errs.join(', ')}`);
  }
  void store;
}

function setCrdStatus(crd: KubeObject): void {
  const spec = crd.spec as { names: Record<string, unknown>; versions: { name: string; storage?: boolean }[] };
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  crd.status = {
    conditions: [
      { type: 'NamesAccepted', status: 'True', reason: 'NoConflicts', message: 'no conflicts found', lastTransitionTime: now },
      { type: 'Established', status: 'True', reason: 'InitialNamesAccepted', message: 'the initial names have been accepted', lastTransitionTime: now },
    ],
    acceptedNames: spec.names,
    storedVersions: spec.versions.filter((v) => v.storage).map((v) => v.name),
  };
}
