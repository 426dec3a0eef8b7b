// kgctl's reads of the cluster: the API client from --kubeconfig, paged lists of Nodes and Peers,
// and the Peer CRD check. Shared by kgctl's commands (kgctl.ts) and `kgctl connect`.
import { existsSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type { NodeObject } from '../../plan/node.js';
import type { PeerObject } from '../../plan/peer.js';
import type { FlagValues } from '../flags.js';
import { KubeError } from '../../watch/kube-error.js';
import { KubeClient } from '../../watch/kube.js';
import { inProcessCredentials } from '../../workers/kube-config.js';
import { KgctlError, parseListed, type Listed } from './model.js';

export const PEERS_PATH = '/apis/kilo.squat.ai/v1alpha1/peers';
const CRD_PATH = '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/peers.kilo.squat.ai';

function defaultKubeconfig(): string {
  const env = process.env.KUBECONFIG;
  if (env && existsSync(env)) return env;
  return join(homedir(), '.kube', 'config');
}

export function client(v: FlagValues): KubeClient {
  const path = (v.kubeconfig as string) || defaultKubeconfig();
  return new KubeClient(inProcessCredentials({ kubeconfig: path, master: '' }));
}

/** A paged list of a collection; items in the server's order. */
export async function listAll<T>(c: KubeClient, path: string): Promise<T[]> {
  const items: T[] = [];
  let cont = '';
  for (let page = 0; page < 10_000; page++) {
    const r = await c.request<{ items?: T[]; metadata?: { continue?: string } }>('GET', `${path}?limit=500${cont ? `&continue=${encodeURIComponent(cont)}` : ''}`);
    items.push(...(r.items ?? []));
    cont = r.metadata?.continue ?? '';
    if (!cont) return items;
  }
  throw new Error(`listing ${path}: too many pages`);
}

/** The Peer CRD must exist, as for kg (design §3.3.7). */
export async function checkCRD(c: KubeClient): Promise<void> {
  try {
    await c.request('GET', CRD_PATH, { timeoutMs: 15_000 });
  } catch (e) {
    if (e instanceof KubeError && (e.status === 404 || e.status === 403)) throw new KgctlError('CRD is not present: apply manifests/crds.yaml (peers.kilo.squat.ai)');
    throw e;
  }
}

export async function listCluster(c: KubeClient, topologyLabel: string): Promise<Listed> {
  await checkCRD(c);
  const [nodes, peers] = await Promise.all([listAll<NodeObject>(c, '/api/v1/nodes'), listAll<PeerObject>(c, PEERS_PATH)]);
  return parseListed(nodes, peers, topologyLabel);
}
