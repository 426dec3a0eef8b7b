// The node's WireGuard private key on disk (spec §3.4): read, or generate and persist with mode
// 0600. The key itself is never logged or served; only the public key leaves this module's
// callers.
import { generateKeyPairSync } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { parseKey, publicKeyOf } from '../plan/key.js';

export interface KeyPair {
  privateKey: string;
  publicKey: string;
  /** True when a new key was generated (missing or unparsable file). */
  generated: boolean;
}

const b64 = (u: string) => Buffer.from(u, 'base64url').toString('base64');

/** A fresh Curve25519 key pair (clamping is X25519's, as `wg genkey` does). */
export function generateKeyPair(): { privateKey: string; publicKey: string } {
  const { privateKey, publicKey } = generateKeyPairSync('x25519');
  return { privateKey: b64(privateKey.export({ format: 'jwk' }).d!), publicKey: b64(publicKey.export({ format: 'jwk' }).x!) };
}

export { publicKeyOf };

/**
 * Loads `<dir>/key`, creating `dir` (0700). A missing or unparsable key is replaced by a new one
 * (base64 without newline, 0600, written atomically); other read errors throw.
 */
export function loadOrCreateKey(dir: string): KeyPair {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const file = join(dir, 'key');
  let text: string | null = null;
  try {
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`failed to read private key file ${file}: ${(e as Error).message}`);
  }
  if (text !== null) {
    const key = parseKey(text.replace(/^\n+|\n+$/g, ''));
    if (key) {
      // Tighten a key file left world-readable by something else.
      chmodSync(file, 0o600);
      return { privateKey: key, publicKey: publicKeyOf(key), generated: false };
    }
  }
  const pair = generateKeyPair();
  const tmp = join(dirname(file), `.key.${process.pid}.tmp`);
  writeFileSync(tmp, pair.privateKey, { mode: 0o600 });
  renameSync(tmp, file);
  return { ...pair, generated: true };
}
