// The Kubernetes configuration, resolved by @kubernetes/client-node (kubeconfig files, --master,
// in-cluster service accounts, exec plugins, auth providers) into plain credentials. The agent
// runs this in a short-lived worker (credentials-worker.ts) so the library, which loads all its
// generated API models, never stays in the main isolate; kgctl and the tests call it in process.
import { existsSync } from 'node:fs';
import type https from 'node:https';
// KubeConfig from its own module, not the package's index (which loads the whole API client):
// the credentials worker's hooks (credentials-hooks.ts) can then spare it the generated models.
import { KubeConfig } from '@kubernetes/client-node/dist/config.js';
import type { User } from '@kubernetes/client-node/dist/config_types.js';
import type { ApiCredentials } from '../ipc/credentials.js';

export interface KubeConfigFlags {
  kubeconfig: string;
  master: string;
}

/** Builds the configuration the way the Go agent does: --kubeconfig, --master, or in-cluster. */
export function loadKubeConfig(opts: KubeConfigFlags): KubeConfig {
  const kc = new KubeConfig();
  if (opts.kubeconfig) {
    if (!existsSync(opts.kubeconfig)) throw new Error(`failed to create Kubernetes config: kubeconfig ${opts.kubeconfig} does not exist`);
    try {
      kc.loadFromFile(opts.kubeconfig);
    } catch (e) {
      throw new Error(`failed to create Kubernetes config: cannot load kubeconfig ${opts.kubeconfig}: ${(e as Error).message.split('\n')[0]}`);
    }
    if (!kc.getCurrentCluster()) throw new Error(`failed to create Kubernetes config: kubeconfig ${opts.kubeconfig} has no current cluster`);
  } else if (!opts.master) {
    if (!process.env.KUBERNETES_SERVICE_HOST) {
      throw new Error('failed to create Kubernetes config: no --kubeconfig or --master given and not running in a cluster (KUBERNETES_SERVICE_HOST is unset)');
    }
    kc.loadFromCluster();
  } else {
    kc.loadFromClusterAndUser({ name: 'master', server: opts.master, skipTLSVerify: false }, { name: 'master' });
  }
  if (opts.master) {
    // --master overrides the server of the kubeconfig, as clientcmd.BuildConfigFromFlags does.
    const c = kc.getCurrentCluster()!;
    kc.clusters = kc.clusters.map((x) => (x.name === c.name ? { ...x, server: opts.master } : x));
  }
  const server = kc.getCurrentCluster()!.server;
  try {
    const u = new URL(server);
    if (u.protocol !== 'https:' && u.protocol !== 'http:') throw new Error(`unsupported scheme ${u.protocol}`);
  } catch (e) {
    throw new Error(`failed to create Kubernetes config: invalid server URL ${JSON.stringify(server)}: ${(e as Error).message}`);
  }
  return kc;
}

const bytes = (v: unknown): Uint8Array | null => (typeof v === 'string' ? Buffer.from(v) : v instanceof Uint8Array ? v : null);

/** A time in the future, or null: an expiry already past at load time says nothing useful (a 401 will). */
const future = (ms: number) => (Number.isFinite(ms) && ms > Date.now() ? ms : null);

/** The expiry of the exec plugin's credential that client-node just cached, if it gave one. */
function execExpiry(kc: KubeConfig, user: User | null): number | null {
  if (!user) return null;
  const auths = (kc as unknown as { authenticators?: { tokenCache?: Record<string, { status?: { expirationTimestamp?: string } } | null> }[] }).authenticators ?? [];
  for (const a of auths) {
    const ts = a.tokenCache?.[user.name]?.status?.expirationTimestamp;
    if (typeof ts === 'string') return future(Date.parse(ts));
  }
  return null;
}

/** The `exp` claim of a bearer JWT (OIDC and bound service-account tokens carry one). */
function jwtExpiry(authorization: string | undefined): number | null {
  const m = /^Bearer ([\w-]+)\.([\w-]+)\.[\w-]*$/.exec(authorization ?? '');
  if (!m) return null;
  try {
    const exp = (JSON.parse(Buffer.from(m[2], 'base64url').toString('utf8')) as { exp?: unknown }).exp;
    return typeof exp === 'number' ? future(exp * 1000) : null;
  } catch {
    return null;
  }
}

/** What one request needs, as client-node would apply it now (running an exec plugin if due). */
export async function readCredentials(kc: KubeConfig): Promise<ApiCredentials> {
  const o: https.RequestOptions & { auth?: string } = { headers: {} };
  await kc.applyToHTTPSOptions(o);
  const cluster = kc.getCurrentCluster()!;
  const user = kc.getCurrentUser();
  const headers: Record<string, string> = {};
  for (const [k, v] of Object.entries(o.headers ?? {})) if (typeof v === 'string') headers[k] = v;
  if (o.auth) headers.Authorization = `Basic ${Buffer.from(o.auth).toString('base64')}`;
  const tokenFile = user?.token ? null : ((user?.authProvider?.config as { tokenFile?: unknown } | undefined)?.tokenFile ?? null);
  return {
    server: cluster.server,
    ca: bytes(o.ca),
    cert: bytes(o.cert),
    key: bytes(o.key),
    servername: typeof o.servername === 'string' ? o.servername : null,
    skipTLSVerify: cluster.skipTLSVerify === true,
    headers,
    expiresAtMs: execExpiry(kc, user) ?? jwtExpiry(headers.Authorization),
    tokenFile: typeof tokenFile === 'string' ? tokenFile : null,
  };
}

/**
 * Credentials resolved in this thread (kgctl, tests): the configuration is loaded once, now
 * (its errors throw here); each call asks client-node again, which re-runs an expired exec plugin.
 */
export function inProcessCredentials(opts: KubeConfigFlags): () => Promise<ApiCredentials> {
  const kc = loadKubeConfig(opts);
  return () => readCredentials(kc);
}
