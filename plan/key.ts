// WireGuard keys as Kilo parses them: standard, padded base64 of exactly 32 bytes
// (wgtypes.ParseKey). Go's decoder skips \r and \n; Buffer.from(…, 'base64') would also take
// URL-safe text or missing padding, so the grammar is checked first.
const KEY_RE = /^[A-Za-z0-9+/]{43}=$/;
const ZERO_KEY = 'A'.repeat(43) + '=';
const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** The canonical base64 text of a valid non-zero key, or null (Kilo's zero key). */
export function parseKey(s: string | undefined | null): string | null {
  if (typeof s !== 'string') return null;
  const t = s.includes('\n') || s.includes('\r') ? s.replace(/[\r\n]/g, '') : s;
  if (!KEY_RE.test(t)) return null;
  // 43 characters carry 258 bits for 256: when the last one's two spare bits are clear the text
  // is already canonical, and no decoding is needed (the common case, and a hot path).
  const last = B64.indexOf(t[42]);
  const canonical = (last & 3) === 0 ? t : Buffer.from(t, 'base64').toString('base64');
  return canonical === ZERO_KEY ? null : canonical;
}

/** Hex form of a base64 key, as WireGuard's UAPI wants it. */
export function keyHex(base64: string): string {
  return Buffer.from(base64, 'base64').toString('hex');
}
