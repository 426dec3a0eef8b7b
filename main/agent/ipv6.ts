// Design §20.8: a kernel or network namespace without IPv6 runs the IPv4 half of a dual-stack mesh.
import { readFileSync } from 'node:fs';
import type { Config } from '../flags.js';

/**
 * Whether this process's network namespace carries IPv6: the `ipv6.disable` module parameter is
 * off (host-wide, what §4.6 reads for ip6tables) and the namespace's own
 * `net.ipv6.conf.all.disable_ipv6` is 0 (/proc/sys/net shows the reader's namespace; without
 * /proc/sys/net/ipv6 there is no IPv6 at all).
 */
export function ipv6Usable(read: (path: string) => string = (p) => readFileSync(p, 'utf8')): boolean {
  try {
    if (read('/sys/module/ipv6/parameters/disable').trim() === '1') return false;
  } catch {
    // No module parameter: IPv6 built in; the namespace's sysctl decides.
  }
  try {
    return read('/proc/sys/net/ipv6/conf/all/disable_ipv6').trim() !== '1';
  } catch {
    return false;
  }
}

/**
 * The configuration to run with: an IPv6 `--dual-stack-subnet` on a kernel without IPv6 is
 * dropped with one warning, and the gauge says so (1) or not (0).
 */
export function dualStackConfig(cfg: Config, usable: boolean, warn: (msg: string, fields: Record<string, unknown>) => void, gauge: { set(v: number): void }): Config {
  const off = cfg.dualStackSubnet !== null && cfg.dualStackSubnet.ip.v6 && !usable;
  gauge.set(off ? 1 : 0);
  if (!off) return cfg;
  warn('IPv6 is disabled in this kernel or network namespace: dual stack is off, only the IPv4 half of the mesh runs', { dualStackSubnet: cfg.dualStackSubnet!.s });
  return { ...cfg, dualStackSubnet: null };
}
