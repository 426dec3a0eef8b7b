// Reads what a node's kernel holds (static routes, rules, the WireGuard device, iptables) inside
// its namespaces, with the dataplane's own readers and parsers, for compareKernel().
import { Exec } from '../../dataplane/exec.js';
import { detectBackend, toolsFor } from '../../dataplane/iptables.js';
import { readRoutes } from '../../dataplane/routes.js';
import { readRules } from '../../dataplane/rules.js';
import { parseWgDump } from '../../kernel/uapi.js';
import { parseSave } from '../../kernel/iptables-save.js';
import { parseIpsetSave } from '../../kernel/ipset.js';
import type { KernelState } from './verify.js';

export async function readKernel(ns: { net: string; mount?: string }, wgInterface = 'kilo0'): Promise<KernelState> {
  const exec = new Exec(ns, 30_000);
  const routes = await readRoutes(exec);
  const rules = await readRules(exec);
  const wg = await exec.run('wg', ['show', wgInterface, 'dump']);
  // No device (a non-leader, or none yet) reads as null; compareKernel says whether one was due.
  const wireguard = wg.code === 0 ? parseWgDump(wg.stdout) : null;
  const backend = await detectBackend(exec);
  const save = await exec.run(toolsFor(backend, 'ipv4').save, []);
  if (save.code !== 0) throw new Error(`iptables-save: ${save.stderr.trim()}`);
  // kg's ipsets (the set layout, design §8.10); none when the tool is missing
  const sets = await exec.run('ipset', ['save']);
  return { routes, rules, wireguard, iptables: { ipv4: parseSave(save.stdout) }, ipsets: sets.code === 0 ? parseIpsetSave(sets.stdout) : new Map() };
}
