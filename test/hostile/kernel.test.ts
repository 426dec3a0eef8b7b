// Hostile input at the kernel writers (issue 15): values that reach the dataplane from cluster data
// (through a parser gap or a planner bug) must never become commands of their own, block the rest
// of their table, or be retried forever; and a batch reaches its tool whole or not at all.
// Desired state is fed to the reconcilers directly (not through the planner), against the real
// kernel in namespaces this file creates. Kernel-state assertions come before report assertions,
// so that run against older code a test fails on what the kernel holds.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import type { FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { Dataplane } from '../../dataplane/dataplane.js';
import * as execModule from '../../dataplane/exec.js';
import { Exec } from '../../dataplane/exec.js';
import { IptablesReconciler } from '../../dataplane/iptables.js';
import { RouteReconciler } from '../../dataplane/routes.js';
import { RuleReconciler } from '../../dataplane/rules.js';
import * as wgDiff from '../../kernel/uapi.js';
import type { ApplyResult, DataplaneEvent, DesiredPeer, DesiredState } from '../../ipc/dataplane.js';
import type { IptablesRule, Route, Rule } from '../../plan/types.js';
import { stateApplier } from '../dataplane/deltas.js';
import { TestNode, cleanupMntRoot, keyPair, requireTool, waitFor } from '../dataplane/netns.js';

after(cleanupMntRoot);

const C = (s: string): string[] => ['-m', 'comment', '--comment', s];
const empty = { chains: [], prepend: [], append: [] };

/** A node with "eth0" (172.16.0.1/16) and "br-kg" (10.4.0.1/16), both bridges, up. */
function setup(tag: string): TestNode {
  return TestNode.create(tag).bridges([
    ['eth0', '172.16.0.1/16'],
    ['br-kg', '10.4.0.1/16'],
  ]);
}

const route = (dst: string, gw: string | null, dev = 'br-kg', table: number | null = null): Route => ({ dst, gw, dev, src: null, table, protocol: 'static', onlink: gw !== null });

/** `table dst via gw dev` of every IPv4 route, all tables. */
function routeList(n: TestNode): string[] {
  return n.routesJSON('-4').map((r) => `${r.table ?? 'main'} ${r.dst} ${r.gateway ?? '-'} ${r.dev}`);
}

const has = (list: string[], re: RegExp): boolean => list.some((l) => re.test(l));

function dump(n: TestNode, iface = 'kilo0'): { privateKey: string; listenPort: number; peers: Map<string, { endpoint: string; allowed: string[]; keepalive: string }> } {
  const lines = n.run('wg', 'show', iface, 'dump').trim().split('\n');
  const head = lines[0].split('\t');
  const peers = new Map<string, { endpoint: string; allowed: string[]; keepalive: string }>();
  for (const l of lines.slice(1)) {
    const f = l.split('\t');
    peers.set(f[0], { endpoint: f[2], allowed: f[3] === '(none)' ? [] : f[3].split(',').sort(), keepalive: f[7] });
  }
  return { privateKey: head[0], listenPort: Number(head[2]), peers };
}

function wgState(priv: string, peers: DesiredPeer[], extra: { listenPort?: number; mtu?: number } = {}): DesiredState {
  return { interface: 'kilo0', wireguard: { privateKey: priv, listenPort: extra.listenPort ?? 51820, mtu: extra.mtu ?? 1420, address: '10.4.0.1/16', peers }, routes: [], rules: [], iptables: empty, tunnel: null, cni: null };
}

const peer = (publicKey: string, allowedIPs: string[], endpoint: string | null = null, persistentKeepalive = 0): DesiredPeer => ({ publicKey, allowedIPs, endpoint, persistentKeepalive, presharedKey: false });

function wgDataplane(n: TestNode): Dataplane {
  return new Dataplane({ nsenter: n.nsenter, uapiDir: n.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'legacy', ipv6: false });
}

async function closeAll(dp: Dataplane, n: TestNode): Promise<void> {
  await dp.close();
  await dp.wireguard.stopChild();
  n.destroy();
}

