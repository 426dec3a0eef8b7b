// kernel/input-checks.ts fastV4CIDR (canonicalCIDR's IPv4 path without a regular expression) gives
// what the dotted-quad regular expression it replaced gave, on canonical, non-canonical and
// malformed inputs; and canonicalCIDR keeps its results for the rest (IPv6, hostile text).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalCIDR, fastV4CIDR } from '../../kernel/input-checks.js';

/** The replaced implementation (V4 regular expression, octets ≤ 255, length ≤ 32), else null. */
function reference(s: string): string | null {
  const m = /^(\d{1,3})\.(\d{1,3})\.(\d{1,3})\.(\d{1,3})(?:\/(\d{1,2}))?$/.exec(s);
  if (!m) return null;
  const o = [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
  const len = m[5] === undefined ? 32 : Number(m[5]);
  if (!o.every((x) => x <= 255) || len > 32) return null;
  const n = ((o[0] << 24) | (o[1] << 16) | (o[2] << 8) | o[3]) >>> 0;
  const mask = len === 0 ? 0 : (0xffffffff << (32 - len)) >>> 0;
  const v = (n & mask) >>> 0;
  return `${v >>> 24}.${(v >>> 16) & 255}.${(v >>> 8) & 255}.${v & 255}/${len}`;
}

const EDGE = [
  '10.4.0.1/32', '10.4.0.1', '10.4.0.1/24', '10.4.0.0/24', '0.0.0.0/0', '255.255.255.255/32', '1.2.3.4/0',
  '010.4.0.1/24', '10.04.0.0/16', '10.4.0.0/08', '10.4.0.0/8', '10.4.0.0/00', '10.4.0.0/032', '10.4.0.0/33',
  '256.1.1.1/32', '1.2.3/24', '1.2.3.4.5', '1.2.3.4/', '/24', '1..2.3', '1.2.3.4 /24', ' 1.2.3.4', '1.2.3.4\n',
  '1.2.3.4/24\n', '1234.1.1.1', '1.2.3.4/2a', '1.2.3.４', '', '.', 'a.b.c.d', '0x1.2.3.4', '1.2.3.4/-1', '999.999.999.999',
  '000.000.000.000/00', '1.2.3.4//24', '1.2.3.4/24/',
];

test('fastV4CIDR: the same result as the regular expression it replaced', () => {
  for (const s of EDGE) assert.equal(fastV4CIDR(s), reference(s), JSON.stringify(s));
  let seed = 7;
  const rnd = (n: number): number => ((seed = (seed * 1103515245 + 12345) % 2 ** 31), seed % n);
  const alphabet = '0123456789./ ';
  for (let k = 0; k < 20_000; k++) {
    const o = () => String(rnd(10) < 1 ? rnd(400) : rnd(256)).padStart(rnd(10) < 1 ? 3 : 0, '0');
    let s = `${o()}.${o()}.${o()}.${o()}` + (rnd(4) === 0 ? '' : `/${rnd(10) < 1 ? rnd(40) : rnd(33)}`);
    if (rnd(10) === 0) {
      const at = rnd(s.length + 1);
      s = s.slice(0, at) + alphabet[rnd(alphabet.length)] + s.slice(at + (rnd(2) === 0 ? 1 : 0));
    }
    assert.equal(fastV4CIDR(s), reference(s), JSON.stringify(s));
  }
});

test('canonicalCIDR: the slow path still decides what the fast one does not take', () => {
  assert.equal(canonicalCIDR('fd00:42::1/64'), 'fd00:42::/64');
  assert.equal(canonicalCIDR('10.4.0.7/24'), '10.4.0.0/24');
  assert.equal(canonicalCIDR('10.4.0.7'), '10.4.0.7/32');
  assert.throws(() => canonicalCIDR('10.4.0.0/33'));
  assert.throws(() => canonicalCIDR('10.4.0.0/'));
  assert.throws(() => canonicalCIDR('0xa.1.2.3/8'));
  assert.throws(() => canonicalCIDR('1.2.3.4\n'));
});
