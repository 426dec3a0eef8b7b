// The kernel text formats and pure decisions of the dataplane (no namespace needed): iptables-save
// tokens and canonical arguments, the checks a route or rule passes before it becomes a line, the
// WireGuard mode decision, the IPIP tunnel's link plan, route monitor lines.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { canonicalArgs, quoteArg, tokenize } from '../../kernel/iptables-save.js';
import { checkRoute, checkRule, replaceLine } from '../../kernel/ip-format.js';
import { permanentIpError } from '../../kernel/input-checks.js';
import type { Route } from '../../plan/types.js';
import { decideMode } from '../../dataplane/wireguard.js';
import { planTunnel, ipipUnsupported } from '../../dataplane/tunnel.js';

const K = (c: string): string[] => ['-m', 'comment', '--comment', c];

test('tokenize/quote round-trip iptables-save lines', () => {
  assert.deepEqual(tokenize('-d 10.4.0.1/32 -m comment --comment "Kilo: do not NAT" -j RETURN'), ['-d', '10.4.0.1/32', '-m', 'comment', '--comment', 'Kilo: do not NAT', '-j', 'RETURN']);
  assert.deepEqual(tokenize('--comment "a \\"q\\" b"'), ['--comment', 'a "q" b']);
  fc.assert(
    fc.property(fc.array(fc.string({ minLength: 0, maxLength: 8 }).filter((s) => !s.includes('\n')), { maxLength: 6 }), (args) => {
      assert.deepEqual(tokenize(args.map(quoteArg).join(' ')), args);
    }),
  );
});

test('canonicalArgs puts header matches first, as iptables-save prints them', () => {
  assert.deepEqual(canonicalArgs([...K('Kilo: x'), '-s', '10.0.0.0/24', '-j', 'ACCEPT']), ['-s', '10.0.0.0/24', ...K('Kilo: x'), '-j', 'ACCEPT']);
  assert.deepEqual(canonicalArgs(['-p', '4', ...K('y'), '-j', 'DROP']), ['-p', 'ipencap', ...K('y'), '-j', 'DROP']);
  assert.deepEqual(canonicalArgs(['!', '-s', '1.1.1.1/32', '-j', 'DROP']), ['!', '-s', '1.1.1.1/32', '-j', 'DROP']);
});

test('routes: every field is checked before it can become a line', () => {
  const base: Route = { dst: '10.42.3.0/24', gw: '10.4.0.3', dev: 'kilo0', src: null, table: null, protocol: 'static', onlink: true };
  const bad: Array<[Partial<Route>, RegExp]> = [
    [{ dev: 'kilo0\nroute del 192.0.2.0/24' }, /control character/],
    [{ dev: 'a-very-long-interface-name' }, /not a valid interface name/],
    [{ dst: '10.1.2.0/33' }, /valid prefix length/],
    [{ dst: '10.1.2.0/' }, /valid prefix length/],
    [{ dst: '10' }, /valid prefix length/],
    [{ gw: 'fd00::1' }, /family/],
    [{ gw: 'gateway.example' }, /not an IP/],
    [{ src: '10.0.0.1\n' }, /control character/],
    [{ table: 0 }, /out of range/],
    [{ table: 2 ** 32 }, /out of range/],
    [{ table: 255 }, /out of range/],
    [{ table: 1.5 }, /out of range/],
    [{ gw: null, dev: '' }, /neither/],
  ];
  for (const [patch, why] of bad) {
    const c = checkRoute({ ...base, ...patch });
    assert.ok(!c.ok && why.test(c.problem), `${JSON.stringify(patch)} → ${JSON.stringify(c)}`);
  }
  const ok = checkRoute({ ...base, table: 1107, gw: '10.4.0.3' });
  assert.ok(ok.ok && replaceLine(ok.route) === 'route replace 10.42.3.0/24 via 10.4.0.3 dev kilo0 onlink proto 107 table 1107');
  // a rule with no source and no destination would take all traffic
  assert.ok(!checkRule({ src: null, dst: null, iif: 'kilo0', table: 1107, priority: null }).ok);
  const pr = checkRule({ src: '10.1.0.0/16', dst: null, iif: null, table: 1107, priority: 2 ** 33 });
  assert.ok(pr.ok && pr.rule.priority === null && pr.note !== null);
  assert.ok(!checkRule({ src: '10.1.0.0/16', dst: null, iif: 'x\ny', table: 1107, priority: null }).ok);
  assert.equal(permanentIpError('Error: argument "4294967296" is wrong: "table" value is invalid', 'route replace …'), true);
  assert.equal(permanentIpError('Error: Nexthop has invalid gateway.', 'route replace 10.1.0.0/24 via 10.9.0.1 dev br0 onlink proto 107'), true);
  assert.equal(permanentIpError('Error: Nexthop has invalid gateway.', 'route replace 10.1.0.0/24 via 10.19.0.7 dev br0 proto 107'), false);
  assert.equal(permanentIpError('Cannot find device "kilo9"', 'route replace …'), false);
});

