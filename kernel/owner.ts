// What marks kernel state as kg's, so that after a restart kg knows its routes and policy rules
// without having kept them in memory.
//
// kg writes every route and rule with the routing protocol KG_PROTO (`ip route … proto 107`,
// `ip rule … protocol 107`). The kernel stores the number and never interprets values above
// RTPROT_STATIC (include/uapi/linux/rtnetlink.h), and `ip -N` prints it as a number, so a host
// file mapping it to a name changes nothing. 107 is in neither the kernel's list (0-4, 8-18, 42,
// 99, 186-189, 192) nor iproute2's /etc/iproute2/rt_protos (Debian 12's rt_protos.d is empty).
// An administrator can name it: `echo "107 kg" > /etc/iproute2/rt_protos.d/kg.conf`. The kernel
// keeps a rule's protocol since Linux 4.17 (FRA_PROTOCOL).
//
// Hardening (departs from Kilo): Go Kilo writes RTPROT_STATIC (4) and its rules with no protocol
// (RTPROT_UNSPEC, 0), and tracks what it made in memory only. kg adopts such routes and rules
// (design §7.7) when it takes a node over: a static route in Kilo's table or at a desired route's
// table and destination, an unspec rule that looks up Kilo's table or equals a desired rule. It
// rewrites them with KG_PROTO. Every other route and rule belongs to someone else and is never
// touched, even through kg's own devices.

/** kg's routing protocol number for routes and policy rules. */
export const KG_PROTO = 107;
/** Go Kilo's routes (and any `ip route add … proto static`). */
export const RTPROT_STATIC = 4;
/** Go Kilo's rules: netlink rules made without a protocol. */
export const RTPROT_UNSPEC = 0;

const NAMES: Record<string, number> = { unspec: 0, redirect: 1, kernel: 2, boot: 3, static: 4 };

/** A protocol as `ip -j` prints it (a number with -N, else a number or a name) → its number; -1 when unknown. */
export function protoNumber(p: unknown): number {
  if (typeof p === 'number') return p;
  if (typeof p !== 'string') return -1;
  if (/^\d+$/.test(p)) return Number(p);
  return NAMES[p] ?? -1;
}
