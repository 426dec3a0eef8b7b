// WireGuard reconciler: the interface (kernel link, or wireguard-go when the kernel has no
// WireGuard), its MTU/address/up state, and its peers as deltas (UAPI for userspace, `wg set` for
// the kernel). Never replaces all peers.

import { publicKeyOf } from '../plan/key.js';
import net from 'node:net';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import type { DesiredPeer, DesiredWireGuard, ObservedState, ReconcilerError, ReconcilerReport, WireGuardMode } from '../ipc/dataplane.js';
import { b64ToHex, checkPeer, isWgKey, parseUapiGet, parseWgDump, renderUapiSets, renderWgSet, hexToB64, ZERO_HEX, type DeviceDelta, type DeviceState } from '../kernel/uapi.js';
import { diffDevice, isEmptyDelta, shareDesired } from '../diff/wireguard.js';
import { canonicalCIDR, isInt, show } from '../kernel/input-checks.js';
import type { Exec } from './exec.js';
import { checkWantedLink, detectMtu, linkAfter, planLink, readLink, type LinkInfo, type WantedLink } from './link.js';
import { newReport, Rejections } from './report.js';

/** wireguard-go answers a set it cannot parse with errno=-22 (EINVAL): the same input always fails. */
const UAPI_EINVAL = -22;

/** The outcome of one write of a delta: ok, or a failure that is `permanent` (EINVAL) or not. */
type SetOutcome = { ok: true; batches: number } | { ok: false; batches: number; permanent: boolean; message: string };

/** What identifies a desired peer's content (a refused peer is retried once this changes). */
function peerSig(p: DesiredPeer): string {
  return JSON.stringify([p.endpoint, p.allowedIPs, p.persistentKeepalive, p.presharedKeySecret ?? null]);
}

function deltaWrites(d: DeviceDelta): number {
  return d.peers.length + (d.privateKeyHex !== undefined ? 1 : 0) + (d.listenPort !== undefined ? 1 : 0);
}

/** Send one UAPI request and read the reply (up to the blank line after `errno=`). */
export function uapiRequest(socketPath: string, request: string, timeoutMs = 10_000): Promise<string> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    const chunks: string[] = [];
    let tail = '';
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`UAPI ${socketPath}: timeout`));
    }, timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (d: string) => {
      chunks.push(d);
      tail = (tail + d).slice(-64);
      if (/errno=-?\d+\n\n$/.test(tail)) {
        clearTimeout(timer);
        sock.end();
        resolve(chunks.join(''));
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`UAPI ${socketPath}: ${e.message}`));
    });
    sock.on('close', () => {
      clearTimeout(timer);
      const all = chunks.join('');
      if (/errno=-?\d+\n\n$/.test(all)) resolve(all);
      else reject(new Error(`UAPI ${socketPath}: connection closed early`));
    });
  });
}

/**
 * Send UAPI `set` messages one after the other on one connection, each in one write and only once
 * the previous one was answered (so that a writer killed meanwhile leaves no partial message);
 * stop at the first errno other than 0. Returns how many were answered and the last errno.
 */
export function uapiSets(socketPath: string, messages: readonly string[], timeoutMs = 60_000): Promise<{ sent: number; errno: number }> {
  if (messages.length === 0) return Promise.resolve({ sent: 0, errno: 0 });
  return new Promise((resolve, reject) => {
    const sock = net.connect(socketPath);
    let sent = 0;
    let buf = '';
    let settled = false;
    let timer: NodeJS.Timeout | null = null;
    const finish = (err: Error | null, errno = 0): void => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      sock.end();
      if (err) reject(err);
      else resolve({ sent, errno });
    };
    const next = (): void => {
      if (timer) clearTimeout(timer);
      timer = setTimeout(() => {
        sock.destroy();
        finish(new Error(`UAPI ${socketPath}: timeout`));
      }, timeoutMs);
      sock.write(messages[sent]);
    };
    sock.setEncoding('utf8');
    sock.on('connect', next);
    sock.on('data', (d: string) => {
      buf += d;
      const m = /errno=(-?\d+)\n\n/.exec(buf);
      if (m === null) return;
      buf = buf.slice(m.index + m[0].length);
      sent++;
      const errno = Number(m[1]);
      if (errno !== 0 || sent === messages.length) finish(null, errno);
      else next();
    });
    sock.on('error', (e) => finish(new Error(`UAPI ${socketPath}: ${e.message}`)));
    sock.on('close', () => finish(new Error(`UAPI ${socketPath}: connection closed early`)));
  });
}

