// Heartbeat modes on a real agent (plan/heartbeat.ts): in adaptive mode kg advertises a period
// that grows with the cluster and checks in at that period; readers honour a remote node's
// advertised period (its window is twice the period) and Kilo's 60 s window otherwise; back in
// kilo mode the annotation is removed, so the Node is again exactly what a Go agent writes.
// Also here, on the same small mesh: a Peer's DNS endpoint is resolved by the agent.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { generateKeyPair } from '../../main/keys.js';
import { Mesh, waitFor } from '../../loadtest/mesh/harness.js';
import { CHECK_IN_PERIOD_ANNOTATION } from '../../plan/heartbeat.js';

const PREFIX = `kgh${process.pid % 10000}`;

test('heartbeat: adaptive period advertised and honoured; kilo mode removes it', { timeout: 240_000 }, async (t) => {
  const mesh = new Mesh({ prefix: PREFIX, nodes: [{ name: 'h1', location: 'home' }], flags: ['--encapsulate', 'never'] });
  t.after(() => mesh.down());
  await mesh.up();

  // Three remote nodes, each its own location (so each would be a WireGuard peer of h1), whose
  // last check-in was 200 s ago: only the one that advertised a 300 s period is still ready.
  const now = Math.floor(Date.now() / 1000);
  const remotes = [
    { name: 'r-kilo', period: undefined, lastSeen: now - 200 },
    { name: 'r-adaptive', period: '300', lastSeen: now - 200 },
    { name: 'r-fresh', period: undefined, lastSeen: now },
    // A malformed period never shortens or stretches the window: Kilo's 60 s applies.
    { name: 'r-bad', period: '-5', lastSeen: now - 200 },
  ].map((r, i) => ({ ...r, key: generateKeyPair().publicKey, i }));
  for (const r of remotes) {
    mesh.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({
        apiVersion: 'v1', kind: 'Node',
        metadata: {
          name: r.name, labels: { 'topology.kubernetes.io/region': r.name },
          annotations: {
            'kilo.squat.ai/endpoint': `192.168.78.${10 + r.i}:51820`, 'kilo.squat.ai/key': r.key,
            'kilo.squat.ai/last-seen': String(r.lastSeen), 'kilo.squat.ai/wireguard-ip': `10.4.0.${10 + r.i}/16`,
            ...(r.period ? { [CHECK_IN_PERIOD_ANNOTATION]: r.period } : {}),
          },
        },
        spec: { podCIDR: `10.250.${r.i}.0/24` },
      }),
    });
  }

  // 5 nodes under a 0.5 writes/s budget: a 10 s period (above the 2 s minimum).
  await mesh.startKg('h1', ['--heartbeat', 'adaptive', '--heartbeat-budget', '0.5', '--check-in-period', '2s', '--clean-up=false']);
  const ann = () => (JSON.parse(mesh.kubectl(['get', 'node', 'h1', '-o', 'json'])) as { metadata: { annotations: Record<string, string> } }).metadata.annotations;

  await t.test('the agent advertises the period its cluster size asks for', async () => {
    await waitFor('check-in-period = 10', () => ann()[CHECK_IN_PERIOD_ANNOTATION] === '10', 20_000, 500);
  });

  await t.test('it checks in at that period, not every 2 s', async () => {
    const seen: number[] = [];
    await waitFor('three distinct last-seen values', () => {
      const v = Number(ann()['kilo.squat.ai/last-seen']);
      if (seen[seen.length - 1] !== v) seen.push(v);
      return seen.length >= 3;
    }, 40_000, 500);
    // The first value may be any age; the two gaps after it are full periods.
    const gaps = [seen[2] - seen[1]];
    assert.ok(gaps.every((g) => g >= 9 && g <= 12), `check-in gaps ${gaps} s, want ~10 s`);
  });

  await t.test('readers honour advertised periods, and Kilo’s 60 s window without one', async () => {
    const wgPeers = () => mesh.on('h1', ['wg', 'show', 'kilo0', 'peers']).split('\n').filter(Boolean).sort();
    const want = [remotes[1].key, remotes[2].key].sort();
    await waitFor(`WireGuard peers = r-adaptive, r-fresh`, () => JSON.stringify(wgPeers()) === JSON.stringify(want), 20_000, 500);
  });

  await t.test('a Peer’s DNS endpoint is resolved (here through the node’s /etc/hosts)', async () => {
    const key = generateKeyPair().publicKey;
    mesh.kubectl(['apply', '-f', '-'], {
      input: JSON.stringify({ apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'dns-peer' }, spec: { allowedIPs: ['10.5.0.9/32'], publicKey: key, endpoint: { dnsOrIP: { dns: 'h1' }, port: 51999 } } }),
    });
    const want = `${key}\t${mesh.node('h1').ip}:51999`;
    await waitFor(`WireGuard endpoint ${want}`, () => mesh.on('h1', ['wg', 'show', 'kilo0', 'endpoints']).split('\n').includes(want), 20_000, 500);
    mesh.kubectl(['delete', 'peer', 'dns-peer']);
  });

  await t.test('back in kilo mode the annotation is removed', async () => {
    await mesh.stopKg('h1');
    // --clean-up=false keeps the annotations a stop would remove; the restart must drop only ours.
    await mesh.startKg('h1', ['--heartbeat', 'kilo']);
    await waitFor('no check-in-period annotation', () => ann()[CHECK_IN_PERIOD_ANNOTATION] === undefined, 20_000, 500);
    assert.ok(ann()['kilo.squat.ai/key'], 'the other annotations are back');
  });
});
