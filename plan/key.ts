import { createPrivateKey, createPublicKey } from 'node:crypto';
// WireGuard keys as Kilo parses them: standard, padded base64 of exactly 32 bytes
// (wgtypes.ParseKey). Go's decoder skips \r and \n; Buffer.from(…, 'base64') would also take
// URL-safe text or missing padding, so the grammar is checked first.
/** /^[A-Za-z0-9+/]{43}=$/, unrolled (a hot path at 5,000 nodes). */
function isKeyText(t: string): boolean {
  if (t.length !== 44 || t.charCodeAt(43) !== 61) return false;
  for (let i = 0; i < 43; i++) {
    const c = t.charCodeAt(i);
    if (!((c >= 65 && c <= 90) || (c >= 97 && c <= 122) || (c >= 48 && c <= 57) || c === 43 || c === 47)) return false;
  }
  return true;
}
const ZERO_KEY = 'A'.repeat(43) + '=';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** The canonical base64 text of a valid non-zero key, or null (Kilo's zero key). */
export function parseKey(s: string | undefined | null): string | null {
  if (typeof s !== 'string') return null;
  const t = s.includes('\n') || s.includes('\r') ? s.replace(/[\r\n]/g, '') : s;
  if (!isKeyText(t)) return null;
  // 43 characters carry 258 bits for 256: when the last one's two spare bits are clear the text
  // is already canonical, and no decoding is needed (the common case, and a hot path).
  const last = B64.indexOf(t[42]);
  const canonical = (last & 3) === 0 ? t : Buffer.from(t, 'base64').toString('base64');
  return canonical === ZERO_KEY ? null : canonical;
}

// PKCS#8 DER header of an X25519 private key; the 32 raw bytes follow it.
const PKCS8_X25519 = Buffer.from('302e020100300506032b656e04220420', 'hex');

/** The base64 public key of a base64 X25519 private key (what `wg pubkey` prints). */
export function publicKeyOf(privateKey: string): string {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_X25519, Buffer.from(privateKey, 'base64')]), format: 'der', type: 'pkcs8' });
  return Buffer.from(createPublicKey(priv).export({ format: 'jwk' }).x!, 'base64url').toString('base64');
}
