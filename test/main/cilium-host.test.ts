// The Cilium CNI-compatibility IP (design §9.5) read from a real kernel: a network namespace
// with a link named cilium_host, read through `ip` as the agent reads it, in a child process
// that runs inside the namespace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import { ciliumHostIP } from '../../main/agent/discovery.js';
import { TestNode, cleanupMntRoot } from '../dataplane/netns.js';

const DISCOVERY = fileURLToPath(new URL('../../main/agent/discovery.js', import.meta.url));
const read = (n: TestNode): string =>
  n.run(process.execPath, '--input-type=module', '-e', `const m = await import(${JSON.stringify(DISCOVERY)}); console.log(JSON.stringify((await m.readCiliumHostIP())?.s ?? null));`).trim();

test('cilium_host: the first IPv4 address with its prefix, whatever the link state; none without the link or an IPv4 address', (t) => {
  const n = TestNode.create('cilium');
  t.after(() => {
    n.destroy();
    cleanupMntRoot();
  });
  assert.equal(read(n), 'null', 'no cilium_host link');
  n.ip('link', 'add', 'cilium_host', 'type', 'bridge');
  assert.equal(read(n), 'null', 'a link without an IPv4 address');
  n.ip('addr', 'add', 'fd00::5/64', 'dev', 'cilium_host');
  n.ip('addr', 'add', '10.0.9.1/32', 'dev', 'cilium_host');
  n.ip('addr', 'add', '10.0.9.2/24', 'dev', 'cilium_host');
  assert.equal(read(n), '"10.0.9.1/32"', 'the first IPv4 address, link down');
  n.ip('link', 'set', 'cilium_host', 'up');
  assert.equal(read(n), '"10.0.9.1/32"', 'link up');
});

test('cilium_host: ip output that is empty, not JSON or odd reads as none', () => {
  for (const out of ['', 'junk', '{}', '[{"addr_info":[{"family":"inet6","local":"fd00::1","prefixlen":64}]}]', '[null]']) assert.equal(ciliumHostIP(out), null, out);
  assert.equal(ciliumHostIP('[{"addr_info":[{"family":"inet","local":"10.1.2.3","prefixlen":24}]}]')?.s, '10.1.2.3/24');
});
