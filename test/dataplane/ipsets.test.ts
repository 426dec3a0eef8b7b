// The set layout (--iptables-layout=sets, design §8.10) against the real kernel, in network
// namespaces this test creates, on both iptables backends. Assertions read iptables-save and
// ipset save, never the commands we sent.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Exec } from '../../dataplane/exec.js';
import { IptablesReconciler } from '../../dataplane/iptables.js';
import type { IptablesJSON, IptablesRule } from '../../plan/types.js';
import { TestNode, cleanupMntRoot, requireTool, sh } from './netns.js';

after(cleanupMntRoot);

const C = (s: string): string[] => ['-m', 'comment', '--comment', s];
const WG = 'Kilo: do not NAT packets destined for WireGuared IPs';
const KNOWN = 'Kilo: do not NAT packets destined for known IPs';
const nat = (chain: string, rule: string[], family: 'ipv4' | 'ipv6' = 'ipv4'): IptablesRule => ({ family, table: 'nat', chain, rule });
const fwd = (rule: string[]): IptablesRule => ({ family: 'ipv4', table: 'filter', chain: 'FORWARD', rule });

/** The rules of node i, in the planner's shapes (plan/iptables.ts). */
function nodeRules(i: number): IptablesRule[] {
  return [
    nat('KILO-NAT', ['-d', `10.4.${i >> 8}.${i & 255}/32`, ...C(WG), '-j', 'RETURN']),
    nat('KILO-NAT', ['-d', `10.${42 + (i >> 8)}.${i & 255}.0/24`, ...C(KNOWN), '-j', 'RETURN']),
  ];
}

