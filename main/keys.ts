// The node's WireGuard private key on disk (design §3.4): read, or generate and persist with mode
// 0600. The key itself is never logged or served; only the public key leaves this module's
// callers. Nothing this module throws or reports carries the file's content: errors name the
// path, the size and the system call, and parseKey only answers yes or no.
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, closeSync, constants, existsSync, fstatSync, fsyncSync, mkdirSync, openSync, readdirSync, readSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseKey, publicKeyOf } from '../plan/key.js';
import type { Logger } from './log.js';

export interface KeyPair {
  privateKey: string;
  publicKey: string;
  /** True when a new key was generated (missing or unparsable file). */
  generated: boolean;
}

export interface LoadedKey extends KeyPair {
  /** Where an unparsable key file was moved (never deleted, never overwritten), or null. */
  keptAside: string | null;
  /** Size in bytes of the unparsable file; its content is never reported. */
  invalidBytes: number;
  /** Temporary files of an interrupted write, removed. */
  removedTemp: string[];
}

export type KeyFileProblem = 'invalid' | 'leftover_temp';

/** A key file is 44 characters and perhaps newlines; anything much larger is not one, and is not read. */
const MAX_KEY_FILE_BYTES = 4096;
const TEMP = '.key.tmp';
/** The temporary file of this version, and `.key.<pid>.tmp` of earlier ones. */
const TEMP_RE = /^\.key\.(\d+\.)?tmp$/;

const b64 = (u: string) => Buffer.from(u, 'base64url').toString('base64');

/** A fresh Curve25519 key pair (clamping is X25519's, as `wg genkey` does). */
export function generateKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: b64(privateKey.export({ format: 'jwk' }).d!), publicKey: b64(publicKey.export({ format: 'jwk' }).x!) };
}

export { publicKeyOf };

const fsMessage = (e: unknown) => (e as Error).message;

/** The file's text, or null when it does not exist; at most MAX_KEY_FILE_BYTES + 1 bytes are read. */
function readKeyFile(file: string): { text: string; bytes: number } | null {
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO planted as the key file must not hang the start.
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw new Error(`failed to read private key file ${file}: ${fsMessage(e)}`);
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) throw new Error('not a regular file');
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let n = 0;
    for (let r = 1; r > 0 && n < buf.length; n += r) r = readSync(fd, buf, n, buf.length - n, null);
    return { text: buf.toString('utf8', 0, n), bytes: n > MAX_KEY_FILE_BYTES ? st.size : n };
  } catch (e) {
    throw new Error(`failed to read private key file ${file}: ${fsMessage(e)}`);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Renames `file` to `key.invalid-<unix time>[-n]` beside it, never over an existing file. */
function keepAside(file: string, dir: string): string {
  const t = Math.floor(Date.now() / 1000);
  for (let n = 0; n < 100; n++) {
    const aside = join(dir, `key.invalid-${t}${n === 0 ? '' : `-${n}`}`);
    if (existsSync(aside)) continue;
    try {
      renameSync(file, aside);
    } catch (e) {
      throw new Error(`the private key file ${file} does not parse and could not be kept aside as ${aside}: ${fsMessage(e)}; refusing to replace it`);
    }
    return aside;
  }
  throw new Error(`the private key file ${file} does not parse and no free name was left to keep it aside; refusing to replace it`);
}

/**
 * Writes the key as `<dir>/key` whole or not at all: a new temporary file (O_EXCL, 0600), write,
 * fsync, close, rename over the key, fsync the directory. On failure the temporary file is
 * removed; after a crash it is what remains, and the next start removes it.
 */
function writeKeyFile(dir: string, file: string, key: string): void {
  const tmp = join(dir, TEMP);
  let renamed = false;
  try {
    const fd = openSync(tmp, 'wx', 0o600);
    try {
      writeFileSync(fd, key);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    renamed = true;
    fsyncDir(dir);
  } catch (e) {
    throw new Error(`failed to write private key file ${file}: ${fsMessage(e)}`);
  } finally {
    if (!renamed) rmSync(tmp, { force: true });
  }
}

/**
 * Loads `<dir>/key`, creating `dir` (0700). A missing key is generated; an unparsable one is kept
 * aside and a new one generated (base64 without newline, 0600, written atomically and durably);
 * other read errors throw.
 */
export function loadOrCreateKey(dir: string): LoadedKey {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    // Hardening (departs from Kilo): MkdirAll leaves an existing directory's mode as it is; the
    // directory holds the private key and its aside copies, so it is tightened every start.
    chmodSync(dir, 0o700);
  } catch (e) {
    throw new Error(`failed to create directory ${dir}: ${fsMessage(e)}`);
  }
  const removedTemp: string[] = [];
  for (const name of readdirSync(dir)) {
    if (!TEMP_RE.test(name)) continue;
    try {
      rmSync(join(dir, name), { force: true });
    } catch (e) {
      throw new Error(`failed to remove the temporary key file ${join(dir, name)}: ${fsMessage(e)}`);
    }
    removedTemp.push(join(dir, name));
  }
  const file = join(dir, 'key');
  const read = readKeyFile(file);
  let keptAside: string | null = null;
  if (read !== null) {
    const key = read.bytes > MAX_KEY_FILE_BYTES ? null : parseKey(read.text.replace(/^\n+|\n+$/g, ''));
    if (key) {
      // Tighten a key file left readable by others.
      chmodSync(file, 0o600);
      return { privateKey: key, publicKey: publicKeyOf(key), generated: false, keptAside, invalidBytes: 0, removedTemp };
    }
    // Hardening (departs from Kilo): Kilo overwrites an unparsable key file. It is kept aside
    // instead (an operator may want the old key back) and a new key is generated, as in Kilo, so
    // the node stays in the mesh: its new public key is published and the peers follow.
    keptAside = keepAside(file, dir);
  }
  const pair = generateKeyPair();
  writeKeyFile(dir, file, pair.privateKey);
  return { ...pair, generated: true, keptAside, invalidBytes: read?.bytes ?? 0, removedTemp };
}

/** loadOrCreateKey for the agent's start: what it found is logged (never the key) and counted. */
export function loadNodeKey(dir: string, log: Logger, count: (problem: KeyFileProblem) => void): KeyPair {
  const k = loadOrCreateKey(dir);
  for (const file of k.removedTemp) {
    log.warn('removed a temporary key file left by an interrupted write', { file });
    count('leftover_temp');
  }
  if (k.keptAside) {
    log.error('the private key file does not parse; kept it aside and generated a new key: this node publishes a new public key', { file: join(dir, 'key'), keptAs: k.keptAside, bytes: k.invalidBytes });
    count('invalid');
  } else if (k.generated) log.warn('no private key found; generated a new one', { dir });
  return { privateKey: k.privateKey, publicKey: k.publicKey, generated: k.generated };
}
