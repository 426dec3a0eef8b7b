// The set layout of real planner output (design §8.10): every per-address rule the planner
// writes for nodes, Peers and forwarding becomes a set element; what stays a rule is fixed in
// number. Pure (the kernel side is test/dataplane/ipsets.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setLayoutOf, setMemberOf } from '../../diff/ipsets.js';
import { elementsOf } from '../../kernel/ipset.js';
import { examplePeers, exampleNodes } from '../plan/example.js';
import { planFor } from '../plan/fixture.js';

test('set layout: the planner\'s per-address rules are set elements; KILO-NAT keeps one rule per set', () => {
  for (const host of ['alpha', 'charlie']) {
    const ipt = planFor(exampleNodes(), examplePeers(), host, { forward: true, serviceCIDRs: ['10.43.0.0/16'], encapsulate: 'always', local: true }).json.iptables;
    const { desired, sets } = setLayoutOf(ipt, ['ipv4', 'ipv6']);
    const nat = desired.get('ipv4')!.get('nat')!.rules.get('KILO-NAT')!;
    assert.ok(nat.every((k) => k.includes('--match-set') || k.includes('service CIDRs') || k.includes('MASQUERADE')), nat.join('\n'));
    for (const r of [...ipt.prepend, ...ipt.append]) {
      const perAddress = r.chain === 'KILO-NAT' ? !r.rule.includes('MASQUERADE') && !r.rule.includes('Kilo: do not NAT packets destined for service CIDRs')
        : r.chain === 'POSTROUTING' ? r.rule.includes('Kilo: jump to NAT chain')
        : r.chain === 'FORWARD' && !r.rule.some((a) => a.includes("node's pod subnet"));
      const m = setMemberOf(r);
      assert.equal(m !== null, perAddress, `${r.chain} ${r.rule.join(' ')}`);
      if (m) for (const e of m.elements) assert.ok(sets.sets.get(m.set)!.counts.has(e));
    }
  }
});

test('set elements: network address as ipset prints it; /0 is two halves; not a CIDR is none', () => {
  assert.deepEqual(elementsOf('10.4.0.7/32'), ['10.4.0.7']);
  assert.deepEqual(elementsOf('10.42.3.9/24'), ['10.42.3.0/24']);
  assert.deepEqual(elementsOf('0.0.0.0/0'), ['0.0.0.0/1', '128.0.0.0/1']);
  assert.deepEqual(elementsOf('::/0'), ['::/1', '8000::/1']);
  assert.deepEqual(elementsOf('fd00:0:0::1/128'), ['fd00::1']);
  assert.equal(elementsOf('nonsense'), null);
});

test('set layout: a chain without set rules gets no entry of its own', () => {
  const ipt = planFor(exampleNodes(), [], 'bravo', {}).json.iptables;
  const { desired } = setLayoutOf(ipt, ['ipv4', 'ipv6']);
  assert.equal(desired.get('ipv4')!.get('filter')?.rules.has('FORWARD') ?? false, false, 'no forward rules planned: FORWARD is not desired');
});
