// The worked example of design §5.10 (alpha, bravo in east; charlie, delta in west; peer laptop).
import { key, nodeObj, NOW, peerObj } from './fixture.js';

export function exampleNodes() {
  const ann = (ep: string, internal: string | null, k: number, extra: Record<string, string> = {}) => ({
    'kilo.squat.ai/endpoint': ep,
    ...(internal ? { 'kilo.squat.ai/internal-ip': internal } : {}),
    'kilo.squat.ai/key': key(k),
    'kilo.squat.ai/last-seen': String(NOW),
    ...extra,
  });
  return [
    nodeObj('alpha', ann('203.0.113.10:51820', '10.0.1.10/24', 1), '10.42.0.0/24', { 'topology.kubernetes.io/region': 'east' }),
    nodeObj('bravo', ann('10.0.1.11:51820', '10.0.1.11/24', 2), '10.42.1.0/24', { 'topology.kubernetes.io/region': 'east' }),
    nodeObj('charlie', ann('198.51.100.7:51820', '172.16.5.4/16', 3, { 'kilo.squat.ai/allowed-location-ips': '172.16.9.0/24' }), '10.42.2.0/24', { 'topology.kubernetes.io/region': 'west' }),
    nodeObj('delta', ann('198.51.100.8:51820', '172.16.5.5/16', 4, { 'kilo.squat.ai/force-internal-ip': '-' }), '10.42.3.0/24', { 'topology.kubernetes.io/region': 'west' }),
  ];
}

export const examplePeers = () => [peerObj('laptop', { allowedIPs: ['10.5.0.1/32'], publicKey: key(9) })];
