// End-to-end, cross granularity (design §19): real kg agents with --mesh-granularity cross on a
// 5-node, 3-location mesh in network namespaces (API simulator, wireguard-go, CNI-made pods).
// Every node tunnels to every node of another location and to none of its own; a location's own
// pod traffic crosses the underlay in the clear. Bounded in time; everything is torn down.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { captureUnderlay, FIVE_NODES, Mesh, waitFor } from '../../loadtest/mesh/harness.js';

const PREFIX = `kgx${process.pid % 10000}`;
const KGCTL = new URL('../../main/kgctl.js', import.meta.url).pathname;

test('e2e: a cross-granularity kg mesh (design §19)', { timeout: 600_000 }, async (t) => {
  const mesh = new Mesh({
    prefix: PREFIX,
    nodes: [...FIVE_NODES],
    // No IPIP in this kernel: within a location, routes go natively over the underlay.
    flags: ['--encapsulate', 'never', '--mesh-granularity', 'cross'],
  });
  t.after(() => mesh.down());
  await mesh.up();
  await Promise.all(mesh.nodes.map((n) => mesh.startKg(n.spec.name)));
  for (const n of mesh.nodes) await mesh.createPod(n.spec.name);
  const pod = (n: string) => mesh.node(n).podIP!;
  const location = (n: string) => mesh.node(n).spec.location;
  const keyOf = (): Map<string, string> => new Map(
    (JSON.parse(mesh.kubectl(['get', 'nodes', '-o', 'json'])).items as { metadata: { name: string; annotations: Record<string, string> } }[])
      .map((o) => [o.metadata.name, o.metadata.annotations['kilo.squat.ai/key']]),
  );
  /** Waits until node `n`'s device has exactly the nodes of other locations as peers. */
  const peersAre = async (n: string, names: string[]) => {
    const keys = keyOf();
    const want = names.filter((x) => location(x) !== location(n)).map((x) => keys.get(x)!).sort();
    let got: string[] = [];
    await waitFor(`${n}'s WireGuard peers to be ${want.length} nodes of other locations`, () => {
      got = mesh.on(n, ['wg', 'show', 'kilo0', 'peers']).split('\n').filter(Boolean).sort();
      return JSON.stringify(got) === JSON.stringify(want);
    }, 20_000, 500).catch((e: Error) => {
      throw new Error(`${e.message}; has ${JSON.stringify(got)}`);
    });
  };

  await t.test('every node has a WireGuard peer for each node of another location, none for its own (wg show)', async () => {
    const names = mesh.nodes.map((n) => n.spec.name);
    for (const n of names) await peersAre(n, names);
    // Every node leads its own segment and brings its device up.
    for (const n of names) assert.match(mesh.http(n, '/metrics').body, /\nkilo_leader 1\n/, `${n} leads`);
  });

  await t.test('pods reach each other across locations and within one; nodes reach pods', async () => {
    const reach = (from: { pod?: string; node?: string }, to: string) => waitFor(`${JSON.stringify(from)} → ${to}`, () => mesh.ping(from, to), 15_000, 500);
    const names = mesh.nodes.map((n) => n.spec.name);
    for (const from of names) for (const to of names) if (from !== to) await reach({ pod: from }, pod(to));
    await reach({ node: 'a2' }, pod('b1'));
    await reach({ node: 'c1' }, pod('a1'));
  });

  await t.test('between locations the underlay carries only WireGuard; within one, plain pod traffic and no WireGuard', async () => {
    const owner = new Map<string, string>();
    for (const n of mesh.nodes) {
      owner.set(n.ip, n.spec.name);
      owner.set(n.podIP!, n.spec.name);
    }
    const addr = (s: string) => s.replace(/\.\d+:?$/, '').replace(/:$/, '');
    const lines = await captureUnderlay(mesh, 'ip and not host 192.168.77.2 and not host 192.168.77.1', () => {
      for (const [from, to] of [['a1', 'b1'], ['a2', 'c1'], ['b2', 'a1'], ['c1', 'b2'], ['a1', 'a2'], ['b1', 'b2'], ['a2', 'a1']]) {
        assert.ok(mesh.ping({ pod: from }, pod(to), 3), `pod ${from} → pod ${to}`);
      }
    }, 600);
    let across = 0;
    let within = 0;
    const bad: string[] = [];
    for (const l of lines) {
      const m = / IP (\S+) > (\S+?):? /.exec(l);
      if (!m) continue;
      // tcpdump prints address.port; ICMP has no port. Known addresses only (ARP and others are not IP).
      const src = owner.get(m[1]) ?? owner.get(addr(m[1]));
      const dst = owner.get(m[2]) ?? owner.get(addr(m[2]));
      if (!src || !dst) continue;
      const wg = /\.51820 > .*\.51820: UDP/.test(l);
      if (location(src) !== location(dst)) {
        across++;
        if (!wg) bad.push(`across locations, not WireGuard: ${l}`);
      } else {
        within++;
        if (wg) bad.push(`WireGuard inside location ${location(src)}: ${l}`);
      }
    }
    assert.deepEqual(bad, []);
    assert.ok(across >= 20, `captured ${across} packets between locations`);
    assert.ok(within >= 10, `captured ${within} packets within a location`);
    const plainPods = lines.filter((l) => l.includes(`IP ${pod('a1')} > ${pod('a2')}: ICMP echo request`));
    assert.ok(plainPods.length > 0, 'pod a1 → pod a2 crosses the underlay unencrypted, unmasqueraded');
  });

  await t.test('/graph draws each node in its location, tunnels only between locations', async () => {
    const dot = mesh.http('a1', '/graph?format=dot');
    assert.equal(dot.status, 200);
    assert.match(dot.body, /subgraph "cluster_location_location:a" \{/);
    assert.match(dot.body, /"a1"->"b1"\[ dir=both \]/);
    assert.doesNotMatch(dot.body, /"a1"->"a2"\[ dir=both \]/);
  });

  await t.test('kgctl: auto detects cross from the agents\' annotations; showconf node lists the other locations', async () => {
    const kgctl = (args: string[]) => spawnSync('ip', ['netns', 'exec', mesh.apiNs, process.execPath, KGCTL, ...args, '--kubeconfig', mesh.kubeconfig], { encoding: 'utf8', timeout: 30_000 });
    const auto = kgctl(['graph']);
    assert.equal(auto.status, 0, auto.stderr);
    assert.equal(auto.stdout, kgctl(['graph', '--mesh-granularity', 'cross']).stdout);
    assert.notEqual(auto.stdout, kgctl(['graph', '--mesh-granularity', 'full']).stdout);
    const conf = kgctl(['showconf', 'node', 'b1']);
    assert.equal(conf.status, 0, conf.stderr);
    assert.equal(conf.stdout.split('[Peer]').length - 1, 3, 'b1: a1, a2 and c1');
  });

  await t.test('a dead agent does not take its location with it: the others keep their tunnels', async () => {
    await mesh.stopKg('a1', 'SIGKILL');
    // No leader relays for location a: a2's own tunnels carry on at once, not after the 60 s
    // readiness window and a re-election (kilo#489).
    assert.ok(mesh.ping({ pod: 'a2' }, pod('b2'), 3), 'pod a2 → pod b2 right after a1 died');
    assert.ok(mesh.ping({ pod: 'c1' }, pod('a2'), 3), 'pod c1 → pod a2 right after a1 died');
    await mesh.startKg('a1');
    await waitFor('pod b1 → pod a1 after a1 restarts', () => mesh.ping({ pod: 'b1' }, pod('a1')), 30_000, 1000);
  });

  await t.test('a node joining a location tunnels to the other locations only', async () => {
    await mesh.addNode({ name: 'a3', location: 'a' });
    await mesh.startKg('a3');
    await mesh.createPod('a3');
    const names = mesh.nodes.map((n) => n.spec.name);
    for (const n of names) await peersAre(n, names);
    for (const n of ['a1', 'b1', 'c1']) {
      await waitFor(`pod ${n} → pod a3`, () => mesh.ping({ pod: n }, pod('a3')), 20_000, 500);
      await waitFor(`pod a3 → pod ${n}`, () => mesh.ping({ pod: 'a3' }, pod(n)), 20_000, 500);
    }
  });
});
