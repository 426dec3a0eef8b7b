// Pure diffs of the dataplane (plain data in, operations out), with the formats they read and write.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { applyPatchToSaved, parseSave, quoteArg, type SavedTable } from '../../kernel/iptables-save.js';
import { align, buildDesired, diffTable } from '../../diff/iptables.js';
import { canonicalCIDR } from '../../kernel/input-checks.js';
import { failedBatchLines, normalizeRule, parseIpRoutes, parseIpRules } from '../../kernel/ip-format.js';
import { diffRoutes, diffRules, desiredRouteMap, ownedRoutes, withDesired } from '../../diff/routes.js';
import { KG_PROTO, RTPROT_STATIC } from '../../kernel/owner.js';
import { parseUapiGet, renderUapiSet, renderWgSet, b64ToHex, type DeviceState } from '../../kernel/uapi.js';
import { discoverNATEndpoints } from '../../plan/nat.js';
import { diffDevice, shareDesired } from '../../diff/wireguard.js';

const K = (c: string): string[] => ['-m', 'comment', '--comment', c];

test('align keeps a longest common subsequence', () => {
  fc.assert(
    fc.property(fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), fc.uniqueArray(fc.integer({ min: 0, max: 40 }), { maxLength: 30 }), (a, b) => {
      const A = a.map(String);
      const B = b.map(String);
      const { keepA, keepB } = align(A, B);
      const ka = A.filter((_, i) => keepA[i]);
      const kb = B.filter((_, i) => keepB[i]);
      assert.deepEqual(ka, kb);
      // LCS length for distinct keys via DP
      const dp: number[][] = Array.from({ length: A.length + 1 }, () => new Array(B.length + 1).fill(0));
      for (let i = 1; i <= A.length; i++) for (let j = 1; j <= B.length; j++) dp[i][j] = A[i - 1] === B[j - 1] ? dp[i - 1][j - 1] + 1 : Math.max(dp[i - 1][j], dp[i][j - 1]);
      assert.equal(ka.length, dp[A.length][B.length]);
    }),
  );
});

/** Simulate restore on a saved table and check the chain ends as desired (property). */
test('diffTable edits turn any owned chain into the desired one, foreign rules untouched', () => {
  const pool = Array.from({ length: 12 }, (_, i) => ['-d', `10.0.0.${i}/32`, ...K('Kilo: r'), '-j', 'RETURN']);
  const foreign = Array.from({ length: 4 }, (_, i) => ['-s', `9.9.9.${i}/32`, '-j', 'ACCEPT']);
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { maxLength: 10 }),
      fc.uniqueArray(fc.integer({ min: 0, max: 11 }), { maxLength: 10 }),
      fc.array(fc.integer({ min: 0, max: 3 }), { maxLength: 4 }),
      fc.integer({ min: 0, max: 10 }),
      (have, want, foreignAt, nPrepend) => {
        const save = ['*nat', ':POSTROUTING ACCEPT [0:0]', ':KILO-NAT - [0:0]'];
        const post: string[] = have.map((i) => '-A POSTROUTING ' + pool[i].map(quoteArg).join(' '));
        foreignAt.forEach((f, k) => post.splice(Math.min(post.length, k * 2), 0, '-A POSTROUTING ' + foreign[f].map(quoteArg).join(' ')));
        for (const i of have) save.push('-A KILO-NAT ' + pool[i].map(quoteArg).join(' '));
        save.push(...post, 'COMMIT');
        const saved = parseSave(save.join('\n')).get('nat')!;
        const np = Math.min(nPrepend, want.length);
        const desired = buildDesired({
          chains: [{ family: 'ipv4', table: 'nat', chain: 'KILO-NAT' }],
          prepend: [...want.slice(0, np).map((i) => ({ family: 'ipv4' as const, table: 'nat', chain: 'KILO-NAT', rule: pool[i] })), ...want.slice(0, np).map((i) => ({ family: 'ipv4' as const, table: 'nat', chain: 'POSTROUTING', rule: pool[i] }))],
          append: [...want.slice(np).map((i) => ({ family: 'ipv4' as const, table: 'nat', chain: 'KILO-NAT', rule: pool[i] })), ...want.slice(np).map((i) => ({ family: 'ipv4' as const, table: 'nat', chain: 'POSTROUTING', rule: pool[i] }))],
        }).get('ipv4')!.get('nat');
        const patch = diffTable('nat', desired, saved, undefined);
        const copy: SavedTable = { chains: new Map([...saved.chains].map(([k, v]) => [k, [...v]])) };
        if (patch) applyPatchToSaved(copy, patch);
        const wantKeys = want.map((i) => pool[i].map(quoteArg).join(' '));
        assert.deepEqual(copy.chains.get('KILO-NAT'), wantKeys);
        const postAfter = copy.chains.get('POSTROUTING')!;
        assert.deepEqual(postAfter.filter((k) => k.includes('Kilo:')), wantKeys);
        assert.deepEqual(postAfter.filter((k) => !k.includes('Kilo:')), saved.chains.get('POSTROUTING')!.filter((k) => !k.includes('Kilo:')));
        // prepend rules stand before every foreign rule only if they were inserted: at least ours keep order
        assert.equal(diffTable('nat', desired, copy, undefined), null, 'second diff is empty');
      },
    ),
    { numRuns: 300 },
  );
});

