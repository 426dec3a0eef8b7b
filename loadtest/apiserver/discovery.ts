// Discovery documents (/version, /api, /apis, ...), a minimal OpenAPI v2 document, and the
// Table rendering kubectl asks for (Accept: ...;as=Table;g=meta.k8s.io;v=v1).
import type { Store } from './store.js';
import { gvKey, type KubeObject, type ResourceType } from './types.js';

export const SERVER_VERSION = {
  major: '1',
  minor: '30',
  gitVersion: 'v1.30.0-kgsim',
  gitCommit: '0000000000000000000000000000000000000000',
  gitTreeState: 'clean',
  buildDate: '2024-04-17T00:00:00Z',
  goVersion: 'go1.22.2',
  compiler: 'gc',
  platform: 'linux/amd64',
};

export const SUBRESOURCES: Record<string, string[]> = {
  nodes: ['status'],
  namespaces: ['status', 'finalize'],
  daemonsets: ['status'],
  customresourcedefinitions: ['status'],
};

export function apiVersions(serverAddress: string): object {
  return { kind: 'APIVersions', versions: ['v1'], serverAddressByClientCIDRs: [{ clientCIDR: '0.0.0.0/0', serverAddress }] };
}

function groups(store: Store): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const t of store.types.values()) {
    if (t.group === '') continue;
    const vs = g.get(t.group) ?? [];
    if (!vs.includes(t.version)) vs.push(t.version);
    g.set(t.group, vs);
  }
  return g;
}

function groupDoc(name: string, versions: string[]): object {
  const vs = versions.map((v) => ({ groupVersion: `${name}/${v}`, version: v }));
  return { name, versions: vs, preferredVersion: vs[0] };
}

export function apiGroupList(store: Store): object {
  return { kind: 'APIGroupList', apiVersion: 'v1', groups: [...groups(store)].map(([n, vs]) => groupDoc(n, vs)) };
}

export function apiGroup(store: Store, group: string): object | undefined {
  const vs = groups(store).get(group);
  return vs ? { kind: 'APIGroup', apiVersion: 'v1', ...groupDoc(group, vs) } : undefined;
}

export function apiResourceList(store: Store, group: string, version: string): object | undefined {
  const ts = [...store.types.values()].filter((t) => t.group === group && t.version === version);
  if (ts.length === 0) return undefined;
  const resources: object[] = [];
  for (const t of ts) {
    resources.push({
      name: t.resource,
      singularName: t.singular,
      namespaced: t.namespaced,
      kind: t.kind,
      verbs: t.verbs ?? [],
      ...(t.shortNames?.length ? { shortNames: t.shortNames } : {}),
      ...(t.categories?.length ? { categories: t.categories } : {}),
    });
    for (const sub of t.crdName ? [] : SUBRESOURCES[t.resource] ?? []) {
      resources.push({ name: `${t.resource}/${sub}`, singularName: '', namespaced: t.namespaced, kind: t.kind, verbs: ['get', 'patch', 'update'] });
    }
  }
  return { kind: 'APIResourceList', apiVersion: 'v1', groupVersion: gvKey(group, version), resources };
}

// --- OpenAPI v2 -------------------------------------------------------------------------------
// kubectl fetches /openapi/v2 as protobuf (gnostic openapi_v2.Document) to validate manifests on
// the client. A document with no definitions makes every kind "unknown" to that validator,
// which then skips it, so `kubectl apply` works without --validate=false on both kubectl 1.20
// and current ones. Fields: Document{swagger=1, info=2}, Info{title=1, version=2}.
function pbString(field: number, s: string): Buffer {
  const b = Buffer.from(s);
  return Buffer.concat([Buffer.from([(field << 3) | 2, b.length]), b]);
}
export function openApiV2Protobuf(): Buffer {
  const info = Buffer.concat([pbString(1, 'Kubernetes'), pbString(2, SERVER_VERSION.gitVersion)]);
  return Buffer.concat([pbString(1, '2.0'), Buffer.from([(2 << 3) | 2, info.length]), info]);
}
export function openApiV2Json(): object {
  return { swagger: '2.0', info: { title: 'Kubernetes', version: SERVER_VERSION.gitVersion }, paths: {}, definitions: {} };
}

// --- Table ------------------------------------------------------------------------------------
/** Evaluates the small JSONPath subset printer columns use: .a.b, [n], [?(@.k=="v")]. */
export function jsonPath(obj: unknown, path: string): unknown {
  let cur: unknown = obj;
  const re = /\.([A-Za-z0-9_-]+)|\[(\d+)\]|\[\?\(@\.([A-Za-z0-9_-]+)=="([^"]*)"\)\]/g;
  let m: RegExpExecArray | null;
  while ((m = re.exec(path)) !== null && cur !== undefined && cur !== null) {
    if (m[1] !== undefined) cur = (cur as Record<string, unknown>)[m[1]];
    else if (m[2] !== undefined) cur = Array.isArray(cur) ? cur[Number(m[2])] : undefined;
    else cur = Array.isArray(cur) ? cur.find((x) => x && (x as Record<string, unknown>)[m![3]] === m![4]) : undefined;
  }
  return cur;
}

export function humanAge(ts: string | undefined, now = Date.now()): string {
  if (!ts) return '<unknown>';
  const s = Math.max(0, Math.floor((now - Date.parse(ts)) / 1000));
  if (s < 120) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 120) return `${m}m`;
  const h = Math.floor(m / 60);
  if (h < 48) return `${h}h`;
  return `${Math.floor(h / 24)}d`;
}

export function tableColumns(t: ResourceType): object[] {
  return [
    { name: 'Name', type: 'string', format: 'name', description: 'Name must be unique within a namespace.', priority: 0 },
    ...(t.columns ?? []).map((c) => ({ name: c.name, type: c.type, format: '', description: c.description ?? '', priority: 0 })),
    { name: 'Age', type: 'string', format: '', description: 'CreationTimestamp', priority: 0 },
  ];
}

export function tableRow(t: ResourceType, obj: KubeObject): object {
  const cells: unknown[] = [obj.metadata.name];
  for (const c of t.columns ?? []) {
    const v = jsonPath(obj, c.jsonPath);
    if (t.resource === 'nodes' && c.name === 'Status') cells.push(v === 'True' ? 'Ready' : 'NotReady');
    else cells.push(v === undefined ? '<none>' : c.type === 'date' ? humanAge(String(v)) : v);
  }
  cells.push(humanAge(obj.metadata.creationTimestamp));
  return {
    cells,
    object: {
      kind: 'PartialObjectMetadata',
      apiVersion: 'meta.k8s.io/v1',
      metadata: obj.metadata.managedFields ? { ...obj.metadata, managedFields: undefined } : obj.metadata,
    },
  };
}

export function table(t: ResourceType, objs: KubeObject[], rv: string, withColumns = true, cont?: string): object {
  return {
    kind: 'Table',
    apiVersion: 'meta.k8s.io/v1',
    metadata: { resourceVersion: rv, ...(cont ? { continue: cont } : {}) },
    columnDefinitions: withColumns ? tableColumns(t) : [],
    rows: objs.map((o) => tableRow(t, o)),
  };
}
