// The allowed-location-IP filter (design §5.8): the sub-quadratic filter (plan/location-ips.ts)
// gives exactly what Kilo's quadratic one gives, over random clusters with colliding, nested,
// host-bit-carrying, mixed-family claims. The reference below is the previous implementation
// (topology.ts before the index), kept here only.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { byText, contains, hostCIDR, intersects, nextIP, parseCIDR, type CIDR, type IP } from '../../plan/addr.js';
import { filterAllowedLocationIPs, type FilterSegment } from '../../plan/location-ips.js';
import { meshNode, type MeshNode } from '../../plan/node.js';
import { newTopology } from '../../plan/topology.js';
import type { MeshPeer } from '../../plan/peer.js';
import { key } from './fixture.js';

/**
 * The reference: Kilo's loop, as topology.ts ran it inside the allocation loop. Segment k is
 * filtered against `done` (segments before it: filtered lists, allowed IPs with their WireGuard
 * IP; k itself with its WireGuard IP) and the unfiltered ones after it.
 */
function reference(segs: readonly FilterSegment[], wg: readonly IP[], peers: readonly { allowedIPs: readonly CIDR[] }[]): (readonly CIDR[] | null)[] {
  const done: { allowedLocationIPs: readonly CIDR[]; allowedIPs: readonly CIDR[] }[] = [];
  const out: (readonly CIDR[] | null)[] = [];
  for (let k = 0; k < segs.length; k++) {
    done.push({ allowedLocationIPs: segs[k].allowedLocationIPs, allowedIPs: [...segs[k].allowedIPs, hostCIDR(wg[k])] });
    if (segs[k].allowedLocationIPs.length === 0) {
      out.push(null);
      continue;
    }
    const self = done[k];
    const kept = self.allowedLocationIPs.filter((c) => {
      for (let t = 0; t < segs.length; t++) {
        const other = t <= k ? done[t] : segs[t];
        if (t !== k && other.allowedLocationIPs.some((o) => intersects(c, o))) return false;
        if (other.allowedIPs.some((a) => contains(a, c.ip))) return false;
      }
      for (const p of peers) if (p.allowedIPs.some((a) => intersects(c, a))) return false;
      return true;
    });
    done[k].allowedLocationIPs = kept;
    out.push(kept);
  }
  return out;
}

// A small address universe, so that claims collide, nest and hit WireGuard IPs: IPv4 in
// 10.0.0.0/16 (with the odd short prefix), IPv6 in fd00::/112, and IPv4-mapped IPv6.
const bitsV4 = fc.oneof({ weight: 8, arbitrary: fc.integer({ min: 24, max: 32 }) }, { weight: 3, arbitrary: fc.integer({ min: 16, max: 23 }) }, { weight: 1, arbitrary: fc.integer({ min: 0, max: 15 }) });
// Mostly 10.0.0.0/19; sometimes above 128.0.0.0, where the sign bit of a 32-bit number is set.
const v4 = fc.record({ hi: fc.integer({ min: 0, max: 7 }), a: fc.integer({ min: 0, max: 31 }), b: fc.integer({ min: 0, max: 255 }), bits: bitsV4 })
  .map(({ hi, a, b, bits }) => (hi === 0 ? `200.0.${a}.${b}/${bits}` : hi === 1 ? `127.255.255.${b}/${bits}` : `10.0.${a}.${b}/${bits}`));
const v6 = fc.record({ x: fc.integer({ min: 0, max: 0x7ff }), bits: fc.integer({ min: 100, max: 128 }) }).map(({ x, bits }) => `fd00::${x.toString(16)}/${bits}`);
const mapped = fc.record({ b: fc.integer({ min: 0, max: 255 }), bits: fc.integer({ min: 118, max: 128 }) }).map(({ b, bits }) => `::ffff:10.0.1.${b}/${bits}`);
const anyCIDR = fc.oneof({ weight: 6, arbitrary: v4 }, { weight: 2, arbitrary: v6 }, { weight: 1, arbitrary: mapped }).map((s) => parseCIDR(s)!);
// Segments' allowed IPs are mostly pod CIDRs and one-address internal IPs.
const allowedCIDR = fc.oneof({ weight: 4, arbitrary: fc.record({ a: fc.integer({ min: 0, max: 7 }), b: fc.integer({ min: 0, max: 255 }), bits: fc.integer({ min: 26, max: 32 }) }).map(({ a, b, bits }) => parseCIDR(`10.0.${a}.${b}/${bits}`)!) }, { weight: 1, arbitrary: anyCIDR });

