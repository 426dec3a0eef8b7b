// Shared by the hostile-input tests of the DOT output: cluster strings built to break a Graphviz
// file, Nodes that carry them, and a reading of DOT through Graphviz itself (`dot -Tjson0`).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import type { NodeObject } from '../../plan/node.js';

/** Location names (a free-form annotation in Kubernetes) written to escape a quoted string. */
export const HOSTILE = [
  'a"; evil -> x; "b',
  'x\n}\ndigraph owned {',
  '<b>html</b> & <i>',
  'ends\\',
  'ctl\u0001\u001b[31m\r\t',
  '\\N \\G \\" \\\\',
];

/** One Node per hostile location, each its own segment (an internal IP groups by location). */
export function hostileNodes(o: { now: number; key: (i: number) => string; prefix?: string }): NodeObject[] {
  return HOSTILE.map((location, i) => ({
    metadata: {
      name: `${o.prefix ?? 'h'}${i}`,
      labels: {},
      annotations: {
        'kilo.squat.ai/location': location,
        'kilo.squat.ai/endpoint': `198.51.100.${10 + i}:51820`,
        'kilo.squat.ai/internal-ip': `172.20.${i}.1/24`,
        'kilo.squat.ai/key': o.key(i),
        'kilo.squat.ai/last-seen': String(o.now),
      },
    },
    spec: { podCIDR: `10.60.${i}.0/24` },
  }));
}

/** A label or ID as kg writes it, back to its text: `\\`, `\n` and `\xHH` (Graphviz keeps them). */
export function decode(s: string): string {
  return s.replace(/\\(\\|n|x[0-9a-f]{2})/g, (_, e: string) => (e === '\\' ? '\\' : e === 'n' ? '\n' : String.fromCharCode(parseInt(e.slice(1), 16))));
}

interface Json0 {
  name: string;
  _subgraph_cnt: number;
  objects: { _gvid: number; name: string; label?: string; nodes?: number[] }[];
  edges?: { tail: number; head: number }[];
}

/**
 * Reads DOT with Graphviz and checks it is exactly the expected graph: these nodes and no other,
 * one edge per pair of segment leaders and per leader and peer (one node per segment here), one
 * cluster per location whose label is the location, and each node labelled with its location
 * and name. A string that escaped its quotes adds nodes, edges or graphs, or does not parse.
 */
export function assertGraph(dot: string, want: { segments: [name: string, location: string][]; peers: string[] }): void {
  const r = spawnSync('dot', ['-Tjson0'], { input: dot, encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, `Graphviz reads the DOT: ${r.stderr}`);
  assert.equal(r.stderr, '', 'without a warning');
  const g = JSON.parse(r.stdout) as Json0;
  assert.equal(g.name, 'kilo');
  const subgraphs = g.objects.slice(0, g._subgraph_cnt);
  const nodes = g.objects.slice(g._subgraph_cnt);
  const names = nodes.map((n) => decode(n.name)).sort();
  assert.deepEqual(names, [...want.segments.map((s) => s[0]), ...want.peers].sort(), 'exactly the nodes and peers');
  const L = want.segments.length;
  assert.equal(g.edges?.length ?? 0, (L * (L - 1)) / 2 + L * want.peers.length, 'one edge per leader pair and per leader and peer');
  const clusters = new Map(subgraphs.map((s) => [decode(s.name), s]));
  assert.equal(clusters.size, L + 1, 'one cluster per location, plus the peers');
  for (const [name, location] of want.segments) {
    const c = clusters.get(`cluster_location_location:${location}`);
    assert.ok(c, `the cluster of ${JSON.stringify(location)}`);
    assert.equal(decode(c.label ?? ''), `location:${location}`, 'the location is the cluster label, whole');
    const members = (c.nodes ?? []).map((id) => g.objects.find((o) => o._gvid === id && !('nodes' in o))!);
    assert.deepEqual(members.map((m) => decode(m.name)), [name]);
    assert.ok(decode(members[0].label ?? '').startsWith(`location:${location}\n${name}\n`), `the node label of ${name}: ${members[0].label}`);
  }
  assert.deepEqual((clusters.get('cluster_peers')?.nodes ?? []).length, want.peers.length);
}
