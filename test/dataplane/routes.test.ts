// Route and policy-rule reconcilers against the real kernel in a test network namespace.
// Assertions read `ip -j route` / `ip -j rule`.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { Exec } from '../../dataplane/exec.js';
import { KG_PROTO } from '../../kernel/owner.js';
import { RouteReconciler } from '../../dataplane/routes.js';
import { RuleReconciler } from '../../dataplane/rules.js';
import { Dataplane } from '../../dataplane/dataplane.js';
import type { Route, Rule } from '../../plan/types.js';
import { TestNode, cleanupMntRoot, waitFor } from './netns.js';

after(cleanupMntRoot);

/** A node with "eth0" (a bridge: no dummy module here) at 172.16.0.1/16 and "kilo0" (a bridge standing in for the link). */
function setup(tag: string): TestNode {
  const n = TestNode.create(tag).bridges([
    ['eth0', '172.16.0.1/16'],
    ['kilo0', '10.4.0.1/16'],
  ]);
  n.ip('-6', 'addr', 'add', 'fd00:4::1/64', 'dev', 'kilo0', 'nodad');
  return n;
}

function routes(n: number, bump = 0): Route[] {
  const out: Route[] = [];
  for (let i = 2; i < n + 2; i++) {
    const gw = `10.4.${i >> 8}.${i & 255}`;
    out.push({ dst: `10.${42 + (i >> 8)}.${i & 255}.0/24`, gw: i === 5 && bump ? `10.4.9.${bump}` : gw, dev: 'kilo0', src: '172.16.0.1', table: null, protocol: 'static', onlink: true });
    out.push({ dst: `172.16.${i >> 8}.${i & 255}/32`, gw, dev: 'kilo0', src: '172.16.0.1', table: null, protocol: 'static', onlink: true });
  }
  out.push({ dst: '172.16.0.11/32', gw: '172.16.0.11', dev: 'eth0', src: '172.16.0.1', table: 1107, protocol: 'static', onlink: true });
  out.push({ dst: 'fd00:42:2::/64', gw: null, dev: 'kilo0', src: null, table: null, protocol: 'static', onlink: false });
  return out;
}

const rules: Rule[] = [
  { src: '10.42.1.0/24', dst: '172.16.0.11/32', iif: null, table: 1107, priority: null },
  { src: null, dst: '172.16.0.11/32', iif: 'kilo0', table: 1107, priority: null },
  { src: 'fd00:42:1::/64', dst: 'fd00:42:9::/64', iif: null, table: 1107, priority: null },
];

/** Routes of one protocol as `ip -j` names it ("107" for kg's, "static", "boot", …), both families. */
function routesOf(n: TestNode, proto: string): string[] {
  const v4 = n.routesJSON('-4').filter((r) => r.protocol === proto);
  const v6 = n.routesJSON('-6').filter((r) => r.protocol === proto);
  return [...v4, ...v6].map((r) => `${r.table ?? 'main'} ${r.dst} ${r.gateway ?? '-'} ${r.dev} ${r.prefsrc ?? '-'} ${(r.flags ?? []).join(',')}`).sort();
}
const kgRoutes = (n: TestNode): string[] => routesOf(n, String(KG_PROTO));
const staticRoutes = (n: TestNode): string[] => routesOf(n, 'static');

function rulesJSON(n: TestNode, family: '-4' | '-6' = '-4'): Array<Record<string, any>> {
  return JSON.parse(n.ip(family, '-d', '-j', 'rule', 'show'));
}

/** Someone else's routes and rules, on the same devices and tables as kg's. */
function addSentinels(node: TestNode): string[] {
  node.ip('route', 'add', '192.0.2.0/24', 'via', '172.16.0.254', 'dev', 'eth0', 'proto', 'static');
  node.ip('route', 'add', '198.51.100.0/24', 'via', '172.16.0.254', 'dev', 'eth0');
  node.ip('route', 'add', '203.0.113.0/24', 'via', '172.16.0.254', 'dev', 'eth0', 'table', '100', 'proto', 'static');
  // through kg's own device, static, main table (the old ownership took it for Kilo's)
  node.ip('route', 'add', '198.18.0.0/24', 'via', '10.4.0.200', 'dev', 'kilo0', 'proto', 'static', 'onlink');
  // in Kilo's table, another protocol
  node.ip('route', 'add', '198.18.1.0/24', 'via', '172.16.0.254', 'dev', 'eth0', 'table', '1107', 'proto', 'boot');
  node.ip('rule', 'add', 'from', '192.0.2.0/24', 'lookup', '100');
  // in Kilo's table, another protocol
  node.ip('rule', 'add', 'from', '198.18.2.0/24', 'lookup', '1107', 'protocol', '200');
  return sentinels(node);
}

