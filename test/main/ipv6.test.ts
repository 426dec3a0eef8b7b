// Design §20.8: a kernel or network namespace without IPv6 runs the IPv4 half of a dual-stack
// mesh. The detection is read in real network namespaces (one with net.ipv6.conf.all.disable_ipv6=1);
// the decision it feeds (one warning, the gauge, no second subnet) is checked on its own.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { parseCIDR } from '../../plan/addr.js';
import { AGENT_FLAGS, parseFlags, toConfig } from '../../main/flags.js';
import { dualStackConfig, ipv6Usable } from '../../main/agent/ipv6.js';

const MODULE = fileURLToPath(new URL('../../main/agent/ipv6.js', import.meta.url));

function usableIn(ns: string): string {
  const r = spawnSync('ip', ['netns', 'exec', ns, process.execPath, '--input-type=module', '-e', `import { ipv6Usable } from ${JSON.stringify(MODULE)}; process.stdout.write(String(ipv6Usable()));`], { encoding: 'utf8', timeout: 30_000 });
  assert.equal(r.status, 0, r.stderr);
  return r.stdout;
}

test('IPv6 detection reads the network namespace: disable_ipv6=1 there is no IPv6, a fresh namespace has it', (t) => {
  const off = `kgt-${process.pid}-noip6`;
  const on = `kgt-${process.pid}-ip6`;
  t.after(() => {
    spawnSync('ip', ['netns', 'del', off]);
    spawnSync('ip', ['netns', 'del', on]);
  });
  for (const ns of [off, on]) assert.equal(spawnSync('ip', ['netns', 'add', ns]).status, 0);
  assert.equal(spawnSync('ip', ['netns', 'exec', off, 'sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1']).status, 0);
  assert.equal(usableIn(off), 'false');
  assert.equal(usableIn(on), 'true');
  // And the kernel agrees: no IPv6 address can be added where it is disabled.
  assert.notEqual(spawnSync('ip', ['-n', off, 'addr', 'add', 'fd00::1/64', 'dev', 'lo']).status, 0);
});

test('IPv6 detection: the module parameter wins; a missing /proc/sys/net/ipv6 is no IPv6', () => {
  const files = (m: Record<string, string>) => (p: string) => {
    if (!(p in m)) throw new Error('ENOENT');
    return m[p];
  };
  assert.equal(ipv6Usable(files({ '/sys/module/ipv6/parameters/disable': '1\n', '/proc/sys/net/ipv6/conf/all/disable_ipv6': '0\n' })), false);
  assert.equal(ipv6Usable(files({ '/sys/module/ipv6/parameters/disable': '0\n', '/proc/sys/net/ipv6/conf/all/disable_ipv6': '0\n' })), true);
  assert.equal(ipv6Usable(files({ '/proc/sys/net/ipv6/conf/all/disable_ipv6': '0\n' })), true);
  assert.equal(ipv6Usable(files({})), false);
});

test('without IPv6 an IPv6 --dual-stack-subnet is dropped with one warning and the gauge at 1; the IPv4 configuration stays', () => {
  const cfg = toConfig(parseFlags(['--hostname', 'a', '--dual-stack-subnet', 'fd04::/64'], AGENT_FLAGS).values);
  const warnings: string[] = [];
  let gauge = -1;
  const g = { set: (v: number) => (gauge = v) };
  const off = dualStackConfig(cfg, false, (m) => warnings.push(m), g);
  assert.equal(off.dualStackSubnet, null);
  assert.equal(off.subnet.s, '10.4.0.0/16');
  assert.equal(gauge, 1);
  assert.equal(warnings.length, 1);
  assert.match(warnings[0], /IPv6 is disabled .* only the IPv4 half of the mesh runs/);
  const on = dualStackConfig(cfg, true, (m) => warnings.push(m), g);
  assert.equal(on.dualStackSubnet?.s, 'fd04::/64');
  assert.equal(gauge, 0);
  assert.equal(warnings.length, 1);
  // Single stack: nothing to drop, nothing said.
  const single = dualStackConfig(toConfig(parseFlags(['--hostname', 'a'], AGENT_FLAGS).values), false, (m) => warnings.push(m), g);
  assert.equal(single.dualStackSubnet, null);
  assert.equal(gauge, 0);
  assert.equal(warnings.length, 1);
  assert.equal(parseCIDR('fd04::/64')!.s, on.dualStackSubnet!.s);
});

test('--dual-stack-subnet: the other family than --subnet, masked; the same family or junk is refused', () => {
  const cfg = (args: string[]) => toConfig(parseFlags(['--hostname', 'a', ...args], AGENT_FLAGS).values);
  assert.equal(cfg(['--dual-stack-subnet', 'fd04::5/64']).dualStackSubnet?.s, 'fd04::/64');
  assert.equal(cfg(['--subnet', 'fd04::/64', '--dual-stack-subnet', '10.4.0.0/16']).dualStackSubnet?.s, '10.4.0.0/16');
  assert.equal(cfg([]).dualStackSubnet, null);
  assert.throws(() => cfg(['--dual-stack-subnet', '10.5.0.0/16']), /^Error: dual-stack subnet 10\.5\.0\.0\/16 is of the same address family as the subnet 10\.4\.0\.0\/16; it must be IPv6$/);
  assert.throws(() => cfg(['--dual-stack-subnet', 'x']), /failed to parse "x" as CIDR: invalid CIDR address: x/);
});
