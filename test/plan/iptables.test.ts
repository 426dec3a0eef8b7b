// iptables rule sets (design §8.2–8.5) with Kilo's exact strings.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ruleIdentity } from '../../plan/iptables.js';
import type { IptablesRule } from '../../plan/types.js';
import { examplePeers, exampleNodes } from './example.js';
import { planFor } from './fixture.js';

const ids = (rs: IptablesRule[]) => rs.map((r) => `${r.family} ${ruleIdentity(r)}`);
const ret = (d: string, what: string) => `ipv4 nat -A KILO-NAT -d ${d} -m comment --comment "Kilo: do not NAT packets destined for ${what}" -j RETURN`;

test('iptables: the §8.5 example on alpha (cni, IPIP always, local)', () => {
  const p = planFor(exampleNodes(), examplePeers(), 'alpha', { encapsulate: 'always', local: true }).json;
  assert.deepEqual(p.iptables.chains.map((c) => `${c.family} ${c.table} -N ${c.chain}`), [
    'ipv4 filter -N KILO-IPIP', 'ipv6 filter -N KILO-IPIP', 'ipv4 nat -N KILO-NAT', 'ipv6 nat -N KILO-NAT',
  ]);
  assert.deepEqual(ids(p.iptables.append), [
    'ipv4 filter -A INPUT -p ipencap -m comment --comment "Kilo: jump to IPIP chain" -j KILO-IPIP',
    'ipv6 filter -A INPUT -p ipencap -m comment --comment "Kilo: jump to IPIP chain" -j KILO-IPIP',
    'ipv4 filter -A INPUT -p ipencap -m comment --comment "Kilo: reject other IPIP traffic" -j DROP',
    'ipv6 filter -A INPUT -p ipencap -m comment --comment "Kilo: reject other IPIP traffic" -j DROP',
    'ipv4 nat -A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
    'ipv6 nat -A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
  ]);
  assert.deepEqual(ids(p.iptables.prepend), [
    'ipv4 filter -A KILO-IPIP -s 10.0.1.10/32 -m comment --comment "Kilo: allow IPIP traffic" -j ACCEPT',
    'ipv4 filter -A KILO-IPIP -s 10.0.1.11/32 -m comment --comment "Kilo: allow IPIP traffic" -j ACCEPT',
    'ipv4 nat -A POSTROUTING -s 10.42.0.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT',
    ret('10.4.0.1/32', 'WireGuared IPs'), ret('10.42.0.0/24', 'known IPs'), ret('10.0.1.10/32', 'known IPs'),
    ret('10.42.1.0/24', 'known IPs'), ret('10.0.1.11/32', 'known IPs'), ret('10.4.0.1/32', 'known IPs'),
    ret('10.4.0.2/32', 'WireGuared IPs'), ret('10.42.2.0/24', 'known IPs'), ret('172.16.5.4/32', 'known IPs'), ret('10.4.0.2/32', 'known IPs'),
    ret('10.4.0.3/32', 'WireGuared IPs'), ret('10.42.3.0/24', 'known IPs'), ret('10.4.0.3/32', 'known IPs'),
    'ipv4 nat -A POSTROUTING -s 10.5.0.1/32 -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT',
    ret('10.5.0.1/32', 'peers'),
  ]);
  assert.deepEqual(p.tunnel, { dev: 'tunl0', address: '10.42.0.1/32' }, 'quirk 26 (design §16.26): pod CIDR + 1, /32');
});

