// Flag parsing with the Go agent's semantics (design §12.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AGENT_FLAGS, parseDuration, parseFlags, toConfig } from '../../main/flags.js';

const cfg = (args: string[]) => toConfig(parseFlags(args, AGENT_FLAGS).values, { osHostname: () => 'host-1' });

test('defaults match the Go agent', () => {
  const c = cfg([]);
  assert.deepEqual(
    [c.backend, c.cleanUp, c.cleanUpInterface, c.cni, c.cniPath, c.compatibility, c.createInterface, c.encapsulate, c.hostname, c.interface,
      c.iptablesForwardRules, c.kubeconfig, c.listen, c.local, c.logLevel, c.master, c.meshGranularity, c.mtu, c.port,
      c.prioritisePrivateAddresses, c.resyncPeriodMs, c.subnet.s, c.topologyLabel, c.version, c.serviceCIDRs, c.internalCIDRs],
    ['kubernetes', true, false, true, '/etc/cni/net.d/10-kilo.conflist', '', true, 'always', 'host-1', 'kilo0', false, '', ':1107', true, 'info', '',
      'location', 'auto', 51820, false, 30_000, '10.4.0.0/16', 'topology.kubernetes.io/region', false, [], []],
  );
});

test('pflag forms: --f=v, --f v, bare and explicit booleans, repeatable lists', () => {
  const c = cfg(['--cni=false', '--local', '--port', '5000', '--service-cidr=10.43.0.0/16,10.44.0.1/16', '--service-cidr', 'fd43::/108', '--subnet=10.5.0.1/16', '--mtu', '1380', '--resync-period', '1m30s', '--clean-up=F']);
  assert.equal(c.cni, false);
  assert.equal(c.local, true);
  assert.equal(c.port, 5000);
  assert.deepEqual(c.serviceCIDRs.map((x) => x.s), ['10.43.0.0/16', '10.44.0.0/16', 'fd43::/108']);
  assert.equal(c.subnet.s, '10.5.0.0/16', '--subnet is masked to the network');
  assert.equal(c.mtu, 1380);
  assert.equal(c.resyncPeriodMs, 90_000);
  assert.equal(c.cleanUp, false);
  assert.equal(cfg(['--port=0x1F90']).port, 8080, 'Go base-0 integers');
});

test('durations follow time.ParseDuration', () => {
  assert.equal(parseDuration('30s'), 30_000);
  assert.equal(parseDuration('1h2m3.5s'), 3_723_500);
  assert.equal(parseDuration('250ms'), 250);
  assert.equal(parseDuration('0'), 0);
  for (const bad of ['30', '1 s', 's', '', '1d']) assert.equal(parseDuration(bad), null, bad);
});

test('validation order and texts', () => {
  assert.throws(() => cfg(['--log-level=x', '--subnet=y']), /log level x unknown/);
  assert.throws(() => cfg(['--subnet=y', '--encapsulate=z']), /failed to parse "y" as CIDR/);
  assert.throws(() => toConfig(parseFlags([], AGENT_FLAGS).values, { osHostname: () => '' }), /failed to determine hostname/);
  assert.throws(() => cfg(['--encapsulate=z', '--mesh-granularity=q']), /encapsulation z unknown/);
  assert.throws(() => cfg(['--mesh-granularity=q', '--backend=b']), /mesh granularity q unknown/);
  assert.throws(() => cfg(['--mesh-granularity=q']), /mesh granularity q unknown; possible values are: location, full, cross$/);
  assert.equal(cfg(['--mesh-granularity=cross']).meshGranularity, 'cross');
  assert.throws(() => cfg(['--backend=b', '--port=0']), /backend b unknown; possible values are: kubernetes/);
  assert.throws(() => cfg(['--port=0']), /port mus be in range \[1:65535\], but got 0/);
  assert.throws(() => cfg(['--internal-cidr=10.0.0.1']), /failed to parse "10.0.0.1" as CIDR/);
  assert.throws(() => cfg(['--mtu=-1']), /failed to parse MTU "-1"/);
  // kg's own flags.
  assert.throws(() => cfg(['--heartbeat=lease']), /heartbeat mode lease unknown; possible values are: kilo, adaptive/);
  assert.throws(() => cfg(['--heartbeat-budget=0']), /invalid --heartbeat-budget 0/);
  assert.throws(() => cfg(['--heartbeat-budget=x']), /invalid --heartbeat-budget x/);
  assert.throws(() => cfg(['--check-in-period=500ms']), /invalid --check-in-period 500ms/);
  assert.deepEqual(cfg(['--heartbeat=adaptive', '--heartbeat-budget=2.5', '--check-in-period=1m']).heartbeat, { mode: 'adaptive', minPeriodSeconds: 60, budget: 2.5 });
  assert.deepEqual(cfg([]).heartbeat, { mode: 'kilo', minPeriodSeconds: 30, budget: 15 });
  assert.throws(() => parseFlags(['--port'], AGENT_FLAGS), /flag needs an argument: --port/);
  assert.throws(() => parseFlags(['--port=abc'], AGENT_FLAGS), /invalid argument "abc" for "--port"/);
  assert.equal(cfg(['--compatibility=anything']).compatibility, 'anything', 'not validated (quirk 23 (design §16.23))');
});
