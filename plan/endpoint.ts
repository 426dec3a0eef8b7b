// WireGuard endpoints (design §2.1): a resolved UDP address, a DNS `host:port`, or both.
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

export function isDNS1123Subdomain(s: string): boolean {
  return s.length <= 253 && DNS1123_SUBDOMAIN_RE.test(s);
}

/**
 * The host part of Go's net.SplitHostPort (the port is what follows the last `:`). Returns null
 * where Go returns an error.
 */
function splitHost(s: string): string | null {
  const i = s.lastIndexOf(':');
  if (i < 0) return null; // missing port
  let host: string;
  if (s[0] === '[') {
    const end = s.indexOf(']');
    if (end < 0) return null;
    if (end + 1 !== i) return null; // `]` must be followed by the port's colon
    host = s.slice(1, end);
  } else {
    host = s.slice(0, i);
    if (host.includes(':')) return null; // too many colons
  }
  if (host.includes('[') || host.includes(']')) return null;
  return host;
}

/** Go's net.SplitHostPort. Returns null where Go returns an error. */
export function splitHostPort(s: string): { host: string; port: string } | null {
  const host = splitHost(s);
  if (host === null) return null;
  const port = s.slice(s.lastIndexOf(':') + 1);
  if (port.includes('[') || port.includes(']')) return null;
  return { host, port };
}

/** strconv.ParseUint(s[from:], 10, 32), then 1..65535; -1 where either fails. No substring. */
function portAt(s: string, from: number): number {
  const len = s.length - from;
  if (len === 0 || len > 10) return -1;
  let v = 0;
  for (let i = from; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 48 || c > 57) return -1;
    v = v * 10 + (c - 48);
  }
  return v >= 1 && v <= 65535 ? v : -1;
}

/**
 * Parses an endpoint annotation or a Peer DNS endpoint (design §2.1.1). Every Node carries one, so
 * it is read in place: no host/port pair and no port substring per node.
 */
export function parseEndpoint(s: string): Endpoint | null {
  if (s === '') return null;
  const host = splitHost(s);
  if (host === null) return null;
  const port = portAt(s, s.lastIndexOf(':') + 1);
  if (port < 0) return null;
  const ip = parseIP(host);
  if (ip) return { ip, port, dns: '' };
  if (isDNS1123Subdomain(host)) return { ip: null, port, dns: s };
  return null;
}

/** NewEndpoint(ip, port): always an endpoint, possibly not ready (design §2.1.2). */
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

/** Attaches a resolved address to a DNS endpoint; the DNS text is kept (design §2.1.8). */
export function withResolved(e: Endpoint, ip: IP): Endpoint {
  return { ip, port: endpointPort(e) || e.port, dns: e.dns };
}

export function endpointJSON(e: Endpoint | null | undefined): EndpointJSON | null {
  if (!e) return null;
  let host = e.ip ? e.ip.s : '';
  if (e.dns) host = splitHostPort(e.dns)?.host ?? e.dns;
  return { host, port: endpointPort(e) || e.port, resolved: e.ip ? hostPort(e.ip, e.port) : null };
}