function sentinels(node: TestNode): string[] {
  const r = node.ip('-4', 'route', 'show', 'table', 'all').split('\n').filter((l) => /^(192\.0\.2|198\.51\.100|203\.0\.113|198\.18\.[01])\./.test(l));
  const ru = node.ip('-d', 'rule', 'show').split('\n').filter((l) => /192\.0\.2\.0|198\.18\.2\.0/.test(l));
  return [...r, ...ru].map((l) => l.replace(/^\d+:\s*/, '')).sort();
}

test('routes: apply from empty, no-op, one-change delta, drift repair, clean-up with sentinels', async (t) => {
  const node = setup('routes');
  t.after(() => node.destroy());
  const others = addSentinels(node);
  assert.equal(others.length, 7);

  const exec = new Exec(node.nsenter);
  const rr = new RouteReconciler(exec, 1107);
  const ru = new RuleReconciler(exec, 1107);
  rr.setDesired(routes(300));
  ru.setDesired(rules);
  let rep = await rr.reconcile(false);
  assert.deepEqual(rep.errors, []);
  assert.equal(rep.batches, 1, 'one ip -batch for all routes');
  assert.equal(rep.writes, 602);
  let rep2 = await ru.reconcile(false);
  assert.deepEqual(rep2.errors, []);

  let held = kgRoutes(node);
  assert.equal(held.length, 602, 'ours, with kg\'s protocol');
  assert.deepEqual(sentinels(node), others, 'the sentinels are untouched');
  assert.ok(held.includes('main 10.42.2.0/24 10.4.0.2 kilo0 172.16.0.1 onlink'));
  assert.ok(held.includes('1107 172.16.0.11 172.16.0.11 eth0 172.16.0.1 onlink'));
  assert.ok(held.some((l) => l.startsWith('main fd00:42:2::/64 - kilo0')));
  const ruleList = rulesJSON(node);
  assert.ok(ruleList.some((r) => r.src === '10.42.1.0' && r.dst === '172.16.0.11' && r.table === '1107' && r.protocol === '107'));
  assert.ok(ruleList.some((r) => r.iif === 'kilo0' && r.dst === '172.16.0.11' && r.table === '1107' && r.protocol === '107'));
  assert.ok(rulesJSON(node, '-6').some((r) => r.src === 'fd00:42:1::' && r.table === '1107' && r.protocol === '107'));

  // no-op resync: re-read, zero writes
  rep = await rr.reconcile(true);
  rep2 = await ru.reconcile(true);
  assert.deepEqual([rep.read, rep.writes, rep.batches, rep2.read, rep2.writes, rep2.batches], [true, 0, 0, true, 0, 0]);

  // one change: a gateway moves, one node leaves
  const next = routes(300, 7).filter((r) => r.dst !== '10.42.9.0/24');
  rr.setDesired(next);
  rep = await rr.reconcile(false);
  assert.deepEqual([rep.read, rep.writes, rep.batches], [false, 2, 1]);
  held = kgRoutes(node);
  assert.ok(held.includes('main 10.42.5.0/24 10.4.9.7 kilo0 172.16.0.1 onlink'));
  assert.ok(!held.some((l) => l.startsWith('main 10.42.9.0/24')));

  // drift: someone deletes routes; a resync puts them back, nothing else changes
  node.ip('route', 'del', '10.42.7.0/24');
  node.ip('route', 'del', '172.16.0.11/32', 'table', '1107');
  node.ip('rule', 'del', 'iif', 'kilo0', 'to', '172.16.0.11/32', 'lookup', '1107');
  rep = await rr.reconcile(true);
  rep2 = await ru.reconcile(true);
  assert.deepEqual([rep.writes, rep2.writes], [2, 1]);
  assert.deepEqual(kgRoutes(node), held);
  assert.deepEqual(sentinels(node), others);

  // clean-up: ours gone (table 1107 included), sentinels intact
  rep = await rr.cleanUp();
  rep2 = await ru.cleanUp();
  assert.deepEqual([...rep.errors, ...rep2.errors], []);
  assert.deepEqual(kgRoutes(node), []);
  assert.deepEqual(sentinels(node), others);
  assert.ok(!rulesJSON(node).some((r) => r.table === '1107' && r.protocol === '107'));
  assert.ok(!rulesJSON(node, '-6').some((r) => r.table === '1107'));
});