export type ModeDecision =
  | { action: 'adopt'; mode: 'kernel' | 'userspace' }
  | { action: 'create-kernel' }
  | { action: 'spawn-userspace'; reason: string }
  | { action: 'fail'; reason: string };

/**
 * Which WireGuard implementation to use. `kernelAdd` is the outcome of `ip link add … type
 * wireguard` (undefined = not tried yet).
 */
export function decideMode(input: {
  link: LinkInfo;
  socketExists: boolean;
  createInterface: boolean;
  mode: WireGuardMode;
  kernelAdd?: { ok: boolean; stderr: string };
}): ModeDecision {
  const { link, socketExists, createInterface, mode } = input;
  if (link.exists) {
    if (link.kind === 'wireguard') return { action: 'adopt', mode: 'kernel' };
    if (socketExists) return { action: 'adopt', mode: 'userspace' };
    return { action: 'fail', reason: `link exists but is neither a kernel WireGuard link nor has a UAPI socket (kind ${link.kind ?? 'unknown'})` };
  }
  if (!createInterface) return { action: 'fail', reason: 'interface does not exist and --create-interface=false' };
  if (mode === 'userspace') return { action: 'spawn-userspace', reason: 'userspace mode requested' };
  if (input.kernelAdd === undefined) return { action: 'create-kernel' };
  if (input.kernelAdd.ok) return { action: 'adopt', mode: 'kernel' };
  const unsupported = /Unknown device type|not supported|EOPNOTSUPP/i.test(input.kernelAdd.stderr);
  if (unsupported && mode === 'auto') return { action: 'spawn-userspace', reason: `kernel has no WireGuard (${input.kernelAdd.stderr.trim()})` };
  return { action: 'fail', reason: `ip link add type wireguard: ${input.kernelAdd.stderr.trim()}` };
}

function applyDeviceDelta(state: DeviceState, d: DeviceDelta): void {
  if (d.privateKeyHex !== undefined) state.privateKeyHex = d.privateKeyHex;
  if (d.listenPort !== undefined) state.listenPort = d.listenPort;
  for (const p of d.peers) {
    if (p.remove) {
      state.peers.delete(p.publicKey);
      continue;
    }
    let cur = state.peers.get(p.publicKey);
    if (!cur) {
      cur = { publicKey: p.publicKey, endpoint: null, allowedIPs: [], persistentKeepalive: 0, presharedKeyHex: ZERO_HEX, lastHandshake: 0, rxBytes: 0, txBytes: 0 };
      state.peers.set(p.publicKey, cur);
    }
    if (p.endpoint !== undefined) cur.endpoint = p.endpoint;
    if (p.persistentKeepalive !== undefined) cur.persistentKeepalive = p.persistentKeepalive;
    if (p.presharedKeyHex !== undefined) cur.presharedKeyHex = p.presharedKeyHex;
    if (p.replaceAllowedIPs !== undefined) cur.allowedIPs = [...p.replaceAllowedIPs];
    if (p.addAllowedIPs !== undefined) cur.allowedIPs.push(...p.addAllowedIPs);
  }
}

export interface WireGuardOptions {
  interface: string;
  createInterface: boolean;
  mode: WireGuardMode;
  wireguardGo: string;
  uapiDir: string;
}

