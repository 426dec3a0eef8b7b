// End-to-end dual stack (design §20): real kg agents with --dual-stack-subnet on a 3-node,
// 2-location mesh in network namespaces with IPv4 and IPv6 underlay addresses, Nodes with an
// IPv4 and an IPv6 pod CIDR, and pods with one address of each family from the conflist kg wrote
// (the real bridge and host-local plugins). Pings in both families across locations and within one.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Mesh, waitFor } from '../../loadtest/mesh/harness.js';

const PREFIX = `kgd${process.pid % 10000}`;

test('e2e: a dual-stack kg mesh in network namespaces', { timeout: 600_000 }, async (t) => {
  const mesh = new Mesh({
    prefix: PREFIX,
    nodes: [{ name: 'a1', location: 'a' }, { name: 'a2', location: 'a' }, { name: 'b1', location: 'b' }],
    flags: ['--encapsulate', 'never'],
    dualStack: true,
  });
  t.after(() => mesh.down());
  await mesh.up();
  await Promise.all(mesh.nodes.map((n) => mesh.startKg(n.spec.name)));
  for (const n of mesh.nodes) await mesh.createPod(n.spec.name);
  const pod = (n: string) => mesh.node(n).podIP!;
  const pod6 = (n: string) => mesh.node(n).podIP6!;

  await t.test('every pod has one address of each family, from its node’s two pod CIDRs', () => {
    for (const n of mesh.nodes) {
      assert.ok(n.podIP?.startsWith(n.podCIDR.replace('.0/24', '.')), `${n.spec.name} IPv4 ${n.podIP}`);
      assert.ok(n.podIP6?.startsWith(n.podCIDR6!.replace('::/64', '::')), `${n.spec.name} IPv6 ${n.podIP6}`);
    }
  });

  await t.test('the leaders’ WireGuard devices carry both families', async () => {
    const addrs = (n: string) => JSON.parse(mesh.on(n, ['ip', '-j', 'addr', 'show', 'dev', 'kilo0']))[0].addr_info.filter((a: { scope: string }) => a.scope !== 'link').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`).sort();
    await waitFor('a1 and b1 to hold both WireGuard addresses', () => addrs('a1').length === 2 && addrs('b1').length === 2, 30_000);
    assert.deepEqual(addrs('a1'), ['10.4.0.1/16', 'fd04::1/64']);
    assert.deepEqual(addrs('b1'), ['10.4.0.2/16', 'fd04::2/64']);
    const allowed = mesh.on('a1', ['wg', 'show', 'kilo0', 'allowed-ips']);
    for (const want of [mesh.node('b1').podCIDR6!, 'fd04::2/128', mesh.node('b1').podCIDR]) assert.ok(allowed.includes(want), `a1's peer b1 allows ${want}: ${allowed}`);
  });

  await t.test('pods reach each other in both families, across locations and within one', async () => {
    const reach = (from: { pod?: string; node?: string }, to: string) => waitFor(`${JSON.stringify(from)} → ${to}`, () => mesh.ping(from, to), 20_000, 500);
    for (const [from, to] of [['a1', 'b1'], ['a2', 'b1'], ['b1', 'a2'], ['a2', 'a1'], ['a1', 'a2']]) {
      await reach({ pod: from }, pod(to));
      await reach({ pod: from }, pod6(to));
    }
  });
});

// Cross (design §19, §20.3): every node leads its own segment and holds both WireGuard addresses;
// a1 and a2 of location a are no peers and reach each other's pods of both families on the underlay.
test('e2e: a dual-stack kg mesh in cross granularity', { timeout: 600_000 }, async (t) => {
  const mesh = new Mesh({
    prefix: `kgy${process.pid % 10000}`,
    nodes: [{ name: 'a1', location: 'a' }, { name: 'a2', location: 'a' }, { name: 'b1', location: 'b' }],
    flags: ['--encapsulate', 'never', '--mesh-granularity', 'cross'],
    dualStack: true,
  });
  t.after(() => mesh.down());
  await mesh.up();
  await Promise.all(mesh.nodes.map((n) => mesh.startKg(n.spec.name)));
  for (const n of mesh.nodes) await mesh.createPod(n.spec.name);
  const addrs = (n: string) => JSON.parse(mesh.on(n, ['ip', '-j', 'addr', 'show', 'dev', 'kilo0']))[0].addr_info.filter((a: { scope: string }) => a.scope !== 'link').map((a: { local: string; prefixlen: number }) => `${a.local}/${a.prefixlen}`).sort();
  await waitFor('every node to hold both WireGuard addresses', () => mesh.nodes.every((n) => addrs(n.spec.name).length === 2), 30_000);
  assert.deepEqual(['a1', 'a2', 'b1'].map(addrs), [['10.4.0.1/16', 'fd04::1/64'], ['10.4.0.2/16', 'fd04::2/64'], ['10.4.0.3/16', 'fd04::3/64']]);
  const peers = (n: string) => mesh.on(n, ['wg', 'show', 'kilo0', 'allowed-ips']);
  await waitFor('a1 to peer with b1', () => peers('a1').includes('fd04::3/128'), 30_000);
  assert.ok(peers('a1').includes(mesh.node('b1').podCIDR6!), peers('a1'));
  assert.ok(!peers('a1').includes(mesh.node('a2').podCIDR6!) && !peers('a1').includes('fd04::2/128'), `no WireGuard inside location a: ${peers('a1')}`);
  const reach = (from: string, to: string) => waitFor(`${from} → ${to}`, () => mesh.ping({ pod: from }, to), 20_000, 500);
  for (const [from, to] of [['a1', 'b1'], ['a2', 'b1'], ['b1', 'a2'], ['a2', 'a1'], ['a1', 'a2']]) {
    await reach(from, mesh.node(to).podIP!);
    await reach(from, mesh.node(to).podIP6!);
  }
});