// ---------------------------------------------------------------------------------------------
test('injection: a control character in any field never becomes a command; that item is dropped, the rest of its table is written', async (t) => {
  requireTool('wireguard-go', 'wg', 'iptables-legacy-restore');

  await t.test('ip -batch (routes): a newline in a device name', async () => {
    const node = setup('inj-rt');
    try {
      node.ip('route', 'add', '192.0.2.0/24', 'via', '172.16.0.254', 'dev', 'eth0', 'proto', 'static');
      const rr = new RouteReconciler(new Exec(node.nsenter), 1107);
      const evil = { ...route('10.52.0.0/24', '10.4.0.52'), dev: 'br-kg onlink\nroute del 192.0.2.0/24\nroute replace 10.66.0.0/24 dev br-kg' };
      rr.setDesired([route('10.50.0.0/24', '10.4.0.50'), evil, route('10.51.0.0/24', '10.4.0.51')]);
      const rep = await rr.reconcile(false);
      const held = routeList(node);
      assert.ok(has(held, /^main 192\.0\.2\.0\/24 172\.16\.0\.254 eth0$/), 'the injected `route del` did not run');
      assert.ok(!has(held, /10\.66\.0\.0/), 'the injected `route replace` did not run');
      assert.ok(has(held, /^main 10\.50\.0\.0\/24/) && has(held, /^main 10\.51\.0\.0\/24/), 'the good routes are written');
      assert.ok(!has(held, /10\.52\.0\.0/), 'the bad route is not written');
      assert.deepEqual(rep.errors, []);
      assert.equal(rep.rejected.length, 1);
      assert.deepEqual([rep.rejected[0].reason, /10\.52\.0\.0/.test(rep.rejected[0].item), /control character/.test(rep.rejected[0].message)], ['invalid', true, true]);
      assert.ok(!rep.rejected[0].item.includes('\n') && !rep.rejected[0].message.includes('\n'), 'the warning itself carries no newline');
    } finally {
      node.destroy();
    }
  });

  await t.test('ip -batch (rules): a newline in an input interface', async () => {
    const node = setup('inj-ru');
    try {
      const ru = new RuleReconciler(new Exec(node.nsenter), 1107);
      const rules: Rule[] = [
        { src: null, dst: '172.16.0.11/32', iif: 'br-kg', table: 1107, priority: null },
        { src: null, dst: '172.16.0.12/32', iif: 'br-kg lookup 1107\nrule add from all lookup 1107 pref 5\nrule add to 172.16.0.13/32 iif br-kg', table: 1107, priority: null },
        { src: '10.42.1.0/24', dst: '172.16.0.14/32', iif: null, table: 1107, priority: null },
      ];
      ru.setDesired(rules);
      const rep = await ru.reconcile(false);
      const list = JSON.parse(node.ip('-j', 'rule', 'show')) as Array<Record<string, any>>;
      assert.ok(!list.some((r) => r.src === 'all' && r.dst === undefined && r.iif === undefined && r.table === '1107'), 'no catch-all rule into table 1107 was injected');
      assert.ok(!list.some((r) => r.dst === '172.16.0.13' || r.dst === '172.16.0.12'));
      assert.ok(list.some((r) => r.dst === '172.16.0.11' && r.iif === 'br-kg') && list.some((r) => r.dst === '172.16.0.14' && r.src === '10.42.1.0'), 'the good rules are written');
      assert.deepEqual([rep.errors.length, rep.rejected.length, rep.rejected[0]?.reason], [0, 1, 'invalid']);
    } finally {
      node.destroy();
    }
  });

  await t.test('iptables-restore: a newline in a comment, a chain name', async () => {
    const node = setup('inj-ipt');
    try {
      const r = new IptablesReconciler(new Exec(node.nsenter), { backend: 'legacy', ipv6: false, layout: 'kilo' });
      const nat = (rule: string[], chain = 'KILO-NAT'): IptablesRule => ({ family: 'ipv4', table: 'nat', chain, rule });
      const prepend = [
        nat(['-d', '10.4.0.1/32', ...C('Kilo: do not NAT packets destined for WireGuared IPs'), '-j', 'RETURN']),
        nat(['-d', '10.4.0.9/32', ...C('x\n-I POSTROUTING 1 -s 203.0.113.66/32 -j ACCEPT\n-A KILO-NAT -m comment --comment y'), '-j', 'RETURN']),
        nat(['-j', 'ACCEPT'], 'KILO-X\n-I POSTROUTING 1 -s 203.0.113.67/32 -j ACCEPT\n'),
        nat(['-d', '10.42.2.0/24', ...C('Kilo: do not NAT packets destined for known IPs'), '-j', 'RETURN']),
      ];
      r.setDesired({ chains: [{ family: 'ipv4', table: 'nat', chain: 'KILO-NAT' }], prepend, append: [nat([...C('Kilo: NAT remaining packets'), '-j', 'MASQUERADE'])] });
      const rep = await r.reconcile(false);
      const save = node.run('iptables-legacy-save', '-t', 'nat');
      assert.ok(!save.includes('203.0.113.66') && !save.includes('203.0.113.67'), `no injected rule:\n${save}`);
      assert.equal(save.split('\n').filter((l) => l.startsWith('-A KILO-NAT ')).length, 3, 'the good rules of the same chain are written');
      assert.deepEqual(rep.errors, []);
      assert.deepEqual(rep.rejected.map((x) => x.reason), ['invalid', 'invalid']);
    } finally {
      node.destroy();
    }
  });

  await t.test('WireGuard UAPI: newlines in an endpoint, an allowed IP and a public key', async () => {
    const node = TestNode.create('inj-wg');
    const dp = wgDataplane(node);
    try {
      const me = keyPair();
      const [victim, good, epPeer, ipPeer, other] = Array.from({ length: 5 }, () => keyPair());
      let res = await dp.apply(wgState(me.privateKey, [peer(victim.publicKey, ['10.4.0.2/32'], '192.168.0.2:51820')]));
      assert.deepEqual(res.errors, []);
      const peers = [
        peer(victim.publicKey, ['10.4.0.2/32'], '192.168.0.2:51820'),
        peer(epPeer.publicKey, ['10.4.0.3/32'], `[fe80::1%kilo0\nremove=true\npublic_key=${Buffer.from(victim.publicKey, 'base64').toString('hex')}\nremove=true]:51820`),
        peer(ipPeer.publicKey, [`10.60.0.0/24\nprivate_key=${'0'.repeat(64)}`, '10.4.0.4/32']),
        peer(`${other.publicKey}\nreplace_peers=true`, ['10.4.0.5/32']),
        peer(good.publicKey, ['10.4.0.6/32'], '192.168.0.6:51820'),
      ];
      res = await dp.apply(wgState(me.privateKey, peers));
      const d = dump(node);
      assert.equal(d.privateKey, me.privateKey, 'the private key was not replaced');
      assert.deepEqual(d.peers.get(victim.publicKey)?.allowed, ['10.4.0.2/32'], 'the victim peer was not removed');
      assert.deepEqual(d.peers.get(good.publicKey)?.allowed, ['10.4.0.6/32'], 'the peer after the bad ones is written');
      assert.equal(d.peers.get(epPeer.publicKey)?.endpoint, '(none)', 'the peer with the bad endpoint is configured, without it');
      assert.deepEqual(d.peers.get(ipPeer.publicKey)?.allowed, ['10.4.0.4/32'], 'the bad allowed IP is left out, the good one set');
      assert.ok(!d.peers.has(other.publicKey), 'a key that is not a key is not configured');
      assert.equal(d.peers.size, 4);
      assert.deepEqual(res.errors, []);
      assert.deepEqual(res.rejected.map((x) => x.reason).sort(), ['invalid', 'invalid', 'invalid']);
      assert.ok(res.rejected.every((x) => !x.message.includes('\n') && !x.message.includes('0'.repeat(64))), 'warnings carry no key material and no newline');
      // the next pass writes nothing and warns no more (a warning once, not every pass)
      res = await dp.resync();
      assert.deepEqual([res.errors.length, res.rejected.length, res.writes], [0, 0, 0]);
    } finally {
      await closeAll(dp, node);
    }
  });

  await t.test('wg arguments (kernel WireGuard): a control character is never passed to wg', () => {
    const k = keyPair().publicKey;
    assert.throws(() => wgDiff.renderWgSet('kilo0', { peers: [{ publicKey: k, create: true, endpoint: '192.168.0.1:1\n' }] }, new Map()), /control character/);
    const c = wgDiff.checkPeer(peer(k, ['10.0.0.0/8\t'], '1.2.3.4:5\x7f'));
    assert.deepEqual([c.peer?.allowedIPs, c.peer?.endpoint, c.problems.length], [[], null, 2]);
  });
});

