// The load test's scenarios by name, in the order --scenario all runs them.
import type { LoadRun } from '../load-run.js';
import type { Scenario } from '../types.js';
import { apiFaults } from './api-faults.js';
import { churn } from './churn.js';
import { leaderLoss } from './leader-loss.js';
import { peersKeys } from './peers-keys.js';
import { steady } from './steady.js';

export const SCENARIO_RUNS: Record<Scenario, (run: LoadRun) => Promise<void>> = {
  steady, churn, 'leader-loss': leaderLoss, 'peers-keys': peersKeys, 'api-faults': apiFaults,
};
