// The three patch types the API server accepts. All functions return new values and never
// mutate their inputs, because stored objects are shared with in-flight responses.
import { StatusError } from './types.js';

type J = any; // eslint-disable-line @typescript-eslint/no-explicit-any

const isObj = (v: unknown): v is Record<string, J> => typeof v === 'object' && v !== null && !Array.isArray(v);

function invalid(msg: string): StatusError {
  return new StatusError(422, 'Invalid', msg);
}

/** RFC 7386 JSON merge patch. */
export function mergePatch(target: J, patch: J): J {
  if (!isObj(patch)) return patch;
  const out: Record<string, J> = isObj(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatch(out[k], v);
  }
  return out;
}

function unescape(tok: string): string {
  return tok.replace(/~1/g, '/').replace(/~0/g, '~');
}

function parsePointer(p: string): string[] {
  if (p === '') return [];
  if (!p.startsWith('/')) throw invalid(`invalid JSON pointer "${p}"`);
  return p.slice(1).split('/').map(unescape);
}

function clone<T>(v: T): T {
  return v === undefined ? v : (JSON.parse(JSON.stringify(v)) as T);
}

/** RFC 6902 JSON patch. Fails as a whole (422) if any operation fails, like the API server. */
export function jsonPatch(doc: J, ops: J): J {
  if (!Array.isArray(ops)) throw new StatusError(400, 'BadRequest', 'json patch must be an array of operations');
  // Copy once; every operation below mutates the copy in place.
  let root = clone(doc);
  const parentOf = (path: string[], op: string): [J, string] => {
    let cur = root;
    for (let i = 0; i < path.length - 1; i++) {
      const k = path[i];
      cur = Array.isArray(cur) ? cur[Number(k)] : isObj(cur) ? cur[k] : undefined;
      if (cur === undefined) throw invalid(`${op} operation does not apply: doc is missing path: ${'/' + path.join('/')}`);
    }
    return [cur, path[path.length - 1]];
  };
  const get = (path: string[], op: string): J => {
    let cur = root;
    for (const k of path) {
      if (Array.isArray(cur)) cur = cur[Number(k)];
      else if (isObj(cur) && Object.prototype.hasOwnProperty.call(cur, k)) cur = cur[k];
      else cur = undefined;
      if (cur === undefined) throw invalid(`${op} operation does not apply: doc is missing path: ${'/' + path.join('/')}`);
    }
    return cur;
  };
  const remove = (path: string[], op: string): J => {
    if (path.length === 0) throw invalid('cannot remove the root');
    const [parent, key] = parentOf(path, op);
    if (Array.isArray(parent)) {
      const i = Number(key);
      if (!Number.isInteger(i) || i < 0 || i >= parent.length) throw invalid(`${op} operation does not apply: doc is missing path: /${path.join('/')}`);
      return parent.splice(i, 1)[0];
    }
    if (!isObj(parent) || !Object.prototype.hasOwnProperty.call(parent, key)) {
      throw invalid(`${op} operation does not apply: doc is missing path: /${path.join('/')}`);
    }
    const v = parent[key];
    delete parent[key];
    return v;
  };
  const add = (path: string[], value: J, op: string): void => {
    if (path.length === 0) {
      root = value;
      return;
    }
    const [parent, key] = parentOf(path, op);
    if (Array.isArray(parent)) {
      const i = key === '-' ? parent.length : Number(key);
      if (!Number.isInteger(i) || i < 0 || i > parent.length) throw invalid(`${op} operation does not apply: index out of range: /${path.join('/')}`);
      parent.splice(i, 0, value);
    } else if (isObj(parent)) {
      parent[key] = value;
    } else {
      throw invalid(`${op} operation does not apply: doc is missing path: /${path.join('/')}`);
    }
  };
  for (const o of ops) {
    if (!isObj(o) || typeof o.op !== 'string' || typeof o.path !== 'string') throw new StatusError(400, 'BadRequest', 'invalid json patch operation');
    const path = parsePointer(o.path);
    switch (o.op) {
      case 'add': add(path, clone(o.value), 'add'); break;
      case 'remove': remove(path, 'remove'); break;
      case 'replace': get(path, 'replace'); if (path.length === 0) root = clone(o.value); else { remove(path, 'replace'); add(path, clone(o.value), 'replace'); } break;
      case 'move': { const v = remove(parsePointer(String(o.from)), 'move'); add(path, v, 'move'); break; }
      case 'copy': add(path, clone(get(parsePointer(String(o.from)), 'copy')), 'copy'); break;
      case 'test':
        if (JSON.stringify(get(path, 'test')) !== JSON.stringify(o.value)) throw invalid(`test operation failed: ${o.path}`);
        break;
      default: throw new StatusError(400, 'BadRequest', `unknown json patch operation "${o.op}"`);
    }
  }
  return root;
}

