// The agent's start-up with bad configuration: one clear error line, exit status 1. The agent runs
// in a throwaway network and mount namespace: it may bring its WireGuard device up before the API
// answers (as Go's kg does), and that must never touch the host. (A running agent: test/e2e.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestNode } from '../dataplane/netns.js';

const CLI = new URL('../../main/cli.js', import.meta.url).pathname;

test('kg (agent): a missing, malformed or unreachable kubeconfig is one clear error', () => {
  const node = TestNode.create('start');
  const dir = mkdtempSync(join(tmpdir(), 'kg-start-'));
  try {
    // Loopback for --listen and the refused server; an address for host discovery, which runs first
    // (a veth pair: this kernel has no dummy links).
    node.ip('link', 'set', 'lo', 'up');
    node.ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1');
    node.ip('addr', 'add', '10.9.0.1/24', 'dev', 'eth0');
    node.ip('link', 'set', 'eth0', 'up');
    const bad = join(dir, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: v1\nkind: Config\nclusters: [ {');
    const empty = join(dir, 'empty.yaml');
    writeFileSync(empty, 'apiVersion: v1\nkind: Config\n');
    const refused = join(dir, 'refused.yaml');
    writeFileSync(refused, [
      'apiVersion: v1', 'kind: Config', 'clusters:', '- name: c', '  cluster: { server: "https://127.0.0.1:1" }',
      'users:', '- name: u', '  user: { token: t }', 'contexts:', '- name: x', '  context: { cluster: c, user: u }', 'current-context: x', '',
    ].join('\n'));
    const cases: [string[], RegExp][] = [
      [['--kubeconfig', join(dir, 'none.yaml')], /kubeconfig .*none\.yaml does not exist/],
      [['--kubeconfig', bad], /cannot load kubeconfig/],
      [['--kubeconfig', empty], /has no current cluster/],
      [['--kubeconfig', refused], /ECONNREFUSED|connect/],
      [['--master', 'ftp://x'], /invalid server URL|unsupported scheme/],
    ];
    for (const [args, re] of cases) {
      const r = spawnSync('nsenter', [`--mount=${node.mountPath}`, `--net=${node.netPath}`, '--', process.execPath, CLI, '--hostname', 'n1', '--key-dir', join(dir, 'kilo'), '--listen', '127.0.0.1:0', ...args], { encoding: 'utf8', timeout: 60_000 });
      assert.equal(r.status, 1, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
      assert.match(r.stderr.trim().split('\n').at(-1)!, /^Error: /);
      assert.ok(!r.stdout.includes('PrivateKey') && !r.stderr.includes('PRIVATE'), 'no key material in the output');
    }
  } finally {
    node.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
});