// ---------------------------------------------------------------------------------------------
test('out of range: the kernel would refuse these values; they are clamped or dropped at the writer, and the rest is written', async (t) => {
  requireTool('wireguard-go', 'wg');

  await t.test('WireGuard: keepalive, endpoint port, allowed-IP prefix, listen port, MTU', async () => {
    const node = TestNode.create('oor-wg');
    const dp = wgDataplane(node);
    try {
      const me = keyPair();
      const k = Array.from({ length: 5 }, () => keyPair().publicKey);
      const peers = [
        peer(k[0], ['10.4.0.2/32'], null, 70_000),
        peer(k[1], ['10.4.0.3/32'], null, -5),
        peer(k[2], ['10.4.0.4/32'], '192.168.1.1:0'),
        peer(k[3], ['10.70.0.0/33', '10.71.0.0/24'], '192.168.1.2:70000'),
        peer(k[4], ['10.4.0.6/32'], '192.168.1.3:51820', 25),
      ];
      const applyState = stateApplier(dp);
      let res = await applyState(wgState(me.privateKey, peers, { mtu: 100_000 }));
      const d = dump(node);
      assert.equal(d.peers.size, 5, 'every peer is configured');
      assert.deepEqual([0, 1, 4].map((i) => d.peers.get(k[i])!.keepalive), ['65535', 'off', '25'], 'keepalives clamped into 0-65535');
      assert.deepEqual([2, 3].map((i) => d.peers.get(k[i])!.endpoint), ['(none)', '(none)'], 'endpoints with a port outside 1-65535 left out');
      assert.deepEqual(d.peers.get(k[3])!.allowed, ['10.71.0.0/24']);
      assert.equal(JSON.parse(node.ip('-j', 'link', 'show', 'kilo0'))[0].mtu, 65535, 'MTU clamped to the kernel maximum');
      assert.deepEqual(res.errors, []);
      assert.deepEqual(res.rejected.map((x) => `${x.kind} ${x.reason}`).sort(), ['link clamped', 'wireguard clamped', 'wireguard clamped', 'wireguard invalid', 'wireguard invalid', 'wireguard invalid']);
      // a listen port out of range: the device keeps its port, once warned
      res = await applyState(wgState(me.privateKey, peers, { mtu: 100_000, listenPort: 70_000 }));
      assert.equal(dump(node).listenPort, 51820);
      assert.deepEqual([res.errors.length, res.rejected.map((x) => x.reason)], [0, ['invalid']]);
      res = await dp.resync();
      assert.deepEqual([res.errors.length, res.rejected.length, res.writes], [0, 0, 0]);
    } finally {
      await closeAll(dp, node);
    }
  });

  await t.test('routes and rules: tables, prefix lengths, gateways, priorities', async () => {
    const node = setup('oor-rt');
    try {
      const exec = new Exec(node.nsenter);
      const rr = new RouteReconciler(exec, 1107);
      const ru = new RuleReconciler(exec, 1107);
      rr.setDesired([
        route('10.80.0.0/24', '10.4.0.80'),
        route('10.81.0.0/24', '10.4.0.81', 'br-kg', 0),
        route('10.82.0.0/24', '10.4.0.82', 'br-kg', 2 ** 32),
        route('10.83.0.0/24', '10.4.0.83', 'br-kg', 255),
        route('10.84.0.0/33', '10.4.0.84'),
        route('10.85.0.0/', '10.4.0.85'), // truncated: must not become 0.0.0.0/0
        route('10.86.0.0/24', 'gateway.example'),
        route('10.87.0.0/24', 'fd00::87'),
        route('10.88.0.0/24', '10.4.0.88', 'br-kg', 1107),
      ]);
      ru.setDesired([
        { src: '10.42.1.0/24', dst: '172.16.0.11/32', iif: null, table: 1107, priority: 2 ** 33 },
        { src: '10.42.1.0/24', dst: '172.16.0.12/32', iif: null, table: 0, priority: null },
      ]);
      const rep = await rr.reconcile(false);
      const rep2 = await ru.reconcile(false);
      const held = routeList(node);
      assert.ok(has(held, /^main 10\.80\.0\.0\/24/) && has(held, /^1107 10\.88\.0\.0\/24/), 'the good routes are written');
      assert.ok(!has(held, /10\.8[1-7]\.0\.0/) && !has(held, /^main default/), 'nothing of the bad ones, and no default route');
      const rules = JSON.parse(node.ip('-j', 'rule', 'show')) as Array<Record<string, any>>;
      assert.ok(rules.some((r) => r.dst === '172.16.0.11' && r.table === '1107'), 'the rule is written, its priority left to the kernel');
      assert.ok(!rules.some((r) => r.dst === '172.16.0.12'));
      assert.deepEqual([...rep.errors, ...rep2.errors], []);
      assert.equal(rep.rejected.filter((x) => x.reason === 'invalid').length, 7);
      assert.deepEqual(rep2.rejected.map((x) => x.reason).sort(), ['clamped', 'invalid']);
    } finally {
      node.destroy();
    }
  });
});

