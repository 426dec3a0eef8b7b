// Desired-state deltas: splices reproduce the next state; incremental iptables chains equal a rebuild.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DeltaTracker, applySplice, spliceOf } from '../../diff/desired.js';
import { buildDesired, patchDesired } from '../../diff/iptables.js';
import { fixture } from '../../bench/plan-fixture.js';

const KEY = Buffer.alloc(32, 7).toString('base64');

test('spliceOf/applySplice: one splice turns any list into any other', () => {
  fc.assert(
    fc.property(fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 12 }), fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 12 }), (a, b) => {
      const arr = [...a];
      applySplice(arr, spliceOf(a, b, String));
      assert.deepEqual(arr, b);
    }),
  );
});

test('DeltaTracker + patchDesired: incremental state equals the full rebuild over a sequence of plans', () => {
  fc.assert(
    fc.property(fc.array(fc.record({ changed: fc.integer({ min: 0, max: 3 }), omit: fc.integer({ min: 0, max: 12 }), nodes: fc.integer({ min: 8, max: 12 }) }), { minLength: 1, maxLength: 6 }), (seq) => {
      const plans = seq.map((s) => fixture({ nodes: s.nodes, privateKey: KEY, changed: s.changed, omit: s.omit, ipv6: s.changed === 2 }));
      const tr = new DeltaTracker();
      tr.full(plans[0]);
      const cur = { peers: [...plans[0].wireguard!.peers], routes: [...plans[0].routes], prepend: [...plans[0].iptables.prepend], append: [...plans[0].iptables.append] };
      let ipt = buildDesired(plans[0].iptables);
      for (const p of plans.slice(1)) {
        const d = tr.delta(p);
        assert.equal(d.base, tr.seq - 1);
        applySplice(cur.peers, d.peers);
        applySplice(cur.routes, d.routes);
        if (d.chains !== null) {
          applySplice(cur.prepend, d.prepend);
          applySplice(cur.append, d.append);
          ipt = buildDesired({ chains: d.chains, prepend: cur.prepend, append: cur.append });
        } else {
          if (d.prepend) {
            patchDesired(ipt, 'prepend', cur.prepend, d.prepend.start, d.prepend.deleteCount, d.prepend.items);
            applySplice(cur.prepend, d.prepend);
          }
          if (d.append) {
            patchDesired(ipt, 'append', cur.append, d.append.start, d.append.deleteCount, d.append.items);
            applySplice(cur.append, d.append);
          }
        }
        assert.deepEqual(cur.peers, p.wireguard!.peers);
        assert.deepEqual(cur.routes, p.routes);
        assert.deepEqual(cur.prepend, p.iptables.prepend);
        const full = buildDesired(p.iptables);
        for (const [f, tables] of full) {
          for (const [t, want] of tables) {
            const got = ipt.get(f)!.get(t)!;
            for (const [c, keys] of want.rules) {
              assert.deepEqual(got.rules.get(c), keys, `${f} ${t} ${c}`);
              assert.equal(got.prependCount.get(c) ?? 0, want.prependCount.get(c) ?? 0);
            }
          }
        }
      }
    }),
    { numRuns: 60 },
  );
});

test('DeltaTracker.next: the whole state without a held base, a delta against it, a no-op when nothing changed, the whole state again after the receiver lost it', () => {
  const tr = new DeltaTracker();
  tr.seq = 1000;
  const a = fixture({ nodes: 8, privateKey: KEY });
  const b = fixture({ nodes: 8, privateKey: KEY, changed: 1 });
  const first = tr.next(a, null);
  assert.ok('full' in first && first.full === a && first.seq === 1001);
  const second = tr.next(b, first.seq);
  assert.ok('delta' in second && second.delta.base === 1001 && second.seq === 1002);
  assert.ok(second.delta.peers !== null || second.delta.routes !== null || second.delta.prepend !== null);
  // the same state again: nothing to send, and the receiver's number stands
  const same = tr.next(fixture({ nodes: 8, privateKey: KEY, changed: 1 }), second.seq);
  assert.deepEqual(same, { noop: true, seq: 1002 });
  // a receiver holding another number (a restarted I/O worker holds none): the whole state
  const again = tr.next(b, null);
  assert.ok('full' in again && again.full === b && again.seq === 1003);
  const other = tr.next(a, 77);
  assert.ok('full' in other && other.seq === 1004);
});
