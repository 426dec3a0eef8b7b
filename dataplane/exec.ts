// Running the few kernel tools the dataplane needs (ip, iptables-restore/-save, wg), each as one
// process per batch. Every run is bounded by a timeout.

import { spawn, spawnSync } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';

export interface ExecResult {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

export interface NsEnter {
  net: string;
  mount?: string;
}

export class Exec {
  constructor(
    private readonly ns: NsEnter | null = null,
    private readonly timeoutMs = 60_000,
  ) {}

  /** argv with the nsenter prefix (when running in a test namespace). */
  argv(cmd: string, args: readonly string[]): [string, string[]] {
    if (this.ns === null) return [cmd, [...args]];
    const pre = [`--net=${this.ns.net}`];
    if (this.ns.mount) pre.push(`--mount=${this.ns.mount}`);
    return ['nsenter', [...pre, '--', cmd, ...args]];
  }

  run(cmd: string, args: readonly string[], input?: string, extraFds?: string[]): Promise<ExecResult> {
    const t0 = performance.now();
    const [c, a] = this.argv(cmd, args);
    return new Promise((resolve) => {
      let child: ChildProcess;
      const stdio: Array<'pipe' | 'ignore'> = ['pipe', 'pipe', 'pipe'];
      for (let i = 0; i < (extraFds?.length ?? 0); i++) stdio.push('pipe');
      try {
        child = spawn(c, a, { stdio });
      } catch (e) {
        resolve({ code: -1, stdout: '', stderr: String(e), ms: performance.now() - t0 });
        return;
      }
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      child.stdout!.on('data', (b: Buffer) => out.push(b));
      child.stderr!.on('data', (b: Buffer) => err.push(b));
      const timer = setTimeout(() => child.kill('SIGKILL'), this.timeoutMs);
      let spawnErr: string | null = null;
      child.on('error', (e) => {
        spawnErr = `${cmd}: ${e.message}`;
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({
          code: spawnErr !== null ? -1 : (code ?? (signal ? 128 : -1)),
          stdout: Buffer.concat(out).toString(),
          stderr: (spawnErr ?? '') + Buffer.concat(err).toString() + (signal ? ` (killed by ${signal})` : ''),
          ms: performance.now() - t0,
        });
      });
      child.stdin!.on('error', () => {});
      if (extraFds) {
        extraFds.forEach((data, i) => {
          const s = child.stdio[3 + i] as NodeJS.WritableStream | null;
          s?.on('error', () => {});
          s?.end(data);
        });
      }
      child.stdin!.end(input ?? '');
    });
  }

  /** Spawn a long-running process (wireguard-go -f, ip monitor). */
  spawnLong(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
    const [c, a] = this.argv(cmd, args);
    return spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  }
}

/** Throws a clear error when a required tool is not installed. */
export function requireTools(tools: readonly string[]): void {
  const missing = tools.filter((t) => spawnSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' }).status !== 0);
  if (missing.length > 0) throw new Error(`required tools missing: ${missing.join(', ')} (apt-get install wireguard-go wireguard-tools iptables iproute2)`);
}