test('diffTable: one changed rule in a 15,000-rule chain sends two lines, not a rewrite', () => {
  const rules = Array.from({ length: 15000 }, (_, i) => ({ family: 'ipv4' as const, table: 'nat', chain: 'KILO-NAT', rule: ['-d', `10.${i >> 8}.${i & 255}.0/24`, ...K('Kilo: k'), '-j', 'RETURN'] }));
  const ipt = { chains: [{ family: 'ipv4' as const, table: 'nat', chain: 'KILO-NAT' }], prepend: rules, append: [] };
  const d1 = buildDesired(ipt).get('ipv4')!.get('nat')!;
  const saved: SavedTable = { chains: new Map() };
  applyPatchToSaved(saved, diffTable('nat', d1, saved, undefined)!);
  const rules2 = [...rules];
  rules2[7000] = { ...rules2[7000], rule: ['-d', '10.250.0.0/24', ...K('Kilo: k'), '-j', 'RETURN'] };
  const d2 = buildDesired({ ...ipt, prepend: rules2 }).get('ipv4')!.get('nat')!;
  const p = diffTable('nat', d2, saved, undefined)!;
  assert.deepEqual(p.lines, ['-D KILO-NAT 7001', '-I KILO-NAT 7001 -d 10.250.0.0/24 -m comment --comment "Kilo: k" -j RETURN']);
});

test('diffTable: clean-up deletes our chains and Kilo-commented rules, never foreign ones', () => {
  const saved = parseSave(
    [
      '*nat',
      ':POSTROUTING ACCEPT [0:0]',
      ':KILO-NAT - [0:0]',
      ':SENTINEL - [0:0]',
      '-A POSTROUTING -s 10.42.0.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT',
      '-A POSTROUTING -s 1.2.3.0/24 -j SENTINEL',
      '-A KILO-NAT -m comment --comment "Kilo: NAT remaining packets" -j MASQUERADE',
      '-A SENTINEL -j RETURN',
      'COMMIT',
    ].join('\n'),
  ).get('nat')!;
  const p = diffTable('nat', undefined, saved, undefined)!;
  assert.deepEqual(p.lines, ['-D POSTROUTING -s 10.42.0.0/24 -m comment --comment "Kilo: jump to KILO-NAT chain" -j KILO-NAT', '-F KILO-NAT', '-X KILO-NAT']);
});

