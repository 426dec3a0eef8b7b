// Network links as the dataplane sees them (`ip -j addr`), and the one `ip -batch` that brings a
// link to a wanted MTU, address and up/down state. Used for the WireGuard link and the IPIP tunnel.

import type { Exec } from './exec.js';
import { checkIfAddr, clampInt, ifNameProblem, MTU_MAX, MTU_MIN, show } from '../kernel/input-checks.js';

/** What the link looks like now. */
export interface LinkInfo {
  exists: boolean;
  kind: string | null;
  up: boolean;
  mtu: number | null;
  addrs: string[];
}

export async function readLink(exec: Exec, name: string): Promise<LinkInfo> {
  const r = await exec.run('ip', ['-d', '-j', 'addr', 'show', 'dev', name]);
  if (r.code !== 0) return { exists: false, kind: null, up: false, mtu: null, addrs: [] };
  const arr = JSON.parse(r.stdout || '[]') as Array<Record<string, any>>;
  const o = arr[0];
  if (!o) return { exists: false, kind: null, up: false, mtu: null, addrs: [] };
  const addrs = ((o.addr_info ?? []) as Array<Record<string, any>>)
    .filter((a) => a.scope !== 'link')
    .map((a) => `${a.local}/${a.prefixlen}`);
  return {
    exists: true,
    kind: o.linkinfo?.info_kind ?? null,
    up: ((o.flags ?? []) as string[]).includes('UP'),
    mtu: typeof o.mtu === 'number' ? o.mtu : null,
    addrs,
  };
}

/** MTU of the default-route device minus 80, else 1420 (design §4.4). */
export async function detectMtu(exec: Exec): Promise<number> {
  const r = await exec.run('ip', ['-j', 'route', 'show', 'default']);
  try {
    const dev = (JSON.parse(r.stdout || '[]') as Array<{ dev?: string }>)[0]?.dev;
    if (dev) {
      const l = await readLink(exec, dev);
      if (l.mtu) return l.mtu - 80;
    }
  } catch {
    /* fall through */
  }
  return 1420;
}

export interface WantedLink {
  /** null = leave the MTU alone. */
  mtu: number | null;
  /** The only address the link must carry; null = leave addresses alone. */
  address: string | null;
  /** Design §20.3: a second address the link must carry too (dual stack); only with `address`. */
  address2?: string | null;
  up: boolean;
}

/** `ip -batch` lines that bring `link` (named `dev`) to `want`: MTU, addresses (exactly one), up/down. */
export function planLink(link: LinkInfo, dev: string, want: WantedLink): string[] {
  const lines: string[] = [];
  if (want.mtu !== null && link.mtu !== want.mtu) lines.push(`link set ${dev} mtu ${want.mtu}`);
  if (want.address !== null) {
    const wanted = want.address2 ? [want.address, want.address2] : [want.address];
    for (const a of link.addrs) if (!wanted.includes(a)) lines.push(`addr del ${a} dev ${dev}`);
    for (const w of wanted) if (!link.addrs.includes(w)) lines.push(`addr replace ${w} dev ${dev}`);
  }
  if (link.up !== want.up) lines.push(`link set ${dev} ${want.up ? 'up' : 'down'}`);
  return lines;
}

/**
 * A wanted link made safe to write: an MTU outside the kernel's range is clamped, an address that
 * is not `ip/len` is left out (the link keeps its addresses). `problems` says what was changed.
 * A device name that is not a valid interface name cannot be written at all (null).
 */
export function checkWantedLink(dev: string, want: WantedLink): { want: WantedLink | null; problems: Array<{ message: string; reason: 'invalid' | 'clamped' }> } {
  const problems: Array<{ message: string; reason: 'invalid' | 'clamped' }> = [];
  const bad = ifNameProblem('device', dev);
  if (bad !== null) return { want: null, problems: [{ message: bad, reason: 'invalid' }] };
  let { mtu, address } = want;
  if (mtu !== null) {
    const c = clampInt(mtu, MTU_MIN, MTU_MAX);
    if (c.clamped) problems.push({ message: `MTU ${show(mtu)} is outside ${MTU_MIN}-${MTU_MAX}: ${c.value} used`, reason: 'clamped' });
    mtu = c.value;
  }
  if (address !== null) {
    const c = checkIfAddr('address', address);
    if (!c.ok) problems.push({ message: `${c.problem}: the link's addresses are left as they are`, reason: 'invalid' });
    address = c.ok ? c.value : null;
  }
  let address2 = address === null ? null : want.address2 ?? null;
  if (address2 !== null) {
    const c = checkIfAddr('address', address2);
    if (!c.ok) problems.push({ message: `${c.problem}: the link keeps its first address only`, reason: 'invalid' });
    address2 = c.ok ? c.value : null;
  }
  return { want: { ...want, mtu, address, ...(address2 !== null ? { address2 } : {}) }, problems };
}

/** The link after `planLink`'s lines succeeded. */
export function linkAfter(link: LinkInfo, want: WantedLink): LinkInfo {
  const addrs = want.address === null ? link.addrs : want.address2 ? [want.address, want.address2] : [want.address];
  return { ...link, mtu: want.mtu ?? link.mtu, addrs, up: want.up };
}