// ---------------------------------------------------------------------------------------------
test('permanent failures are not retried forever; transient ones keep their bounded backoff', async (t) => {
  requireTool('iptables-legacy-restore');
  const node = setup('perm');
  const results: ApplyResult[] = [];
  const dp = new Dataplane(
    { interface: 'wg-none', nsenter: node.nsenter, resyncPeriodMs: 250, routeMonitor: false, iptablesBackend: 'legacy', ipv6: false },
    (ev: DataplaneEvent) => void (ev.type === 'applied' && results.push(ev.result)),
  );
  t.after(async () => {
    await dp.close();
    node.destroy();
  });
  const permanent = route('10.90.0.0/24', '10.4.0.1'); // an onlink gateway that is a local address: "Nexthop has invalid gateway", always
  const transient = route('10.91.0.0/24', '10.4.0.91', 'kgt-late'); // a device that is not there yet
  const refusedRule: IptablesRule = { family: 'ipv4', table: 'filter', chain: 'FORWARD', rule: ['-s', '10.92.0.0/24', '-j', 'NO-SUCH-CHAIN', ...C('Kilo: broken')] };
  const first = await dp.apply({
    interface: 'wg-none',
    wireguard: null,
    routes: [route('10.89.0.0/24', '10.4.0.89'), permanent, transient],
    rules: [],
    iptables: { chains: [], prepend: [{ family: 'ipv4', table: 'filter', chain: 'FORWARD', rule: ['-s', '10.93.0.0/24', ...C('Kilo: ok'), '-j', 'ACCEPT'] }, refusedRule], append: [] },
    tunnel: null,
    cni: null,
  });
  results.push(first);
  const window = 3000;
  await new Promise((r) => setTimeout(r, window));
  const mentions = (re: RegExp): number => results.filter((r) => [...r.errors, ...(r.rejected ?? [])].some((e) => re.test(e.item))).length;
  const passes = results.length;
  assert.ok(passes >= 8, `the resync timer ran (${passes} passes in ${window} ms)`);
  assert.ok(has(routeList(node), /^main 10\.89\.0\.0\/24/), 'the good route is written');
  assert.ok(node.run('iptables-legacy-save', '-t', 'filter').includes('10.93.0.0/24'), 'the good rule of the same chain is written');
  // the same input always fails: tried once, reported once, over every later pass
  assert.equal(mentions(/10\.90\.0\.0/), 1, `the refused route was attempted in ${mentions(/10\.90\.0\.0/)} of ${passes} passes`);
  assert.equal(mentions(/NO-SUCH-CHAIN/), 1, `the refused iptables rule was attempted in ${mentions(/NO-SUCH-CHAIN/)} of ${passes} passes`);
  assert.ok(first.rejected.some((x) => x.reason === 'refused' && /10\.90\.0\.0/.test(x.item)));
  // a transient failure is still retried, with backoff, and succeeds once its device appears
  assert.ok(mentions(/10\.91\.0\.0/) >= 3, 'the transient failure is retried');
  node.ip('link', 'add', 'kgt-late', 'type', 'bridge');
  node.ip('link', 'set', 'kgt-late', 'up');
  assert.ok(await waitFor(() => has(routeList(node), /^main 10\.91\.0\.0\/24 10\.4\.0\.91 kgt-late/), 5000), 'the transient route is written once it can be');
  // a changed desired route is tried again
  const again = await dp.apply({ interface: 'wg-none', wireguard: null, routes: [route('10.89.0.0/24', '10.4.0.89'), route('10.90.0.0/24', '10.4.0.90'), transient], rules: [], iptables: empty, tunnel: null, cni: null });
  assert.deepEqual([again.errors.length, again.rejected.length], [0, 0]);
  assert.ok(has(routeList(node), /^main 10\.90\.0\.0\/24 10\.4\.0\.90/));
});

