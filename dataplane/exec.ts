// Running the few kernel tools the dataplane needs (ip, iptables-restore/-save, wg), each as one
// process per batch. Every run is bounded by a timeout.
//
// Crash safety: a batch of writes (`ip -batch`, `iptables-restore`) reaches its tool whole or not
// at all. Through a pipe, a writer killed mid-write leaves the tool a truncated last line that it
// runs (`route del 10.1.2.0/24 via …` cut after the prefix deletes whatever route has that
// prefix). So `batch` writes the input to a file in a private directory first, and only then
// starts the tool with that file, complete and already unlinked, as its standard input.

import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, lstatSync, mkdirSync, readdirSync, unlinkSync } from 'node:fs';
import { open, unlink, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { controlAt } from '../kernel/input-checks.js';

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

  /**
   * Run `cmd` with `input` on its standard input through a pipe: for reads and single commands.
   * Writes of many lines go through `batch`. `stdinFd`: an open file to use as stdin instead.
   */
  run(cmd: string, args: readonly string[], input?: string, extraFds?: string[], stdinFd?: number): Promise<ExecResult> {
    const t0 = performance.now();
    const [c, a] = this.argv(cmd, args);
    return new Promise((resolve) => {
      let child: ChildProcess;
      const stdio: Array<'pipe' | 'ignore' | number> = [stdinFd ?? 'pipe', 'pipe', 'pipe'];
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
      child.stdin?.on('error', () => {});
      if (extraFds) {
        extraFds.forEach((data, i) => {
          const s = child.stdio[3 + i] as NodeJS.WritableStream | null;
          s?.on('error', () => {});
          s?.end(data);
        });
      }
      child.stdin?.end(input ?? '');
    });
  }

  /**
   * Run `cmd args` on a batch of lines (`ip -batch -`, `iptables-restore`): the lines are written
   * to a private file first, and the tool starts only once it is complete. A line with a control
   * character is never written (the reconcilers drop such items before; this is the last guard).
   */
  async batch(cmd: string, args: readonly string[], lines: readonly string[]): Promise<ExecResult> {
    for (let i = 0; i < lines.length; i++) {
      if (controlAt(lines[i]) >= 0) return { code: -1, stdout: '', stderr: `refused to write line ${i + 1}: it has a control character`, ms: 0 };
    }
    const fh = await this.inputFile(lines.length === 0 ? '' : lines.join('\n') + '\n');
    try {
      return await this.run(cmd, args, undefined, undefined, fh.fd);
    } finally {
      await fh.close();
    }
  }

  /** The batch text in a new private file, opened for reading and already unlinked. */
  private async inputFile(text: string): Promise<FileHandle> {
    const path = join(batchDir(), `${process.pid}-${++batchSeq}-${randomBytes(6).toString('hex')}`);
    let w: FileHandle | null = null;
    try {
      w = await open(path, 'wx', 0o600); // O_EXCL: never someone else's file
      await this.writeInput(w, text);
      const r = await open(path, 'r');
      await unlink(path).catch(async (e: unknown) => {
        await r.close();
        throw e;
      });
      return r;
    } catch (e) {
      await unlink(path).catch(() => {});
      throw e;
    } finally {
      await w?.close();
    }
  }

  /** Writes a batch file. A test overrides it to simulate a writer killed mid-write. */
  protected async writeInput(w: FileHandle, text: string): Promise<void> {
    await w.writeFile(text);
  }

  /** Spawn a long-running process (wireguard-go -f, ip monitor). */
  spawnLong(cmd: string, args: readonly string[], env?: NodeJS.ProcessEnv): ChildProcess {
    const [c, a] = this.argv(cmd, args);
    return spawn(c, a, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
  }
}

let batchSeq = 0;
let batchRoot: string | null = null;

/**
 * The private directory of batch files: /run/kg as root (tmpfs, per boot), else <tmp>/kg-<uid>.
 * Created 0700; an existing one must be a real directory of ours (not a symlink) and is made 0700.
 * Files a killed kg left behind (named after its pid) are removed the first time.
 */
export function batchDir(): string {
  if (batchRoot !== null) return batchRoot;
  const uid = process.getuid?.() ?? 0;
  const dir = uid === 0 ? '/run/kg' : join(tmpdir(), `kg-${uid}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const st = lstatSync(dir);
  if (!st.isDirectory() || st.uid !== uid) throw new Error(`${dir} is not a directory owned by uid ${uid}: refusing to write batches there`);
  if ((st.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  for (const name of readdirSync(dir)) {
    const pid = Number(name.split('-')[0]);
    if (Number.isInteger(pid) && pid > 0 && pid !== process.pid && !alive(pid)) {
      try {
        unlinkSync(join(dir, name));
      } catch {
        /* raced with another sweeper */
      }
    }
  }
  batchRoot = dir;
  return dir;
}

/** Whether a process exists (signal 0; EPERM still means it exists). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
