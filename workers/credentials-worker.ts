// A short-lived thread that loads @kubernetes/client-node, resolves the configuration given in
// workerData (KubeConfigFlags) into credentials, posts them (or the error) and ends. The library
// and its generated models go with the thread: the main isolate never holds them.
import { parentPort, workerData } from 'node:worker_threads';
import type { CredentialsReply } from '../ipc/credentials.js';
import { loadKubeConfig, readCredentials, type KubeConfigFlags } from './kube-config.js';

if (!parentPort) throw new Error('credentials-worker must run as a worker thread');
const port = parentPort;

async function resolve(): Promise<CredentialsReply> {
  try {
    return { ok: true, credentials: await readCredentials(loadKubeConfig(workerData as KubeConfigFlags)) };
  } catch (e) {
    const msg = (e as Error)?.message ?? String(e);
    return { ok: false, error: msg.startsWith('failed to create Kubernetes config') ? msg : `failed to get Kubernetes credentials: ${msg.trim().split('\n')[0]}` };
  }
}

port.postMessage(await resolve());