test('WireGuard: a set the device refuses part of (a listen port in use) still writes every peer; the port is retried', async (t) => {
  requireTool('wireguard-go', 'wg');
  const node = TestNode.create('wg-busy');
  const dp = new Dataplane({ nsenter: node.nsenter, uapiDir: node.uapiDir, resyncPeriodMs: 0, routeMonitor: false, iptablesBackend: 'legacy', ipv6: false });
  t.after(() => closeAll(dp, node));
  // another WireGuard device holds the port first
  node.run('wireguard-go', 'kgbusy');
  assert.ok(await waitFor(() => node.tryRun('wg', 'set', 'kgbusy', 'listen-port', '51999').code === 0, 5000));
  const me = keyPair();
  const keys = Array.from({ length: 20 }, () => keyPair().publicKey);
  const res = await dp.apply(wgState(me.privateKey, keys.map((k, i) => peer(k, [`10.4.1.${i}/32`])), { listenPort: 51999 }));
  const d = dump(node);
  assert.equal(d.peers.size, 20, 'every peer is written although the set with the port failed');
  assert.equal(d.privateKey, me.privateKey);
  assert.equal(res.errors.length, 1, JSON.stringify(res.errors));
  assert.match(res.errors[0].message, /errno=-98/);
  // the port is freed: the bounded retry gets it
  node.run('wg', 'set', 'kgbusy', 'listen-port', '0');
  assert.ok(await waitFor(() => dump(node).listenPort === 51999, 8000), 'the listen port is set once it is free');
});

