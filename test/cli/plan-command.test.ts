// End-to-end tests of the `kg` binary: `kg plan` on the example cluster, flags, and bad input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_FLAGS } from '../../main/flags.js';

const CLI = new URL('../../main/cli.js', import.meta.url).pathname;
const ROOT = new URL('../../../', import.meta.url).pathname;
const EX = ['--nodes', join(ROOT, 'examples/nodes.yaml'), '--peers', join(ROOT, 'examples/peers.yaml'), '--now', '1764160010'];

function kg(args: string[], input?: string) {
  const r = spawnSync(process.execPath, [CLI, ...args], { input, encoding: 'utf8', timeout: 20_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('kg plan: JSON for the example cluster follows the plan contract (PlanJSON)', () => {
  const r = kg(['plan', '--hostname', 'alpha', ...EX]);
  assert.equal(r.code, 0, r.err);
  const p = JSON.parse(r.out);
  assert.equal(p.format, 1);
  assert.deepEqual(Object.keys(p).sort(), ['cni', 'format', 'granularity', 'hostname', 'iptables', 'leader', 'location', 'nodes', 'peers', 'routes', 'rules', 'segments', 'tunnel', 'warnings', 'wireGuardCIDR', 'wireguard']);
  assert.equal(p.leader, true);
  assert.equal(p.location, 'location:east');
  assert.equal(p.wireGuardCIDR, '10.4.0.1/16');
  assert.deepEqual(p.nodes.map((n: { name: string; ready: boolean }) => [n.name, n.ready]), [['alpha', true], ['bravo', true], ['charlie', true], ['delta', true]]);
  assert.deepEqual(p.segments.map((s: { location: string }) => s.location), ['location:east', 'location:west', 'node:delta']);
  assert.deepEqual(p.routes[0], { dst: '10.42.1.0/24', gw: '10.0.1.11', dev: 'tunl0', src: '10.0.1.10', table: null, protocol: 'static', onlink: true });
  assert.deepEqual(p.rules[0], { src: '10.42.0.0/24', dst: '10.0.1.11/32', iif: null, table: 1107, priority: null });
  assert.equal(p.wireguard.peers.length, 3);
  assert.deepEqual(p.nodes[0].endpoint, { host: '203.0.113.10', port: 51820, resolved: '203.0.113.10:51820' });
  assert.deepEqual(p.warnings, []);
});

test('kg plan --mesh-granularity cross: every node leads its own segment, no tunnel inside a location (design §19)', () => {
  const r = kg(['plan', '--hostname', 'bravo', ...EX, '--mesh-granularity', 'cross']);
  assert.equal(r.code, 0, r.err);
  const p = JSON.parse(r.out);
  assert.deepEqual([p.granularity, p.location, p.nodeLocation, p.leader, p.wireGuardCIDR], ['cross', 'node:bravo', 'location:east', true, '10.4.0.2/16']);
  assert.deepEqual(p.segments.map((s: { location: string; nodeLocation: string | null }) => [s.location, s.nodeLocation]), [
    ['node:alpha', 'location:east'], ['node:bravo', 'location:east'], ['node:charlie', 'location:west'], ['node:delta', null],
  ]);
  // charlie, delta and the Peer; not alpha, bravo's location neighbour.
  assert.equal(p.wireguard.peers.length, 3);
  assert.ok(!p.wireguard.peers.some((x: { allowedIPs: string[] }) => x.allowedIPs.includes('10.42.0.0/24')));
  const text = kg(['plan', '--hostname', 'bravo', ...EX, '--mesh-granularity', 'cross', '-o', 'text']);
  assert.equal(text.code, 0, text.err);
  assert.ok(text.out.includes('granularity cross, location group location:east'), text.out);
  assert.match(text.out, /\nnode:delta +- +delta /, 'delta, without an internal IP, is in no location group');
});

test('kg plan: -o text for people, and the same nodes read from stdin as JSON', () => {
  const text = kg(['plan', '--hostname', 'bravo', ...EX, '-o', 'text']);
  assert.equal(text.code, 0, text.err);
  for (const s of ['# topology', '# ip route (10)', 'from 10.42.1.0/24 to 10.0.1.10/32 lookup 1107', '# iptables-save (ipv4)', 'not applied']) {
    assert.ok(text.out.includes(s), s);
  }
  const json = JSON.stringify({ kind: 'NodeList', items: [{ metadata: { name: 'solo', annotations: { 'kilo.squat.ai/endpoint': '1.1.1.1:51820', 'kilo.squat.ai/key': Buffer.alloc(32, 1).toString('base64'), 'kilo.squat.ai/last-seen': '100' } }, spec: { podCIDR: '10.42.0.0/24' } }] });
  const r = kg(['plan', '--hostname', 'solo', '--nodes', '-', '--now', '110', '-o=json'], json);
  assert.equal(r.code, 0, r.err);
  assert.equal(JSON.parse(r.out).wireGuardCIDR, '10.4.0.1/16');
});

test('kg plan: malformed annotations are warnings, not failures', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-plan-'));
  try {
    const f = join(dir, 'nodes.yaml');
    writeFileSync(f, [
      'apiVersion: v1', 'kind: Node', 'metadata:', '  name: a', '  annotations:',
      '    kilo.squat.ai/endpoint: "1.1.1.1:51820"', `    kilo.squat.ai/key: "${Buffer.alloc(32, 1).toString('base64')}"`,
      '    kilo.squat.ai/last-seen: "100"', '    kilo.squat.ai/internal-ip: "foo"', 'spec: { podCIDR: 10.42.0.0/24 }', '---',
      'apiVersion: v1', 'kind: Node', 'metadata: { name: c, annotations: { kilo.squat.ai/endpoint: "1.2.3.4:99999" } }', '',
    ].join('\n'));
    const r = kg(['plan', '--hostname', 'a', '--nodes', f, '--now', '100']);
    assert.equal(r.code, 0, r.err);
    assert.deepEqual(JSON.parse(r.out).warnings, ['node a: kilo.squat.ai/internal-ip: invalid CIDR "foo"', 'node c: kilo.squat.ai/endpoint: invalid endpoint "1.2.3.4:99999"']);
    // A not-ready local node: a plan that programs nothing, with a warning.
    const stale = kg(['plan', '--hostname', 'a', '--nodes', f, '--now', '1000']);
    assert.equal(stale.code, 0, stale.err);
    const p = JSON.parse(stale.out);
    assert.deepEqual([p.segments, p.routes, p.wireguard.applied], [[], [], false]);
    assert.match(p.warnings.at(-1), /node a: not ready/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kg plan: a node claiming 0.0.0.0/1 is ignored with one warning; --allow-short-prefixes takes it as Kilo does', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-plan-'));
  try {
    const f = join(dir, 'nodes.json');
    const node = (name: string, i: number, extra: Record<string, string> = {}) => ({
      metadata: { name, annotations: { 'kilo.squat.ai/endpoint': `198.51.100.${i}:51820`, 'kilo.squat.ai/key': Buffer.alloc(32, i).toString('base64'), 'kilo.squat.ai/last-seen': '100', 'kilo.squat.ai/location': name, ...extra } },
      spec: { podCIDR: `10.42.${i}.0/24` },
    });
    writeFileSync(f, JSON.stringify({ kind: 'NodeList', items: [node('a', 1), node('b', 2, { 'kilo.squat.ai/allowed-location-ips': '0.0.0.0/1,192.168.7.0/24' })] }));
    const strict = kg(['plan', '--hostname', 'a', '--nodes', f, '--now', '100']);
    assert.equal(strict.code, 0, strict.err);
    const p = JSON.parse(strict.out);
    assert.deepEqual(p.routes.map((r: { dst: string }) => r.dst).filter((d: string) => !d.startsWith('10.')), ['192.168.7.0/24']);
    assert.deepEqual(p.warnings, ['node b: kilo.squat.ai/allowed-location-ips: a prefix shorter than /8 ignored (--allow-short-prefixes allows them), first: "0.0.0.0/1"']);
    const open = JSON.parse(kg(['plan', '--hostname', 'a', '--nodes', f, '--now', '100', '--allow-short-prefixes']).out);
    assert.deepEqual(open.routes.map((r: { dst: string }) => r.dst).filter((d: string) => !d.startsWith('10.')), ['0.0.0.0/1', '192.168.7.0/24']);
    assert.deepEqual(open.warnings, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kg plan: bad input exits non-zero with one clear message', () => {
  const dir = mkdtempSync(join(tmpdir(), 'kg-plan-'));
  try {
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'items: [\n');
    const scalar = join(dir, 'scalar.json');
    writeFileSync(scalar, '42');
    const cases: [string[], RegExp][] = [
      [['plan', '--nodes', join(ROOT, 'examples/nodes.yaml')], /--hostname is required/],
      [['plan', '--hostname', 'alpha'], /--nodes is required/],
      [['plan', '--hostname', 'zulu', ...EX], /node "zulu" is not in/],
      [['plan', '--hostname', 'a', '--nodes', join(dir, 'missing.yaml')], /failed to read nodes from .*missing\.yaml/],
      [['plan', '--hostname', 'a', '--nodes', bad], /failed to parse nodes in/],
      [['plan', '--hostname', 'a', '--nodes', scalar], /expected a Kubernetes object or List/],
      [['plan', '--hostname', 'alpha', ...EX, '--subnet', 'nope'], /failed to parse "nope" as CIDR/],
      [['plan', '--hostname', 'alpha', ...EX, '--encapsulate', 'sometimes'], /encapsulation sometimes unknown; possible values are: never, crosssubnet, always/],
      [['plan', '--hostname', 'alpha', ...EX, '--mesh-granularity', 'auto'], /mesh granularity auto unknown; possible values are: location, full, cross/],
      [['plan', '--hostname', 'alpha', ...EX, '--port', '70000'], /invalid port: port mus be in range \[1:65535\], but got 70000/],
      [['plan', '--hostname', 'alpha', ...EX, '--mtu', 'big'], /failed to parse MTU "big"/],
      [['plan', '--hostname', 'alpha', ...EX, '--service-cidr', '10.43.0.0'], /failed to parse "10.43.0.0" as CIDR/],
      [['plan', '--hostname', 'alpha', ...EX, '--cni=maybe'], /invalid argument "maybe" for "--cni"/],
      [['plan', '--hostname', 'alpha', ...EX, '--bogus'], /unknown flag: --bogus/],
      [['plan', '--hostname', 'alpha', ...EX, '-o', 'xml'], /output format xml unknown/],
      [['plan', '--hostname', 'alpha', ...EX, '--now', 'yesterday'], /invalid --now/],
      [['--log-level', 'loud', '--version'], /log level loud unknown/],
      [['--resync-period', '5 minutes'], /time: invalid duration/],
    ];
    for (const [args, re] of cases) {
      const r = kg(args);
      assert.equal(r.code, 1, `${args.join(' ')}: exit ${r.code}`);
      assert.match(r.err, re, args.join(' '));
      assert.equal(r.err.trim().split('\n').length, 1, `one line: ${r.err}`);
      assert.equal(r.out, '');
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('kg --help lists every flag of the Go agent; kg --version and kg version print the version', () => {
  const help = kg(['--help']);
  assert.equal(help.code, 0);
  const goFlags = ['backend', 'clean-up', 'clean-up-interface', 'cni', 'cni-path', 'compatibility', 'create-interface', 'encapsulate', 'hostname',
    'interface', 'internal-cidr', 'iptables-forward-rules', 'kubeconfig', 'listen', 'local', 'log-level', 'master', 'mesh-granularity', 'mtu', 'port',
    'prioritise-private-addresses', 'resync-period', 'service-cidr', 'subnet', 'topology-label', 'version'];
  for (const f of goFlags) {
    assert.ok(help.out.includes(`--${f} `) || help.out.includes(`--${f}\n`) || new RegExp(`--${f}\\s`).test(help.out), f);
    assert.ok(AGENT_FLAGS.some((d) => d.name === f), f);
  }
  assert.match(help.out, /--subnet string\s+.*\(default "10\.4\.0\.0\/16"\)/);
  assert.match(kg(['plan', '--help']).out, /--nodes string/);
  const v = kg(['--version']);
  assert.equal(v.code, 0);
  assert.match(v.out, /^\d+\.\d+\.\d+\n$/);
  assert.equal(kg(['version']).out, v.out);
});
