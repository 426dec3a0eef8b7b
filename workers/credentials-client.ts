// The main thread's side of the credentials worker: each call starts a short-lived worker that
// loads @kubernetes/client-node, resolves the credentials and ends. Bounded: a time limit and
// heap limits; a failure (a bad kubeconfig, an exec plugin that fails or hangs, the worker out
// of memory) is a rejected promise with one clear message, never a crash of the agent.
import { Worker } from 'node:worker_threads';
import type { ApiCredentials, CredentialsReply } from '../ipc/credentials.js';
import type { KubeConfigFlags } from './kube-config.js';

export interface CredentialsWorkerOptions {
  /** The whole load, exec plugin included (default 60 s). */
  timeoutMs?: number;
  /** The worker's entry (tests). */
  workerUrl?: URL;
}

/** client-node and its models take ~35 MB of heap; the limits leave room and stop a runaway. */
const LIMITS = { maxOldGenerationSizeMb: 128, maxYoungGenerationSizeMb: 16, stackSizeMb: 4 };

/** Resolves the configuration once, in a worker. */
export function loadCredentialsInWorker(flags: KubeConfigFlags, o: CredentialsWorkerOptions = {}): Promise<ApiCredentials> {
  const timeoutMs = o.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const w = new Worker(o.workerUrl ?? new URL('./credentials-worker.js', import.meta.url), {
      workerData: { kubeconfig: flags.kubeconfig, master: flags.master } satisfies KubeConfigFlags,
      resourceLimits: LIMITS,
    });
    let settled = false;
    const finish = (err: Error | null, c?: ApiCredentials) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      void w.terminate();
      if (err) reject(err);
      else resolve(c!);
    };
    const timer = setTimeout(() => finish(new Error(`failed to get Kubernetes credentials: no answer within ${timeoutMs} ms (an exec plugin that hangs?)`)), timeoutMs);
    w.once('message', (r: CredentialsReply) => finish(r.ok ? null : new Error(r.error), r.ok ? r.credentials : undefined));
    w.once('error', (e) => finish(new Error(`failed to get Kubernetes credentials: the credentials worker failed: ${e.message}`)));
    w.once('exit', (code) => finish(new Error(`failed to get Kubernetes credentials: the credentials worker exited (code ${code}) without an answer`)));
  });
}

/** A loader for KubeClient: every (re)load of the credentials runs a fresh worker. */
export function workerCredentials(flags: KubeConfigFlags, o: CredentialsWorkerOptions = {}): () => Promise<ApiCredentials> {
  return () => loadCredentialsInWorker(flags, o);
}
