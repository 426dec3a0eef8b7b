// Shared by the bins (kg, kgctl, bench/compare): whether a module is the process's entry point
// (run as a bin, not imported by a test), and an exit that lets stdout drain first.
import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function isEntry(moduleUrl: string): boolean {
  try {
    return !!process.argv[1] && realpathSync(process.argv[1]) === fileURLToPath(moduleUrl);
  } catch {
    return false;
  }
}

/** Exit once stdout has drained: on a pipe, process.exit would cut a large output short. */
export function exitAfterDrain(code: number): void {
  process.stdout.write('', () => process.exit(code));
}
