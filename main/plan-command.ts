// `kg plan`: reads Nodes and Peers from files, runs the planner, prints JSON or text.
import { readFileSync } from 'node:fs';
import { parseAllDocuments } from 'yaml';
import { planText } from '../plan/format-text.js';
import type { NodeObject } from '../plan/node.js';
import type { PeerObject } from '../plan/peer.js';
import { parseCluster, plan } from '../plan/plan.js';
import { AGENT_FLAGS, FlagError, PLAN_FLAGS, parseFlags, toConfig } from './flags.js';

/** Reads `kubectl get … -o json|yaml` output: a List, several YAML documents, or one object. */
export function readObjects(path: string, what: string): unknown[] {
  let text: string;
  try {
    text = readFileSync(path === '-' ? 0 : path, 'utf8');
  } catch (e) {
    throw new FlagError(`failed to read ${what} from ${path}: ${(e as Error).message}`);
  }
  let docs: unknown[];
  try {
    docs = [JSON.parse(text)];
  } catch {
    const parsed = parseAllDocuments(text);
    const list = Array.isArray(parsed) ? parsed : [parsed];
    docs = [];
    for (const d of list) {
      if (d.errors.length > 0) throw new FlagError(`failed to parse ${what} in ${path}: ${d.errors[0].message.split('\n')[0]}`);
      docs.push(d.toJSON());
    }
  }
  const out: unknown[] = [];
  for (const d of docs) {
    if (d === null || d === undefined) continue;
    if (typeof d !== 'object' || Array.isArray(d)) throw new FlagError(`failed to parse ${what} in ${path}: expected a Kubernetes object or List`);
    const o = d as { items?: unknown; kind?: unknown };
    if (Array.isArray(o.items)) out.push(...o.items);
    else if (typeof o.kind === 'string' && o.kind.endsWith('List')) continue; // an empty List
    else out.push(d);
  }
  for (const o of out) {
    if (o === null || typeof o !== 'object' || Array.isArray(o)) throw new FlagError(`failed to parse ${what} in ${path}: an item is not an object`);
  }
  return out;
}

export function runPlan(argv: string[]): number {
  const { values, set, positionals } = parseFlags(argv, [...PLAN_FLAGS, ...AGENT_FLAGS]);
  if (positionals.length > 0) throw new FlagError(`unexpected argument "${positionals[0]}"`);
  if (!set.has('hostname')) throw new FlagError('--hostname is required');
  if (!values.nodes) throw new FlagError('--nodes is required');
  const cfg = toConfig(values);
  const output = (values.output as string) || (process.stdout.isTTY ? 'text' : 'json');
  if (output !== 'json' && output !== 'text') throw new FlagError(`output format ${output} unknown; possible values are: json, text`);
  let now = Math.floor(Date.now() / 1000);
  if (values.now !== '') {
    if (!/^[0-9]+$/.test(values.now as string)) throw new FlagError(`invalid --now "${values.now}": expected Unix seconds`);
    now = Number(values.now);
  }
  if (values.nodes === '-' && values.peers === '-') throw new FlagError('only one of --nodes and --peers can read standard input');
  const nodes = readObjects(values.nodes as string, 'nodes') as NodeObject[];
  const peers = values.peers ? (readObjects(values.peers as string, 'peers') as PeerObject[]) : [];
  const cluster = parseCluster(nodes, peers, cfg.topologyLabel, cfg.claims);
  if (!cluster.nodes.some((n) => n.name === cfg.hostname)) {
    throw new FlagError(`node ${JSON.stringify(cfg.hostname)} is not in ${values.nodes === '-' ? 'standard input' : values.nodes}`);
  }
  const result = plan(cluster, {
    hostname: cfg.hostname,
    granularity: cfg.meshGranularity,
    subnet: cfg.subnet,
    encapsulate: cfg.encapsulate,
    local: cfg.local,
    cni: cfg.cni,
    compatibility: cfg.compatibility,
    iptablesForwardRules: cfg.iptablesForwardRules,
    serviceCIDRs: cfg.serviceCIDRs,
    interface: cfg.interface,
    mtu: cfg.mtu,
    privateInterface: values['private-interface'] as string,
    tunnelInterface: values['tunnel-interface'] as string,
    now,
    ...(cfg.dualStackSubnet ? { dualStackSubnet: cfg.dualStackSubnet } : {}),
  });
  process.stdout.write(output === 'json' ? JSON.stringify(result.json, null, 2) + '\n' : planText(result.json));
  return 0;
}