/** A list as segments hold it: de-duplicated by text and sorted. */
const alipList = fc.array(anyCIDR, { maxLength: 8 }).map((l) => {
  const seen = new Set<string>();
  return l.filter((c) => !seen.has(c.s) && !!seen.add(c.s)).sort((a, b) => byText(a.s, b.s));
});

const genInput = fc.record({
  segments: fc.array(fc.record({ allowedLocationIPs: fc.oneof(alipList, fc.constant([] as CIDR[])), allowedIPs: fc.array(allowedCIDR, { maxLength: 4 }) }), { minLength: 1, maxLength: 10 }),
  peers: fc.array(fc.record({ allowedIPs: fc.array(anyCIDR, { maxLength: 4 }) }), { maxLength: 4 }),
  subnet: fc.constantFrom('10.0.1.0/24', '10.0.0.0/16', 'fd00::/120', '10.4.0.0/16'),
});

function wireGuardIPs(subnet: string, n: number): IP[] {
  const s = parseCIDR(subnet)!;
  const out: IP[] = [];
  let ip = s.ip;
  for (let i = 0; i < n; i++) out.push((ip = nextIP(ip, s)!));
  return out;
}

const texts = (r: (readonly CIDR[] | null)[]) => r.map((l) => (l === null ? null : l.map((c) => c.s)));

test('location-ips: the indexed filter equals Kilo\'s quadratic one over random claims (10,000 cases)', () => {
  let dropped = 0;
  let kept = 0;
  fc.assert(
    fc.property(genInput, ({ segments, peers, subnet }) => {
      const wg = wireGuardIPs(subnet, segments.length);
      const want = reference(segments, wg, peers);
      assert.deepEqual(texts(filterAllowedLocationIPs(segments, wg, peers)), texts(want));
      for (let k = 0; k < segments.length; k++) {
        kept += want[k]?.length ?? 0;
        dropped += segments[k].allowedLocationIPs.length - (want[k]?.length ?? 0);
      }
    }),
    { numRuns: 10_000 },
  );
  // The cases are not trivial: many claims are dropped, many survive.
  assert.ok(dropped > 10_000 && kept > 10_000, `${dropped} dropped, ${kept} kept`);
});

test('location-ips: each rule alone, by hand (design §5.8)', () => {
  const c = (s: string) => parseCIDR(s)!;
  const wg = wireGuardIPs('10.4.0.0/16', 3); // 10.4.0.1, .2, .3
  const run = (segments: FilterSegment[], peers: { allowedIPs: CIDR[] }[] = []) => texts(filterAllowedLocationIPs(segments, wg, peers));
  const seg = (alips: string[], allowed: string[] = []): FilterSegment => ({ allowedLocationIPs: alips.map(c), allowedIPs: allowed.map(c) });
  // Rule 1: overlapping claims: the earlier segment loses, the later keeps (order-dependent).
  assert.deepEqual(run([seg(['192.168.0.0/16']), seg(['192.168.1.0/24'])]), [[], ['192.168.1.0/24']]);
  // ... but a claim dropped by an earlier segment no longer blocks a later one.
  assert.deepEqual(run([seg(['192.168.1.0/24'], ['192.168.1.7/32']), seg(['192.168.0.0/16'])]), [[], ['192.168.0.0/16']]);
  // Rule 2: an allowed IP covering the claim's address (host bits count); containing one is fine.
  assert.deepEqual(run([seg(['10.2.0.5/24']), seg([], ['10.2.0.5/32'])]), [[], null]);
  assert.deepEqual(run([seg(['10.2.0.0/16']), seg([], ['10.2.3.0/24'])]), [['10.2.0.0/16'], null]);
  // Rule 2 with WireGuard IPs: its own and earlier segments' count, later ones' do not yet.
  assert.deepEqual(run([seg(['10.4.0.1/32', '10.4.0.2/32'])]), [['10.4.0.2/32']]);
  assert.deepEqual(run([seg([]), seg(['10.4.0.1/32', '10.4.0.2/32', '10.4.0.3/32'])]), [null, ['10.4.0.3/32']]);
  // Rule 3: a Peer's allowed IP intersecting the claim, either way round.
  assert.deepEqual(run([seg(['10.5.0.0/16', '10.6.1.0/24', '10.7.0.0/24'])], [{ allowedIPs: [c('10.5.3.0/24'), c('10.6.0.0/16')] }]), [['10.7.0.0/24']]);
  // Blocks across the sign bit of 32 bits: /0 and /1 cover the top half too.
  assert.deepEqual(run([seg(['200.1.0.0/16', '127.0.0.0/8']), seg(['0.0.0.0/0'])]), [[], ['0.0.0.0/0']]);
  assert.deepEqual(run([seg(['200.1.0.0/16']), seg(['0.0.0.0/1', '128.0.0.0/1'])]), [[], ['0.0.0.0/1', '128.0.0.0/1']]);
  assert.deepEqual(run([seg(['255.255.255.255/32', '127.255.255.255/32']), seg(['128.0.0.0/1'])]), [['127.255.255.255/32'], ['128.0.0.0/1']]);
  // Families never meet: ::ffff:10.0.0.0/104 is IPv4 10.0.0.0/8; fd00::/8 does not touch IPv4.
  assert.deepEqual(run([seg(['fd00::/8', '::ffff:10.0.0.0/104']), seg(['10.1.0.0/16'])]), [['fd00::/8'], ['10.1.0.0/16']]);
});

