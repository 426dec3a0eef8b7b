// Kernel write cost: the leader's plan applied by the real I/O worker (workers/io-client.ts) in a
// scratch network + mount namespace this process creates, with userspace WireGuard. As in
// bench/dataplane.ts, the measuring process runs *inside* the namespaces (kernel-child.ts under
// nsenter), so every command acts on its own namespace as in production, without an nsenter per
// command. The namespace is deleted at the end, on error, and on Ctrl-C / SIGTERM.
import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { TestNode, cleanupMntRoot } from '../../test/dataplane/netns.js';
import type { BenchConfig } from './options.js';

export interface KernelTiming { minMs: number; medianMs: number; maxMs: number; n: number }

export interface KernelResult {
  ran: true;
  node: string;
  namespace: string;
  iptablesBackend: string;
  desired: { wireguardPeers: number; routes: number; iptablesRules: number };
  /** Empty kernel → the whole plan (end to end through IoClient.applyFull). */
  coldApply: KernelTiming;
  coldWrites: number;
  /** One node changed: the pool worker's delta applied (IoClient.applyPrepared). */
  oneChangeApply: KernelTiming;
  oneChangeWrites: number;
  /** Re-read everything, nothing to write. */
  noopResync: KernelTiming;
  /** Process RSS added by starting the I/O worker and applying the plan. */
  ioWorkerRssBytes: number;
  /** Write errors of the cold apply (e.g. no IPIP support in this kernel), first few. */
  errors: string[];
}
export interface KernelSkipped { ran: false; reason: string }

export function stat(xs: number[]): KernelTiming {
  const s = [...xs].sort((a, b) => a - b);
  return { minMs: s[0], medianMs: s[Math.floor(s.length / 2)], maxMs: s[s.length - 1], n: s.length };
}

export function kernelPrerequisites(): string | null {
  if (process.getuid?.() !== 0) return 'the kernel write cost needs root (it creates a network namespace and runs wireguard-go); run kg bench as root, or pass --kernel=false';
  for (const t of ['ip', 'nsenter', 'unshare', 'wireguard-go', 'iptables-restore']) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) return `the kernel write cost needs ${t}, which is not installed`;
  }
  return null;
}

export const RESULT_MARK = 'KG_BENCH_KERNEL_RESULT ';

export async function measureKernel(cfg: BenchConfig): Promise<KernelResult | KernelSkipped> {
  const missing = kernelPrerequisites();
  if (missing) return { ran: false, reason: missing };
  const node = TestNode.create('kgbench');
  let child: ReturnType<typeof spawn> | null = null;
  const cleanup = () => {
    child?.kill('SIGKILL');
    node.destroy(); // kills wireguard-go and anything else in the namespace by pid, then deletes it
    cleanupMntRoot();
  };
  const onSignal = (sig: NodeJS.Signals) => {
    process.stderr.write(`\nkg bench: ${sig}: deleting network namespace ${node.name}\n`);
    cleanup();
    process.exit(sig === 'SIGINT' ? 130 : 143);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    const script = fileURLToPath(new URL('./kernel-child.js', import.meta.url));
    const c = spawn('nsenter', [`--net=${node.netPath}`, `--mount=${node.mountPath}`, '--', process.execPath, script], {
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, KG_BENCH_CONFIG: JSON.stringify(cfg), KG_BENCH_NETNS: node.name },
    });
    child = c;
    let out = '';
    let err = '';
    c.stdout!.on('data', (b: Buffer) => (out += b.toString()));
    c.stderr!.on('data', (b: Buffer) => (err += b.toString()));
    const code = await new Promise<number>((resolve) => c.on('close', (status) => resolve(status ?? 1)));
    const line = out.split('\n').find((l) => l.startsWith(RESULT_MARK));
    if (code !== 0 || !line) throw new Error(`kernel measurement failed (exit ${code}): ${(err.trim().split('\n').slice(-3).join(' | ') || 'no output').slice(0, 600)}`);
    return JSON.parse(line.slice(RESULT_MARK.length)) as KernelResult;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    cleanup();
  }
}