// ---------------------------------------------------------------------------------------------
/**
 * An Exec whose writer "dies" once after the bytes up to and including `cut`: through a pipe
 * (stdin), the tool then reads exactly those bytes and end of file, as it would if kg were
 * killed there; through a batch file, the tool never starts.
 */
class DyingWriter extends Exec {
  cut: string | null = null;
  override run(cmd: string, args: readonly string[], input?: string, extraFds?: string[], stdinFd?: number) {
    const at = this.cut === null || input === undefined ? -1 : input.indexOf(this.cut);
    if (at >= 0) {
      input = input!.slice(0, at + this.cut!.length);
      this.cut = null;
    }
    return super.run(cmd, args, input, extraFds, stdinFd);
  }
  protected override async writeInput(w: FileHandle, text: string): Promise<void> {
    const at = this.cut === null ? -1 : text.indexOf(this.cut);
    if (at < 0) return super.writeInput(w, text);
    await w.writeFile(text.slice(0, at + this.cut!.length));
    this.cut = null;
    throw new Error('writer killed mid-write (simulated)');
  }
}

const ourBatchFiles = (): string[] => readdirSync(execModule.batchDir()).filter((f) => f.startsWith(`${process.pid}-`));

test('truncated batch: a batch reaches ip and iptables-restore whole or not at all', async (t) => {
  await t.test('through a pipe, ip runs a truncated last line (the hazard)', () => {
    const node = setup('trunc-pipe');
    try {
      node.ip('route', 'add', '10.1.2.0/24', 'via', '172.16.0.254', 'dev', 'eth0');
      node.ip('route', 'add', '10.1.2.0/24', 'via', '10.4.0.2', 'dev', 'br-kg', 'onlink', 'table', '1107', 'proto', '107');
      // `route del … table 1107` cut after the prefix: what ip reads when the writer dies there
      node.tryRun('sh', '-c', "printf 'route del 10.1.2.0/24' | ip -force -batch -");
      assert.ok(!has(routeList(node), /^main 10\.1\.2\.0\/24/), 'the truncated line deleted another program\'s route');
    } finally {
      node.destroy();
    }
  });

  await t.test('the route reconciler, its writer killed mid-batch: nothing of the batch runs', async () => {
    const node = setup('trunc-rr');
    try {
      const exec = new DyingWriter(node.nsenter);
      const rr = new RouteReconciler(exec, 1107);
      rr.setDesired([route('10.1.1.0/24', '172.16.0.11', 'eth0', 1107), route('10.1.2.0/24', '172.16.0.12', 'eth0', 1107), route('10.1.3.0/24', '10.4.0.3')]);
      assert.deepEqual((await rr.reconcile(false)).errors, []);
      // someone else's route with the prefix of one of kg's, in the main table
      node.ip('route', 'add', '10.1.2.0/24', 'via', '172.16.0.254', 'dev', 'eth0');
      rr.setDesired([route('10.1.3.0/24', '10.4.0.3')]);
      exec.cut = 'route del 10.1.2.0/24'; // killed right after the prefix of the second delete
      const rep = await rr.reconcile(false);
      const held = routeList(node);
      assert.ok(has(held, /^main 10\.1\.2\.0\/24 172\.16\.0\.254 eth0/), 'another program\'s route survives');
      assert.ok(has(held, /^1107 10\.1\.1\.0\/24/) && has(held, /^1107 10\.1\.2\.0\/24/), 'no line of the batch ran, not even the complete ones before the cut');
      assert.equal(rep.errors.length, 1, 'the failed pass is reported');
      assert.deepEqual(ourBatchFiles(), [], 'the partial file is gone');
      // the next pass (a writer that lives) completes the batch
      assert.deepEqual((await rr.reconcile(false)).errors, []);
      const after = routeList(node);
      assert.ok(!has(after, /^1107 10\.1\.[12]\.0\/24/) && has(after, /^main 10\.1\.2\.0\/24 172\.16\.0\.254 eth0/));
    } finally {
      node.destroy();
    }
  });

  await t.test('iptables-restore applies nothing of a table whose COMMIT is missing (both backends)', () => {
    const node = setup('trunc-ipt');
    try {
      for (const b of ['legacy', 'nft']) {
        const r = node.tryRun('sh', '-c', `printf '*filter\\n:KILO-T - [0:0]\\n-A KILO-T -s 10.0.0.0/8 -j ACCEPT\\n-A FORWARD -j KILO-T\\n-A FORWARD -s 10.1.0.0/1' | iptables-${b}-restore --noflush`);
        assert.notEqual(r.code, 0);
        assert.ok(!node.run(`iptables-${b}-save`, '-t', 'filter').includes('KILO-T'), `${b}: nothing applied`);
      }
    } finally {
      node.destroy();
    }
  });

  await t.test('Exec.batch: the tool starts only with the whole input; the private directory keeps nothing', async () => {
    const exec = new DyingWriter(null);
    const lines = Array.from({ length: 100_000 }, (_, i) => `route replace 10.${i >> 8 & 255}.${i & 255}.0/24 via 10.4.0.${i % 250 + 1} dev kilo0 onlink proto 107`);
    const text = lines.join('\n') + '\n';
    const r = await exec.batch('sha256sum', [], lines);
    assert.equal(r.stdout.split(' ')[0], createHash('sha256').update(text).digest('hex'), `all ${text.length} bytes reached the tool`);
    const dir = execModule.batchDir();
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.deepEqual(ourBatchFiles(), []);
    assert.notEqual((await exec.batch('false', [], lines)).code, 0);
    assert.deepEqual(ourBatchFiles(), [], 'removed after a failed tool');
    exec.cut = lines[500];
    await assert.rejects(exec.batch('sh', ['-c', 'echo started; cat >/dev/null'], lines), /killed mid-write/);
    assert.deepEqual(ourBatchFiles(), [], 'removed after a writer failure');
    const refused = await exec.batch('sh', ['-c', 'echo started'], ['route del 10.0.0.0/8\nroute del 0.0.0.0/0']);
    assert.deepEqual([refused.code, refused.stdout], [-1, ''], 'a line with a control character is refused without running the tool');
  });

  await t.test('WireGuard UAPI: wireguard-go applies a truncated last line; kg sends bounded, complete messages', async () => {
    requireTool('wireguard-go', 'wg');
    const node = TestNode.create('trunc-wg');
    const dp = wgDataplane(node);
    try {
      const me = keyPair();
      assert.deepEqual((await dp.apply(wgState(me.privateKey, []))).errors, []);
      // the hazard: `allowed_ip=10.1.2.0/24` cut after "/2", then end of stream
      const victim = keyPair().publicKey;
      const hex = Buffer.from(victim, 'base64').toString('hex');
      await new Promise<void>((resolve, reject) => {
        const s = net.connect(`${node.uapiDir}/kilo0.sock`, () => s.end(`set=1\npublic_key=${hex}\nallowed_ip=10.1.2.0/2`));
        s.on('error', reject);
        s.on('close', () => resolve());
        s.resume();
      });
      assert.deepEqual(dump(node).peers.get(victim)?.allowed, ['0.0.0.0/2'], 'a quarter of IPv4 was routed to the peer');
      assert.equal((await dp.resync()).writes, 1, 'kg repairs that drift (removes the peer) on its next re-read');
      // kg's messages: each one complete and small enough for one write
      const keys = Array.from({ length: 600 }, () => keyPair().publicKey);
      const delta = { peers: keys.map((k, i) => ({ publicKey: k, create: true as const, persistentKeepalive: 0, addAllowedIPs: Array.from({ length: 20 }, (_, j) => `10.${100 + (i >> 8)}.${i & 255}.${j}/32`) })) };
      const msgs = wgDiff.renderUapiSets(delta);
      assert.ok(msgs.length > 1 && msgs.every((m) => m.startsWith('set=1\n') && m.endsWith('\n\n') && Buffer.byteLength(m) <= wgDiff.UAPI_MESSAGE_BYTES));
      const res = await dp.apply(wgState(me.privateKey, keys.map((k, i) => peer(k, delta.peers[i].addAllowedIPs))));
      assert.deepEqual(res.errors, []);
      const d = dump(node);
      assert.equal(d.peers.size, 600);
      assert.equal(d.peers.get(keys[599])!.allowed.length, 20);
      assert.ok(res.reports.find((r) => r.kind === 'wireguard')!.batches > 1, 'written as several messages');
    } finally {
      await closeAll(dp, node);
    }
  });
});
