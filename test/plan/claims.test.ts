// What one node or Peer may claim (plan/claims.ts) and how bad input is reported: caps on
// allowed-location IPs and Peer allowed IPs, short prefixes refused without
// --allow-short-prefixes, one warning per annotation with a count, values quoted short.
// Expectations are derived by hand from the rules in claims.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_LIMITS, limitsWith, quote } from '../../plan/claims.js';
import { parseNode } from '../../plan/node.js';
import { validatePeer } from '../../plan/peer.js';
import { parseCluster } from '../../plan/plan.js';
import { AGENT_FLAGS, parseFlags, PLAN_FLAGS, toConfig } from '../../main/flags.js';
import { review, WEBHOOK_FLAGS } from '../../main/webhook.js';
import { WarningLog } from '../../main/agent/warnings.js';
import { key, nodeObj, peerObj } from './fixture.js';

const ALIP = 'kilo.squat.ai/allowed-location-ips';
const alips = (value: string, limits = DEFAULT_LIMITS) => {
  const r = parseNode(nodeObj('x', { [ALIP]: value }), undefined, limits);
  return { ips: r.value.allowedLocationIPs.map((c) => c.s), warnings: r.warnings };
};

test('claims: the defaults are 1,024 per node, 1,024 per Peer, nothing shorter than /8', () => {
  assert.deepEqual({ ...DEFAULT_LIMITS }, { maxAllowedLocationIPs: 1024, maxPeerAllowedIPs: 1024, allowShortPrefixes: false });
  assert.ok(Object.isFrozen(DEFAULT_LIMITS));
});

