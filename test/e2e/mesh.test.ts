// End-to-end: real kg agents on a 5-node, 3-location mesh in network namespaces, against the API
// simulator over HTTPS, with wireguard-go, CNI-made pods, and an external WireGuard Peer.
// Bounded in time; everything is torn down even when a step fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair } from '../../main/keys.js';
import { captureUnderlay, FIVE_NODES, Mesh, waitFor } from '../../loadtest/mesh/harness.js';
import { parseCIDR } from '../../plan/addr.js';
import { parseCluster, plan } from '../../plan/plan.js';
import { peerConf, renderINI } from '../../plan/wireguard.js';

const PREFIX = `kge${process.pid % 10000}`;

test('e2e: a real kg mesh in network namespaces', { timeout: 600_000 }, async (t) => {
  const mesh = new Mesh({
    prefix: PREFIX,
    nodes: [...FIVE_NODES],
    // No IPIP in this kernel: within a location, routes go natively over the underlay.
    flags: ['--encapsulate', 'never'],
  });
  t.after(() => mesh.down());
  await mesh.up();
  await Promise.all(mesh.nodes.map((n) => mesh.startKg(n.spec.name)));
  for (const n of mesh.nodes) await mesh.createPod(n.spec.name);
  const pod = (n: string) => mesh.node(n).podIP!;

  await t.test('pods reach each other across locations and within one; nodes reach nodes', async () => {
    // The first packets may race the last route updates of a just-joined peer: allow a retry.
    const reach = (from: { pod?: string; node?: string }, to: string) => waitFor(`${JSON.stringify(from)} → ${to}`, () => mesh.ping(from, to), 15_000, 500);
    await reach({ pod: 'a1' }, pod('b1'));
    await reach({ pod: 'a2' }, pod('b2'));
    await reach({ pod: 'b2' }, pod('c1'));
    await reach({ pod: 'a1' }, pod('a2'));
    await reach({ node: 'a2' }, mesh.node('b2').ip);
    await reach({ node: 'c1' }, pod('a2'));
  });

  await t.test('between locations the underlay carries only WireGuard', async () => {
    const a = mesh.nodes.filter((n) => n.spec.location === 'a').map((n) => `host ${n.ip}`).join(' or ');
    const b = mesh.nodes.filter((n) => n.spec.location === 'b').map((n) => `host ${n.ip}`).join(' or ');
    const lines = await captureUnderlay(mesh, `ip and (${a}) and (${b})`, () => {
      assert.ok(mesh.ping({ pod: 'a2' }, pod('b2'), 5));
      assert.ok(mesh.ping({ pod: 'b1' }, pod('a1'), 5));
    });
    assert.ok(lines.length >= 10, `captured ${lines.length} packets between locations`);
    const notWG = lines.filter((l) => !/\.51820 > .*\.51820: UDP/.test(l));
    assert.deepEqual(notWG, [], 'only UDP 51820 ↔ 51820 between locations');
  });

  await t.test('an external Peer reaches pods through kg’s peer configuration', async () => {
    const keys = generateKeyPair();
    mesh.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'laptop' }, spec: { allowedIPs: ['10.5.0.1/32'], publicKey: keys.publicKey, persistentKeepalive: 5 } }),
    });
    const nodes = JSON.parse(mesh.kubectl(['get', 'nodes', '-o', 'json'])).items;
    const peers = JSON.parse(mesh.kubectl(['get', 'peers.kilo.squat.ai', '-o', 'json'])).items;
    const r = plan(parseCluster(nodes, peers, 'topology.kubernetes.io/region'), {
      hostname: 'a1', granularity: 'location', subnet: parseCIDR('10.4.0.0/16')!, encapsulate: 'never', local: true, cni: true, compatibility: '',
      iptablesForwardRules: false, serviceCIDRs: [], interface: 'kilo0', mtu: 1420, privateInterface: 'eth0', tunnelInterface: 'tunl0', now: Math.floor(Date.now() / 1000),
    });
    const conf = `[Interface]\nPrivateKey = ${keys.privateKey}\n\n${renderINI(peerConf(r.topology!, 'laptop'))}`;
    mesh.startPeer(conf, '10.5.0.1/32', ['10.244.0.0/16', '10.4.0.0/16']);
    await waitFor('peer → pod b2', () => mesh.ping({ ns: mesh.peerNs }, pod('b2')), 30_000, 1000);
    await waitFor('pod a2 → peer', () => mesh.ping({ pod: 'a2' }, '10.5.0.1'), 15_000, 500);
  });

  await t.test('pod traffic leaving the mesh is masqueraded; pod to pod is not', async () => {
    const toApi = spawnSync('sh', ['-c', `timeout 10 ip netns exec ${mesh.apiNs} tcpdump -l -n -i eth0 -c 2 icmp & sleep 1; ip netns exec ${mesh.node('b2').podNetns} ping -c 2 -W 1 192.168.77.2 >/dev/null; wait`], { encoding: 'utf8', timeout: 20_000 });
    assert.match(toApi.stdout, new RegExp(`IP ${mesh.node('b2').ip.replaceAll('.', '\\.')} > 192\\.168\\.77\\.2: ICMP echo request`), toApi.stdout);
    const toPod = spawnSync('sh', ['-c', `timeout 10 ip netns exec ${mesh.node('b1').podNetns} tcpdump -l -n -i eth0 -c 2 icmp & sleep 1; ip netns exec ${mesh.node('a2').podNetns} ping -c 2 -W 1 ${pod('b1')} >/dev/null; wait`], { encoding: 'utf8', timeout: 20_000 });
    assert.match(toPod.stdout, new RegExp(`IP ${pod('a2').replaceAll('.', '\\.')} > ${pod('b1').replaceAll('.', '\\.')}: ICMP echo request`), toPod.stdout);
  });

  await t.test('/metrics passes promtool, /health and /graph answer', async () => {
    const m = mesh.http('a1', '/metrics');
    assert.equal(m.status, 200);
    for (const name of ['kilo_nodes 5', 'kilo_leader 1', 'kilo_reconciles_total', 'kilo_errors_total', 'kg_event_to_programmed_seconds_bucket']) assert.ok(m.body.includes(name), name);
    const file = join(mesh.state, 'metrics.txt');
    writeFileSync(file, m.body);
    const lint = spawnSync('sh', ['-c', `promtool check metrics < ${file}`], { encoding: 'utf8' });
    assert.equal(lint.status, 0, `promtool: ${lint.stdout}${lint.stderr}`);
    assert.equal(mesh.http('a2', '/health').status, 200);
    const dot = mesh.http('a1', '/graph?format=dot');
    assert.equal(dot.status, 200);
    assert.match(dot.body, /^digraph kilo \{/);
    assert.match(dot.body, /"a1"->"a2"\[ dir=both \]/);
    assert.equal(mesh.http('a1', '/graph?format=nope').status, 500);
  });

  await t.test('a node added later joins and is reachable from every node', async () => {
    await mesh.addNode({ name: 'd1', location: 'd' });
    await mesh.startKg('d1');
    await mesh.createPod('d1');
    for (const n of ['a1', 'a2', 'b1', 'b2', 'c1']) {
      await waitFor(`${n} → pod d1`, () => mesh.ping({ pod: n }, pod('d1')), 20_000, 500);
    }
  });

  await t.test('a deleted node disappears from everyone’s WireGuard and routes', async () => {
    const key = JSON.parse(mesh.kubectl(['get', 'node', 'c1', '-o', 'json'])).metadata.annotations['kilo.squat.ai/key'];
    await mesh.stopKg('c1', 'SIGKILL');
    mesh.kubectl(['delete', 'node', 'c1']);
    for (const n of ['a1', 'b1', 'd1']) {
      await waitFor(`c1 gone from ${n}'s WireGuard`, () => !mesh.on(n, ['wg', 'show', 'kilo0', 'dump']).includes(key), 15_000);
    }
    for (const n of ['a1', 'a2', 'b1', 'b2', 'd1']) {
      await waitFor(`c1's pod CIDR gone from ${n}'s routes`, () => !mesh.on(n, ['ip', 'route']).includes(mesh.node('c1').podCIDR.split('/')[0]), 15_000);
    }
  });

  await t.test('while the API is unreachable, every agent keeps its last good dataplane', async () => {
    const routeTo = mesh.node('b2').podCIDR;
    const holds = (n: string) => mesh.on(n, ['ip', 'route']).includes(routeTo.split('/')[0]);
    // Converged first (the previous step renumbered WireGuard IPs).
    for (const n of ['a1', 'a2', 'b1', 'd1']) await waitFor(`${n} to route ${routeTo}`, () => holds(n), 20_000);
    mesh.simFaults({ errorRate: 1, errorStatus: 503 });
    mesh.simDropWatches();
    try {
      // Longer than the 60 s readiness window: heartbeats cannot land, yet nothing is torn down.
      const end = Date.now() + 75_000;
      while (Date.now() < end) {
        for (const n of ['a1', 'a2', 'b1', 'd1']) assert.ok(holds(n), `${n} kept its route to ${routeTo}`);
        await new Promise((r) => setTimeout(r, 5_000));
      }
      assert.ok(mesh.ping({ pod: 'a2' }, pod('b2')), 'traffic still flows during the outage');
    } finally {
      mesh.simFaults(null);
    }
    for (const n of ['a1', 'a2', 'b1', 'b2', 'd1']) await mesh.waitHealthy(n, 60_000);
    await waitFor('pod a2 → pod d1 after the outage', () => mesh.ping({ pod: 'a2' }, pod('d1')), 30_000, 1000);
  });

  await t.test('when a leader’s kg dies, its location elects another leader and traffic recovers', async () => {
    await mesh.stopKg('a1', 'SIGKILL');
    // The heartbeat lapses after 60 s (Kilo's readiness window); then a2 leads location a.
    await waitFor('a2 to lead location a', () => mesh.http('a2', '/metrics').body.includes('\nkilo_leader 1'), 120_000, 2000);
    await waitFor('pod a2 → pod b2 through the new leader', () => mesh.ping({ pod: 'a2' }, pod('b2')), 30_000, 1000);
    await waitFor('pod b1 → pod a2', () => mesh.ping({ pod: 'b1' }, pod('a2')), 30_000, 1000);
  });
});