test('routes: parse ip -j, ownership by protocol, adoption of Go Kilo\'s static routes, diff', () => {
  // kg's routes (protocol 107) in any table and on any device are kg's
  const mine = parseIpRoutes(
    JSON.stringify([
      { dst: '10.42.2.0/24', gateway: '10.4.0.2', dev: 'kilo0', prefsrc: '172.16.0.1', flags: ['onlink'] },
      { dst: '10.0.1.11', gateway: '10.0.1.11', dev: 'tunl0', table: '1107', flags: ['onlink'] },
      { dst: '10.77.0.0/24', gateway: '172.16.0.7', dev: 'eth0', flags: [] }, // a device no longer in the plan
    ]),
    KG_PROTO,
  );
  assert.equal(mine[1].dst, '10.0.1.11/32');
  assert.equal(mine[1].table, 1107);
  // static routes: Go Kilo's form, or someone else's
  const statics = parseIpRoutes(
    JSON.stringify([
      { dst: '10.42.3.0/24', gateway: '10.4.0.3', dev: 'kilo0', flags: ['onlink'] }, // = a desired key: adopted
      { dst: '10.0.1.12', gateway: '10.0.1.12', dev: 'tunl0', table: '1107', flags: [] }, // Kilo's table: adopted
      { dst: '192.168.9.0/24', gateway: '172.16.0.9', dev: 'kilo0', flags: [] }, // someone else's, through kilo0
      { dst: '192.168.8.0/24', gateway: '172.16.0.9', dev: 'eth0', table: '100', flags: [] }, // someone else's
    ]),
    RTPROT_STATIC,
  );
  // an unfiltered listing (ip -N) names the protocol: another table-1107 route of another program
  const other = parseIpRoutes(JSON.stringify([{ dst: '10.0.1.13', dev: 'eth0', table: '1107', protocol: '3', flags: [] }]));
  assert.equal(other[0].proto, 3);
  const desired = desiredRouteMap([{ dst: '10.42.3.7/24', gw: '10.4.0.3', dev: 'kilo0', src: '172.16.0.1', table: null, protocol: 'static', onlink: true }]);
  assert.ok(desired.has('254|10.42.3.0/24'), 'host bits masked');
  const { owned, extra } = ownedRoutes([...mine, ...statics, ...other], desired, 1107);
  assert.deepEqual([...owned.keys()].sort(), ['1107|10.0.1.11/32', '1107|10.0.1.12/32', '254|10.42.2.0/24', '254|10.42.3.0/24', '254|10.77.0.0/24']);
  assert.deepEqual(extra, []);
  const ops = diffRoutes(desired, owned, extra);
  assert.deepEqual(ops.map((o) => o.line).sort(), [
    'route del 10.0.1.11/32 via 10.0.1.11 dev tunl0 proto 107 table 1107',
    'route del 10.0.1.12/32 via 10.0.1.12 dev tunl0 proto 4 table 1107',
    'route del 10.42.2.0/24 via 10.4.0.2 dev kilo0 proto 107',
    'route del 10.77.0.0/24 via 172.16.0.7 dev eth0 proto 107',
    'route replace 10.42.3.0/24 via 10.4.0.3 dev kilo0 onlink src 172.16.0.1 proto 107',
  ]);
  // a kg route and its static twin at one key: the twin goes, precisely (metric and protocol named)
  const twin = ownedRoutes([...parseIpRoutes(JSON.stringify([{ dst: '10.42.3.0/24', gateway: '10.4.0.3', dev: 'kilo0', metric: 5, flags: ['onlink'] }]), RTPROT_STATIC), { ...desired.get('254|10.42.3.0/24')!, proto: KG_PROTO }], desired, 1107);
  assert.deepEqual(diffRoutes(desired, twin.owned, twin.extra).map((o) => o.line), ['route del 10.42.3.0/24 via 10.4.0.3 dev kilo0 proto 4 metric 5']);
  assert.equal(canonicalCIDR('fd00:0:0::1/64'), 'fd00::/64');
});

