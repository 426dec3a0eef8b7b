// WireGuard endpoints (spec §2.1): a resolved UDP address, a DNS `host:port`, or both.
import { hostPort, parseIP, type IP } from './addr.js';
import type { EndpointJSON } from './types.js';

export interface Endpoint {
  /** Resolved address, when known. */
  readonly ip: IP | null;
  readonly port: number;
  /** The whole original `host:port` string of a DNS endpoint, or "". */
  readonly dns: string;
}

const DNS1123_SUBDOMAIN_RE = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
const UINT_RE = /^[0-9]+$/;

export function isDNS1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN_RE.test(s);
}

/** Go's net.SplitHostPort. Returns null where Go returns an error. */
export function splitHostPort(s: string): { host: string; port: string } | null {
  const i = s.lastIndexOf(':');
  if (i < 0) return null; // missing port
  let host: string;
  if (s[0] === '[') {
    const end = s.indexOf(']');
    if (end < 0) return null;
    if (end + 1 !== i) return null; // `]` must be followed by the port's colon
    host = s.slice(1, end);
    if (host.includes('[') || host.includes(']')) return null;
  } else {
    host = s.slice(0, i);
    if (host.includes(':')) return null; // too many colons
    if (host.includes('[') || host.includes(']')) return null;
  }
  const port = s.slice(i + 1);
  if (port.includes('[') || port.includes(']')) return null;
  return { host, port };
}

/** Parses an endpoint annotation or a Peer DNS endpoint (spec §2.1.1). */
export function parseEndpoint(s: string): Endpoint | null {
  if (s === '') return null;
  const hp = splitHostPort(s);
  if (!hp) return null;
  // strconv.ParseUint(port, 10, 32), then 1..65535.
  if (!UINT_RE.test(hp.port) || hp.port.length > 10) return null;
  const port = Number(hp.port);
  if (port < 1 || port > 65535) return null;
  const ip = parseIP(hp.host);
  if (ip) return { ip, port, dns: '' };
  if (isDNS1123Subdomain(hp.host)) return { ip: null, port, dns: s };
  return null;
}

/** NewEndpoint(ip, port): always an endpoint, possibly not ready (spec §2.1.2). */
export function newEndpoint(ip: IP | null, port: number): Endpoint {
  return { ip, port, dns: '' };
}

export function endpointReady(e: Endpoint | null | undefined): boolean {
  if (!e) return false;
  return (e.ip !== null && e.port > 0) || e.dns !== '';
}

export function endpointPort(e: Endpoint | null | undefined): number {
  if (!e || !endpointReady(e)) return 0;
  if (e.ip) return e.port;
  const hp = splitHostPort(e.dns);
  return hp ? Number(hp.port) : 0;
}

/** DNS-first text (what kg writes into the `endpoint` annotation). */
export function endpointString(e: Endpoint | null | undefined): string {
  if (!e) return '';
  if (e.dns) return e.dns;
  return e.ip ? hostPort(e.ip, e.port) : '';
}

/** IP-first text (what is compared against and applied to a WireGuard device). */
export function endpointStringOpt(e: Endpoint | null | undefined): string {
  if (!e) return '';
  if (e.ip) return hostPort(e.ip, e.port);
  return e.dns;
}

/** Attaches a resolved address to a DNS endpoint; the DNS text is kept (spec §2.1.8). */
export function withResolved(e: Endpoint, ip: IP): Endpoint {
  return { ip, port: endpointPort(e) || e.port, dns: e.dns };
}

export function endpointJSON(e: Endpoint | null | undefined): EndpointJSON | null {
  if (!e) return null;
  let host = e.ip ? e.ip.s : '';
  if (e.dns) host = splitHostPort(e.dns)?.host ?? e.dns;
  return { host, port: endpointPort(e) || e.port, resolved: e.ip ? hostPort(e.ip, e.port) : null };
}
