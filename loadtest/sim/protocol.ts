// Messages between the load test and its simulator process (loadtest/sim/driver.ts), over the
// IPC channel that the mesh harness opens (apiScript).
import type { HeartbeatMode } from '../../plan/heartbeat.js';

export type SimCommand =
  | { op: 'addNode'; name: string; location: string; podCIDR: string; endpoint: string; internalIP: string }
  | { op: 'deleteNode'; name: string }
  | { op: 'stopHeartbeat'; name: string; agoSeconds: number }
  | { op: 'resumeHeartbeat'; name: string }
  | { op: 'rotateKey'; name: string }
  | { op: 'addPeer'; name: string; allowedIP: string }
  | { op: 'deletePeer'; name: string }
  | { op: 'faults'; settings: Record<string, unknown> | null }
  | { op: 'dropWatches'; abrupt?: boolean }
  | { op: 'heartbeat'; mode: HeartbeatMode }
  | { op: 'stats' }
  | { op: 'snapshot' };

export type SimReply = { id: number; ok: true; value: unknown } | { id: number; ok: false; error: string };

export interface SimStats {
  /** Wall clock (ms) of the reading. */
  at: number;
  writes: number;
  watchEventsSent: number;
  watchBytesSent: number;
  bytesSent: number;
  watchers: number;
  /** "verb code resource" → count. */
  requests: Record<string, number>;
  totalRequests: number;
  heartbeatsSent: number;
  heartbeatsFailed: number;
  heartbeatPeriodSeconds: number;
  objects: Record<string, number>;
  faults: Record<string, number>;
}
