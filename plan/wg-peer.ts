// A peer as WireGuard holds it, apart from wireguard.ts so that the per-segment memo (memo.ts)
// can name it without importing the configurations that use the memo.
import type { CIDR } from './addr.js';
import type { Endpoint } from './endpoint.js';

/** Secrets stay in this internal form; JSON shows presence only. */
export interface WGPeer {
  publicKey: string;
  endpoint: Endpoint | null;
  allowedIPs: CIDR[];
  persistentKeepalive: number;
  presharedKey: string | null;
}