test('location-ips: newTopology filters as the reference does, in full and location granularity, with and without memo', () => {
  const gen = fc.record({
    nodes: fc.array(fc.record({ loc: fc.integer({ min: 0, max: 3 }), internal: fc.boolean(), alips: fc.array(anyCIDR, { maxLength: 5 }) }), { minLength: 1, maxLength: 12 }),
    peers: fc.array(fc.array(anyCIDR, { maxLength: 3 }), { maxLength: 3 }),
    granularity: fc.constantFrom('location' as const, 'full' as const, 'cross' as const),
    memo: fc.boolean(),
  });
  fc.assert(
    fc.property(gen, ({ nodes, peers, granularity, memo }) => {
      const records: MeshNode[] = nodes.map((g, i) => meshNode({
        name: `n${String(i).padStart(2, '0')}`, endpoint: null, key: key(i + 1), internalIP: g.internal ? parseCIDR(`10.0.${g.loc}.${i + 1}/24`) : null,
        noInternalIP: false, cniCompatibilityIP: null, lastSeen: 0, leader: false, location: `l${g.loc}`, persistentKeepalive: 0,
        subnet: parseCIDR(`10.0.${2 + (i % 2)}.${(i * 16) % 256}/28`), wireGuardIP: null, discoveredEndpoints: null, allowedLocationIPs: g.alips, granularity: '',
      }));
      const meshPeers: MeshPeer[] = peers.map((ips, j) => ({ name: `p${j}`, publicKey: key(100 + j), allowedIPs: ips, endpoint: null, persistentKeepalive: 0, presharedKey: null }));
      const t = newTopology({ nodes: records, peers: meshPeers, granularity, hostname: 'n00', port: 51820, subnet: parseCIDR('10.0.1.0/24')!, memo });
      assert.ok(t.ok);
      // The reference's input rebuilt from the output: each segment's members' claims (design §5.2
      // step 4: union, de-duplicated, sorted), its allowed IPs without the WireGuard IP.
      const byName = new Map(records.map((r) => [r.name, r]));
      const segs: FilterSegment[] = t.value.segments.map((s) => {
        const seen = new Set<string>();
        const alips = s.hostnames.flatMap((h) => byName.get(h)!.allowedLocationIPs).filter((a) => !seen.has(a.s) && !!seen.add(a.s)).sort((a, b) => byText(a.s, b.s));
        return { allowedLocationIPs: alips, allowedIPs: s.allowedIPs.slice(0, -1) };
      });
      const want = reference(segs, t.value.segments.map((s) => s.wireGuardIP), t.value.peers);
      assert.deepEqual(t.value.segments.map((s) => s.allowedLocationIPs.map((c) => c.s)), want.map((l) => (l ?? []).map((c) => c.s)));
    }),
    { numRuns: 3_000 },
  );
});
