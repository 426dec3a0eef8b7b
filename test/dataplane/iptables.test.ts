// iptables reconciler against the real kernel, in network namespaces this test creates, for both
// backends (legacy and nft). Assertions read iptables-save, never the commands we sent.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Exec } from '../../dataplane/exec.js';
import { IptablesReconciler, detectBackend } from '../../dataplane/iptables.js';
import type { IptablesJSON, IptablesRule } from '../../plan/types.js';
import { TestNode, cleanupMntRoot, requireTool } from './netns.js';

after(cleanupMntRoot);

const C = (s: string): string[] => ['-m', 'comment', '--comment', s];
const nat = (chain: string, rule: string[], family: 'ipv4' | 'ipv6' = 'ipv4'): IptablesRule => ({ family, table: 'nat', chain, rule });

function kiloRules(nodes: number, extra = 0): IptablesJSON {
  const prepend: IptablesRule[] = [
    { family: 'ipv4', table: 'filter', chain: 'KILO-IPIP', rule: ['-s', '172.16.0.2/32', ...C('Kilo: allow IPIP traffic'), '-j', 'ACCEPT'] },
    nat('POSTROUTING', ['-s', '10.42.1.0/24', ...C('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT']),
    // spec order (comment before -s), as the Go agent writes FORWARD rules
    { family: 'ipv4', table: 'filter', chain: 'FORWARD', rule: [...C('Kilo: forward packets from the pod subnet'), '-s', '10.42.1.0/24', '-j', 'ACCEPT'] },
    { family: 'ipv4', table: 'filter', chain: 'FORWARD', rule: [...C('Kilo: forward packets to the pod subnet'), '-d', '10.42.1.0/24', '-j', 'ACCEPT'] },
    nat('POSTROUTING', ['-s', 'fd00:42:1::/64', ...C('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT'], 'ipv6'),
    nat('KILO-NAT', ['-d', 'fd00:42:2::/64', ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN'], 'ipv6'),
  ];
  for (let i = 0; i < nodes + extra; i++) {
    prepend.push(nat('KILO-NAT', ['-d', `10.4.${i >> 8}.${i & 255}/32`, ...C('Kilo: do not NAT packets destined for WireGuared IPs'), '-j', 'RETURN']));
    prepend.push(nat('KILO-NAT', ['-d', `10.${42 + (i >> 8)}.${i & 255}.0/24`, ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN']));
  }
  const append: IptablesRule[] = [
    { family: 'ipv4', table: 'filter', chain: 'INPUT', rule: ['-p', '4', ...C('Kilo: jump to IPIP chain'), '-j', 'KILO-IPIP'] },
    { family: 'ipv4', table: 'filter', chain: 'INPUT', rule: ['-p', '4', ...C('Kilo: reject other IPIP traffic'), '-j', 'DROP'] },
    nat('KILO-NAT', [...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE']),
    nat('KILO-NAT', [...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'], 'ipv6'),
  ];
  return {
    chains: [
      { family: 'ipv4', table: 'filter', chain: 'KILO-IPIP' },
      { family: 'ipv4', table: 'nat', chain: 'KILO-NAT' },
      { family: 'ipv6', table: 'nat', chain: 'KILO-NAT' },
    ],
    prepend,
    append,
  };
}

function save(node: TestNode, backend: string, family: 'ipv4' | 'ipv6', table: string): string[] {
  const bin = `${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${backend}-save`;
  return node
    .run(bin, '-t', table)
    .split('\n')
    .filter((l) => l.startsWith('-') || l.startsWith(':'))
    .map((l) => l.replace(/ \[\d+:\d+\]$/, ''));
}

function chainRules(lines: string[], chain: string): string[] {
  return lines.filter((l) => l.startsWith(`-A ${chain} `));
}

for (const backend of ['legacy', 'nft'] as const) {
  test(`iptables (${backend}): apply from empty, no-op, one-change delta, drift repair, clean-up with sentinels`, async (t) => {
    requireTool(`iptables-${backend}-save`, `iptables-${backend}-restore`, `ip6tables-${backend}-restore`);
    const node = TestNode.create(`ipt-${backend}`);
    t.after(() => node.destroy());
    const ipt = (...a: string[]): string => node.run(`iptables-${backend}`, '-w', ...a);
    // Sentinels that belong to someone else.
    ipt('-t', 'nat', '-N', 'SENTINEL');
    ipt('-t', 'nat', '-A', 'SENTINEL', '-j', 'RETURN');
    ipt('-t', 'nat', '-A', 'POSTROUTING', '-s', '192.0.2.0/24', '-j', 'SENTINEL');
    ipt('-A', 'FORWARD', '-s', '198.51.100.0/24', '-m', 'comment', '--comment', 'not kilo', '-j', 'ACCEPT');
    node.run(`ip6tables-${backend}`, '-w', '-t', 'nat', '-A', 'POSTROUTING', '-s', '2001:db8::/64', '-j', 'ACCEPT');

    const exec = new Exec(node.nsenter);
    assert.equal(await detectBackend(exec), backend, 'the backend holding the rules is detected');
    const r = new IptablesReconciler(exec, { backend, ipv6: true, layout: 'kilo' });

    // 1. apply from empty
    r.setDesired(kiloRules(100));
    let rep = await r.reconcile(false);
    assert.deepEqual(rep.errors, []);
    assert.equal(rep.batches, 2, 'one iptables-restore per family');
    let natv4 = save(node, backend, 'ipv4', 'nat');
    const kiloNat = chainRules(natv4, 'KILO-NAT');
    assert.equal(kiloNat.length, 201);
    assert.equal(kiloNat[0], '-A KILO-NAT -d 10.4.0.0/32 -m comment --comment "Kilo: do not NAT packets destined for WireGuared IPs" -j RETURN');
    assert.equal(kiloNat[200], '-A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE');
    assert.deepEqual(chainRules(natv4, 'POSTROUTING'), [
      '-A POSTROUTING -s 10.42.1.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT',
      '-A POSTROUTING -s 192.0.2.0/24 -j SENTINEL',
    ]);
    const filter = save(node, backend, 'ipv4', 'filter');
    assert.deepEqual(chainRules(filter, 'FORWARD'), [
      '-A FORWARD -s 10.42.1.0/24 -m comment --comment "Kilo: forward packets from the pod subnet" -j ACCEPT',
      '-A FORWARD -d 10.42.1.0/24 -m comment --comment "Kilo: forward packets to the pod subnet" -j ACCEPT',
      '-A FORWARD -s 198.51.100.0/24 -m comment --comment "not kilo" -j ACCEPT',
    ]);
    assert.deepEqual(chainRules(filter, 'INPUT'), [
      '-A INPUT -p ipencap -m comment --comment "Kilo: jump to IPIP chain" -j KILO-IPIP',
      '-A INPUT -p ipencap -m comment --comment "Kilo: reject other IPIP traffic" -j DROP',
    ]);
    const natv6 = save(node, backend, 'ipv6', 'nat');
    assert.deepEqual(chainRules(natv6, 'KILO-NAT'), [
      '-A KILO-NAT -d fd00:42:2::/64 -m comment --comment "Kilo: do not NAT packets destined for known IPs" -j RETURN',
      '-A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
    ]);

    // 2. a no-op resync re-reads and writes nothing
    rep = await r.reconcile(true);
    assert.deepEqual([rep.read, rep.writes, rep.batches, rep.errors.length], [true, 0, 0, 0]);

    // 3. one-change delta: one node more; the kernel holds it in the right place
    r.setDesired(kiloRules(100, 1));
    rep = await r.reconcile(false);
    assert.equal(rep.read, false, 'the delta used the cached view');
    assert.equal(rep.writes, 2, 'two inserted lines, no chain rewrite');
    natv4 = save(node, backend, 'ipv4', 'nat');
    assert.equal(chainRules(natv4, 'KILO-NAT')[200], '-A KILO-NAT -d 10.4.0.100/32 -m comment --comment "Kilo: do not NAT packets destined for WireGuared IPs" -j RETURN');
    assert.equal(chainRules(natv4, 'KILO-NAT').length, 203);
    rep = await r.reconcile(true);
    assert.equal(rep.writes, 0, 'cache and kernel agree after the delta');

    // 4. drift: someone flushes KILO-NAT and deletes our POSTROUTING jump
    ipt('-t', 'nat', '-F', 'KILO-NAT');
    ipt('-t', 'nat', '-D', 'POSTROUTING', '-s', '10.42.1.0/24', '-m', 'comment', '--comment', 'Kilo: jump to KILO-NAT chain', '-j', 'KILO-NAT');
    rep = await r.reconcile(true);
    assert.deepEqual(rep.errors, []);
    natv4 = save(node, backend, 'ipv4', 'nat');
    assert.equal(chainRules(natv4, 'KILO-NAT').length, 203);
    assert.equal(chainRules(natv4, 'POSTROUTING')[0], '-A POSTROUTING -s 10.42.1.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT');

    // 5. a stale Kilo rule in a built-in chain (e.g. left by a previous run) is removed
    ipt('-t', 'nat', '-I', 'POSTROUTING', '2', '-s', '10.99.0.0/24', '-m', 'comment', '--comment', 'Kilo: jump to KILO-NAT chain', '-j', 'KILO-NAT');
    rep = await r.reconcile(true);
    assert.equal(chainRules(save(node, backend, 'ipv4', 'nat'), 'POSTROUTING').length, 2);

    // 6. clean-up: everything of ours goes, the sentinels stay
    rep = await r.cleanUp();
    assert.deepEqual(rep.errors, []);
    natv4 = save(node, backend, 'ipv4', 'nat');
    assert.ok(!natv4.some((l) => l.includes('KILO')), natv4.join('\n'));
    assert.deepEqual(chainRules(natv4, 'POSTROUTING'), ['-A POSTROUTING -s 192.0.2.0/24 -j SENTINEL']);
    assert.deepEqual(chainRules(natv4, 'SENTINEL'), ['-A SENTINEL -j RETURN']);
    const f2 = save(node, backend, 'ipv4', 'filter');
    assert.ok(!f2.some((l) => l.includes('KILO') || l.includes('Kilo')), f2.join('\n'));
    assert.deepEqual(chainRules(f2, 'FORWARD'), ['-A FORWARD -s 198.51.100.0/24 -m comment --comment "not kilo" -j ACCEPT']);
    const n6 = save(node, backend, 'ipv6', 'nat');
    assert.deepEqual(chainRules(n6, 'POSTROUTING'), ['-A POSTROUTING -s 2001:db8::/64 -j ACCEPT']);
    assert.ok(!n6.some((l) => l.includes('KILO')));
  });
}

test('iptables: one rule iptables refuses does not block the others, not even in its own chain, and is not retried', async (t) => {
  requireTool('iptables-legacy-restore');
  const node = TestNode.create('ipt-bad');
  t.after(() => node.destroy());
  const r = new IptablesReconciler(new Exec(node.nsenter), { backend: 'legacy', ipv6: false, layout: 'kilo' });
  const good = kiloRules(3);
  good.prepend.splice(3, 0, { family: 'ipv4', table: 'filter', chain: 'FORWARD', rule: ['-j', 'NO-SUCH-CHAIN', ...C('Kilo: broken')] });
  r.setDesired(good);
  let rep = await r.reconcile(false);
  assert.deepEqual(rep.errors, []);
  assert.equal(rep.rejected.length, 1);
  assert.equal(rep.rejected[0].reason, 'refused');
  assert.match(rep.rejected[0].item, /filter FORWARD .*NO-SUCH-CHAIN/);
  const natv4 = save(node, 'legacy', 'ipv4', 'nat');
  assert.equal(chainRules(natv4, 'KILO-NAT').length, 7, 'the nat table was still applied');
  assert.equal(chainRules(save(node, 'legacy', 'ipv4', 'filter'), 'FORWARD').length, 2, 'the good rules of the same chain too');
  // a resync re-reads and writes nothing: the refused rule is not tried again while it is desired
  rep = await r.reconcile(true);
  assert.deepEqual([rep.errors.length, rep.rejected.length, rep.batches, rep.writes], [0, 0, 0, 0]);
  // once it changes, it is tried again (and here written: the chain it jumps to exists now)
  node.run('iptables-legacy', '-w', '-N', 'NO-SUCH-CHAIN');
  good.prepend[3] = { ...good.prepend[3], rule: ['-j', 'NO-SUCH-CHAIN', ...C('Kilo: fixed')] };
  r.setDesired(good);
  rep = await r.reconcile(false);
  assert.deepEqual([rep.errors.length, rep.rejected.length, rep.writes], [0, 0, 1]);
});
