// On-demand CPU profiles of the agent's main thread, for diagnosing a live agent: with
// KG_CPU_PROFILE=<dir>, profiling runs from start-up and every SIGUSR2 writes what was sampled
// since the previous one to <dir>/kg-<pid>-<n>.cpuprofile (open it in Chrome DevTools). Node's
// --cpu-prof cannot be set through NODE_OPTIONS and writes only at a clean exit, which a killed
// agent never reaches.
import { Session } from 'node:inspector';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Logger } from './log.js';

export function startProfiling(dir: string | undefined, log: Logger): void {
  if (!dir) return;
  const session = new Session();
  session.connect();
  let n = 0;
  const start = () => session.post('Profiler.enable', () => session.post('Profiler.start'));
  start();
  process.on('SIGUSR2', () => {
    session.post('Profiler.stop', (err, res) => {
      if (err) log.warn('cpu profile failed', { error: err.message });
      else {
        const file = join(dir, `kg-${process.pid}-${++n}.cpuprofile`);
        try {
          writeFileSync(file, JSON.stringify(res.profile));
          log.info('cpu profile written', { file });
        } catch (e) {
          log.warn('cpu profile failed', { error: (e as Error).message });
        }
      }
      start();
    });
  });
  log.info('cpu profiling on; SIGUSR2 writes a profile', { dir });
}
