// Random sequences of cluster changes (joins, leaves, annotation edits, readiness flips,
// heartbeats, leader changes, time passing, Peer edits) for the incremental re-plan properties
// (test/plan/property.test.ts, test/workers/replan.test.ts).
import fc from 'fast-check';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import type { Strategy } from '../../plan/encapsulation.js';
import { genAnnotations, key, NOW } from './fixture.js';

export interface Spec {
  loc: number;
  internal: boolean;
  leader: boolean;
  publicEP: boolean;
  /** Seconds before the sequence's clock at which the node last checked in. */
  age: number;
  alip: number | null;
  keepalive: number;
  port: number;
}

export type Op =
  | { kind: 'join'; spec: Spec }
  | { kind: 'leave'; i: number }
  | { kind: 'edit'; i: number; spec: Spec }
  | { kind: 'endpoint'; i: number; port: number }
  | { kind: 'alip'; i: number; alip: number | null }
  | { kind: 'keepalive'; i: number; keepalive: number }
  | { kind: 'leader'; i: number }
  | { kind: 'flip'; i: number }
  | { kind: 'heartbeat'; i: number }
  | { kind: 'tick'; seconds: number }
  | { kind: 'peers'; ips: number[][] };

const spec: fc.Arbitrary<Spec> = fc.record({
  loc: fc.integer({ min: 0, max: 3 }),
  internal: fc.boolean(),
  leader: fc.integer({ min: 0, max: 3 }).map((x) => x === 0),
  publicEP: fc.boolean(),
  age: fc.integer({ min: 0, max: 9 }).map((x) => (x === 0 ? 120 : x * 5)),
  alip: fc.option(fc.integer({ min: 0, max: 5 }), { nil: null, freq: 3 }),
  keepalive: fc.constantFrom(0, 0, 5),
  port: fc.constantFrom(51820, 51821),
});

const index = fc.nat({ max: 63 });
export const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 2, arbitrary: spec.map((s) => ({ kind: 'join' as const, spec: s })) },
  { weight: 2, arbitrary: index.map((i) => ({ kind: 'leave' as const, i })) },
  { weight: 2, arbitrary: fc.tuple(index, spec).map(([i, s]) => ({ kind: 'edit' as const, i, spec: s })) },
  { weight: 3, arbitrary: fc.tuple(index, fc.constantFrom(51820, 51821, 51822)).map(([i, port]) => ({ kind: 'endpoint' as const, i, port })) },
  { weight: 3, arbitrary: fc.tuple(index, fc.option(fc.integer({ min: 0, max: 5 }), { nil: null })).map(([i, alip]) => ({ kind: 'alip' as const, i, alip })) },
  { weight: 2, arbitrary: fc.tuple(index, fc.constantFrom(0, 5, 10)).map(([i, keepalive]) => ({ kind: 'keepalive' as const, i, keepalive })) },
  { weight: 2, arbitrary: index.map((i) => ({ kind: 'leader' as const, i })) },
  { weight: 3, arbitrary: index.map((i) => ({ kind: 'flip' as const, i })) },
  { weight: 5, arbitrary: index.map((i) => ({ kind: 'heartbeat' as const, i })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 30 }).map((seconds) => ({ kind: 'tick' as const, seconds })) },
  { weight: 1, arbitrary: fc.array(fc.array(fc.integer({ min: 0, max: 7 }), { maxLength: 2 }), { maxLength: 2 }).map((ips) => ({ kind: 'peers' as const, ips })) },
);

export const scenario = fc.record({
  nodes: fc.array(spec, { minLength: 2, maxLength: 10 }),
  ops: fc.array(op, { minLength: 20, maxLength: 60 }),
  granularity: fc.constantFrom('location' as const, 'full' as const, 'cross' as const),
  encapsulate: fc.constantFrom<Strategy>('never', 'always', 'crosssubnet'),
});
export type Scenario = typeof scenario extends fc.Arbitrary<infer T> ? T : never;

