// The small dual-stack cluster of test/plan/dual.test.ts (design §20), shared with the dataplane test.
import type { NodeObject } from '../../plan/node.js';
import { key, NOW } from './fixture.js';

function dualNode(name: string, i: number, loc: string, pods: string[], internal: string, internal6: string | null): NodeObject {
  const ann: Record<string, string> = {
    'kilo.squat.ai/endpoint': `10.1.0.${i}:51820`, 'kilo.squat.ai/key': key(i), 'kilo.squat.ai/last-seen': String(NOW),
    'kilo.squat.ai/location': loc, 'kilo.squat.ai/internal-ip': internal,
  };
  if (internal6) ann['kilo.squat.ai/dual-stack-internal-ip'] = internal6;
  return { metadata: { name, annotations: ann }, spec: { podCIDR: pods[0], podCIDRs: pods } };
}

export function dualNodes(): NodeObject[] {
  return [
    dualNode('a', 1, '1', ['10.2.1.0/24', 'fd10:0:0:1::/64'], '192.168.0.1/24', 'fd00:1::1/64'),
    dualNode('b', 2, '1', ['10.2.2.0/24', 'fd10:0:0:2::/64'], '192.168.0.2/24', 'fd00:1::2/64'),
    dualNode('c', 3, '2', ['10.2.3.0/24', 'fd10:0:0:3::/64'], '192.168.1.3/24', 'fd00:2::3/64'),
    dualNode('d', 4, '2', ['10.2.4.0/24', 'fd10:0:0:4::/64'], '192.168.1.4/24', null),
  ];
}