// Merge keys of the Kubernetes built-in lists that use patchStrategy=merge (the Go struct tags).
// Lists not named here are replaced wholesale, which is what the API server does for them too.
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  ephemeralContainers: 'name',
  env: 'name',
  volumes: 'name',
  volumeMounts: 'mountPath',
  volumeDevices: 'devicePath',
  ports: 'containerPort',
  imagePullSecrets: 'name',
  conditions: 'type',
  addresses: 'type',
  taints: 'key',
  ownerReferences: 'uid',
  hostAliases: 'ip',
  topologySpreadConstraints: 'topologyKey',
};
const MERGE_PRIMITIVE_LISTS = new Set(['finalizers']);

/**
 * Strategic merge patch, as far as the Kubernetes built-in types need it: maps merge, `null`
 * deletes, lists with a known merge key merge by key, `$patch: replace|delete`,
 * `$retainKeys`, `$setElementOrder/<list>` and `$deleteFromPrimitiveList/<list>`.
 * Custom resources do not accept it (415), as on a real server.
 */
export function strategicMergePatch(target: J, patch: J): J {
  if (!isObj(patch)) return patch;
  if (patch.$patch === 'replace') {
    const { $patch: _p, ...rest } = patch;
    return clone(rest);
  }
  if (patch.$patch === 'delete') return undefined;
  const out: Record<string, J> = isObj(target) ? { ...target } : {};
  const retain: string[] | undefined = Array.isArray(patch.$retainKeys) ? patch.$retainKeys : undefined;
  for (const [k, v] of Object.entries(patch)) {
    if (k === '$retainKeys' || k === '$patch' || k.startsWith('$setElementOrder/')) continue;
    if (k.startsWith('$deleteFromPrimitiveList/')) {
      const field = k.slice('$deleteFromPrimitiveList/'.length);
      if (Array.isArray(out[field]) && Array.isArray(v)) out[field] = out[field].filter((x: J) => !v.includes(x));
      continue;
    }
    if (v === null) {
      delete out[k];
    } else if (Array.isArray(v)) {
      out[k] = mergeList(k, out[k], v, patch[`$setElementOrder/${k}`]);
    } else if (isObj(v)) {
      const merged = strategicMergePatch(out[k], v);
      if (merged === undefined) delete out[k];
      else out[k] = merged;
    } else {
      out[k] = v;
    }
  }
  if (retain) for (const k of Object.keys(out)) if (!retain.includes(k)) delete out[k];
  return out;
}

function mergeList(field: string, cur: J, patch: J[], order: J): J[] {
  const base: J[] = Array.isArray(cur) ? cur : [];
  if (MERGE_PRIMITIVE_LISTS.has(field)) {
    const out = [...base];
    for (const x of patch) if (!out.includes(x)) out.push(x);
    return out;
  }
  const key = MERGE_KEYS[field];
  if (!key || !patch.every((x) => isObj(x))) {
    if (patch.length === 1 && isObj(patch[0]) && patch[0].$patch === 'replace') return [];
    return clone(patch);
  }
  if (patch.some((x) => x.$patch === 'replace')) return clone(patch.filter((x) => x.$patch !== 'replace'));
  const out: J[] = base.map((x) => x);
  for (const p of patch) {
    const idx = out.findIndex((x) => isObj(x) && x[key] === p[key]);
    if (p.$patch === 'delete') {
      if (idx >= 0) out.splice(idx, 1);
      continue;
    }
    if (idx >= 0) out[idx] = strategicMergePatch(out[idx], p);
    else out.push(strategicMergePatch({}, p));
  }
  if (Array.isArray(order)) {
    // Reorder to the client's $setElementOrder; items it does not name keep their relative order
    // at the end.
    const rank = new Map(order.map((o: J, i: number) => [isObj(o) ? o[key] : o, i]));
    out.sort((a, b) => (rank.get(a[key]) ?? Infinity) - (rank.get(b[key]) ?? Infinity));
  }
  return out;
}
