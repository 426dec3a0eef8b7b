// A stand-in for the I/O worker (the kernel writer) in tests of the logic above it: every plan is
// accepted and nothing is written. Tests that need the kernel use the real worker in namespaces.
import type { ApplyResult } from '../../ipc/dataplane.js';
import type { IoClient } from '../../workers/io-client.js';

const ok = async (): Promise<ApplyResult> => ({ cause: 'apply', ok: true, durationMs: 0, reports: [], writes: 0, errors: [], rejected: [] });

export function acceptingIo(): IoClient {
  return { applyFull: ok, applyPrepared: ok, resync: ok, cleanUp: ok, observe: async () => ({ interface: 'kilo0', mode: null, ownedPid: null, up: false, peers: [] }) } as unknown as IoClient;
}

/** An I/O worker that records each call and answers `next` (accepting by default), or throws it. */
export function recordingIo() {
  const calls: string[] = [];
  const next: (Partial<ApplyResult> | Error)[] = [];
  const answer = async (call: string): Promise<ApplyResult> => {
    calls.push(call);
    const n = next.shift();
    if (n instanceof Error) throw n;
    return { ...(await ok()), ...n };
  };
  return {
    calls,
    next,
    io: {
      applyFull: (_: string, seq: number) => answer(`full ${seq}`),
      applyPrepared: (d: { base: number }) => answer(`delta from ${d.base}`),
      resync: () => answer('resync'),
    },
  };
}
