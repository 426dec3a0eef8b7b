// The fleet check's IPv6 half (loadtest/fleet/verify6.ts, design §20): a planned dual-stack fleet
// passes in both families, the nodes left out of the IPv6 half are counted as unchecked (never
// passed silently), and planted IPv6 faults fail it with their kind.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { syntheticNodes, syntheticPeers } from '../../bench/synthetic.js';
import { fleetPlanOptions, planFleet, verifyPlannedFleet6 } from '../../loadtest/fleet/planner.js';
import type { NodeObject } from '../../plan/node.js';

const NOW = 1_764_160_000;
const shape = { nodes: 40, locations: 4, peers: 2, now: NOW };
const DUAL = ['--dual-stack-subnet', 'fd04::/64'];

/** The synthetic fleet, dual-stack: node i gets fd42:0:0:<i>::/64 and fd00::<i>/64, except every 7th no IPv6 internal IP. */
function dualFleet(): NodeObject[] {
  return syntheticNodes(shape).map((n, i) => {
    const ann = { ...n.metadata!.annotations! };
    if (i % 7 !== 6) ann['kilo.squat.ai/dual-stack-internal-ip'] = `fd00::${(i + 1).toString(16)}/64`;
    return { ...n, metadata: { ...n.metadata, annotations: ann }, spec: { podCIDR: n.spec!.podCIDR, podCIDRs: [n.spec!.podCIDR!, `fd42:0:0:${i.toString(16)}::/64`] } };
  });
}

async function fleet(argv: string[], nodes = dualFleet()) {
  const o = fleetPlanOptions([...DUAL, ...argv], NOW);
  return planFleet(nodes, syntheticPeers(shape), { threads: 1, plan: o.plan, topologyLabel: o.topologyLabel, verify: true });
}

test('fleet check, IPv6: a dual-stack fleet passes in both families; nodes left out of IPv6 are unchecked', async () => {
  for (const g of ['location', 'full', 'cross']) {
    const r = await fleet(['--mesh-granularity', g]);
    assert.ok(r.verify?.ok, r.verify?.examples.join('\n'));
    const v6 = r.verify6!;
    assert.deepEqual(v6.failures, {}, v6.examples.join('\n'));
    // Location granularity: the leaders (nodes 0..3) have IPv6 internal IPs; the 5 non-leaders without one
    // (i % 7 == 6: 6, 13, 20, 27, 34) take no part. Full granularity: every node leads its segment.
    const out = g === 'location' ? 5 : 0;
    // Cross: those 5 (locations i % 4: 20 | 13 | 6, 34 | 27) and their groups of 10 do not reach each
    // other in IPv6 (design §20.3): 3 × 2 × 9 + (10 × 9 − 8 × 7) = 88 ordered pairs unchecked.
    const pairs = g === 'cross' ? 88 : 0;
    assert.equal(v6.unchecked, out + pairs);
    assert.equal(v6.paths, (40 - out) * (40 - out - 1) - pairs);
    assert.equal(v6.reached, v6.paths);
    assert.ok(v6.hops.max >= (g === 'location' ? 3 : 1));
  }
});

test('fleet check, IPv6: planted faults fail with their kind', async () => {
  const r = await fleet([]);
  const nonLeader = r.nodes.findIndex((n) => !n.leader && n.ipv6?.podCIDR);
  const victim = r.nodes.findIndex((n) => n.leader && n.location !== r.nodes[nonLeader].location);
  const cidr = r.nodes[victim].ipv6!.podCIDR!;
  // A removed IPv6 route (to another location's leader's pods) is a blackhole.
  const lost = structuredClone(r.nodes);
  lost[nonLeader].ipv6!.plan.routes = lost[nonLeader].ipv6!.plan.routes.filter((x) => x.dst !== cidr);
  assert.ok((verifyPlannedFleet6({ index: r.index, nodes: lost })!.failures.blackhole ?? 0) > 0);
  // An IPv6 allowed IP taken off a leader's peer: the packet has no peer (blackhole).
  const leader = r.nodes.findIndex((n) => n.leader && n.location !== r.nodes[victim].location);
  const noPeer = structuredClone(r.nodes);
  for (const p of noPeer[leader].ipv6!.plan.wireguard.peers) p.allowedIPs = p.allowedIPs.filter((a) => a !== cidr);
  assert.ok((verifyPlannedFleet6({ index: r.index, nodes: noPeer })!.failures.blackhole ?? 0) > 0);
  // The same IPv6 allowed IP on two peers of one interface.
  const dup = structuredClone(r.nodes);
  const peers = dup[leader].ipv6!.plan.wireguard.peers;
  peers[1].allowedIPs = [...peers[1].allowedIPs, peers[0].allowedIPs.find((a) => a.includes(':'))!];
  assert.ok((verifyPlannedFleet6({ index: r.index, nodes: dup })!.failures['duplicate-allowed-ip'] ?? 0) > 0);
  // The receiving leader no longer accepts a source's IPv6 pods from the sending leader.
  const rej = structuredClone(r.nodes);
  const src = r.nodes[leader].ipv6!.podCIDR!;
  for (const p of rej[victim].ipv6!.plan.wireguard.peers) p.allowedIPs = p.allowedIPs.filter((a) => a !== src);
  assert.ok((verifyPlannedFleet6({ index: r.index, nodes: rej })!.failures['source-rejected'] ?? 0) > 0);
});

test('fleet check, IPv6: a single-stack fleet has no IPv6 half, with or without the flag', async () => {
  const o = fleetPlanOptions(DUAL, NOW);
  const r = await planFleet(syntheticNodes(shape), syntheticPeers(shape), { threads: 1, plan: o.plan, topologyLabel: o.topologyLabel, verify: true });
  assert.equal(r.verify6, undefined);
  assert.ok(r.verify?.ok);
});
