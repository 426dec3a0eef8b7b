// API-server load of each heartbeat mode at this size: plan/heartbeat.ts's heartbeatLoad over
// the Node watch-event size measured on a generated Node (memory.ts). Every agent watches every
// Node, so watchers = N.
import { heartbeatLoad, HEARTBEAT_MODES, type HeartbeatLoad } from '../../plan/heartbeat.js';
import type { BenchConfig } from './options.js';

export interface ApiLoadResult {
  /** A whole Node's watch event (what Go agents receive). */
  nodeWatchEventBytes: number;
  /** The metadata-only event kg's Node watch receives (the bytes the modes below count). */
  nodeMetadataEventBytes: number;
  watchers: number;
  selected: string;
  modes: HeartbeatLoad[];
}

export function apiLoad(cfg: BenchConfig, nodes: number, nodeWatchEventBytes: number, nodeMetadataEventBytes: number): ApiLoadResult {
  return {
    nodeWatchEventBytes,
    nodeMetadataEventBytes,
    watchers: nodes,
    selected: cfg.heartbeat,
    modes: HEARTBEAT_MODES.map((mode) => heartbeatLoad({ mode, minPeriodSeconds: cfg.checkInPeriodSeconds, budget: cfg.heartbeatBudget }, nodes, nodes, nodeMetadataEventBytes)),
  };
}
