// A tiny X.509 issuer (DER by hand, ECDSA P-256) so the simulator can serve HTTPS with a CA the
// clients verify, without an openssl binary or an npm dependency.
import { createECDH, createHash, createPrivateKey, createPublicKey, randomBytes, sign, type KeyObject } from 'node:crypto';

function len(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  while (n > 0) {
    bytes.unshift(n & 0xff);
    n >>= 8;
  }
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
function tlv(tag: number, ...content: Buffer[]): Buffer {
  const body = Buffer.concat(content);
  return Buffer.concat([Buffer.from([tag]), len(body.length), body]);
}
const seq = (...c: Buffer[]) => tlv(0x30, ...c);
const set = (...c: Buffer[]) => tlv(0x31, ...c);
const octets = (b: Buffer) => tlv(0x04, b);
const bits = (b: Buffer, unused = 0) => tlv(0x03, Buffer.from([unused]), b);
const bool = (v: boolean) => tlv(0x01, Buffer.from([v ? 0xff : 0]));
const explicit = (n: number, c: Buffer) => tlv(0xa0 + n, c);
export function derInteger(b: Buffer): Buffer {
  // Positive INTEGER in minimal DER: drop redundant leading zero bytes (a random serial that
  // starts with 0x00 made OpenSSL reject one certificate in ~128 with "illegal padding"), then
  // prepend a zero byte if the high bit is set.
  let i = 0;
  while (i < b.length - 1 && b[i] === 0 && !(b[i + 1] & 0x80)) i++;
  const v = b.subarray(i);
  return tlv(0x02, v[0] & 0x80 ? Buffer.concat([Buffer.from([0]), v]) : v);
}
function oid(s: string): Buffer {
  const parts = s.split('.').map(Number);
  const out = [40 * parts[0] + parts[1]];
  for (const p of parts.slice(2)) {
    const stack = [p & 0x7f];
    let v = p >> 7;
    while (v > 0) {
      stack.unshift((v & 0x7f) | 0x80);
      v >>= 7;
    }
    out.push(...stack);
  }
  return tlv(0x06, Buffer.from(out));
}
function time(d: Date): Buffer {
  const s = d.toISOString().replace(/[-:T]/g, '').slice(2, 14) + 'Z';
  return tlv(0x17, Buffer.from(s)); // UTCTime, valid until 2049
}
function name(cn: string, org?: string): Buffer {
  const rdns = [];
  if (org) rdns.push(set(seq(oid('2.5.4.10'), tlv(0x0c, Buffer.from(org)))));
  rdns.push(set(seq(oid('2.5.4.3'), tlv(0x0c, Buffer.from(cn)))));
  return seq(...rdns);
}
const ext = (id: string, critical: boolean, value: Buffer) => seq(oid(id), ...(critical ? [bool(true)] : []), octets(value));
const ECDSA_SHA256 = seq(oid('1.2.840.10045.4.3.2'));

export interface Issued {
  certPem: string;
  keyPem: string;
  key: KeyObject;
  keyId: Buffer;
  subject: Buffer;
}

interface CertRequest {
  cn: string;
  org?: string;
  ca?: boolean;
  /** 'server' or 'client' extended key usage. */
  usage?: 'server' | 'client';
  ips?: string[];
  dns?: string[];
  issuer?: Issued;
  days?: number;
}

function pem(kind: string, der: Buffer): string {
  const b64 = der.toString('base64').replace(/(.{64})/g, '$1\n').replace(/\n$/, '');
  return `-----BEGIN ${kind}-----\n${b64}\n-----END ${kind}-----\n`;
}

function ipBytes(ip: string): Buffer {
  if (ip.includes(':')) {
    const [head, tail] = ip.split('::');
    const h = head ? head.split(':') : [];
    const t = tail !== undefined ? (tail ? tail.split(':') : []) : [];
    const groups = tail !== undefined ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
    return Buffer.from(groups.flatMap((g) => { const n = parseInt(g, 16); return [n >> 8, n & 0xff]; }));
  }
  return Buffer.from(ip.split('.').map(Number));
}

export function issue(req: CertRequest): Issued {
  // ECDH key generation + SEC1 import instead of generateKeyPairSync (see generate.ts on the
  // Node 20 key-generation-job deadlock).
  const ecdh = createECDH('prime256v1');
  ecdh.generateKeys();
  const sec1 = Buffer.concat([
    Buffer.from('30770201010420', 'hex'),
    ecdh.getPrivateKey().length === 32 ? ecdh.getPrivateKey() : Buffer.concat([Buffer.alloc(32 - ecdh.getPrivateKey().length), ecdh.getPrivateKey()]),
    Buffer.from('a00a06082a8648ce3d030107a144034200', 'hex'),
    ecdh.getPublicKey(),
  ]);
  const privateKey = createPrivateKey({ key: sec1, format: 'der', type: 'sec1' });
  const publicKey = createPublicKey(privateKey);
  const spki = publicKey.export({ type: 'spki', format: 'der' });
  const keyId = createHash('sha1').update(spki).digest();
  const subject = name(req.cn, req.org);
  const now = Date.now();
  const exts: Buffer[] = [];
  if (req.ca) {
    exts.push(ext('2.5.29.19', true, seq(bool(true))));
    exts.push(ext('2.5.29.15', true, bits(Buffer.from([0x06]), 1))); // keyCertSign, cRLSign
  } else {
    exts.push(ext('2.5.29.19', true, seq()));
    exts.push(ext('2.5.29.15', true, bits(Buffer.from([0x80]), 7))); // digitalSignature
    exts.push(ext('2.5.29.37', false, seq(oid(req.usage === 'client' ? '1.3.6.1.5.5.7.3.2' : '1.3.6.1.5.5.7.3.1'))));
  }
  exts.push(ext('2.5.29.14', false, octets(keyId)));
  if (req.issuer) exts.push(ext('2.5.29.35', false, seq(tlv(0x80, req.issuer.keyId))));
  const sans = [...(req.dns ?? []).map((d) => tlv(0x82, Buffer.from(d))), ...(req.ips ?? []).map((ip) => tlv(0x87, ipBytes(ip)))];
  if (sans.length) exts.push(ext('2.5.29.17', false, seq(...sans)));
  const serial = randomBytes(16);
  serial[0] &= 0x7f;
  const tbs = seq(
    explicit(0, derInteger(Buffer.from([2]))),
    derInteger(serial),
    ECDSA_SHA256,
    req.issuer ? req.issuer.subject : subject,
    seq(time(new Date(now - 3600_000)), time(new Date(now + (req.days ?? 3650) * 86400_000))),
    subject,
    spki,
    explicit(3, seq(...exts)),
  );
  const sig = sign('sha256', tbs, req.issuer ? req.issuer.key : privateKey);
  const der = seq(tbs, ECDSA_SHA256, bits(sig));
  return {
    certPem: pem('CERTIFICATE', der),
    keyPem: privateKey.export({ type: 'pkcs8', format: 'pem' }) as string,
    key: privateKey,
    keyId,
    subject,
  };
}

export interface Pki {
  ca: Issued;
  server: Issued;
  client: Issued;
}

/** A CA, a serving certificate for the given addresses and an admin client certificate. */
export function makePki(hosts: { ips?: string[]; dns?: string[] } = {}): Pki {
  const ca = issue({ cn: 'kg-apiserver-sim-ca', ca: true });
  const server = issue({
    cn: 'kube-apiserver',
    usage: 'server',
    ips: hosts.ips ?? ['127.0.0.1', '::1'],
    dns: hosts.dns ?? ['localhost', 'kubernetes', 'kubernetes.default.svc'],
    issuer: ca,
  });
  const client = issue({ cn: 'kubernetes-admin', org: 'system:masters', usage: 'client', issuer: ca });
  return { ca, server, client };
}