test('read-backs: routes the same as desired are held as the desired objects; what differs stays the kernel\'s, and every diff is unchanged', () => {
  const gw = ['10.4.0.2', '10.4.0.3'];
  const route = fc.record({ n: fc.integer({ min: 0, max: 5 }), gw: fc.integer({ min: 0, max: 1 }), metric: fc.constantFrom(null, 5), proto: fc.constantFrom(KG_PROTO, RTPROT_STATIC) });
  fc.assert(
    fc.property(fc.array(route, { maxLength: 8 }), fc.array(route, { maxLength: 8 }), (want, have) => {
      const desired = desiredRouteMap(want.map((r) => ({ dst: `10.42.${r.n}.0/24`, gw: gw[r.gw], dev: 'kilo0', src: null, table: null, protocol: 'static', onlink: true })));
      const actual = parseIpRoutes(JSON.stringify(have.map((r) => ({ dst: `10.42.${r.n}.0/24`, gateway: gw[r.gw], dev: 'kilo0', flags: ['onlink'], protocol: String(r.proto), ...(r.metric === null ? {} : { metric: r.metric }) }))));
      const { owned, extra } = ownedRoutes(actual, desired, 1107);
      const held = withDesired(owned, desired);
      assert.deepEqual([...held.keys()].sort(), [...owned.keys()].sort());
      for (const [k, r] of held) {
        const d = desired.get(k);
        const ops = diffRoutes(desired, owned).filter((o) => o.key === k);
        // the desired object exactly where the diff writes nothing for that key
        assert.equal(r === d, ops.length === 0, k);
        if (r !== d) assert.equal(r, owned.get(k));
      }
      const lines = (o: ReadonlyMap<string, (typeof actual)[number]>) => diffRoutes(desired, o, extra).map((x) => x.line);
      assert.deepEqual(lines(held), lines(owned));
      assert.deepEqual(diffRoutes(desired, held).map((x) => x.line), diffRoutes(desired, owned).map((x) => x.line));
    }),
    { numRuns: 300 },
  );
});

test('read-backs: a device read back holds the desired peers\' strings where they are equal, and diffs the same', () => {
  const text = [
    `public_key=${b64ToHex(key(2))}`, 'endpoint=192.168.0.2:51820', 'allowed_ip=10.42.2.0/24', 'allowed_ip=10.4.0.2/32',
    `public_key=${b64ToHex(key(3))}`, 'endpoint=192.168.0.9:51820', 'allowed_ip=10.42.3.0/24',
    `public_key=${b64ToHex(key(4))}`, 'allowed_ip=10.42.4.0/24', 'errno=0', '', '',
  ].join('\n');
  // (strings compare by value: what is shared is measured by bench/agent's soak, not here)
  const desired = new Map([
    [key(2), { publicKey: key(2), endpoint: '192.168.0.2:51820', allowedIPs: ['10.42.2.0/24', '10.4.0.2/32'], persistentKeepalive: 0 }],
    [key(3), { publicKey: key(3), endpoint: '192.168.0.3:51820', allowedIPs: ['10.42.3.0/24', '10.4.0.3/32'], persistentKeepalive: 0 }],
  ]);
  const read = (): DeviceState => parseUapiGet(text).state;
  const dev = read();
  shareDesired(dev, desired);
  const p2 = dev.peers.get(key(2))!;
  assert.equal(p2.endpoint, desired.get(key(2))!.endpoint);
  assert.deepEqual(p2.allowedIPs, desired.get(key(2))!.allowedIPs);
  assert.notEqual(p2.allowedIPs, desired.get(key(2))!.allowedIPs, 'a copy of the array: a later delta pushes into the device\'s');
  assert.equal(dev.peers.get(key(3))!.endpoint, '192.168.0.9:51820', 'a different endpoint stays the kernel\'s');
  assert.deepEqual(dev.peers.get(key(3))!.allowedIPs, ['10.42.3.0/24']);
  assert.deepEqual([...dev.peers.keys()], [key(2), key(3), key(4)]);
  const want = { privateKeyHex: b64ToHex(key(1)), peers: [...desired.values()] };
  assert.deepEqual(diffDevice(dev, want, new Map()), diffDevice(read(), want, new Map()));
});

