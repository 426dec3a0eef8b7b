// The ipset text formats: `ipset save` output parsed into our sets (name, header, elements) and
// `ipset restore` input for creates, element adds/deletes, swaps and destroys. Elements are kept
// in the form `ipset save` prints them (network address, no /32 or /128 suffix), so a desired
// element and a saved one compare as strings.

import { cidr, ipv4, network, parseCIDR } from '../plan/addr.js';
import type { Family } from '../plan/types.js';

/** Every set whose name starts with this is kg's (created, emptied, destroyed at will). */
export const SET_PREFIX = 'kilo';

export function isOurSet(name: string): boolean {
  return name.startsWith(SET_PREFIX) && /^kilo[46]-/.test(name);
}

/** Largest number of elements one set takes (a full set is reported, design §8.10). */
export const DEFAULT_MAXELEM = 262_144;

/** The `create` arguments after the name: what a set of ours must be (compared with the saved header). */
export function setHeader(family: Family, maxelem: number): string {
  return `hash:net family ${family === 'ipv4' ? 'inet' : 'inet6'} hashsize 1024 maxelem ${maxelem}`;
}

/** The part of a saved header we compare: type, family and maxelem (ipset adds bucketsize, initval…). */
export function headerIdentity(header: string): string {
  const t = header.split(' ');
  const get = (k: string): string => {
    const i = t.indexOf(k);
    return i < 0 ? '' : t[i + 1];
  };
  return `${t[0]} ${get('family')} ${get('maxelem')}`;
}

const elementMemo = new Map<string, readonly string[]>();

/**
 * The elements a CIDR of a rule becomes: its network, printed as ipset prints it. A /0 is not a
 * hash:net element: it becomes its two halves. Null when the text is not a CIDR.
 */
export function elementsOf(text: string): readonly string[] | null {
  const hit = elementMemo.get(text);
  if (hit !== undefined) return hit;
  const c = parseCIDR(text);
  if (c === null) return null;
  const show = (x: typeof c): string => {
    const n = network(x);
    return n.bits === (n.ip.v6 ? 128 : 32) ? n.ip.s : n.s;
  };
  let out: string[];
  if (c.bits > 0) out = [show(c)];
  else if (!c.ip.v6) out = [show(cidr(ipv4(0), 1)), show(cidr(ipv4(-2147483648), 1))];
  else out = [`::/1`, `8000::/1`];
  if (elementMemo.size >= 200_000) elementMemo.clear();
  elementMemo.set(text, out);
  return out;
}

/** One saved set of ours. */
export interface SavedSet {
  /** headerIdentity of its create line. */
  header: string;
  elements: Set<string>;
}

/** Parse `ipset save` output, keeping only our sets. */
export function parseIpsetSave(text: string): Map<string, SavedSet> {
  const sets = new Map<string, SavedSet>();
  for (const line of text.split('\n')) {
    if (line.startsWith('add kilo')) {
      const sp = line.indexOf(' ', 4);
      const s = sets.get(line.slice(4, sp));
      // the element is the next word (options such as timeout or comment are not ours)
      if (s) s.elements.add(line.slice(sp + 1).split(' ')[0]);
    } else if (line.startsWith('create kilo')) {
      const sp = line.indexOf(' ', 7);
      const name = line.slice(7, sp);
      if (isOurSet(name)) sets.set(name, { header: headerIdentity(line.slice(sp + 1)), elements: new Set() });
    }
  }
  return sets;
}

/** The probe set's name: not ours by `isOurSet`, so no reconciler ever reads or destroys it. */
export function probeSetName(pid: number): string {
  return `kg-probe-${pid}`.slice(0, 31);
}

/** `ipset restore` input that creates and destroys a small set of our type per family: what the set layout needs. */
export function probeLines(name: string, families: readonly Family[]): string[] {
  const out: string[] = [];
  for (const f of families) out.push(`create ${name} ${setHeader(f, 16).replace('hashsize 1024', 'hashsize 64')}`, `destroy ${name}`);
  return out;
}

/** What an operator must know about an ipset failure: what is missing, and what to do. */
export interface IpsetProblem {
  /** `tool` = no ipset binary; `kernel` = no ip_set support; `type` = no hash:net; `permission`; `other`. */
  cause: 'tool' | 'kernel' | 'type' | 'permission' | 'other';
  message: string;
}

/**
 * Classify a failed ipset run by its exit code and the texts ipset and the kernel print: 127 or a
 * spawn ENOENT (no binary; nsenter says "failed to execute"), "Cannot open session to kernel" or
 * "Invalid argument" (no ip_set in the kernel), "set type not supported" (no hash:net).
 */
export function ipsetProblem(code: number, stderr: string): IpsetProblem {
  const first = stderr.trim().split('\n').slice(0, 2).join('; ') || `exit status ${code}`;
  if (code === 127 || (code === -1 && /ENOENT/.test(stderr)) || /failed to execute ipset/.test(stderr)) {
    return { cause: 'tool', message: `the ipset tool is not installed or not on PATH (${first}): install the ipset package (the kg image ships it)` };
  }
  if (/set type not supported/i.test(stderr)) {
    return { cause: 'type', message: `the kernel has no hash:net set type (${first}): load it with \`modprobe ip_set_hash_net\` (CONFIG_IP_SET_HASH_NET)` };
  }
  if (/Cannot open session to kernel|Invalid argument|Protocol not supported|Kernel support protocol versions/i.test(stderr)) {
    return { cause: 'kernel', message: `the kernel has no usable ip_set support (${first}): load it with \`modprobe ip_set ip_set_hash_net\` (CONFIG_IP_SET, CONFIG_IP_SET_HASH_NET)` };
  }
  if (/Operation not permitted|Permission denied/i.test(stderr)) {
    return { cause: 'permission', message: `ipset is not permitted here (${first}): kg needs CAP_NET_ADMIN in the host network namespace` };
  }
  return { cause: 'other', message: `ipset failed (${first})` };
}