export class WireGuardReconciler {
  private mode: 'kernel' | 'userspace' | null = null;
  private child: ChildProcess | null = null;
  private ownedPid: number | null = null;
  private device: DeviceState | null = null;
  private link: LinkInfo | null = null;
  private lastEndpoints = new Map<string, string | null>();
  private desired: DesiredWireGuard | null = null;
  private hasDesired = false;
  private autoMtu: number | null = null;
  /** Keys of desired peers that failed their check in a way that leaves the device's peer as it is. */
  private held = new Set<string>();
  /** Peers the device refused for good (EINVAL alone): key → the desired content refused. */
  private refused = new Map<string, string>();
  private readonly pending = new Rejections('wireguard');
  /** The desired head / link last warned about (warnings once per desired change). */
  private warnedHead: string | null = null;
  private warnedLink: string | null = null;
  /** Called when wireguard-go exits on its own (the worker schedules a repair). */
  onLost: () => void = () => {};

  constructor(
    private readonly exec: Exec,
    private readonly opts: WireGuardOptions,
  ) {}

  get socketPath(): string {
    return join(this.opts.uapiDir, `${this.opts.interface}.sock`);
  }

  /** Desired peers by public key (the order of the plan does not matter to the device). */
  private peers = new Map<string, DesiredPeer>();
  /** Peer keys to look at in the next pass; null = all. */
  private dirty: Set<string> | null = null;

  /** Take in one desired peer, checked (kernel/uapi.ts checkPeer): what is dropped or clamped is reported with the next pass. */
  private takePeer(p: DesiredPeer): void {
    const c = checkPeer(p);
    for (const pr of c.problems) this.pending.add(`peer ${show(p?.publicKey)}`, pr.message, pr.reason);
    if (c.peer === null) {
      if (c.hold) this.held.add(p.publicKey);
      return;
    }
    this.held.delete(c.peer.publicKey);
    this.peers.set(c.peer.publicKey, c.peer);
  }

  setDesired(d: DesiredWireGuard | null): void {
    // the peers live in this.peers (checked); the head alone is kept here
    this.desired = d === null ? null : { ...d, peers: [] };
    this.hasDesired = true;
    this.peers = new Map();
    this.held.clear();
    for (const p of d?.peers ?? []) this.takePeer(p);
    for (const k of this.refused.keys()) if (!this.peers.has(k)) this.refused.delete(k);
    this.dirty = null;
  }

  /** Incremental update: a new head (keys, port, MTU, address; null = non-leader), the public keys of the peers that went, the peers that came. */
  patch(head: Omit<DesiredWireGuard, 'peers'> | null, removed: readonly unknown[], added: readonly DesiredPeer[]): void {
    this.hasDesired = true;
    for (const k of removed) {
      if (typeof k !== 'string') continue;
      this.peers.delete(k);
      this.held.delete(k);
      this.refused.delete(k);
      this.dirty?.add(k);
    }
    for (const p of added) {
      this.takePeer(p);
      this.dirty?.add(p.publicKey);
    }
    // the peers live in this.peers; the head alone is kept in this.desired
    this.desired = head === null ? null : { ...head, peers: [] };
  }

  private desiredPeers(): DesiredPeer[] {
    return [...this.peers.values()];
  }

  invalidate(): void {
    this.device = null;
    this.link = null;
    this.dirty = null;
  }

  getMode(): 'kernel' | 'userspace' | null {
    return this.mode;
  }

  /** Make sure the interface exists; returns the mode in use. */
  async ensureInterface(): Promise<'kernel' | 'userspace'> {
    const link = await readLink(this.exec, this.opts.interface);
    const base = { link, socketExists: existsSync(this.socketPath), createInterface: this.opts.createInterface, mode: this.opts.mode };
    let d = decideMode(base);
    if (d.action === 'create-kernel') {
      const r = await this.exec.run('ip', ['link', 'add', this.opts.interface, 'type', 'wireguard']);
      d = decideMode({ ...base, kernelAdd: { ok: r.code === 0, stderr: r.stderr } });
    }
    if (d.action === 'fail') throw new Error(d.reason);
    if (d.action === 'adopt') {
      this.mode = d.mode;
      return d.mode;
    }
    await this.spawnUserspace();
    this.mode = 'userspace';
    return 'userspace';
  }

