// A stand-in for the I/O worker (the kernel writer) in tests of the logic above it: every plan is
// accepted and nothing is written. Tests that need the kernel use the real worker in namespaces.
import type { ApplyResult } from '../../ipc/dataplane.js';
import type { IoClient } from '../../workers/io-client.js';

const ok = async (): Promise<ApplyResult> => ({ cause: 'apply', ok: true, durationMs: 0, reports: [], writes: 0, errors: [], rejected: [] });

export function acceptingIo(): IoClient {
  return { applyFull: ok, applyPrepared: ok, resync: ok, cleanUp: ok, observe: async () => ({ interface: 'kilo0', mode: null, ownedPid: null, up: false, peers: [] }) } as unknown as IoClient;
}