test('WireGuard mode decision: kernel first, userspace fallback on EOPNOTSUPP', () => {
  const none = { exists: false, kind: null, up: false, mtu: null, addrs: [] };
  assert.deepEqual(decideMode({ link: none, socketExists: false, createInterface: true, mode: 'auto' }), { action: 'create-kernel' });
  assert.equal(decideMode({ link: none, socketExists: false, createInterface: true, mode: 'auto', kernelAdd: { ok: false, stderr: 'Error: Unknown device type.' } }).action, 'spawn-userspace');
  assert.equal(decideMode({ link: none, socketExists: false, createInterface: true, mode: 'kernel', kernelAdd: { ok: false, stderr: 'Error: Unknown device type.' } }).action, 'fail');
  assert.equal(decideMode({ link: none, socketExists: false, createInterface: true, mode: 'auto', kernelAdd: { ok: false, stderr: 'RTNETLINK answers: Operation not permitted' } }).action, 'fail');
  assert.deepEqual(decideMode({ link: { ...none, exists: true, kind: 'wireguard' }, socketExists: false, createInterface: false, mode: 'auto' }), { action: 'adopt', mode: 'kernel' });
  assert.deepEqual(decideMode({ link: { ...none, exists: true, kind: 'tun' }, socketExists: true, createInterface: false, mode: 'auto' }), { action: 'adopt', mode: 'userspace' });
  assert.equal(decideMode({ link: none, socketExists: false, createInterface: false, mode: 'auto' }).action, 'fail');
  assert.equal(decideMode({ link: { ...none, exists: true, kind: 'bridge' }, socketExists: false, createInterface: true, mode: 'auto' }).action, 'fail');
});

test('IPIP tunnel plan (spec 9.3/9.7; no IPIP on the dev machine, so planned here)', () => {
  const link = { exists: true, kind: 'ipip', up: false, mtu: 1480, addrs: ['10.42.9.1/32'] };
  assert.deepEqual(planTunnel(link, { dev: 'tunl0', address: '10.42.1.1/32' }, 1450), ['link set tunl0 mtu 1430', 'addr del 10.42.9.1/32 dev tunl0', 'addr replace 10.42.1.1/32 dev tunl0', 'link set tunl0 up']);
  assert.deepEqual(planTunnel({ ...link, up: true, mtu: 1430, addrs: ['10.42.1.1/32'] }, { dev: 'tunl0', address: '10.42.1.1/32' }, 1450), []);
  assert.ok(ipipUnsupported('add tunnel "tunl0" failed: No such device'));
});

test('route monitor lines: only deletions name a key', async () => {
  const { deletedRouteKey } = await import('../../dataplane/routes.js');
  assert.equal(deletedRouteKey('Deleted 10.42.4.0/24 via 10.4.0.4 dev kilo0 proto static src 172.16.0.1 onlink '), '254|10.42.4.0/24');
  assert.equal(deletedRouteKey('Deleted 172.16.0.11 via 172.16.0.11 dev eth0 table 1107 proto static src 172.16.0.1 onlink'), '1107|172.16.0.11/32');
  assert.equal(deletedRouteKey('10.42.4.0/24 via 10.4.0.4 dev kilo0 proto static'), null);
  assert.equal(deletedRouteKey('Deleted broadcast 10.4.255.255 dev kilo0 table local proto kernel'), null);
  assert.equal(deletedRouteKey('Deleted default via 1.2.3.4 dev eth0'), null);
});