/** A leader's plan: `nodes` nodes, a peer, forward rules, one IPv6 node. */
function plan(nodes: number, without = -1): IptablesJSON {
  const prepend: IptablesRule[] = [
    nat('POSTROUTING', ['-s', '10.42.1.0/24', ...C('Kilo: jump to KILO-NAT chain'), '-j', 'KILO-NAT']),
    fwd([...C('Kilo: forward packets from the pod subnet'), '-s', '10.42.1.0/24', '-j', 'ACCEPT']),
    fwd([...C('Kilo: forward packets to the pod subnet'), '-d', '10.42.1.0/24', '-j', 'ACCEPT']),
    nat('KILO-NAT', ['-d', 'fd00:42:2::/64', ...C(KNOWN), '-j', 'RETURN'], 'ipv6'),
  ];
  for (let i = 0; i < nodes; i++) if (i !== without) prepend.push(...nodeRules(i));
  // a Peer routing everything: /0 is two /1 elements
  prepend.push(nat('POSTROUTING', ['-s', '0.0.0.0/0', ...C('Kilo: jump to NAT chain'), '-j', 'KILO-NAT']));
  prepend.push(nat('KILO-NAT', ['-d', '0.0.0.0/0', ...C('Kilo: do not NAT packets destined for peers'), '-j', 'RETURN']));
  const append: IptablesRule[] = [
    nat('KILO-NAT', ['-d', '10.96.0.0/12', ...C('Kilo: do not NAT packets destined for service CIDRs'), '-j', 'RETURN']),
    nat('KILO-NAT', [...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE']),
    nat('KILO-NAT', [...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'], 'ipv6'),
  ];
  return { chains: [{ family: 'ipv4', table: 'nat', chain: 'KILO-NAT' }, { family: 'ipv6', table: 'nat', chain: 'KILO-NAT' }], prepend, append };
}

const SET_NAT = [
  '-A KILO-NAT -m set --match-set kilo4-nat-wg dst -m comment --comment "Kilo: do not NAT packets destined for WireGuared IPs" -j RETURN',
  '-A KILO-NAT -m set --match-set kilo4-nat-known dst -m comment --comment "Kilo: do not NAT packets destined for known IPs" -j RETURN',
  '-A KILO-NAT -m set --match-set kilo4-nat-peers dst -m comment --comment "Kilo: do not NAT packets destined for peers" -j RETURN',
  '-A KILO-NAT -d 10.96.0.0/12 -m comment --comment "Kilo: do not NAT packets destined for service CIDRs" -j RETURN',
  '-A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
];

class Host {
  constructor(
    readonly node: TestNode,
    readonly backend: 'legacy' | 'nft',
  ) {}
  ipt(...a: string[]): string {
    return this.node.run(`iptables-${this.backend}`, '-w', ...a);
  }
  save(table: string, family: 'ipv4' | 'ipv6' = 'ipv4'): string[] {
    return this.node
      .run(`${family === 'ipv4' ? 'iptables' : 'ip6tables'}-${this.backend}-save`, '-t', table)
      .split('\n')
      .filter((l) => l.startsWith('-A '));
  }
  chain(table: string, chain: string, family: 'ipv4' | 'ipv6' = 'ipv4'): string[] {
    return this.save(table, family).filter((l) => l.startsWith(`-A ${chain} `));
  }
  /** set name → elements, for every set in the namespace. */
  sets(): Map<string, string[]> {
    const out = new Map<string, string[]>();
    for (const l of this.node.run('ipset', 'save').split('\n')) {
      const w = l.split(' ');
      if (w[0] === 'create') out.set(w[1], []);
      else if (w[0] === 'add') out.get(w[1])!.push(w[2]);
    }
    return out;
  }
}

function setup(t: { after: (fn: () => void) => void }, tag: string, backend: 'legacy' | 'nft'): Host {
  requireTool('ipset', `iptables-${backend}-save`, `iptables-${backend}-restore`, `ip6tables-${backend}-restore`);
  const node = TestNode.create(tag);
  t.after(() => node.destroy());
  return new Host(node, backend);
}

for (const backend of ['legacy', 'nft'] as const) {
  test(`ipset layout (${backend}): apply, zero-write resync, one-change deltas, drift repair, clean-up with sentinels`, async (t) => {
    const h = setup(t, `set-${backend}`, backend);
    // someone else's set, a rule using it, and a chain: they survive everything below
    h.node.run('ipset', 'create', 'kilonet-other', 'hash:ip');
    h.node.run('ipset', 'add', 'kilonet-other', '192.0.2.1');
    h.ipt('-t', 'nat', '-A', 'POSTROUTING', '-m', 'set', '--match-set', 'kilonet-other', 'src', '-j', 'RETURN');
    h.ipt('-N', 'SENTINEL');
    h.ipt('-A', 'FORWARD', '-s', '198.51.100.0/24', '-j', 'SENTINEL');

    const r = new IptablesReconciler(new Exec(h.node.nsenter), { backend, ipv6: true, layout: 'sets' });
    let cur = plan(100);
    r.setDesired(cur);
    let rep = await r.reconcile(false);
    assert.deepEqual(rep.errors, []);
    assert.deepEqual(h.chain('nat', 'KILO-NAT'), SET_NAT);
    assert.deepEqual(h.chain('nat', 'POSTROUTING'), [
      '-A POSTROUTING -m set --match-set kilo4-jump-src src -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT',
      '-A POSTROUTING -s 10.42.1.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT',
      '-A POSTROUTING -m set --match-set kilonet-other src -j RETURN',
    ]);
    assert.deepEqual(h.chain('filter', 'FORWARD'), [
      '-A FORWARD -m comment --comment "Kilo: forward packets from the pod subnet" -m set --match-set kilo4-fwd-pod-src src -j ACCEPT',
      '-A FORWARD -m comment --comment "Kilo: forward packets to the pod subnet" -m set --match-set kilo4-fwd-pod-dst dst -j ACCEPT',
      '-A FORWARD -s 198.51.100.0/24 -j SENTINEL',
    ]);
    assert.deepEqual(h.chain('nat', 'KILO-NAT', 'ipv6'), [
      '-A KILO-NAT -m set --match-set kilo6-nat-known dst -m comment --comment "Kilo: do not NAT packets destined for known IPs" -j RETURN',
      '-A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
    ]);
    let sets = h.sets();
    assert.equal(sets.get('kilo4-nat-wg')!.length, 100);
    assert.ok(sets.get('kilo4-nat-wg')!.includes('10.4.0.7'), 'a /32 is held as the address');
    assert.equal(sets.get('kilo4-nat-known')!.length, 100);
    assert.deepEqual(sets.get('kilo4-nat-peers')!.sort(), ['0.0.0.0/1', '128.0.0.0/1']);
    assert.deepEqual(sets.get('kilo6-nat-known'), ['fd00:42:2::/64']);

    // zero-write resync: both kernels re-read, nothing written
    rep = await r.reconcile(true);
    assert.deepEqual([rep.writes, rep.batches, rep.errors.length], [0, 0, 0]);

    // one node leaves, then joins: element deletes / adds only, one ipset restore, no rule written
    const before = [...h.save('nat'), ...h.save('filter')];
    const leave = plan(100, 42);
    const at = cur.prepend.indexOf(cur.prepend.find((x) => x.rule[1] === '10.4.0.42/32')!);
    r.patch('prepend', cur.prepend, { start: at, deleteCount: 2, items: [] });
    cur = leave;
    rep = await r.reconcile(false);
    assert.deepEqual([rep.writes, rep.batches, rep.errors.length], [2, 1, 0], 'two element deletes in one batch');
    assert.deepEqual([...h.save('nat'), ...h.save('filter')], before, 'no rule changed');
    sets = h.sets();
    assert.equal(sets.get('kilo4-nat-wg')!.includes('10.4.0.42'), false);
    assert.equal(sets.get('kilo4-nat-known')!.includes('10.42.42.0/24'), false);
    r.patch('prepend', cur.prepend, { start: at, deleteCount: 0, items: nodeRules(42) });
    cur = plan(100);
    rep = await r.reconcile(false);
    assert.deepEqual([rep.writes, rep.batches, rep.errors.length], [2, 1, 0], 'two element adds in one batch');
    assert.equal(h.sets().get('kilo4-nat-wg')!.includes('10.4.0.42'), true);
    rep = await r.reconcile(true);
    assert.equal(rep.writes, 0, 'cache and kernel agree after the deltas');

    // drift: an element deleted by someone else
    h.node.run('ipset', 'del', 'kilo4-nat-known', '10.42.7.0/24');
    rep = await r.reconcile(true);
    assert.deepEqual([rep.writes, rep.errors.length], [1, 0]);
    assert.ok(h.sets().get('kilo4-nat-known')!.includes('10.42.7.0/24'));
    // drift: a set flushed, and a set rule deleted and its set destroyed
    h.node.run('ipset', 'flush', 'kilo4-nat-wg');
    h.ipt('-t', 'nat', '-D', 'POSTROUTING', '-m', 'set', '--match-set', 'kilo4-jump-src', 'src', '-m', 'comment', '--comment', 'Kilo: jump to NAT chain', '-j', 'KILO-NAT');
    h.node.run('ipset', 'destroy', 'kilo4-jump-src');
    rep = await r.reconcile(true);
    assert.deepEqual(rep.errors, []);
    sets = h.sets();
    assert.equal(sets.get('kilo4-nat-wg')!.length, 100);
    assert.deepEqual(sets.get('kilo4-jump-src')!.sort(), ['0.0.0.0/1', '128.0.0.0/1']);
    assert.equal(h.chain('nat', 'POSTROUTING')[0], '-A POSTROUTING -m set --match-set kilo4-jump-src src -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT');
    // drift: a set of ours with another size is rebuilt and swapped in under its rule
    h.ipt('-t', 'nat', '-D', 'KILO-NAT', '1');
    h.node.run('ipset', 'destroy', 'kilo4-nat-wg');
    h.node.run('ipset', 'create', 'kilo4-nat-wg', 'hash:net', 'maxelem', '10');
    rep = await r.reconcile(true);
    assert.deepEqual(rep.errors, []);
    assert.equal(h.sets().get('kilo4-nat-wg')!.length, 100);
    assert.deepEqual(h.chain('nat', 'KILO-NAT'), SET_NAT);
    assert.equal((await r.reconcile(true)).writes, 0);

    // the last element of a set goes: its rule goes, then the set
    r.setDesired({ ...cur, prepend: cur.prepend.filter((x) => x.chain !== 'POSTROUTING' || x.rule[1] !== '0.0.0.0/0') });
    rep = await r.reconcile(false);
    assert.deepEqual(rep.errors, []);
    assert.equal(h.sets().has('kilo4-jump-src'), false);
    assert.equal(h.chain('nat', 'POSTROUTING').length, 2);

    // clean-up: every rule, chain and set of ours goes; the sentinels stay
    rep = await r.cleanUp();
    assert.deepEqual(rep.errors, []);
    assert.deepEqual([...h.sets().keys()], ['kilonet-other']);
    assert.ok(!h.save('nat').some((l) => l.includes('KILO') || l.includes('kilo4')), h.save('nat').join('\n'));
    assert.deepEqual(h.chain('nat', 'POSTROUTING'), ['-A POSTROUTING -m set --match-set kilonet-other src -j RETURN']);
    assert.deepEqual(h.chain('filter', 'FORWARD'), ['-A FORWARD -s 198.51.100.0/24 -j SENTINEL']);
    assert.deepEqual(h.chain('nat', 'KILO-NAT', 'ipv6'), []);
  });

  test(`ipset layout (${backend}): switching layouts both ways and starting over a node the Go agent programmed leave one layout`, async (t) => {
    const h = setup(t, `sw-${backend}`, backend);
    const exec = new Exec(h.node.nsenter);
    // with a /0 Peer: iptables-save prints no `-s 0.0.0.0/0`; the Kilo layout finds that rule all the same
    const desired = plan(50);
    // The Go agent's layout, written as it writes it: one rule per address, no sets.
    const kiloLines = ['*nat', ':KILO-NAT - [0:0]'];
    for (const x of [...desired.prepend, ...desired.append].filter((y) => y.family === 'ipv4' && y.table === 'nat')) kiloLines.push(`-A ${x.chain} ${x.rule.map((a) => (a.includes(' ') ? `"${a}"` : a)).join(' ')}`);
    kiloLines.push('COMMIT', '*filter');
    for (const x of desired.prepend.filter((y) => y.table === 'filter')) kiloLines.push(`-A ${x.chain} ${x.rule.map((a) => (a.includes(' ') ? `"${a}"` : a)).join(' ')}`);
    kiloLines.push('COMMIT', '');
    sh('nsenter', [`--net=${h.node.netPath}`, '--', `iptables-${backend}-restore`, '--noflush'], kiloLines.join('\n'));
    assert.equal(h.chain('nat', 'KILO-NAT').length, 103);

    const sets = new IptablesReconciler(exec, { backend, ipv6: true, layout: 'sets' });
    sets.setDesired(desired);
    let rep = await sets.reconcile(false);
    assert.deepEqual(rep.errors, []);
    assert.deepEqual(h.chain('nat', 'KILO-NAT'), SET_NAT, 'the per-address rules are gone');
    assert.equal(h.chain('nat', 'POSTROUTING').length, 2);
    assert.equal(h.chain('filter', 'FORWARD').length, 2);
    assert.equal(h.sets().get('kilo4-nat-wg')!.length, 50);
    assert.equal((await sets.reconcile(true)).writes, 0);

    // sets → kilo: the rule per address comes back, every set of ours goes
    const kilo = new IptablesReconciler(exec, { backend, ipv6: true, layout: 'kilo' });
    kilo.setDesired(desired);
    rep = await kilo.reconcile(false);
    assert.deepEqual(rep.errors, []);
    assert.equal(h.chain('nat', 'KILO-NAT').length, 103);
    assert.ok(!h.save('nat').some((l) => l.includes('match-set')));
    assert.ok(!h.save('filter').some((l) => l.includes('match-set')));
    assert.deepEqual([...h.sets().keys()], []);
    assert.equal((await kilo.reconcile(true)).writes, 0);

    // kilo → sets again
    const again = new IptablesReconciler(exec, { backend, ipv6: true, layout: 'sets' });
    again.setDesired(desired);
    rep = await again.reconcile(false);
    assert.deepEqual(rep.errors, []);
    assert.deepEqual(h.chain('nat', 'KILO-NAT'), SET_NAT);
    assert.equal((await again.reconcile(true)).writes, 0);
    await again.cleanUp();
    assert.deepEqual([...h.sets().keys()], []);
  });
}

test('ipset layout: a set fuller than its maximum is an error reported, the rest is written', async (t) => {
  const h = setup(t, 'full', 'nft');
  const r = new IptablesReconciler(new Exec(h.node.nsenter), { backend: 'nft', ipv6: false, layout: 'sets', maxelem: 16 });
  r.setDesired(plan(40));
  const rep = await r.reconcile(false);
  assert.equal(rep.errors.length, 1, JSON.stringify(rep.errors));
  assert.match(rep.errors[0].message, /full/i);
  assert.equal(h.sets().get('kilo4-nat-wg')!.length, 16, 'filled to its maximum');
  assert.deepEqual(h.chain('nat', 'KILO-NAT'), SET_NAT, 'the rules are written');
  // the retry fails the same way, bounded: one more error, no crash
  const again = await r.reconcile(true);
  assert.equal(again.errors.length, 1);
  await r.cleanUp();
  assert.deepEqual([...h.sets().keys()], []);
});

// `ipset restore` is not a transaction: it stops at the first failing line and keeps what came
// before. Here a rebuild (a set of ours with another size) fails halfway, leaving a half-filled
// `-new` twin; the next pass, with a plan that fits, must leave exactly the desired elements.
test('ipset layout: a batch that fails halfway converges on the next pass, with nothing stale', async (t) => {
  const h = setup(t, 'half', 'nft');
  h.node.run('ipset', 'create', 'kilo4-nat-wg', 'hash:net', 'maxelem', '10');
  h.node.run('ipset', 'add', 'kilo4-nat-wg', '10.4.9.9');
  const r = new IptablesReconciler(new Exec(h.node.nsenter), { backend: 'nft', ipv6: false, layout: 'sets', maxelem: 16 });
  r.setDesired(plan(20));
  let rep = await r.reconcile(false);
  assert.equal(rep.errors.length, 1, JSON.stringify(rep.errors));
  assert.match(rep.errors[0].message, /full/i);
  let sets = h.sets();
  assert.equal(sets.get('kilo4-nat-wg-new')?.length, 16, 'the rebuild stopped at the 17th element');
  assert.deepEqual(sets.get('kilo4-nat-wg'), ['10.4.9.9'], 'the set under the rule is untouched until the swap');
  assert.equal(sets.get('kilo4-nat-known')?.length, 16, 'the other sets are written set by set');
  // kg_ipset_operations_total counts what the kernel took, up to the failing line ("Error in line N"):
  // the batch's twin (create, 16 adds), then set by set its restart (destroy, create, 16 adds)
  const ops = r.ipsetOperations();
  assert.deepEqual([ops['create|kilo4-nat-wg'], ops['add|kilo4-nat-wg'], ops['destroy|kilo4-nat-wg'], ops['add|kilo4-nat-known']], [2, 32, 1, 16]);

  // the plan shrinks so that every set fits: one pass (no forced re-read) converges
  const want = plan(12);
  r.setDesired(want);
  rep = await r.reconcile(false);
  assert.deepEqual(rep.errors, []);
  sets = h.sets();
  const wg = Array.from({ length: 12 }, (_, i) => `10.4.0.${i}`);
  assert.deepEqual(sets.get('kilo4-nat-wg')!.sort(), wg.sort(), 'exactly the desired elements: none of the half-done rebuild');
  assert.equal(sets.get('kilo4-nat-known')!.length, 12);
  assert.equal(sets.has('kilo4-nat-wg-new'), false);
  assert.deepEqual(h.chain('nat', 'KILO-NAT'), SET_NAT);
  // the cache agrees with the kernel: a forced re-read finds nothing to write
  assert.deepEqual([(await r.reconcile(true)).writes], [0]);
  await r.cleanUp();
  assert.deepEqual([...h.sets().keys()], []);
});
