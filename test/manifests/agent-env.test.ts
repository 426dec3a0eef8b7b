// The agent's process environment (main/agent/process-env.ts) reaches it wherever it runs: the
// image's Dockerfile sets it, every kg agent container in the manifests sets it, and Node and
// glibc take it (a young generation of the size asked; bench/agent.ts runs the agent with it).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { AGENT_ENV } from '../../main/agent/process-env.js';

const ROOT = fileURLToPath(new URL('../../..', import.meta.url));

/** Every `ENV` instruction's KEY=VALUE pairs (the Dockerfile's form: unquoted, space separated). */
function dockerfileEnv(text: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of text.split('\n')) {
    if (!/^ENV\s/.test(line)) continue;
    for (const m of line.slice(4).matchAll(/([A-Za-z_][A-Za-z0-9_]*)=(\S+)/g)) env[m[1]] = m[2];
  }
  return env;
}

test('the image sets the agent\'s environment', () => {
  const env = dockerfileEnv(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  for (const [k, v] of Object.entries(AGENT_ENV)) assert.equal(env[k], v, `Dockerfile ENV ${k}`);
});

test('every kg agent container in the manifests sets the agent\'s environment', () => {
  let agents = 0;
  for (const file of readdirSync(join(ROOT, 'manifests')).filter((f) => f.endsWith('.yaml'))) {
    for (const doc of parseAllDocuments(readFileSync(join(ROOT, 'manifests', file), 'utf8'))) {
      const o = doc.toJS() as { kind?: string; spec?: { template?: { spec?: { containers?: { name: string; command?: string[]; args?: string[]; env?: { name: string; value?: string }[] }[] } } } } | null;
      if (o?.kind !== 'DaemonSet') continue;
      for (const c of o.spec?.template?.spec?.containers ?? []) {
        // The agent: kg with no subcommand (the webhook, `kg webhook`, sizes its own heap).
        if (c.command?.[0] !== '/opt/bin/kg' || (c.args ?? []).some((a) => !a.startsWith('-'))) continue;
        agents++;
        for (const [k, v] of Object.entries(AGENT_ENV)) assert.equal(c.env?.find((e) => e.name === k)?.value, v, `${file} ${c.name}: ${k}`);
      }
    }
  }
  assert.ok(agents >= 4, `${agents} agent containers found`);
});

test('Node takes the agent\'s NODE_OPTIONS: the main isolate\'s young generation is what it asks', () => {
  const semiMiB = Number(/--max-semi-space-size=(\d+)/.exec(AGENT_ENV.NODE_OPTIONS)?.[1]);
  assert.ok(semiMiB > 0);
  const script = `const s = require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space');
let keep = []; for (let i = 0; i < 2e6; i++) { keep.push({ i }); if (keep.length > 1e5) keep = []; }
process.stdout.write(String(require('v8').getHeapSpaceStatistics().find((x) => x.space_name === 'new_space').space_size >> 20));`;
  const run = (env: Record<string, string>) => spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', env: { ...process.env, NODE_OPTIONS: '', ...env } });
  const capped = run({ ...AGENT_ENV });
  assert.equal(capped.status, 0, capped.stderr);
  const free = run({});
  // Two semi-spaces at most (V8 reports the new space as both); without the flag it grows past that.
  assert.ok(Number(capped.stdout) <= 2 * semiMiB, `new space ${capped.stdout} MiB with ${AGENT_ENV.NODE_OPTIONS}`);
  assert.ok(Number(free.stdout) > 2 * semiMiB, `new space ${free.stdout} MiB without it: the check could not fail`);
});
