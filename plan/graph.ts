// The topology as Graphviz DOT, byte for byte as Kilo's `/graph` and `kgctl graph` write it
// (spec §14.2), quirks included (the peer label's real line feed).
import { network } from './addr.js';
import { endpointString } from './endpoint.js';
import type { Topology } from './topology.js';

const q = (s: string) => `"${s}"`;

export function topologyDOT(t: Topology): string {
  const out: string[] = [];
  const st = (s: string) => out.push(`\t${s};`);
  out.push('digraph kilo {');
  st(`label=${q(network(t.wireGuardCIDR).s)}`);
  st('labelloc=t');
  st('outputorder=nodesfirst');
  st('overlap=false');
  const leaders = t.segments.map((s) => s.hostnames[s.leader]);
  for (const s of t.segments) {
    const leader = s.hostnames[s.leader];
    for (const m of s.hostnames.filter((h) => h !== leader).sort((a, b) => (q(a) < q(b) ? -1 : q(a) > q(b) ? 1 : 0))) {
      st(`${q(leader)}->${q(m)}[ dir=both ]`);
    }
  }
  for (let i = 0; i < leaders.length; i++) for (let j = i + 1; j < leaders.length; j++) st(`${q(leaders[i])}->${q(leaders[j])}[ dir=both ]`);
  const peerNames = t.peers.map((p) => p.name).sort();
  for (const l of leaders) for (const p of peerNames) st(`${q(l)}->${q(p)}[ dir=both, style=dashed ]`);
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
      return [q(h), `${q(h)} [ label=${q(lines.join('\\n'))}, ${i === s.leader ? 'rank=1, ' : ''}shape=ellipse ]`] as const;
    });
    members.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
    stmts.push(...members.map((m) => m[1]));
    subgraphs.push([q(`cluster_location_${s.location}`), stmts]);
  }
  subgraphs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  // Quirk: the peer label ends with a real line feed before its closing quote.
  const peers = [...t.peers].sort((a, b) => (a.name < b.name ? -1 : 1)).map((p) => `${q(p.name)} [ label="${p.name}\\n${endpointString(p.endpoint)}\n", shape=ellipse ]`);
  subgraphs.push([q('cluster_peers'), ['label="peers"', 'style="dashed,rounded"', ...peers]]);
  for (const [name, stmts] of subgraphs) {
    out.push(`\tsubgraph ${name} {`);
    for (const s of stmts) out.push(`\t${s};`);
    out.push('', '}', ';');
  }
  out.push('', '}');
  return out.join('\n') + '\n';
}