test('iptables: service CIDRs, forward rules on leaders and non-leaders, --cni=false', () => {
  const svc = planFor(exampleNodes(), [], 'bravo', { serviceCIDRs: ['10.43.0.0/16', 'fd43::/108'] }).json;
  assert.deepEqual(ids(svc.iptables.append).slice(0, 2), [
    'ipv4 nat -A KILO-NAT -d 10.43.0.0/16 -m comment --comment "Kilo: do not NAT packets destined for service CIDRs" -j RETURN',
    'ipv6 nat -A KILO-NAT -d fd43::/108 -m comment --comment "Kilo: do not NAT packets destined for service CIDRs" -j RETURN',
  ]);
  const lead = planFor(exampleNodes(), [], 'charlie', { forward: true }).json;
  assert.deepEqual(ids(lead.iptables.prepend.filter((r) => r.chain === 'FORWARD')), [
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets from the pod subnet" -s 10.42.2.0/24 -j ACCEPT',
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets to the pod subnet" -d 10.42.2.0/24 -j ACCEPT',
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets from allowed location IPs" -s 172.16.9.0/24 -j ACCEPT',
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets to allowed location IPs" -d 172.16.9.0/24 -j ACCEPT',
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets from private IPs" -s 172.16.5.4/32 -j ACCEPT',
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets to private IPs" -d 172.16.5.4/32 -j ACCEPT',
  ]);
  // The local location's allowed-location IPs are masqueraded (jump), not exempted.
  assert.ok(ids(lead.iptables.prepend).includes('ipv4 nat -A POSTROUTING -d 172.16.9.0/24 -m comment --comment "Kilo: jump to NAT chain" -j KILO-NAT'));
  assert.ok(!ids(lead.iptables.prepend).some((r) => r.includes('KILO-NAT -d 172.16.9.0/24')));
  const follower = planFor(exampleNodes(), [], 'bravo', { forward: true }).json;
  assert.deepEqual(ids(follower.iptables.prepend.filter((r) => r.chain === 'FORWARD')), [
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets from the node\'s pod subnet" -s 10.42.1.0/24 -j ACCEPT',
    'ipv4 filter -A FORWARD -m comment --comment "Kilo: forward packets to the node\'s pod subnet" -d 10.42.1.0/24 -j ACCEPT',
  ]);
  const nocni = planFor(exampleNodes(), [], 'charlie', { forward: true, cni: false }).json;
  assert.deepEqual(nocni.iptables.prepend.filter((r) => r.chain === 'FORWARD' || r.rule.includes('Kilo: jump to KILO-NAT chain')), [], 'quirk 24 (design §16.24)');
  assert.equal(nocni.cni, null);
});

test('iptables: IPIP allow list is the logical location only (quirk 25 (design §16.25)), none for flannel', () => {
  const full = planFor(exampleNodes(), [], 'alpha', { encapsulate: 'always', local: true, granularity: 'full' }).json;
  assert.deepEqual(full.iptables.prepend.filter((r) => r.chain === 'KILO-IPIP'), []);
  assert.equal(full.iptables.append.filter((r) => r.chain === 'INPUT').length, 4, 'the DROP stays');
  const flannel = planFor(exampleNodes(), [], 'alpha', { encapsulate: 'always', local: true, compatibility: 'flannel' }).json;
  assert.deepEqual(flannel.iptables.chains.map((c) => c.chain), ['KILO-NAT', 'KILO-NAT']);
  assert.equal(flannel.tunnel, null);
  const notLocal = planFor(exampleNodes(), [], 'alpha', { encapsulate: 'always', local: false }).json;
  assert.equal(notLocal.iptables.chains.length, 2);
  assert.equal(notLocal.tunnel, null, 'no tunnel address without --local');
  const cilium = planFor(exampleNodes(), [], 'alpha', { encapsulate: 'crosssubnet', local: true, compatibility: 'cilium' }).json;
  assert.equal(cilium.iptables.prepend.filter((r) => r.chain === 'KILO-IPIP').length, 2);
});

test('ruleIdentity quotes only the comment and ignores the family (design §8.1)', () => {
  const r: IptablesRule = { family: 'ipv6', table: 'nat', chain: 'KILO-NAT', rule: ['-m', 'comment', '--comment', 'Kilo: NAT remaining packets', '-j', 'MASQUERADE'] };
  assert.equal(ruleIdentity(r), 'nat -A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE');
  assert.equal(ruleIdentity({ ...r, family: 'ipv4' }), ruleIdentity(r));
});