test('routes and rules after a restart: a fresh reconciler knows kg\'s own by protocol; nothing leaks, nothing else is touched', async (t) => {
  const node = setup('routes-restart');
  t.after(() => node.destroy());
  node.ip('link', 'add', 'kilo9', 'type', 'bridge');
  node.ip('link', 'set', 'kilo9', 'up');
  const others = addSentinels(node);
  const exec = new Exec(node.nsenter);
  // before the restart: routes through kilo0 and through kilo9, a rule
  const before = [...routes(5), { dst: '10.99.0.0/24', gw: '10.4.0.99', dev: 'kilo9', src: null, table: null, protocol: 'static' as const, onlink: true }];
  let rr = new RouteReconciler(exec, 1107);
  let ru = new RuleReconciler(exec, 1107);
  rr.setDesired(before);
  ru.setDesired(rules);
  assert.deepEqual([...(await rr.reconcile(false)).errors, ...(await ru.reconcile(false)).errors], []);
  assert.ok(kgRoutes(node).some((l) => l.startsWith('main 10.99.0.0/24 10.4.0.99 kilo9')));
  // "restart": fresh reconcilers with empty memory; kilo9 is no longer in the plan, one rule went
  rr = new RouteReconciler(exec, 1107);
  ru = new RuleReconciler(exec, 1107);
  rr.setDesired(routes(5));
  ru.setDesired(rules.slice(1));
  const rep = await rr.reconcile(false);
  const rep2 = await ru.reconcile(false);
  assert.deepEqual([...rep.errors, ...rep2.errors], []);
  assert.equal(rep.writes, 1, 'only the route through kilo9 is removed; the rest was already right');
  assert.ok(!kgRoutes(node).some((l) => l.includes('10.99.0.0')), 'the route through a device no longer desired does not leak');
  assert.equal(kgRoutes(node).length, 12);
  assert.ok(!rulesJSON(node).some((r) => r.src === '10.42.1.0' && r.table === '1107'), 'the rule no longer desired is removed');
  assert.deepEqual(sentinels(node), others);
  // resync, then a clean-up by yet another fresh reconciler: only kg's go
  assert.equal((await rr.reconcile(true)).writes, 0);
  rr = new RouteReconciler(exec, 1107);
  ru = new RuleReconciler(exec, 1107);
  assert.deepEqual([...(await rr.cleanUp()).errors, ...(await ru.cleanUp()).errors], []);
  assert.deepEqual(kgRoutes(node), []);
  assert.ok(!rulesJSON(node).some((r) => r.protocol === '107') && !rulesJSON(node, '-6').some((r) => r.protocol === '107'));
  assert.deepEqual(sentinels(node), others);
});

