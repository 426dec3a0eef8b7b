// Test harness: a "node" = a network namespace plus a private mount namespace whose
// /run/wireguard is a bind of a host directory (so the test, in the host mount namespace, reaches
// wireguard-go's UAPI socket at `uapiDir`). Everything is named kgt-<pid>-<tag> and torn down by
// destroy(): processes in the namespace are killed by pid first, then the namespace is deleted.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { generateKeyPairSync } from 'node:crypto';

const MNT = `/run/kgt-${process.pid}-mnt`;

export function sh(cmd: string, args: string[], input?: string): string {
  return execFileSync(cmd, args, { input, encoding: 'utf8', stdio: ['pipe', 'pipe', 'pipe'], timeout: 30_000 });
}

/** Fails the test with a clear message when a tool is missing (never skips). */
export function requireTool(...tools: string[]): void {
  for (const t of tools) {
    if (spawnSync('sh', ['-c', `command -v ${t}`]).status !== 0) throw new Error(`required tool missing: ${t} (CI installs wireguard-go wireguard-tools iptables nftables iproute2)`);
  }
}

function ensureMntRoot(): void {
  mkdirSync(MNT, { recursive: true });
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === MNT);
  if (!mounted) {
    sh('mount', ['--bind', MNT, MNT]);
    sh('mount', ['--make-private', MNT]);
  }
}

export class TestNode {
  readonly name: string;
  readonly netPath: string;
  readonly mountPath: string;
  readonly uapiDir: string;
  private destroyed = false;

  private constructor(readonly tag: string) {
    this.name = `kgt-${process.pid}-${tag}`;
    this.netPath = `/run/netns/${this.name}`;
    this.mountPath = `${MNT}/${tag}`;
    this.uapiDir = `/tmp/${this.name}-wg`;
  }

  static create(tag: string): TestNode {
    requireTool('ip', 'nsenter', 'unshare');
    const n = new TestNode(tag);
    try {
      sh('ip', ['netns', 'add', n.name]);
      sh('ip', ['-n', n.name, 'link', 'set', 'lo', 'up']);
      ensureMntRoot();
      mkdirSync('/run/wireguard', { recursive: true });
      mkdirSync(n.uapiDir, { recursive: true, mode: 0o755 });
      writeFileSync(n.mountPath, '');
      sh('unshare', [`--mount=${n.mountPath}`, '--propagation', 'private', 'true']);
      sh('nsenter', [`--mount=${n.mountPath}`, `--net=${n.netPath}`, '--', 'sh', '-c', `mount --bind ${n.uapiDir} /run/wireguard && mount -t sysfs sysfs /sys`]);
    } catch (e) {
      n.destroy();
      throw e;
    }
    return n;
  }

  get nsenter(): { net: string; mount: string } {
    return { net: this.netPath, mount: this.mountPath };
  }

  /** Run a command on the node. */
  run(cmd: string, ...args: string[]): string {
    return sh('nsenter', [`--mount=${this.mountPath}`, `--net=${this.netPath}`, '--', cmd, ...args]);
  }

  /** Like run, but returns status and output instead of throwing. */
  tryRun(cmd: string, ...args: string[]): { code: number; out: string; err: string } {
    const r = spawnSync('nsenter', [`--mount=${this.mountPath}`, `--net=${this.netPath}`, '--', cmd, ...args], { encoding: 'utf8', timeout: 30_000 });
    return { code: r.status ?? -1, out: r.stdout ?? '', err: r.stderr ?? '' };
  }

  ip(...args: string[]): string {
    return sh('ip', ['-n', this.name, ...args]);
  }

  /** Bridges standing in for devices (this kernel has no dummy links), each with its address, up. */
  bridges(devs: ReadonlyArray<readonly [string, string]>): this {
    for (const [dev, addr] of devs) {
      this.ip('link', 'add', dev, 'type', 'bridge');
      this.ip('addr', 'add', addr, 'dev', dev);
      this.ip('link', 'set', dev, 'up');
    }
    return this;
  }

  routesJSON(family: '-4' | '-6' = '-4'): Array<Record<string, any>> {
    return JSON.parse(this.ip(family, '-j', 'route', 'show', 'table', 'all') || '[]');
  }

  pids(): number[] {
    const r = spawnSync('ip', ['netns', 'pids', this.name], { encoding: 'utf8' });
    return (r.stdout ?? '')
      .split('\n')
      .map((s) => Number(s.trim()))
      .filter((n) => n > 0);
  }

  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    // kill everything in the namespace by pid (wireguard-go does not die with the netns)
    for (let round = 0; round < 2; round++) {
      const pids = this.pids();
      if (pids.length === 0) break;
      for (const p of pids) {
        try {
          process.kill(p, round === 0 ? 'SIGTERM' : 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      for (let i = 0; i < 30 && this.pids().some((p) => existsSync(`/proc/${p}`) && !readFileSync(`/proc/${p}/stat`, 'utf8').includes(') Z')); i++) {
        spawnSync('sleep', ['0.1']);
      }
    }
    spawnSync('ip', ['netns', 'del', this.name]);
    if (existsSync(this.mountPath)) {
      spawnSync('umount', [this.mountPath]);
      rmSync(this.mountPath, { force: true });
    }
    rmSync(this.uapiDir, { recursive: true, force: true });
  }
}

/** Unmount the per-process mount-namespace root (call once at the end of a test file). */
export function cleanupMntRoot(): void {
  const mounted = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').some((l) => l.split(' ')[4] === MNT);
  if (mounted) spawnSync('umount', [MNT]);
  rmSync(MNT, { recursive: true, force: true });
}

/** A valid WireGuard key pair, base64. */
export function keyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  const d = privateKey.export({ format: 'jwk' }).d!;
  const x = publicKey.export({ format: 'jwk' }).x!;
  return { privateKey: Buffer.from(d, 'base64url').toString('base64'), publicKey: Buffer.from(x, 'base64url').toString('base64') };
}

/** Poll `cond` every 50 ms, at most `ms`. */
export async function waitFor(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (let i = 0; i < Math.ceil(ms / 50); i++) {
    if (cond()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return cond();
}