test('rules: kg\'s protocol marks ours; Go Kilo\'s unspec rules in Kilo\'s table are adopted; others untouched', () => {
  const actual = parseIpRules(
    JSON.stringify([
      { priority: 0, src: 'all', table: '255', protocol: '2' },
      { priority: 32764, src: 'all', dst: '10.0.1.11', iif: 'kilo0', table: '1107', protocol: '107' },
      { priority: 32763, src: 'all', dst: '10.0.1.11', iif: 'kilo0', table: '1107', protocol: '107' }, // duplicate
      { priority: 32765, src: '10.42.0.0', srclen: 24, dst: '10.0.1.12', table: '1107', protocol: '0' }, // Go Kilo's, stale
      { priority: 32762, src: '10.42.0.0', srclen: 24, dst: '10.0.1.13', table: '1107', protocol: '0' }, // Go Kilo's, desired
      { priority: 32761, src: '10.43.0.0', srclen: 24, table: '1107', protocol: '200' }, // another program's, in 1107
      { priority: 32760, src: '10.44.0.0', srclen: 24, table: '1107', fwmark: '0x1', protocol: '0' }, // a selector we do not model
      { priority: 100, src: '10.9.0.0', srclen: 16, table: '100', protocol: '0' },
      { priority: 32766, src: 'all', table: '254', protocol: '2' },
    ]),
  );
  const want = [{ src: null, dst: '10.0.1.11/32', iif: 'kilo0', table: 1107, priority: null }, { src: '10.42.0.0/24', dst: '10.0.1.13/32', iif: null, table: 1107, priority: null }].map(normalizeRule);
  const ops = diffRules(want, actual, 1107);
  assert.deepEqual(ops.map((o) => o.line), [
    'rule del to 10.0.1.11/32 iif kilo0 lookup 1107 pref 32763 protocol 107',
    'rule del from 10.42.0.0/24 to 10.0.1.12/32 lookup 1107 pref 32765 protocol 0',
    'rule del from 10.42.0.0/24 to 10.0.1.13/32 lookup 1107 pref 32762 protocol 0',
    'rule add from 10.42.0.0/24 to 10.0.1.13/32 lookup 1107 protocol 107',
  ]);
  assert.deepEqual([...failedBatchLines('Cannot find device "nope"\nCommand failed -:2\n')], [[2, 'Cannot find device "nope"']]);
});

const key = (n: number): string => Buffer.alloc(32, n).toString('base64');

