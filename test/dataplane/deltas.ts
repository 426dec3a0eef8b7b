// Whole desired states applied to an in-thread Dataplane the way the agent's path sends them: the
// first whole, later ones as the plan worker's DeltaTracker makes them (O(changed) passes).
import { DeltaTracker } from '../../diff/desired.js';
import type { Dataplane } from '../../dataplane/dataplane.js';
import type { ApplyResult, DesiredState } from '../../ipc/dataplane.js';

export function stateApplier(dp: Dataplane): (desired: DesiredState) => Promise<ApplyResult> {
  const tracker = new DeltaTracker();
  const full = (d: DesiredState): Promise<ApplyResult> => {
    tracker.full(d);
    return dp.apply(d, tracker.seq);
  };
  return async (d) => {
    if (!tracker.hasBase) return full(d);
    const res = await dp.applyDelta(tracker.delta(d));
    return res.needFullState ? full(d) : res;
  };
}
