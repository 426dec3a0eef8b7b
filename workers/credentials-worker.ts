// A short-lived process that loads @kubernetes/client-node, resolves the configuration given as
// its argument (KubeConfigFlags as JSON) into credentials, sends them (or the error) to its
// parent over the IPC channel and ends. The library and its generated models go with the process:
// the agent never holds them (a worker thread left ~28 MB of its heap in the agent's RSS).
import { register } from 'node:module';
import type { CredentialsReply } from '../ipc/credentials.js';
import type { KubeConfigFlags } from './kube-config.js';

/** Defined (true) by scripts/bundle.mjs: the bundle already carries KubeConfig without the models. */
declare const KG_BUNDLED: boolean | undefined;

if (!process.send) throw new Error('credentials-worker must run as a child process with an IPC channel (workers/credentials-client.ts)');

async function resolve(): Promise<CredentialsReply> {
  try {
    // The hooks first, then the library: KubeConfig without the generated API models (~1 s less).
    if (typeof KG_BUNDLED === 'undefined') register(new URL('./credentials-hooks.js', import.meta.url));
    const { loadKubeConfig, readCredentials } = await import('./kube-config.js');
    const flags = JSON.parse(process.argv[2] ?? '{}') as KubeConfigFlags;
    return { ok: true, credentials: await readCredentials(loadKubeConfig(flags)) };
  } catch (e) {
    const msg = (e as Error)?.message ?? String(e);
    return { ok: false, error: msg.startsWith('failed to create Kubernetes config') ? msg : `failed to get Kubernetes credentials: ${msg.trim().split('\n')[0]}` };
  }
}

const reply = await resolve();
process.send(reply, () => process.exit(0));
