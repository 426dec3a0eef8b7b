// Addresses with Go's grammar, and §18.3 (allocator, sortIPs, isPublic).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { contains, intersects, isPublic, network, nextIP, parseCIDR, parseIP, sortIPs } from '../../plan/addr.js';

test('parseIP accepts exactly what Go net.ParseIP accepts', () => {
  const ok: [string, string][] = [
    ['10.0.0.1', '10.0.0.1'], ['0.0.0.0', '0.0.0.0'], ['255.255.255.255', '255.255.255.255'],
    ['::1', '::1'], ['::', '::'], ['2001:DB8::1', '2001:db8::1'], ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'], ['1::2:3:4:5:6:7', '1:0:2:3:4:5:6:7'],
    ['::ffff:1.2.3.4', '1.2.3.4'], ['::ffff:0102:0304', '1.2.3.4'], ['::1.2.3.4', '::102:304'], ['fe80::1:2', 'fe80::1:2'],
  ];
  for (const [i, want] of ok) assert.equal(parseIP(i)?.s, want, i);
  const bad = ['010.0.0.1', '127.1', '1.2.3', '1.2.3.4.5', '256.0.0.1', '0x7f.0.0.1', ' 1.2.3.4', '1.2.3.4 ', '', 'fe80::1%eth0',
    '1:2:3:4:5:6:7:8:9', '1::2::3', ':1::2', '1:2:3:4:5:6:7:1.2.3.4', '::ffff:010.1.1.1', '12345::1', 'g::1', '1.2.3.4/32', 'localhost'];
  for (const i of bad) assert.equal(parseIP(i), null, i);
});

test('parseCIDR keeps host bits (normalizeIP) and masks on request', () => {
  assert.equal(parseCIDR('10.1.0.7/16')!.s, '10.1.0.7/16');
  assert.equal(network(parseCIDR('10.1.0.7/16')!).s, '10.1.0.0/16');
  assert.equal(parseCIDR('10.0.0.0/08')!.s, '10.0.0.0/8'); // Go's dtoi takes leading zeros
  assert.equal(parseCIDR('2001:db8::1/64')!.s, '2001:db8::1/64');
  assert.equal(network(parseCIDR('2001:db8::1:2/100')!).s, '2001:db8::/100');
  assert.equal(parseCIDR('::ffff:10.0.0.1/120')!.s, '10.0.0.1/24');
  for (const b of ['10.0.0.1', '10.0.0.1/33', '10.0.0.1/-1', '10.0.0.1/', '/24', '010.0.0.1/8', '::1/129', '10.0.0.1/ 8', '10.0.0.1/8/8']) {
    assert.equal(parseCIDR(b), null, b);
  }
});

test('contains and intersects ignore host bits of the CIDR (design §0.5)', () => {
  assert.ok(contains(parseCIDR('10.1.0.7/16')!, parseIP('10.1.255.1')!));
  assert.ok(!contains(parseCIDR('10.1.0.7/16')!, parseIP('10.2.0.1')!));
  assert.ok(contains(parseCIDR('10.1.0.0/13')!, parseIP('10.7.0.1')!));
  assert.ok(!contains(parseCIDR('10.1.0.0/13')!, parseIP('10.8.0.1')!));
  assert.ok(!contains(parseCIDR('::/0')!, parseIP('1.2.3.4')!), 'families never mix');
  assert.ok(contains(parseCIDR('0.0.0.0/0')!, parseIP('1.2.3.4')!));
  assert.ok(intersects(parseCIDR('10.0.0.0/8')!, parseCIDR('10.1.1.1/32')!));
  assert.ok(intersects(parseCIDR('10.1.1.1/32')!, parseCIDR('10.0.0.0/8')!));
  assert.ok(!intersects(parseCIDR('10.0.0.0/16')!, parseCIDR('10.1.0.0/16')!));
});

test('allocator (§18.3 TestNewAllocator)', () => {
  const alloc = (subnet: string, n: number) => {
    const s = network(parseCIDR(subnet)!);
    let ip = s.ip;
    const out: (string | null)[] = [];
    for (let i = 0; i < n; i++) {
      const next = nextIP(ip, s);
      out.push(next ? `${next.s}/${s.bits}` : null);
      if (!next) break;
      ip = next;
    }
    return out;
  };
  assert.deepEqual(alloc('10.1.0.0/16', 2), ['10.1.0.1/16', '10.1.0.2/16']);
  assert.deepEqual(alloc('10.1.0.0/32', 1), [null]);
  assert.deepEqual(alloc('10.1.0.0/31', 2), ['10.1.0.1/31', null]);
  assert.deepEqual(alloc('10.1.0.0/30', 4), ['10.1.0.1/30', '10.1.0.2/30', '10.1.0.3/30', null], 'the broadcast address is allocatable');
  assert.deepEqual(alloc('10.1.0.254/23', 3), ['10.1.0.1/23', '10.1.0.2/23', '10.1.0.3/23']);
  assert.deepEqual(alloc('fd00::fffe/127', 2), ['fd00::ffff/127', null]);
  assert.deepEqual(alloc('10.0.0.255/8', 1), ['10.0.0.1/8']);
  const carry = network(parseCIDR('10.0.0.0/8')!);
  assert.equal(nextIP(parseIP('10.0.0.255')!, carry)!.s, '10.0.1.0', 'carries across bytes');
});

test('sortIPs (§18.3 TestSortIPs): IPv4 first, then by text', () => {
  const s = (xs: string[]) => sortIPs(xs.map((x) => parseCIDR(x)!)).map((c) => c.s);
  assert.deepEqual(s(['10.0.0.1/32']), ['10.0.0.1/32']);
  assert.deepEqual(s(['10.0.0.2/32', '10.0.0.10/32', '10.0.0.1/32']), ['10.0.0.1/32', '10.0.0.10/32', '10.0.0.2/32']);
  assert.deepEqual(s(['fd00::1/128', '10.0.0.1/32']), ['10.0.0.1/32', 'fd00::1/128']);
  assert.deepEqual(s(['fd00::2/128', 'fd00::1/128']), ['fd00::1/128', 'fd00::2/128']);
  assert.deepEqual(s(['fd00::2/128', '10.0.0.2/32', 'fd00::1/128', '10.0.0.1/32']), ['10.0.0.1/32', '10.0.0.2/32', 'fd00::1/128', 'fd00::2/128']);
});

test('isPublic (§18.3 TestIsPublic, quirk 3 (design §16.3))', () => {
  const cases: [string, boolean][] = [
    ['10.0.0.1', false], ['172.16.0.0', false], ['172.23.17.4', false], ['172.15.255.255', true], ['172.160.0.1', true],
    ['192.168.1.1', false], ['100.64.0.1', true], ['127.0.0.1', true], ['8.8.8.8', true],
    ['fd00::1', false], ['fd01::1', true], ['fc00::1', true], ['2001:db8::1', true],
  ];
  for (const [ip, want] of cases) assert.equal(isPublic(parseIP(ip)), want, ip);
  assert.equal(isPublic(null), false);
});
