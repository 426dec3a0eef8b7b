// Design §20.2: the agent's second-family internal IP, found on the interface holding the internal
// IP and published as kilo.squat.ai/dual-stack-internal-ip, only with --dual-stack-subnet.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { discover, type HostView } from '../../main/agent/discovery.js';
import { LocalNode } from '../../main/agent/local-node.js';
import { createMetrics } from '../../main/agent/metrics.js';
import { silentLogger } from '../../main/log.js';
import { AGENT_FLAGS, parseFlags, toConfig } from '../../main/flags.js';
import { parseCIDR } from '../../plan/addr.js';
import type { NodeObject } from '../../plan/node.js';
import { FakePool } from './fake-pool.js';

const link = (ifindex: number, ifname: string, addrs: string[]) => ({ ifindex, ifname, mtu: 1500, addrs: addrs.map((a) => ({ local: a.split('/')[0], prefixlen: Number(a.split('/')[1]) })) });

test('discovery: the second family’s internal IP is on the private interface, private before global, never link-local', () => {
  const view = (eth0: string[]): HostView => ({
    links: [link(1, 'lo', ['127.0.0.1/8', '::1/128']), link(2, 'eth0', eth0), link(3, 'eth1', ['fd99::9/64', '203.0.113.7/24']), link(4, 'kilo0', ['10.4.0.1/16', 'fd04::1/64'])],
    routes: [{ dst: 'default', dev: 'eth0' }],
    hostnameIPs: [],
  });
  const o = { ignore: ['kilo0', 'kube-bridge'], internalCIDRs: [] };
  assert.equal(discover(view(['10.0.0.5/24', '2001:db8::5/64', 'fd00::5/64', 'fe80::1/64']), o).privateIP2?.s, 'fd00::5/64');
  assert.equal(discover(view(['10.0.0.5/24', '2001:db8::5/64', 'fe80::1/64']), o).privateIP2?.s, '2001:db8::5/64');
  const none = discover(view(['10.0.0.5/24', 'fe80::1/64']), o);
  assert.equal(none.privateIP?.s, '10.0.0.5/24');
  assert.equal('privateIP2' in none, false, 'not another interface’s address (eth1 has fd99::9)');
});

async function published(flags: string[], ann: Record<string, string> = {}, privateIP2 = parseCIDR('fd00::5/64')) {
  const patches: unknown[] = [];
  const client = { request: async (_m: string, _p: string, o?: { body?: unknown }) => (patches.push(o?.body), {}) };
  const config = toConfig(parseFlags(['--hostname', 'self', ...flags], AGENT_FLAGS).values);
  const local = new LocalNode({
    config, log: silentLogger, client: client as never, metrics: createMetrics(), pool: new FakePool(),
    host: { privateIP: parseCIDR('10.0.0.5/24'), publicIP: parseCIDR('203.0.113.7/24'), privateIface: 'eth0', defaultIface: 'eth0', autoMTU: 1420, privateIP2 },
    publicKey: Buffer.alloc(32, 9).toString('base64'), checkInPeriodMs: 30_000, now: () => 1_700_000_000, clusterSize: () => 1, schedule: () => {},
  });
  const obj: NodeObject = { metadata: { name: 'self', annotations: ann, labels: {} }, spec: { podCIDR: '10.2.0.0/24' } };
  await local.handle(obj);
  await local.removeAnnotations();
  return { patch: (patches[0] as { metadata: { annotations: Record<string, string> } }).metadata.annotations, cleanup: patches[1] as { path: string }[] };
}

test('local node: with --dual-stack-subnet the discovered IPv6 internal IP is published, sticky, and removed at clean-up', async () => {
  const KEY = 'kilo.squat.ai/dual-stack-internal-ip';
  const on = await published(['--dual-stack-subnet', 'fd04::/64']);
  assert.equal(on.patch[KEY], 'fd00::5/64');
  assert.ok(on.cleanup.some((op) => op.path === '/metadata/annotations/kilo.squat.ai~1dual-stack-internal-ip'));
  const sticky = await published(['--dual-stack-subnet', 'fd04::/64'], { [KEY]: 'fd00::77/64' });
  assert.equal(sticky.patch[KEY], undefined, 'the annotated value stands (not re-written)');
  const none = await published(['--dual-stack-subnet', 'fd04::/64'], {}, null);
  assert.equal(none.patch[KEY], '');
  const off = await published([]);
  assert.equal(KEY in off.patch, false, 'single stack: the annotation is not kg’s to write');
  assert.ok(!off.cleanup.some((op) => op.path.includes('dual-stack')));
});
