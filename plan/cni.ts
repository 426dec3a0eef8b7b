// The CNI conflist (design §10): what kg writes into the conflist at --cni-path. Pure: text in,
// text out; the dataplane writes the file.
import { parseCIDR } from './addr.js';

/** The conflist of Kilo's stock ConfigMap (design §10.1); kg plan shows it with the pod CIDR. */
export const STOCK_CONFLIST = {
  cniVersion: '0.4.0',
  name: 'kilo',
  plugins: [
    {
      name: 'kubernetes', type: 'bridge', bridge: 'kube-bridge', isDefaultGateway: true, forceAddress: true, mtu: 1420,
      ipam: { type: 'host-local' },
    },
    { type: 'portmap', snat: true, capabilities: { portMappings: true } },
  ],
};

/** JSON with keys sorted at every level, compact: Go's encoding of a generic map. */
export function sortedJSON(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(sortedJSON).join(',')}]`;
  if (v !== null && typeof v === 'object') {
    const o = v as Record<string, unknown>;
    return `{${Object.keys(o).sort().map((k) => `${JSON.stringify(k)}:${sortedJSON(o[k])}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

type Obj = Record<string, unknown>;
const isObj = (v: unknown): v is Obj => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * The first host-local range subnet of the conflist, read as libcni would (design §10.2 step 1),
 * or an error. A legacy top-level `ipam.subnet` counts as the first range.
 */
export function conflistRange(text: string): { cidr: string } | { error: string } {
  let conf: unknown;
  try {
    conf = JSON.parse(text);
  } catch (e) {
    return { error: `invalid JSON: ${(e as Error).message}` };
  }
  if (!isObj(conf) || typeof conf.name !== 'string' || conf.name === '') return { error: 'missing network name' };
  if (!Array.isArray(conf.plugins) || conf.plugins.length === 0) return { error: 'no plugins in list' };
  for (const p of conf.plugins) {
    if (!isObj(p) || !isObj(p.ipam) || typeof p.ipam.type !== 'string' || p.ipam.type === '') continue;
    const ranges: unknown[] = [];
    if (typeof p.ipam.subnet === 'string' && p.ipam.subnet !== '') ranges.push([{ subnet: p.ipam.subnet }]);
    if (Array.isArray(p.ipam.ranges)) ranges.push(...p.ipam.ranges);
    if (ranges.length === 0) return { error: 'no IP ranges specified' };
    const first = ranges[0];
    const r = Array.isArray(first) ? first[0] : null;
    if (!isObj(r) || typeof r.subnet !== 'string') return { error: 'invalid range set' };
    return { cidr: r.subnet };
  }
  return { error: 'no IPAM configuration found' };
}

function sameCIDR(a: string | null, b: string): boolean {
  const x = a === null ? null : parseCIDR(a);
  const y = parseCIDR(b);
  return !!x && !!y && x.bits === y.bits && x.ip.s === y.ip.s;
}

/** The subnet of the second range set of the first plugin with IPAM ranges (design §20.4), or null. */
function secondRange(text: string): string | null {
  let conf: unknown;
  try {
    conf = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObj(conf) || !Array.isArray(conf.plugins)) return null;
  for (const p of conf.plugins) {
    if (!isObj(p) || !isObj(p.ipam)) continue;
    const set = Array.isArray(p.ipam.ranges) ? p.ipam.ranges[1] : undefined;
    const r = Array.isArray(set) ? set[0] : null;
    return isObj(r) && typeof r.subnet === 'string' ? r.subnet : null;
  }
  return null;
}

/**
 * Sets `ipam.ranges = [[{subnet}]]` in every plugin that has `ipam` (design §10.2).
 * Returns the new text, `null` when the file already holds the pod CIDR, or an error.
 */
export function rewriteConflist(text: string, podCIDR: string, podCIDR2?: string | null): { text: string | null } | { error: string } {
  const current = conflistRange(text);
  // Design §20.4: `podCIDR2` undefined is Kilo's rule (the first range alone decides); in dual
  // stack kg owns the second range set too: a string is wanted there, null is none.
  const second = secondRange(text);
  const secondOK = podCIDR2 === undefined || (podCIDR2 === null ? second === null : sameCIDR(second, podCIDR2));
  if ('cidr' in current && secondOK) {
    const a = parseCIDR(current.cidr);
    const b = parseCIDR(podCIDR);
    if (a && b && a.bits === b.bits && a.ip.s === b.ip.s) return { text: null };
  }
  let conf: unknown;
  try {
    conf = JSON.parse(text);
  } catch (e) {
    return { error: `failed to parse CNI config: ${(e as Error).message}` };
  }
  if (!isObj(conf) || !Array.isArray(conf.plugins)) return { error: 'failed to find "plugins" list in CNI config' };
  let found = false;
  for (const p of conf.plugins) {
    if (!isObj(p)) return { error: 'failed to parse plugin from CNI config' };
    if (!('ipam' in p)) continue;
    if (!isObj(p.ipam)) return { error: 'failed to parse IPAM configuration from CNI config' };
    // Design §20.4: host-local allocates one address from each range set, so a pod gets both families.
    p.ipam.ranges = typeof podCIDR2 === 'string' ? [[{ subnet: podCIDR }], [{ subnet: podCIDR2 }]] : [[{ subnet: podCIDR }]];
    found = true;
  }
  if (!found) return { error: 'failed to find IPAM configuration in CNI config' };
  return { text: sortedJSON(conf) };
}

/** The conflist kg would write for the stock ConfigMap, as a JSON value (two range sets for dual stack). */
export function stockConflist(podCIDR: string, podCIDR2?: string | null): unknown {
  const r = rewriteConflist(JSON.stringify(STOCK_CONFLIST), podCIDR, podCIDR2);
  return 'text' in r && r.text ? JSON.parse(r.text) : null;
}