/** What one step changed, as the replica hears it (workers/plan-worker.ts's ReplicaDelta). */
export interface Step {
  nodes: NodeObject[];
  deletes: string[];
  lastSeen: [string, number][];
  peers: PeerObject[] | null;
}

/**
 * The cluster a sequence builds; node `n00` (the one planned) never leaves. Later joins get a
 * suffix letter (n03b), so that they fall between existing nodes in name order.
 */
export class Model {
  readonly specs = new Map<string, Spec & { lastSeen: number }>();
  peerIPs: number[][] = [[1], [2, 7]];
  now = NOW;
  private joined = 0;

  constructor(nodes: readonly Spec[]) {
    for (const s of nodes) this.add(s);
  }

  private add(s: Spec): string {
    const n = this.joined++;
    // Interleaved names: later joins sort between earlier nodes (n00, n00a, n01, ...).
    const name = n < 10 ? `n${String(n).padStart(2, '0')}` : `n${String(n % 10).padStart(2, '0')}${String.fromCharCode(97 + Math.floor(n / 10))}`;
    this.specs.set(name, { ...s, lastSeen: this.now - s.age });
    return name;
  }

  names(): string[] {
    return [...this.specs.keys()].sort();
  }

  private pick(i: number, local = false): string | null {
    const names = this.names().filter((n) => local || n !== 'n00');
    return names.length ? names[i % names.length] : null;
  }

  apply(o: Op): Step {
    const step: Step = { nodes: [], deletes: [], lastSeen: [], peers: null };
    const upsert = (name: string, change: (s: Spec & { lastSeen: number }) => void) => {
      const s = this.specs.get(name)!;
      change(s);
      step.nodes.push(this.object(name));
    };
    const at = (i: number, local: boolean, f: (name: string) => void) => {
      const name = this.pick(i, local);
      if (name) f(name);
    };
    switch (o.kind) {
      case 'join': step.nodes.push(this.object(this.add(o.spec))); break;
      case 'leave': at(o.i, false, (n) => { this.specs.delete(n); step.deletes.push(n); }); break;
      case 'edit': at(o.i, true, (n) => upsert(n, (s) => Object.assign(s, o.spec, { lastSeen: this.now - o.spec.age }))); break;
      case 'endpoint': at(o.i, true, (n) => upsert(n, (s) => (s.port = o.port))); break;
      case 'alip': at(o.i, true, (n) => upsert(n, (s) => (s.alip = o.alip))); break;
      case 'keepalive': at(o.i, true, (n) => upsert(n, (s) => (s.keepalive = o.keepalive))); break;
      case 'leader': at(o.i, true, (n) => upsert(n, (s) => (s.leader = !s.leader))); break;
      case 'flip': at(o.i, true, (n) => upsert(n, (s) => (s.lastSeen = this.now - s.lastSeen < 60 ? this.now - 120 : this.now))); break;
      case 'heartbeat': at(o.i, true, (n) => {
        this.specs.get(n)!.lastSeen = this.now;
        step.lastSeen.push([n, this.now]);
      }); break;
      case 'tick': this.now += o.seconds; break;
      case 'peers': this.peerIPs = o.ips; step.peers = this.peerObjects(); break;
    }
    return step;
  }

  object(name: string): NodeObject {
    const g = this.specs.get(name)!;
    const i = Number(name.slice(1, 3)) + 10 * (name.length > 3 ? name.charCodeAt(3) - 96 : 0);
    const ann = genAnnotations(g, i, g.lastSeen, g.port);
    return { metadata: { name, annotations: ann }, spec: { podCIDR: `10.42.${i}.0/24` } };
  }

  objects(): NodeObject[] {
    return this.names().map((n) => this.object(n));
  }

  peerObjects(): PeerObject[] {
    // Peer allowed IPs may be claimed twice and may overlap allowed-location IPs.
    return this.peerIPs.map((ips, j) => ({
      metadata: { name: `p${j}` },
      spec: { allowedIPs: ips.map((x) => (x === 7 ? '172.16.1.0/24' : `10.5.${x}.0/24`)), publicKey: key(200 + j) },
    }));
  }
}
