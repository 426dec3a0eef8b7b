// The fleet check: a correctly planned fleet passes, and each planted fault fails it with the
// fault's kind (a removed route, an asymmetric peering, a duplicated allowed IP, a loop), and
// the pool plans exactly what one thread plans.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { syntheticNodes, syntheticPeers } from '../../bench/synthetic.js';
import { fleetContext, planRange, type FleetContext } from '../../loadtest/fleet/planner-worker.js';
import { fleetPlanOptions, planFleet, verifyPlannedFleet } from '../../loadtest/fleet/planner.js';
import { compareKernel, compileNode, compilePeer, verifyFleet, type KernelState } from '../../loadtest/fleet/verify.js';
import { plan } from '../../plan/plan.js';
import { peerConf } from '../../plan/wireguard.js';
import type { PlanJSON } from '../../plan/types.js';
import { normalizeRoute, normalizeRule } from '../../kernel/ip-format.js';
import { parseSave, quoteArg } from '../../kernel/iptables-save.js';

const NOW = 1_764_160_000;
const shape = { nodes: 40, locations: 4, peers: 3, now: NOW };

/** Every node's plan JSON, so that tests can plant faults before compiling. */
function plans(argv: string[] = []): { ctx: FleetContext; plans: PlanJSON[] } {
  const o = fleetPlanOptions(argv, NOW);
  const ctx = fleetContext({ nodes: syntheticNodes(shape), peers: syntheticPeers(shape), plan: o.plan, topologyLabel: o.topologyLabel, keepPlans: syntheticNodes(shape).map((n) => n.metadata!.name!) });
  const s = planRange(ctx, 0, ctx.index.names.length);
  s.forEach((x, i) => (ctx.index.leader[i] = x.leader));
  return { ctx, plans: s.map((x) => x.plan!) };
}

function verify(ctx: FleetContext, ps: PlanJSON[]) {
  const topo = plan(ctx.cluster, { ...ctx.input.plan, hostname: ps[0].hostname }).topology!;
  const peers = ctx.index.peers.map((p, k) => compilePeer(ctx.index, ctx.lk, k, peerConf(topo, p.name).peers.map((x) => ({ publicKey: x.publicKey, allowedIPs: x.allowedIPs.map((a) => a.s) }))));
  return verifyFleet(ctx.index, ctx.lk, ps.map((p) => compileNode(ctx.index, ctx.lk, p)), peers);
}

const clone = (p: PlanJSON): PlanJSON => structuredClone(p);

test('fleet check: a planned fleet passes, in location and full granularity', () => {
  for (const g of ['location', 'full']) {
    const { ctx, plans: ps } = plans(['--mesh-granularity', g]);
    const r = verify(ctx, ps);
    assert.deepEqual(r.failures, {}, r.examples.join('\n'));
    assert.ok(r.ok);
    // 40 destinations × (39 other nodes + 3 Peers).
    assert.equal(r.paths, 40 * 42);
    assert.equal(r.reached, r.paths);
    assert.equal(r.peers, 3);
    assert.ok(r.hops.max >= (g === 'location' ? 3 : 1));
  }
});

test('fleet check: a removed route is a blackhole', () => {
  const { ctx, plans: ps } = plans();
  // A non-leader loses its route to a pod CIDR in another location.
  const i = ps.findIndex((p) => !p.leader);
  const victim = ps.findIndex((p) => p.location !== ps[i].location);
  const cidr = ctx.index.podCIDRs[victim]!;
  ps[i] = clone(ps[i]);
  const before = ps[i].routes.length;
  ps[i].routes = ps[i].routes.filter((r) => r.dst !== cidr);
  assert.equal(ps[i].routes.length, before - 1);
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.equal(r.failures.blackhole, 1, r.examples.join('\n'));
  assert.match(r.examples.join('\n'), new RegExp(`${ps[i].hostname} has no route for ${cidr.replace(/\./g, '\\.')}`));
});

test('fleet check: an asymmetric peering between leaders fails', () => {
  const { ctx, plans: ps } = plans();
  const leaders = ps.map((p, i) => (p.leader ? i : -1)).filter((i) => i >= 0);
  const [a, b] = leaders;
  // b forgets a: a still sends to b, and b would drop what a sends.
  ps[b] = clone(ps[b]);
  ps[b].wireguard.peers = ps[b].wireguard.peers.filter((p) => p.publicKey !== ctx.index.keys[a]);
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.ok(r.failures['asymmetric-peering'] >= 1, JSON.stringify(r.failures));
  assert.ok(r.failures['source-rejected'] >= 1 || r.failures.blackhole >= 1, JSON.stringify(r.failures));
  assert.match(r.examples.join('\n'), new RegExp(`${ps[a].hostname} peers with ${ps[b].hostname}, but ${ps[b].hostname} does not peer`));
});

