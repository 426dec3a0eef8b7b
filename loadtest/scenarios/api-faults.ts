// api-faults: node churn at half the rate while the API server misbehaves in turn: watches
// dropped, 410 Gone on list/watch, 30 % of requests throttled; then the faults clear.
import type { LoadRun } from '../load-run.js';
import { runPhase } from '../phase.js';
import { nodeChurn } from './churn.js';

export async function apiFaults(run: LoadRun): Promise<void> {
  const { o, sim, log } = run;
  await runPhase(run, 'api-faults', o.heartbeat, (t) =>
    nodeChurn(run, 'api-faults', o.durationS, Math.max(1, o.rate / 2), t, async (el) => {
      const span = o.durationS;
      if (el === Math.floor(span * 0.1)) {
        log('  fault: watches dropped');
        await sim.call({ op: 'dropWatches' });
      } else if (el === Math.floor(span * 0.3)) {
        log('  fault: 410 Gone on the next two list/watch requests, watches dropped');
        await sim.call({ op: 'faults', settings: { goneCount: 2, goneMode: 'stream' } });
        await sim.call({ op: 'dropWatches', abrupt: true });
      } else if (el === Math.floor(span * 0.5)) {
        log('  fault: 30 % of requests throttled (429)');
        await sim.call({ op: 'faults', settings: { throttleRate: 0.3, retryAfterSeconds: 1 } });
      } else if (el === Math.floor(span * 0.7)) {
        log('  faults cleared');
        await sim.call({ op: 'faults', settings: null });
      }
    }),
  );
}
