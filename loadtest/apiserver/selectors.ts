// Label and field selectors with the grammar the real API server accepts.
import { StatusError, type KubeObject } from './types.js';

export type Requirement =
  | { key: string; op: 'exists' | '!exists' }
  | { key: string; op: '=' | '!='; value: string }
  | { key: string; op: 'in' | 'notin'; values: string[] };

export type Selector = (obj: KubeObject) => boolean;

function bad(kind: string, sel: string, why: string): StatusError {
  return new StatusError(400, 'BadRequest', `unable to parse requirement: ${kind} selector "${sel}": ${why}`);
}

/** Splits on commas that are not inside parentheses. */
function splitTop(s: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of s) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out.map((x) => x.trim()).filter((x) => x !== '');
}

export function parseLabelSelector(sel: string): Requirement[] {
  const reqs: Requirement[] = [];
  for (const part of splitTop(sel)) {
    let m: RegExpMatchArray | null;
    if ((m = part.match(/^([^\s!=(),]+)\s+(in|notin)\s*\(([^)]*)\)$/))) {
      const values = m[3].split(',').map((v) => v.trim()).filter((v) => v !== '');
      reqs.push({ key: m[1], op: m[2] as 'in' | 'notin', values });
    } else if ((m = part.match(/^([^\s!=(),]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/))) {
      reqs.push({ key: m[1], op: m[2] === '!=' ? '!=' : '=', value: m[3] });
    } else if ((m = part.match(/^!\s*([^\s!=(),]+)$/))) {
      reqs.push({ key: m[1], op: '!exists' });
    } else if ((m = part.match(/^([^\s!=(),]+)$/))) {
      reqs.push({ key: m[1], op: 'exists' });
    } else {
      throw bad('label', sel, `cannot parse "${part}"`);
    }
  }
  return reqs;
}

export function labelSelector(sel: string | null | undefined): Selector | undefined {
  if (!sel) return undefined;
  const reqs = parseLabelSelector(sel);
  return (obj) => {
    const labels = obj.metadata.labels ?? {};
    for (const r of reqs) {
      const has = Object.prototype.hasOwnProperty.call(labels, r.key);
      const v = labels[r.key];
      switch (r.op) {
        case 'exists': if (!has) return false; break;
        case '!exists': if (has) return false; break;
        case '=': if (!has || v !== r.value) return false; break;
        case '!=': if (has && v === r.value) return false; break;
        case 'in': if (!has || !r.values.includes(v)) return false; break;
        case 'notin': if (has && r.values.includes(v)) return false; break;
      }
    }
    return true;
  };
}

const FIELDS: Record<string, (o: KubeObject) => string> = {
  'metadata.name': (o) => o.metadata.name ?? '',
  'metadata.namespace': (o) => o.metadata.namespace ?? '',
};

/** Field selectors: like a real server, only supported fields are accepted (others are a 400). */
export function fieldSelector(sel: string | null | undefined): Selector | undefined {
  if (!sel) return undefined;
  const tests: ((o: KubeObject) => boolean)[] = [];
  for (const part of splitTop(sel)) {
    const m = part.match(/^([^=!]+)(==|=|!=)(.*)$/);
    if (!m) throw bad('field', sel, `invalid field selector "${part}"`);
    const get = FIELDS[m[1].trim()];
    if (!get) {
      throw new StatusError(400, 'BadRequest', `field label not supported: ${m[1].trim()}`);
    }
    const value = m[3].trim();
    tests.push(m[2] === '!=' ? (o) => get(o) !== value : (o) => get(o) === value);
  }
  return (o) => tests.every((t) => t(o));
}

/** The name a metadata.name=X field selector pins, so a list can skip the scan. */
export function pinnedName(sel: string | null | undefined): string | undefined {
  if (!sel) return undefined;
  const parts = splitTop(sel);
  for (const p of parts) {
    const m = p.match(/^metadata\.name(==|=)(.*)$/);
    if (m) return m[2].trim();
  }
  return undefined;
}

export function and(a: Selector | undefined, b: Selector | undefined): Selector | undefined {
  if (!a) return b;
  if (!b) return a;
  return (o) => a(o) && b(o);
}