test('fleet check: an allowed IP claimed twice on one interface fails', () => {
  const { ctx, plans: ps } = plans();
  const l = ps.findIndex((p) => p.leader);
  ps[l] = clone(ps[l]);
  const [p0, p1] = ps[l].wireguard.peers;
  p1.allowedIPs = [...p1.allowedIPs, p0.allowedIPs[0]];
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.equal(r.failures['duplicate-allowed-ip'], 1, JSON.stringify(r.failures));
});

test('fleet check: a routing loop is found', () => {
  const { ctx, plans: ps } = plans();
  // Two non-leaders of one location send a third location's pods to each other.
  const x = ps.findIndex((p) => !p.leader);
  const y = ps.findIndex((p, i) => i !== x && !p.leader && p.location === ps[x].location);
  const far = ps.findIndex((p) => p.location !== ps[x].location);
  const cidr = ctx.index.podCIDRs[far]!;
  for (const [a, b] of [[x, y], [y, x]]) {
    ps[a] = clone(ps[a]);
    ps[a].routes = ps[a].routes.map((r) => (r.dst === cidr ? { ...r, gw: ctx.index.privateIPs[b] } : r));
  }
  const r = verify(ctx, ps);
  assert.equal(r.ok, false);
  assert.ok(r.failures.loop >= 2, JSON.stringify(r.failures));
});

test('fleet planner: the pool plans what one thread plans', async () => {
  const o = fleetPlanOptions([], NOW);
  const one = await planFleet(syntheticNodes(shape), syntheticPeers(shape), { threads: 1, ...o });
  const pool = await planFleet(syntheticNodes(shape), syntheticPeers(shape), { threads: 2, chunk: 7, verify: true, ...o });
  assert.equal(pool.nodes.length, 40);
  assert.deepEqual(pool.nodes.map(({ planMs: _, ...s }) => s), one.nodes.map(({ planMs: _, ...s }) => s));
  // The check spread over the pool's workers (destination ranges) says what one thread says.
  const single = verifyPlannedFleet(pool);
  assert.ok(single.ok);
  const { ms: _a, ...parallel } = pool.verify!;
  const { ms: _b, ...inThread } = single;
  assert.deepEqual(parallel, inThread);
  await assert.rejects(planFleet([], [], { threads: 0, ...o }), /threads must be 1\.\.64/);
});

test('compareKernel: equal state gives no differences; a missing route, an extra peer and a lost rule are named', () => {
  const { plans: ps } = plans();
  const p = ps.find((x) => x.leader)!;
  const save = (rules: string[]) => `*filter\n:FORWARD ACCEPT [0:0]\n${p.iptables.chains.filter((c) => c.table === 'filter').map((c) => `:${c.chain} - [0:0]`).join('\n')}\n${rules.join('\n')}\nCOMMIT\n*nat\n:POSTROUTING ACCEPT [0:0]\n${p.iptables.chains.filter((c) => c.table === 'nat').map((c) => `:${c.chain} - [0:0]`).join('\n')}\n${p.iptables.prepend.concat(p.iptables.append).filter((r) => r.table === 'nat' && r.family === 'ipv4').map((r) => `-A ${r.chain} ${r.rule.map(quoteArg).join(' ')}`).join('\n')}\nCOMMIT\n`;
  const filterRules = p.iptables.prepend.concat(p.iptables.append).filter((r) => r.table === 'filter' && r.family === 'ipv4').map((r) => `-A ${r.chain} ${r.rule.map(quoteArg).join(' ')}`);
  const kernel = (): KernelState => ({
    routes: p.routes.map(normalizeRoute),
    rules: p.rules.map(normalizeRule),
    wireguard: { privateKeyHex: null, listenPort: 51820, peers: new Map(p.wireguard.peers.map((w) => [w.publicKey, { publicKey: w.publicKey, endpoint: w.endpoint, allowedIPs: w.allowedIPs, persistentKeepalive: w.persistentKeepalive, presharedKeyHex: '0'.repeat(64), lastHandshake: 0, rxBytes: 0, txBytes: 0 }])) },
    iptables: { ipv4: parseSave(save(filterRules)) },
  });
  assert.deepEqual(compareKernel(p, kernel()), []);
  const k = kernel();
  k.routes = k.routes.slice(1);
  k.wireguard!.peers.set('extra', { ...k.wireguard!.peers.values().next().value!, publicKey: 'extra' });
  const diffs = compareKernel(p, k);
  assert.ok(diffs.some((d) => d.startsWith(`route ${p.routes[0].dst}`) && d.endsWith('missing')), diffs.join('\n'));
  assert.ok(diffs.includes('WireGuard peer extra not in the plan'), diffs.join('\n'));
  if (filterRules.length > 0) {
    const k2 = kernel();
    k2.iptables.ipv4 = parseSave(save(filterRules.slice(1)));
    assert.ok(compareKernel(p, k2).some((d) => d.startsWith('iptables ipv4 filter')));
  }
});