test('wireguard delta: add/update/remove only what changed; replace allowed IPs only on loss', () => {
  const dev: DeviceState = {
    privateKeyHex: b64ToHex(key(1)),
    listenPort: 51820,
    peers: new Map([
      [key(2), { publicKey: key(2), endpoint: '192.168.0.2:51820', allowedIPs: ['10.42.2.0/24'], persistentKeepalive: 0, presharedKeyHex: '0'.repeat(64), lastHandshake: 0, rxBytes: 0, txBytes: 0 }],
      [key(3), { publicKey: key(3), endpoint: '192.168.0.3:51820', allowedIPs: ['10.42.3.0/24', '10.4.0.3/32'], persistentKeepalive: 0, presharedKeyHex: '0'.repeat(64), lastHandshake: 0, rxBytes: 0, txBytes: 0 }],
      [key(4), { publicKey: key(4), endpoint: null, allowedIPs: [], persistentKeepalive: 0, presharedKeyHex: '0'.repeat(64), lastHandshake: 0, rxBytes: 0, txBytes: 0 }],
      [key(6), { publicKey: key(6), endpoint: '1.1.1.1:9', allowedIPs: ['10.6.0.0/24'], persistentKeepalive: 0, presharedKeyHex: '0'.repeat(64), lastHandshake: 5, rxBytes: 0, txBytes: 0 }],
    ]),
  };
  const desired = {
    privateKeyHex: b64ToHex(key(1)),
    listenPort: 51820,
    peers: [
      { publicKey: key(2), endpoint: '192.168.0.2:51820', allowedIPs: ['10.42.2.0/24', '10.5.0.1/24'], persistentKeepalive: 0 }, // gains one (host bits masked)
      { publicKey: key(3), endpoint: '192.168.0.3:51820', allowedIPs: ['10.42.3.0/24'], persistentKeepalive: 25 }, // loses one
      { publicKey: key(5), endpoint: 'example.com:51820', allowedIPs: ['10.42.5.0/24'], persistentKeepalive: 0 }, // new, DNS endpoint not set
      { publicKey: key(6), endpoint: '2.2.2.2:9', allowedIPs: ['10.6.0.0/24'], persistentKeepalive: 0 }, // roamed: unchanged desire keeps roamed endpoint
    ],
  };
  const d = diffDevice(dev, desired, new Map([[key(6), '2.2.2.2:9']]));
  assert.deepEqual(d.peers, [
    { publicKey: key(2), addAllowedIPs: ['10.5.0.0/24'] },
    { publicKey: key(3), persistentKeepalive: 25, replaceAllowedIPs: ['10.42.3.0/24'] },
    { publicKey: key(5), create: true, persistentKeepalive: 0, addAllowedIPs: ['10.42.5.0/24'] },
    { publicKey: key(4), remove: true },
  ]);
  const uapi = renderUapiSet(d);
  assert.ok(!uapi.includes('replace_peers'));
  assert.match(uapi, /^set=1\npublic_key=[0-9a-f]{64}\nupdate_only=true\nallowed_ip=10\.5\.0\.0\/24\n/);
  assert.ok(uapi.endsWith('remove=true\n\n'));
  // a desired endpoint change is written even over a roamed one
  const d2 = diffDevice(dev, desired, new Map([[key(6), '3.3.3.3:9']]));
  assert.ok(d2.peers.some((p) => p.publicKey === key(6) && p.endpoint === '2.2.2.2:9'));
  // kernel path: chunked wg set invocations
  const big = { peers: Array.from({ length: 1200 }, (_, i) => ({ publicKey: key(i % 250), remove: true as const })) };
  const { args } = renderWgSet('kilo0', big, new Map(), 500);
  assert.equal(args.length, 3);
  assert.deepEqual(diffDevice(dev, { ...desired, peers: [...dev.peers.values()].map((p) => ({ ...p })) }, new Map()).peers, []);
});

test('UAPI get parsing and NAT discovery (spec 6.7)', () => {
  const text = `private_key=${'a'.repeat(64)}\nlisten_port=51820\npublic_key=${'02'.repeat(32)}\nendpoint=[fd00::1]:51820\nlast_handshake_time_sec=100\nlast_handshake_time_nsec=0\nrx_bytes=5\ntx_bytes=6\npersistent_keepalive_interval=25\nallowed_ip=10.42.2.0/24\nerrno=0\n\n`;
  const { state, errno } = parseUapiGet(text);
  assert.equal(errno, 0);
  const p = state.peers.get(key(2))!;
  assert.deepEqual([p.endpoint, p.lastHandshake, p.rxBytes, p.txBytes, p.persistentKeepalive], ['[fd00::1]:51820', 100, 5, 6, 25]);
  assert.deepEqual(discoverNATEndpoints([...state.peers.values()], [{ key: key(2), persistentKeepalive: 10 }], []), { [key(2)]: '[fd00::1]:51820' });
  assert.deepEqual(discoverNATEndpoints([...state.peers.values()], [{ key: key(2), persistentKeepalive: 0 }], []), {});
});
