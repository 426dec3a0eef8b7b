// The simulator's dual-stack nodes (`--dual-stack`, used by bench/agent.ts --dual-stack): every
// node has an IPv6 pod CIDR and internal IP that the planner takes (design §20.2), so a
// dual-stack plan of one node routes every other node's IPv6 pods; without the option the nodes
// are single-stack as before.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { generateNodes } from '../../loadtest/apiserver/index.js';
import { parseCIDR } from '../../plan/addr.js';
import type { NodeObject } from '../../plan/node.js';
import { parseCluster, plan, type PlanOptions } from '../../plan/plan.js';

const opts = (hostname: string): PlanOptions => ({
  hostname, granularity: 'full', subnet: parseCIDR('10.4.0.0/16')!, dualStackSubnet: parseCIDR('fd04::/64')!, encapsulate: 'never', local: true, cni: true, compatibility: '',
  iptablesForwardRules: false, serviceCIDRs: [], interface: 'kilo0', mtu: 1420, privateInterface: 'eth0', tunnelInterface: 'tunl0', now: Math.floor(Date.now() / 1000),
});

test('generateNodes dualStack: an IPv6 pod CIDR and internal IP per node, taken by a dual-stack plan', () => {
  const nodes = generateNodes({ count: 300, locations: 3, realistic: false, dualStack: true });
  const v6 = nodes.map((n) => (n.spec as { podCIDRs: string[] }).podCIDRs[1]);
  assert.equal(new Set(v6).size, 300);
  assert.equal(new Set(nodes.map((n) => n.metadata.annotations!['kilo.squat.ai/dual-stack-internal-ip'])).size, 300);
  const c = parseCluster(nodes as NodeObject[], [], 'topology.kubernetes.io/region');
  assert.deepEqual(c.warnings, []);
  const j = plan(c, opts(nodes[0].metadata.name!)).json;
  assert.equal(j.dualStack?.active, true);
  assert.equal(j.dualStack?.podCIDR, v6[0]);
  const routed = new Set(j.routes.map((r) => r.dst));
  for (const cidr of v6.slice(1)) assert.ok(routed.has(cidr), `a route to ${cidr}`);
});

test('generateNodes without dualStack: one pod CIDR, no dual-stack annotation', () => {
  for (const n of generateNodes({ count: 20, realistic: false })) {
    assert.equal((n.spec as { podCIDRs: string[] }).podCIDRs.length, 1);
    assert.equal(n.metadata.annotations!['kilo.squat.ai/dual-stack-internal-ip'], undefined);
  }
});