  private async spawnUserspace(): Promise<void> {
    const child = this.exec.spawnLong(this.opts.wireguardGo, ['-f', this.opts.interface], { ...process.env, LOG_LEVEL: 'error' });
    let exited = false;
    let stderr = '';
    child.stderr?.on('data', (b: Buffer) => (stderr = (stderr + b.toString()).slice(-2000)));
    child.stdout?.on('data', () => {});
    child.on('error', (e) => {
      exited = true;
      stderr += e.message;
    });
    child.on('exit', () => {
      exited = true;
      if (this.child === child) {
        this.child = null;
        this.ownedPid = null;
        this.mode = null;
        this.invalidate();
        this.onLost();
      }
    });
    this.child = child;
    this.ownedPid = child.pid ?? null;
    // bounded wait (5 s) until the UAPI socket answers (a stale socket file may already exist)
    for (let i = 0; i < 100 && !exited; i++) {
      if (existsSync(this.socketPath)) {
        try {
          await uapiRequest(this.socketPath, 'get=1\n\n', 1000);
          return;
        } catch {
          /* not listening yet */
        }
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (!exited) child.kill('SIGTERM');
    throw new Error(`wireguard-go did not come up for ${this.opts.interface}: ${stderr.trim() || 'no UAPI socket'}`);
  }

  async readDevice(): Promise<DeviceState> {
    if (this.mode === 'userspace') {
      const { state, errno } = parseUapiGet(await uapiRequest(this.socketPath, 'get=1\n\n'));
      if (errno !== 0) throw new Error(`UAPI get: errno=${errno}`);
      return state;
    }
    const r = await this.exec.run('wg', ['show', this.opts.interface, 'dump']);
    if (r.code !== 0) throw new Error(`wg show dump: ${r.stderr.trim()}`);
    return parseWgDump(r.stdout);
  }

  /**
   * Write a delta: UAPI messages of bounded size, one after the other (userspace), or `wg set` in
   * chunks (kernel). Stops at the first failure; what was written before it stays written.
   */
  private async trySet(delta: DeviceDelta, peers: readonly DesiredPeer[]): Promise<SetOutcome> {
    if (this.mode === 'userspace') {
      const r = await uapiSets(this.socketPath, renderUapiSets(delta));
      if (r.errno !== 0) return { ok: false, batches: r.sent, permanent: r.errno === UAPI_EINVAL, message: `UAPI set: errno=${r.errno}` };
      return { ok: true, batches: r.sent };
    }
    const allowed = new Map(peers.map((p) => [p.publicKey, p.allowedIPs.map(canonicalCIDR)]));
    const { args, secrets } = renderWgSet(this.opts.interface, delta, allowed);
    let batches = 0;
    for (const a of args) {
      const used: string[] = [];
      const argv = a.map((x) => {
        const m = /^@secret(\d+)$/.exec(x);
        if (!m) return x;
        used.push(secrets[Number(m[1])]);
        return `/dev/fd/${2 + used.length}`;
      });
      // Secrets go through pipes, never argv or files: a truncated key is not a key, and wg refuses it.
      const r = await this.exec.run('wg', argv, undefined, used);
      batches++;
      if (r.code !== 0) return { ok: false, batches, permanent: /Invalid argument/i.test(r.stderr), message: `wg set: ${r.stderr.trim()}` };
    }
    return { ok: true, batches };
  }

  /**
   * Write `d` after a failed set: the whole part, else each half in turn, down to the peers that
   * fail alone. A peer the device refuses alone with EINVAL is refused for good (reported, not
   * retried until it changes); the others are written. Any other failure stops here (transient).
   */
  private async bisect(d: DeviceDelta, peers: readonly DesiredPeer[], report: ReconcilerReport): Promise<boolean> {
    if (isEmptyDelta(d)) return true;
    const r = await this.trySet(d, peers);
    report.batches += r.batches;
    if (r.ok) {
      applyDeviceDelta(this.device!, d);
      report.writes += deltaWrites(d);
      return true;
    }
    if (d.peers.length === 1 && d.privateKeyHex === undefined && d.listenPort === undefined && r.permanent) {
      const key = d.peers[0].publicKey;
      const want = this.peers.get(key);
      if (want !== undefined) this.refused.set(key, peerSig(want));
      report.rejected.push({ kind: 'wireguard', item: `peer ${key}`, message: `${r.message} (not retried until the peer changes)`, reason: 'refused' });
      return true;
    }
    if (d.peers.length <= 1 || !r.permanent) {
      const item = d.peers.length === 0 ? `${this.opts.interface} (private key, listen port)` : d.peers.length === 1 ? `peer ${d.peers[0].publicKey}` : 'peers';
      report.errors.push({ kind: 'wireguard', item, message: r.message });
      return false;
    }
    const mid = d.peers.length >> 1;
    const first = await this.bisect({ peers: d.peers.slice(0, mid) }, peers, report);
    return (await this.bisect({ peers: d.peers.slice(mid) }, peers, report)) && first;
  }

  /** Link MTU, address and up/down, one ip -batch. `--mtu=auto` is re-detected on re-reading passes. */
  private async reconcileLink(desired: DesiredWireGuard | null, reread: boolean, report: ReconcilerReport): Promise<void> {
    const link = reread || this.link === null ? await readLink(this.exec, this.opts.interface) : this.link;
    let want: WantedLink;
    if (desired === null) {
      if (!link.exists) return;
      want = { mtu: null, address: null, up: false };
    } else {
      if (desired.mtu === 0 && (reread || this.autoMtu === null)) this.autoMtu = await detectMtu(this.exec);
      want = { mtu: desired.mtu > 0 ? desired.mtu : this.autoMtu, address: desired.address, ...(desired.address2 ? { address2: desired.address2 } : {}), up: true };
    }
    const checked = checkWantedLink(this.opts.interface, want);
    const warnId = JSON.stringify([this.opts.interface, want]);
    if (checked.problems.length > 0 && this.warnedLink !== warnId) {
      for (const p of checked.problems) report.rejected.push({ kind: 'link', item: this.opts.interface, message: p.message, reason: p.reason });
    }
    this.warnedLink = warnId;
    if (checked.want === null) return;
    want = checked.want;
    const lines = planLink(link, this.opts.interface, want);
    if (lines.length > 0) {
      const r = await this.exec.batch('ip', ['-force', '-batch', '-'], lines);
      report.batches++;
      if (r.code !== 0) {
        this.link = null;
        report.errors.push({ kind: 'link', item: this.opts.interface, message: r.stderr.trim() });
        return;
      }
      report.writes += lines.length;
    }
    this.link = linkAfter(link, want);
  }

  /** Bring the device up ahead of any desired state (Dataplane.prepare): created or adopted, its link and peers read, `--mtu=auto` detected. */
  async prepare(): Promise<void> {
    if (this.mode !== null) return;
    const mtu = detectMtu(this.exec).then((m) => (this.autoMtu ??= m));
    await this.ensureInterface();
    // the device's peers too: the first pass diffs against them without a read of its own
    const [link, device] = await Promise.all([readLink(this.exec, this.opts.interface), this.readDevice().catch(() => null)]);
    this.link = link;
    this.device ??= device;
    await mtu;
  }

  /**
   * One pass: the interface (created/adopted), then its link (MTU, address, up/down) and its
   * peers side by side (neither needs the other). `alongside` (e.g. the route pass) starts once
   * the link step is over, whatever failed, and runs exactly once: routes through the link need
   * the link, not its peers. The pass returns when both are done.
   */
  async reconcile(reread: boolean, alongside?: () => Promise<void> | void): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report = newReport('wireguard');
    this.pending.drain(report);
    let side: Promise<void> | null = null;
    const startSide = (): Promise<void> => (side ??= (async () => alongside?.())());
    const desired = this.desired;
    try {
      if (!this.hasDesired) return report;
      if (desired === null) {
        // non-leader: link down, configuration left as it is (design §6.5.4)
        await this.reconcileLink(null, reread, report);
      } else {
        if (this.mode === null || reread) await this.ensureInterface();
        const link = this.reconcileLink(desired, reread, report).finally(() => void startSide()); // not waiting for it
        const done = await Promise.allSettled([link, this.reconcilePeers(desired, reread, report)]);
        for (const d of done) if (d.status === 'rejected') throw d.reason;
      }
    } catch (e) {
      report.errors.push({ kind: 'wireguard', item: this.opts.interface, message: (e as Error).message ?? String(e) });
      this.invalidate();
      if (desired !== null) this.mode = null;
    } finally {
      report.durationMs = performance.now() - t0; // our own work, not the side pass
      await startSide();
    }
    return report;
  }

  /**
   * The device head to write, or null when the private key is not a key (nothing can be written;
   * said once per desired change, without the key). A listen port outside 1-65535 is left out.
   */
  private head(desired: DesiredWireGuard, report: ReconcilerReport): { privateKeyHex: string; listenPort?: number } | null {
    const id = `${isWgKey(desired.privateKey)}|${desired.listenPort}`; // what the warnings depend on (never the key)
    const warn = this.warnedHead !== id;
    this.warnedHead = id;
    if (!isWgKey(desired.privateKey)) {
      if (warn) report.rejected.push({ kind: 'wireguard', item: this.opts.interface, message: 'the private key is not a WireGuard key: the device is left as it is', reason: 'invalid' });
      return null;
    }
    if (isInt(desired.listenPort, 1, 65535)) return { privateKeyHex: b64ToHex(desired.privateKey), listenPort: desired.listenPort };
    if (warn) report.rejected.push({ kind: 'wireguard', item: this.opts.interface, message: `listen port ${show(desired.listenPort)} is outside 1-65535: the device keeps its port`, reason: 'invalid' });
    return { privateKeyHex: b64ToHex(desired.privateKey) };
  }

  /** Leave out of a delta the peers that must not be written now: held, or refused with the same content. */
  private writable(delta: DeviceDelta): DeviceDelta {
    if (this.held.size === 0 && this.refused.size === 0) return delta;
    const skip = (key: string): boolean => {
      if (this.held.has(key)) return true;
      const sig = this.refused.get(key);
      if (sig === undefined) return false;
      const want = this.peers.get(key);
      if (want !== undefined && peerSig(want) === sig) return true;
      this.refused.delete(key); // the peer changed: try it again
      return false;
    };
    return { ...delta, peers: delta.peers.filter((p) => !skip(p.publicKey)) };
  }

  private async reconcilePeers(desired: DesiredWireGuard, reread: boolean, report: ReconcilerReport): Promise<void> {
    const head = this.head(desired, report);
    if (head === null) return;
    if (this.device === null || reread) {
      this.device = await this.readDevice();
      shareDesired(this.device, this.peers);
      report.read = true;
    }
    let base = this.device;
    let touched: DesiredPeer[];
    if (this.dirty !== null && !report.read) {
      // only the peers that changed since the last pass
      base = { ...this.device, peers: new Map() };
      touched = [];
      for (const k of this.dirty) {
        const have = this.device.peers.get(k);
        if (have) base.peers.set(k, have);
        const want = this.peers.get(k);
        if (want) touched.push(want);
      }
    } else touched = this.desiredPeers();
    const delta = this.writable(diffDevice(base, { ...head, peers: touched }, this.lastEndpoints));
    this.dirty = new Set();
    if (!isEmptyDelta(delta)) {
      try {
        const r = await this.trySet(delta, touched);
        report.batches += r.batches;
        if (r.ok) {
          report.writes += deltaWrites(delta);
          applyDeviceDelta(this.device, delta);
        } else {
          // Part of it may be written (wireguard-go applies line by line): read the device again,
          // then write the head and the peers in halves until each failing peer stands alone.
          this.device = await this.readDevice();
          report.read = true;
          const fresh = this.writable(diffDevice(this.device, { ...head, peers: this.desiredPeers() }, this.lastEndpoints));
          // a head that fails (a listen port in use) does not keep the peers from being written
          const headOk = await this.bisect({ privateKeyHex: fresh.privateKeyHex, listenPort: fresh.listenPort, peers: [] }, [], report);
          const peersOk = await this.bisect({ peers: fresh.peers }, this.desiredPeers(), report);
          if (!headOk || !peersOk) {
            this.device = null;
            this.dirty = null;
          }
        }
        for (const p of delta.peers) if (p.remove) this.lastEndpoints.delete(p.publicKey);
      } catch (e) {
        report.errors.push({ kind: 'wireguard', item: 'peers', message: (e as Error).message ?? String(e) });
        this.device = null;
        this.dirty = null;
      }
    }
    // checked peers (takePeer) carry canonical endpoints: the same string, not a second one per peer
    for (const p of touched) this.lastEndpoints.set(p.publicKey, p.endpoint ?? null);
  }

  async observe(): Promise<ObservedState> {
    const link = await readLink(this.exec, this.opts.interface);
    const base: ObservedState = { interface: this.opts.interface, mode: this.mode, ownedPid: this.ownedPid, up: link.up, mtu: link.mtu, listenPort: 0, publicKey: null, peers: [] };
    if (!link.exists) return base;
    if (this.mode === null) {
      if (link.kind === 'wireguard') this.mode = 'kernel';
      else if (existsSync(this.socketPath)) this.mode = 'userspace';
      else return base;
      base.mode = this.mode;
    }
    const dev = await this.readDevice();
    base.listenPort = dev.listenPort;
    base.publicKey = dev.privateKeyHex ? publicKeyOf(hexToB64(dev.privateKeyHex)) : null;
    base.peers = [...dev.peers.values()].map((p) => ({
      publicKey: p.publicKey,
      endpoint: p.endpoint,
      allowedIPs: p.allowedIPs,
      persistentKeepalive: p.persistentKeepalive,
      lastHandshake: p.lastHandshake,
      rxBytes: p.rxBytes,
      txBytes: p.txBytes,
    }));
    return base;
  }

  /** --clean-up-interface: delete the link (wireguard-go exits with it; we make sure). */
  async cleanUp(deleteInterface: boolean): Promise<ReconcilerReport> {
    const t0 = performance.now();
    const report = newReport('link');
    report.read = true;
    if (deleteInterface) {
      const link = await readLink(this.exec, this.opts.interface);
      if (link.exists) {
        const r = await this.exec.run('ip', ['link', 'del', this.opts.interface]);
        report.batches++;
        if (r.code !== 0) report.errors.push({ kind: 'link', item: this.opts.interface, message: r.stderr.trim() } satisfies ReconcilerError);
        else report.writes++;
      }
      await this.stopChild();
      this.mode = null;
      this.invalidate();
    }
    report.durationMs = performance.now() - t0;
    return report;
  }

  /** Stop the wireguard-go we spawned (bounded wait), e.g. on --clean-up-interface. */
  async stopChild(): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null) return;
    this.child = null;
    this.ownedPid = null;
    const done = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 3000);
    await done;
    clearTimeout(t);
  }

  getOwnedPid(): number | null {
    return this.ownedPid;
  }
}
