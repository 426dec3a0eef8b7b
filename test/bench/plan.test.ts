// bench/plan.ts with --dual-stack-subnet at a small size: dual-stack rows beside the single-stack
// ones in one run (plan table and one-node re-plans), under names of their own in the results
// file, the single-stack names unchanged; a subnet of the wrong family is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PLAN = fileURLToPath(new URL('../../bench/plan.js', import.meta.url));

interface Detail { rows: { nodes: number; locations: number; granularity: string; dualStack: boolean; routes: number; iptables: number; wgPeers: number }[]; replans: { granularity: string; dualStack: boolean; change: string; fallbacks: number; plans: number }[] }
interface Results { measurements: { name: string; p50: number }[]; detail: Detail }

test('bench/plan --dual-stack-subnet: every size planned in both stacks in one run, re-plans too', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'kg-bench-plan-'));
  try {
    const json = join(tmp, 'r.json');
    const r = spawnSync(process.execPath, [PLAN, '--sizes', '60', '--replan-sizes', '60', '--quick', '--alip=false', '--dual-stack-subnet', 'fd04::/64', '--json', json], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, r.stderr);
    const res = JSON.parse(readFileSync(json, 'utf8')) as Results;
    const { rows, replans } = res.detail;
    for (const g of ['location', 'full', 'cross']) {
      for (const loc of [1, 100]) {
        const one = rows.find((x) => x.granularity === g && x.locations === loc && !x.dualStack)!;
        const two = rows.find((x) => x.granularity === g && x.locations === loc && x.dualStack)!;
        assert.ok(one && two, `${g}, ${loc} loc: both stacks measured`);
        // The IPv6 half: more routes and ip6tables rules, the same WireGuard peers (one per segment, design §20.3).
        assert.ok(two.routes > one.routes && two.iptables > one.iptables, `${g}, ${loc} loc: ${JSON.stringify([one, two])}`);
        assert.equal(two.wgPeers, one.wgPeers);
        assert.match(r.stdout, new RegExp(`\\| 60 \\| ${loc} \\| ${g}, dual stack \\|`));
      }
    }
    const names = new Set(res.measurements.map((m) => m.name));
    for (const n of ['plan/full/60 nodes/1 loc/full', 'plan/full/60 nodes/1 loc/full/dual-stack', 'replan/incremental/readiness flip/60 nodes/50 loc/full', 'replan/incremental/readiness flip/60 nodes/50 loc/full/dual-stack']) {
      assert.ok(names.has(n), `${n} in the results file`);
    }
    // Dual stack: every re-plan is a memoised full plan (design §20.5); single stack: none fell back.
    for (const x of replans) {
      if (x.dualStack) assert.equal(x.fallbacks, x.plans, `${x.granularity} ${x.change}`);
      else assert.equal(x.fallbacks, 0, `${x.granularity} ${x.change}`);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test('bench/plan --dual-stack-subnet of the first family (IPv4) or not a CIDR: one error line, exit 1', () => {
  for (const bad of ['10.5.0.0/16', 'nonsense']) {
    const r = spawnSync(process.execPath, [PLAN, '--dual-stack-subnet', bad], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(r.status, 1, r.stderr);
    assert.match(r.stderr, /^invalid --dual-stack-subnet .*: an IPv6 CIDR/);
  }
});
