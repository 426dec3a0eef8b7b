// The agent's side of the credentials worker: each call starts a short-lived process that loads
// @kubernetes/client-node, resolves the credentials and ends. A process rather than a thread:
// a terminated worker thread gave back only part of its heap (28 of 71 MB stayed in the agent's
// RSS); an exited process gives back all. Bounded: a time limit (the process group, an exec
// plugin included, is killed then) and a heap limit; a failure (a bad kubeconfig, an exec plugin
// that fails or hangs, the worker out of memory) is a rejected promise with one clear message.
import { fork } from 'node:child_process';
import type { ApiCredentials, CredentialsReply } from '../ipc/credentials.js';
import type { KubeConfigFlags } from './kube-config.js';

export interface CredentialsWorkerOptions {
  /** The whole load, exec plugin included (default 60 s). */
  timeoutMs?: number;
  /** Gives up early (the agent stops): the worker's process group is killed. */
  signal?: AbortSignal;
  /** The worker's entry (tests). */
  workerUrl?: URL;
}

/** client-node and its models take ~35 MB of heap: the limit leaves room and stops a runaway. */
const EXEC_ARGV = ['--max-old-space-size=128', '--max-semi-space-size=8', '--stack-size=2048'];

/** Resolves the configuration once, in a child process. */
export function loadCredentialsInWorker(flags: KubeConfigFlags, o: CredentialsWorkerOptions = {}): Promise<ApiCredentials> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  const arg = JSON.stringify({ kubeconfig: flags.kubeconfig, master: flags.master } satisfies KubeConfigFlags);
  return new Promise((resolve, reject) => {
    let stderr = '';
    // Its own process group: a timeout kills the exec plugin it may have started, too.
    const p = fork(o.workerUrl ?? new URL('./credentials-worker.js', import.meta.url), [arg], {
      execArgv: EXEC_ARGV, serialization: 'advanced', detached: true, stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
    });
    p.stderr!.on('data', (c: Buffer) => {
      if (stderr.length < 4096) stderr += c.toString('utf8');
    });
    let settled = false;
    const finish = (err: Error | null, c?: ApiCredentials) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
      if (err && p.exitCode === null && p.pid !== undefined) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          /* gone already */
        }
      }
      if (err) reject(err);
      else resolve(c!);
    };
    const timer = setTimeout(() => finish(new Error(`failed to get Kubernetes credentials: no answer within ${timeoutMs} ms (an exec plugin that hangs?)`)), timeoutMs);
    const onAbort = () => finish(new Error('failed to get Kubernetes credentials: aborted'));
    if (o.signal?.aborted) onAbort();
    else o.signal?.addEventListener('abort', onAbort, { once: true });
    p.once('message', (r: CredentialsReply) => finish(r.ok ? null : new Error(r.error), r.ok ? r.credentials : undefined));
    p.once('error', (e) => finish(new Error(`failed to get Kubernetes credentials: the credentials worker failed: ${e.message}`)));
    // 'close', not 'exit': a busy parent may see the exit before it has read the answer from the
    // IPC channel; 'close' comes once the channel is drained too.
    p.once('close', (code, signal) => {
      const last = stderr.trim().split('\n').filter(Boolean).at(-1);
      finish(new Error(`failed to get Kubernetes credentials: the credentials worker exited (${signal ?? `code ${code}`}) without an answer${last ? `: ${last.slice(0, 300)}` : ''}`));
    });
  });
}

/** A loader for KubeClient: every (re)load of the credentials runs a fresh worker process. */
export function workerCredentials(flags: KubeConfigFlags, o: CredentialsWorkerOptions = {}): () => Promise<ApiCredentials> {
  return () => loadCredentialsInWorker(flags, o);
}
