// What a verb handler gets: the server's state and response helpers (VerbContext, implemented by
// the server), and the request resolved to a resource (Route).
import type http from 'node:http';
import type { Faults } from '../faults.js';
import type { SimCounters } from '../metrics.js';
import type { Store } from '../store.js';
import type { ResourceType } from '../types.js';
import type { WatchConn } from './watch-conn.js';

/** A request path resolved to a resource type, and the object or subresource it names. */
export interface Route {
  t: ResourceType;
  ns?: string;
  name?: string;
  sub?: string;
  watchPath: boolean;
}

export interface VerbContext {
  readonly store: Store;
  readonly counters: SimCounters;
  readonly faults: Faults;
  readonly watches: Set<WatchConn>;
  readonly maxBacklog: number;
  /** Server-side watch timeout (seconds) when the client sets none. */
  readonly watchTimeout: number;
  /** The current server generation (restarts so far). */
  readonly gen: number;
  /** The generation of the server that accepted this request. */
  generationOf(res: http.ServerResponse): number | undefined;
  headers(res: http.ServerResponse, h: Record<string, string>): Record<string, string>;
  send(res: http.ServerResponse, code: number, body: unknown, contentType?: string, headers?: Record<string, string>): void;
  readBody(req: http.IncomingMessage): Promise<unknown>;
}

export interface VerbRequest {
  req: http.IncomingMessage;
  res: http.ServerResponse;
  r: Route;
  q: URLSearchParams;
  /** A 410 Gone fault to deliver in the watch stream (watch only). */
  injectGone: boolean;
}

export type VerbHandler = (s: VerbContext, v: VerbRequest) => void | Promise<void>;
