// The topology as Graphviz DOT, byte for byte as Kilo's `/graph` and `kgctl graph` write it
// (design §14.2) for ordinary names, quirks included (the peer label's real line feed).
import { network } from './addr.js';
import { endpointString } from './endpoint.js';
import { nodeReady } from './node.js';
import { peerReady } from './peer.js';
import type { Cluster, PlanOptions } from './plan.js';
import { newTopology, type Segment, type Topology } from './topology.js';

const UNSAFE = /[\\"\x00-\x1f\x7f]/;
const UNSAFE_ALL = /[\\"\x00-\x1f\x7f]/g;

/**
 * `s` as the inside of a Graphviz quoted string. Hardening (departs from Kilo): Kilo only wraps
 * names in quotes (design §14.2), so a location annotation holding `"` closed the string and wrote
 * statements of its own. Backslash and double quote are escaped, a line feed becomes `\n` and any
 * other control character the text `\xHH` (DOT has no escape for it). Distinct names stay
 * distinct; ordinary names are unchanged.
 */
export function dotEscape(s: string): string {
  if (!UNSAFE.test(s)) return s;
  return s.replace(UNSAFE_ALL, (c) => (c === '\\' ? '\\\\' : c === '"' ? '\\"' : c === '\n' ? '\\n' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`));
}

const q = (s: string) => `"${dotEscape(s)}"`;
const byQuoted = (a: readonly [string, ...unknown[]], b: readonly [string, ...unknown[]]) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0);

/** The DOT text would exceed its bound: refused before it is built (see topologyDOT). */
export class GraphTooLargeError extends Error {
  constructor(limit: number) {
    super(`the graph is too large: its DOT text would exceed ${limit} characters`);
  }
}

const MEMBER_EDGE = '[ dir=both ]';
const PEER_EDGE = '[ dir=both, style=dashed ]';

/**
 * The DOT text of a topology. `maxLength` bounds it (UTF-16 units): in full granularity the edges
 * between leaders grow with the square of the nodes, so their size is computed first and a graph
 * over the bound is refused without building it.
 */
export function topologyDOT(t: Topology, maxLength = Number.POSITIVE_INFINITY): string {
  if (t.crossGroups) return crossDOT(t, t.crossGroups, maxLength);
  const out: string[] = [];
  let size = 0;
  const st = (s: string) => {
    size += s.length + 3;
    if (size > maxLength) throw new GraphTooLargeError(maxLength);
    out.push(`\t${s};`);
  };
  out.push('digraph kilo {');
  st(`label=${q(network(t.wireGuardCIDR).s)}`);
  st('labelloc=t');
  st('outputorder=nodesfirst');
  st('overlap=false');
  const leaders = t.segments.map((s) => q(s.hostnames[s.leader]));
  const peers = [...t.peers].sort((a, b) => (a.name < b.name ? -1 : 1));
  const peerNames = peers.map((p) => p.name).sort().map(q);
  // One edge per pair of leaders and per leader and peer: their total length (each edge line is
  // its two names, the attributes and 5 characters), known before building any.
  const sum = (xs: string[]) => xs.reduce((n, x) => n + x.length, 0);
  const L = leaders.length;
  const pairs = (L * (L - 1)) / 2;
  const quadratic = (L - 1) * sum(leaders) + pairs * (MEMBER_EDGE.length + 5) + peerNames.length * sum(leaders) + L * sum(peerNames) + L * peerNames.length * (PEER_EDGE.length + 5);
  if (size + quadratic > maxLength) throw new GraphTooLargeError(maxLength);
  for (const [k, s] of t.segments.entries()) {
    const leader = s.hostnames[s.leader];
    for (const m of s.hostnames.filter((h) => h !== leader).map(q).sort()) st(`${leaders[k]}->${m}${MEMBER_EDGE}`);
  }
  for (let i = 0; i < L; i++) for (let j = i + 1; j < L; j++) st(`${leaders[i]}->${leaders[j]}${MEMBER_EDGE}`);
  for (const l of leaders) for (const p of peerNames) st(`${l}->${p}${PEER_EDGE}`);
  const subgraphs: [string, string[]][] = [];
  for (const s of t.segments) {
    const stmts = [`label=${q(s.location)}`, 'style="dashed,rounded"'];
    const members = s.hostnames.map((h, i) => {
      const lines = [s.location, h, s.cidrs[i]?.s ?? ''];
      if (s.privateIPs.length > 0 && s.privateIPs[i]) lines.push(s.privateIPs[i].s);
      if (i === s.leader) {
        lines.push(s.wireGuardIP.s);
        const ep = endpointString(s.endpoint);
        if (ep) lines.push(ep);
      }
      const name = q(h);
      return [name, `${name} [ label="${lines.map(dotEscape).join('\\n')}", ${i === s.leader ? 'rank=1, ' : ''}shape=ellipse ]`] as const;
    });
    members.sort(byQuoted);
    stmts.push(...members.map((m) => m[1]));
    subgraphs.push([q(`cluster_location_${s.location}`), stmts]);
  }
  subgraphs.sort(byQuoted);
  // Quirk: the peer label ends with a real line feed before its closing quote.
  const peerStmts = peers.map((p) => `${q(p.name)} [ label="${dotEscape(p.name)}\\n${dotEscape(endpointString(p.endpoint))}\n", shape=ellipse ]`);
  subgraphs.push([q('cluster_peers'), ['label="peers"', 'style="dashed,rounded"', ...peerStmts]]);
  for (const [name, stmts] of subgraphs) {
    out.push(`\tsubgraph ${name} {`);
    size += name.length + 20;
    for (const s of stmts) st(s);
    out.push('', '}', ';');
  }
  out.push('', '}');
  return out.join('\n') + '\n';
}

const PLAIN_EDGE = '[ arrowhead=none, arrowtail=none, dir=both, style=dotted ]';

/** One node's ellipse, labelled as a leader's (every node leads its segment in cross granularity). */
function crossNode(s: Segment, group: string): string {
  const lines = [group, s.hostnames[0], s.cidrs[0]?.s ?? ''];
  if (s.privateIPs[0]) lines.push(s.privateIPs[0].s);
  lines.push(s.wireGuardIP.s);
  const ep = endpointString(s.endpoint);
  if (ep) lines.push(ep);
  return `${q(s.hostnames[0])} [ label="${lines.map(dotEscape).join('\\n')}", rank=1, shape=ellipse ]`;
}

/**
 * Cross granularity (design §19.7): each node in a box of its own inside its location's box,
 * dotted plain edges between the nodes of one location, tunnel edges only between locations
 * (and to nodes in no location group, which stand alone as in full granularity), and the Peers.
 */
function crossDOT(t: Topology, groups: ReadonlyMap<string, ReadonlySet<string>>, maxLength: number): string {
  const out: string[] = [];
  let size = 0;
  const st = (s: string, indent = '\t') => {
    size += s.length + indent.length + 2;
    if (size > maxLength) throw new GraphTooLargeError(maxLength);
    out.push(`${indent}${s};`);
  };
  out.push('digraph kilo {');
  st(`label=${q(network(t.wireGuardCIDR).s)}`);
  st('labelloc=t');
  st('outputorder=nodesfirst');
  st('overlap=false');
  const groupOf = new Map<string, string>();
  for (const [g, keys] of groups) for (const k of keys) groupOf.set(k, g);
  const names = t.segments.map((s) => q(s.hostnames[0]));
  const peerNames = t.peers.map((p) => p.name).sort().map(q);
  const L = names.length;
  const sum = (xs: string[]) => xs.reduce((n, x) => n + x.length, 0);
  const bound = (L - 1) * sum(names) + ((L * (L - 1)) / 2) * (PLAIN_EDGE.length + 5) + peerNames.length * sum(names) + L * sum(peerNames) + L * peerNames.length * (PEER_EDGE.length + 5);
  if (size + bound > maxLength) throw new GraphTooLargeError(maxLength);
  for (let i = 0; i < L; i++) {
    const gi = groupOf.get(t.segments[i].location);
    for (let j = i + 1; j < L; j++) {
      const same = gi !== undefined && gi === groupOf.get(t.segments[j].location);
      st(`${names[i]}->${names[j]}${same ? PLAIN_EDGE : MEMBER_EDGE}`);
    }
  }
  for (const n of names) for (const p of peerNames) st(`${n}->${p}${PEER_EDGE}`);
  // Location boxes, each holding one box per node; nodes in no group stand alone.
  const boxes: [string, string[][]][] = [];
  const inner = new Map<string, string[][]>();
  for (const s of t.segments) {
    const g = groupOf.get(s.location);
    const box = [`label=${q(s.location)}`, 'style="dashed,rounded"', crossNode(s, g ?? s.location)];
    const name = q(`cluster_location_${s.location}`);
    if (g === undefined) {
      boxes.push([name, [box]]);
      continue;
    }
    let list = inner.get(g);
    if (!list) inner.set(g, (list = []));
    list.push([name, ...box]);
  }
  for (const [g, list] of inner) boxes.push([q(`cluster_location_${g}`), [[`label=${q(g)}`, 'style="dashed,rounded"'], ...list]]);
  boxes.sort(byQuoted);
  const peerStmts = t.peers.slice().sort((a, b) => (a.name < b.name ? -1 : 1)).map((p) => `${q(p.name)} [ label="${dotEscape(p.name)}\\n${dotEscape(endpointString(p.endpoint))}\n", shape=ellipse ]`);
  boxes.push([q('cluster_peers'), [['label="peers"', 'style="dashed,rounded"', ...peerStmts]]]);
  for (const [name, parts] of boxes) {
    out.push(`\tsubgraph ${name} {`);
    const grouped = parts.some((part) => part[0]?.startsWith('"cluster_'));
    for (const part of parts) {
      if (part[0].startsWith('"cluster_')) {
        out.push(`\t\tsubgraph ${part[0]} {`);
        for (const x of part.slice(1)) st(x, '\t\t\t');
        out.push('\t\t}');
      } else for (const x of part) st(x, grouped ? '\t\t' : '\t');
    }
    out.push('', '}', ';');
  }
  out.push('', '}');
  return out.join('\n') + '\n';
}

/**
 * The agent's `/graph` (design §13.1.1): the topology of the ready nodes and Peers as seen from
 * `o.hostname`, endpoints not resolved (as in Go), built once and not memoised (the agent's
 * re-plans keep their memo). Null when the local node is not ready.
 */
export function clusterDOT(c: Cluster, o: Pick<PlanOptions, 'hostname' | 'granularity' | 'subnet' | 'now'>, maxLength?: number): string | null {
  const nodes = c.nodes.filter((n) => nodeReady(n, o.now));
  if (!nodes.some((n) => n.name === o.hostname)) return null;
  const t = newTopology({ nodes, peers: c.peers.filter(peerReady), granularity: o.granularity, hostname: o.hostname, port: 0, subnet: o.subnet });
  if (!t.ok) throw new Error(`failed to create topology: ${t.error}`);
  return topologyDOT(t.value, maxLength);
}