test('claims: allowed-location IPs: bad, short and over-cap items dropped, one warning each kind', () => {
  // Kilo's rule stays: items are not trimmed and bad ones are dropped (design §3.1).
  assert.deepEqual(alips('10.1.0.0/16,bad,0.0.0.0/1,10.2.0.0/16, 10.3.0.0/16,::/0'), {
    ips: ['10.1.0.0/16', '10.2.0.0/16'],
    warnings: [
      `node x: ${ALIP}: 2 invalid CIDRs ignored, first: "bad"`,
      `node x: ${ALIP}: 2 prefixes shorter than /8 ignored (--allow-short-prefixes allows them), first: "0.0.0.0/1"`,
    ],
  });
  // One bad item keeps the warning Kilo-compatible tools print for it.
  assert.deepEqual(alips('10.1.0.0/16,foo').warnings, [`node x: ${ALIP}: invalid CIDR "foo"`]);
  assert.deepEqual(alips('10.0.0.0/0').warnings, [`node x: ${ALIP}: a prefix shorter than /8 ignored (--allow-short-prefixes allows them), first: "10.0.0.0/0"`]);
  // The boundary, in both families; an IPv4-mapped CIDR counts as IPv4 (::ffff:0:0/104 is /8).
  assert.deepEqual(alips('10.0.0.0/8,10.0.0.0/7,fd00::/8,fc00::/7,2000::/3,::ffff:10.0.0.0/104,::ffff:0.0.0.0/100').ips, ['10.0.0.0/8', 'fd00::/8', '10.0.0.0/8']);
  // With --allow-short-prefixes, Kilo's behaviour: every valid item is taken.
  assert.deepEqual(alips('0.0.0.0/0,0.0.0.0/1,::/0', limitsWith({ allowShortPrefixes: true })), { ips: ['0.0.0.0/0', '0.0.0.0/1', '::/0'], warnings: [] });
  // The cap keeps the first valid ones; invalid and short items do not count against it.
  assert.deepEqual(alips('10.1.0.0/16,bad,10.2.0.0/16,0.0.0.0/0,10.3.0.0/16,10.4.0.0/16,10.5.0.0/16', limitsWith({ maxAllowedLocationIPs: 3 })), {
    ips: ['10.1.0.0/16', '10.2.0.0/16', '10.3.0.0/16'],
    warnings: [
      `node x: ${ALIP}: invalid CIDR "bad"`,
      `node x: ${ALIP}: a prefix shorter than /8 ignored (--allow-short-prefixes allows them), first: "0.0.0.0/0"`,
      `node x: ${ALIP}: 5 CIDRs, only the first 3 are used`,
    ],
  });
  const many = Array.from({ length: 1500 }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`).join(',');
  const r = alips(many);
  assert.equal(r.ips.length, 1024);
  assert.equal(r.ips[1023], '10.3.255.0/24');
  assert.deepEqual(r.warnings, [`node x: ${ALIP}: 1500 CIDRs, only the first 1024 are used`]);
});

test('claims: a malformed value of any length is quoted short, with its size', () => {
  assert.equal(quote('foo'), '"foo"');
  assert.equal(quote('a\nb'), '"a\\nb"', 'control characters escaped');
  assert.equal(quote('x'.repeat(64)), JSON.stringify('x'.repeat(64)), '64 characters are shown whole');
  const mib = '10.0.0.0/33,'.repeat(87_381) + '1234'; // 1,048,576 bytes
  assert.equal(mib.length, 1 << 20);
  assert.equal(quote(mib), '"10.0.0.0/33,10.0.0.0/33,10.0.0.0…" (1,048,576 bytes)');
  assert.equal(quote('é'.repeat(100)), `"${'é'.repeat(32)}…" (200 bytes)`, 'the size is in UTF-8 bytes');
  assert.equal(quote('a' + '😀'.repeat(40)), `"a${'😀'.repeat(15)}…" (161 bytes)`, 'a surrogate pair is not split');
  // In a node's warning: the 1 MiB endpoint makes a short warning.
  const w = parseNode(nodeObj('x', { 'kilo.squat.ai/endpoint': mib })).warnings;
  assert.deepEqual(w, ['node x: kilo.squat.ai/endpoint: invalid endpoint "10.0.0.0/33,10.0.0.0/33,10.0.0.0…" (1,048,576 bytes)']);
  assert.deepEqual(parseNode(nodeObj('x', {}, 'x'.repeat(100))).warnings, [`node x: spec.podCIDR: invalid CIDR "${'x'.repeat(32)}…" (100 bytes)`]);
});

test('claims: Peers: over 1,024 allowed IPs or a short prefix is an invalid Peer (and a denial)', () => {
  const ips = (n: number) => Array.from({ length: n }, (_, i) => `10.${i >> 8}.${i & 255}.0/24`);
  const p = (allowedIPs: unknown[]) => peerObj('p', { allowedIPs, publicKey: key(1) });
  assert.equal(validatePeer(p(ips(1024))), null);
  assert.equal(validatePeer(p(ips(1025))), 'allowedIPs has 1025 entries; at most 1024 are allowed');
  assert.equal(validatePeer(p(['10.5.0.0/16', '0.0.0.0/0'])), 'allowed IP "0.0.0.0/0" is too broad: prefixes shorter than /8 are refused unless kg runs with --allow-short-prefixes');
  assert.match(validatePeer(p(['::/1'])) ?? '', /^allowed IP "::\/1" is too broad/);
  assert.equal(validatePeer(p(['10.0.0.0/8', 'fd00::/8'])), null);
  assert.equal(validatePeer(p(['0.0.0.0/0', '::/0']), limitsWith({ allowShortPrefixes: true })), null, 'Kilo\'s behaviour with the flag');
  // Errors quote values short, and never serialise a list or an object.
  assert.equal(validatePeer(p(['x'.repeat(1 << 20)])), `failed to parse "${'x'.repeat(32)}…" (1,048,576 bytes) as a valid IP address`);
  assert.equal(validatePeer(p([[[['deep']]]])), 'failed to parse a list as a valid IP address');
  assert.equal(validatePeer(peerObj('p', { allowedIPs: [], publicKey: { k: 'x'.repeat(1000) } })), 'failed to parse public key an object: must be 32 bytes of standard base64');
  assert.equal(validatePeer(peerObj('p', { allowedIPs: [], publicKey: key(1), endpoint: { dnsOrIP: { ip: '1.1.1.1' }, port: 70000 } })), 'port must be a valid UDP port number, got 70000');
  // kg ignores such a Peer, with one warning naming it.
  const c = parseCluster([], [p(['0.0.0.0/1'])], 'topology.kubernetes.io/region');
  assert.deepEqual([c.peers.length, c.warnings.length], [0, 1]);
  assert.match(c.warnings[0], /^peer p: invalid, ignored: allowed IP "0.0.0.0\/1" is too broad/);
  assert.equal(parseCluster([], [p(['0.0.0.0/1'])], 'topology.kubernetes.io/region', limitsWith({ allowShortPrefixes: true })).peers.length, 1);
});

test('claims: --allow-short-prefixes for the agent, kg plan and kg webhook, and the webhook follows it', () => {
  for (const defs of [AGENT_FLAGS, [...PLAN_FLAGS, ...AGENT_FLAGS], WEBHOOK_FLAGS]) assert.ok(defs.some((d) => d.name === 'allow-short-prefixes'));
  assert.equal(toConfig(parseFlags(['--hostname', 'a'], AGENT_FLAGS).values).claims.allowShortPrefixes, false);
  assert.equal(toConfig(parseFlags(['--hostname', 'a', '--allow-short-prefixes'], AGENT_FLAGS).values).claims.allowShortPrefixes, true);
  const body = JSON.stringify({
    apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview',
    request: { uid: 'u', operation: 'CREATE', object: { metadata: { name: 'exit' }, spec: { allowedIPs: ['0.0.0.0/0'], publicKey: key(1) } } },
  });
  const denied = JSON.parse(review('application/json', body).body).response;
  assert.deepEqual([denied.allowed, denied.status.message], [false, 'allowed IP "0.0.0.0/0" is too broad: prefixes shorter than /8 are refused unless kg runs with --allow-short-prefixes']);
  assert.equal(JSON.parse(review('application/json', body, limitsWith({ allowShortPrefixes: true })).body).response.allowed, true);
});

test('warnings: the agent\'s log counts a warning when it appears, once, and forgets it when it goes', () => {
  const log = new WarningLog();
  assert.deepEqual(log.update(['a', 'b']), { added: ['a', 'b'], cleared: 0 });
  for (let i = 0; i < 100; i++) assert.deepEqual(log.update(['a', 'b']), { added: [], cleared: 0 });
  assert.deepEqual(log.update(['b', 'c', 'c']), { added: ['c'], cleared: 1 });
  assert.equal(log.size, 2);
  assert.deepEqual(log.update([]), { added: [], cleared: 2 });
  assert.deepEqual(log.update(['a']), { added: ['a'], cleared: 0 }, 'a warning that comes back is new again');
});