test('routes and rules made by Go Kilo (proto static, rules without protocol) are adopted, not duplicated', async (t) => {
  const node = setup('routes-adopt');
  t.after(() => node.destroy());
  const others = addSentinels(node);
  // what a Go agent left: desired routes as static, a stale static route in table 1107, its rules
  node.ip('route', 'add', '10.42.2.0/24', 'via', '10.4.0.2', 'dev', 'kilo0', 'onlink', 'src', '172.16.0.1', 'proto', 'static');
  node.ip('route', 'add', '172.16.0.11/32', 'via', '172.16.0.11', 'dev', 'eth0', 'onlink', 'src', '172.16.0.1', 'table', '1107', 'proto', 'static');
  node.ip('route', 'add', '172.16.0.12/32', 'via', '172.16.0.12', 'dev', 'eth0', 'onlink', 'table', '1107', 'proto', 'static');
  node.ip('rule', 'add', 'from', '10.42.1.0/24', 'to', '172.16.0.11/32', 'lookup', '1107');
  node.ip('rule', 'add', 'from', '10.42.1.0/24', 'to', '172.16.0.12/32', 'lookup', '1107');
  const exec = new Exec(node.nsenter);
  const rr = new RouteReconciler(exec, 1107);
  const ru = new RuleReconciler(exec, 1107);
  rr.setDesired(routes(3));
  ru.setDesired(rules);
  assert.deepEqual([...(await rr.reconcile(false)).errors, ...(await ru.reconcile(false)).errors], []);
  const all = node.routesJSON('-4');
  assert.equal(all.filter((r) => r.dst === '10.42.2.0/24').length, 1, 'one route, not two');
  assert.equal(all.find((r) => r.dst === '10.42.2.0/24')!.protocol, '107', 'adopted: rewritten with kg\'s protocol');
  assert.equal(all.filter((r) => r.dst === '172.16.0.11').map((r) => r.protocol).join(), '107');
  assert.ok(!all.some((r) => r.dst === '172.16.0.12'), 'Go Kilo\'s stale table-1107 route is removed');
  const r4 = rulesJSON(node).filter((r) => r.table === '1107' && r.src === '10.42.1.0');
  assert.deepEqual(r4.map((r) => `${r.dst} ${r.protocol}`), ['172.16.0.11 107'], 'the desired rule adopted once, the stale one removed');
  assert.deepEqual(staticRoutes(node).filter((l) => !l.includes('192.0.2.0') && !l.includes('203.0.113') && !l.includes('198.18.0.0')), []);
  assert.deepEqual(sentinels(node), others);
  assert.deepEqual([(await rr.reconcile(true)).writes, (await ru.reconcile(true)).writes], [0, 0], 'a resync finds nothing to do');
});

test('routes: a bad route is reported and retried; the rest is applied', async (t) => {
  const node = setup('routes-bad');
  t.after(() => node.destroy());
  const rr = new RouteReconciler(new Exec(node.nsenter), 1107);
  const want = routes(20);
  want.splice(5, 0, { dst: '10.99.0.0/24', gw: '10.4.0.99', dev: 'kilo9', src: null, table: null, protocol: 'static', onlink: true });
  rr.setDesired(want);
  let rep = await rr.reconcile(false);
  assert.equal(rep.errors.length, 1);
  assert.match(rep.errors[0].item, /10\.99\.0\.0\/24/);
  assert.equal(kgRoutes(node).length, 42);
  // an ordinary pass retries just that route, without re-reading the whole table
  rep = await rr.reconcile(false);
  assert.deepEqual([rep.errors.length, rep.writes, rep.read], [1, 0, false]);
  // the device appears; the next ordinary pass installs the route, still without a re-read
  node.ip('link', 'add', 'kilo9', 'type', 'bridge');
  node.ip('link', 'set', 'kilo9', 'up');
  rep = await rr.reconcile(false);
  assert.deepEqual([rep.errors.length, rep.writes, rep.read], [0, 1, false]);
  assert.equal(kgRoutes(node).length, 43);
  // and a re-reading pass finds nothing left to do
  rep = await rr.reconcile(true);
  assert.deepEqual([rep.errors.length, rep.writes, rep.read], [0, 0, true]);
});

test('routes: the route monitor repairs a deleted route without a resync call', async (t) => {
  const node = setup('routes-mon');
  const dp = new Dataplane({ interface: 'wg-none', nsenter: node.nsenter, resyncPeriodMs: 0, routeMonitor: true, iptablesBackend: 'legacy', ipv6: false });
  t.after(async () => {
    await dp.close();
    node.destroy();
  });
  // interface 'wg-none': a non-leader sets its WireGuard link down, and the stand-in kilo0 must stay up
  const res = await dp.apply({ interface: 'wg-none', wireguard: null, routes: routes(10), rules: [], iptables: { chains: [], prepend: [], append: [] }, tunnel: null, cni: null });
  assert.equal(res.errors.filter((e) => e.kind === 'routes').length, 0);
  await new Promise((r) => setTimeout(r, 400)); // let our own write's events settle
  node.ip('route', 'del', '10.42.4.0/24');
  const back = await waitFor(() => kgRoutes(node).some((l) => l.startsWith('main 10.42.4.0/24 10.4.0.4')), 5000);
  assert.ok(back, 'deleted route came back through the monitor');
});
