// `kg webhook` under attack (a benchmark, not a test): the cost of the allowed-IP overlap check
// against the quadratic one it replaced, and a real `kg webhook` process (with the Deployment's
// NODE_OPTIONS) fed max-size hostile bodies over HTTPS by parallel clients, its peak RSS set
// against the memory limit in manifests/peer-validation.yaml.
//
//   node dist/bench/webhook.js [--mode=all|overlap|attack] [--overlap-sizes=10000,100000]
//     [--quadratic-max=100000] [--parallel=32] [--seconds=10] [--kinds=objects,deep,...]
//     [--cli=dist/main/cli.js] [--node-options=...] [--json]
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { makePki } from '../loadtest/apiserver/index.js';
import { MAX_BODY, MAX_MEMBERS, overlapWarnings } from '../main/admission.js';
import { isEntry } from '../main/entry.js';
import { commandFlags, FlagError, type FlagDef } from '../main/flags.js';
import { generateKeyPair } from '../main/keys.js';
import { intersects, parseCIDR, type CIDR } from '../plan/addr.js';
import type { PeerObject } from '../plan/peer.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const BUILT_CLI = fileURLToPath(new URL('../main/cli.js', import.meta.url));

/** The webhook container's memory limit (bytes) and NODE_OPTIONS, as the manifest sets them. */
export function manifestWebhook(): { memoryLimit: number; memoryRequest: number; nodeOptions: string; probeTimeoutMs: number; readinessFailureThreshold: number } {
  const docs = parseAllDocuments(readFileSync(join(ROOT, 'manifests/peer-validation.yaml'), 'utf8')).map((d) => d.toJS());
  const dep = docs.find((o) => o?.kind === 'Deployment' && o.metadata.name === 'peer-validation');
  const c = dep.spec.template.spec.containers[0];
  const mi = (q: string) => {
    const m = /^(\d+)Mi$/.exec(q);
    if (!m) throw new Error(`memory quantity ${q}: only Mi is read here`);
    return Number(m[1]) << 20;
  };
  const env = (c.env ?? []) as { name: string; value?: string }[];
  return {
    memoryLimit: mi(c.resources.limits.memory),
    memoryRequest: mi(c.resources.requests.memory),
    nodeOptions: env.find((e) => e.name === 'NODE_OPTIONS')?.value ?? '',
    probeTimeoutMs: (c.readinessProbe?.timeoutSeconds ?? 1) * 1000,
    readinessFailureThreshold: c.readinessProbe?.failureThreshold ?? 3,
  };
}

/** The overlap check as it was before (every pair), the baseline of the overlap measurement. */
export function quadraticOverlaps(p: PeerObject): number {
  const list = Array.isArray(p.spec?.allowedIPs) ? (p.spec!.allowedIPs as unknown[]) : [];
  const cidrs = list.map((a) => (typeof a === 'string' ? parseCIDR(a) : null)).filter((c): c is CIDR => c !== null);
  let n = 0;
  for (let i = 0; i < cidrs.length; i++) for (let j = i + 1; j < cidrs.length; j++) if (intersects(cidrs[i], cidrs[j])) n++;
  return n;
}

/** n distinct allowed IPs: IPv4 /32s and /24s and some IPv6, a few of them overlapping. */
export function allowedIPs(n: number): string[] {
  const out: string[] = [];
  for (let i = 0; i < n; i++) {
    if (i % 10 === 9) out.push(`fd00:${(i >>> 16).toString(16)}:${(i & 0xffff).toString(16)}::/64`);
    else if (i % 100 === 0) out.push(`10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.0/24`);
    else out.push(`10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}/32`);
  }
  return out;
}

const review = (spec: unknown) => ({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  request: { uid: 'b3f1c9a0-0000-4000-8000-000000000000', operation: 'CREATE', object: { apiVersion: 'kilo.squat.ai/v1alpha1', kind: 'Peer', metadata: { name: 'p' }, spec } },
});

/** A review whose spec.<key> is the JSON text `make(room)`, grown to about `size` bytes. */
function filled(size: number, make: (room: number) => string, key = 'allowedIPs'): Buffer {
  const [pre, post] = JSON.stringify(review({ [key]: 'FILL' })).split('"FILL"');
  return Buffer.from(pre + make(size - pre.length - post.length) + post);
}
const list = (item: string) => (room: number) => `[${new Array(Math.max(1, Math.floor((room - 1) / (item.length + 1)))).fill(item).join(',')}]`;

export const ATTACK_KINDS = ['objects', 'doubles', 'deep', 'keys', 'long-string', 'bad-utf8', 'cidrs', 'random', 'over-limit'] as const;
export type AttackKind = (typeof ATTACK_KINDS)[number];

/** Hostile bodies just under the body limit (one over it), one per kind. */
export function hostileBodies(size = MAX_BODY - 1024): Record<AttackKind, Buffer> {
  const { publicKey } = generateKeyPair();
  const [pre, post] = JSON.stringify(review({ allowedIPs: ['10.0.0.1/32'], publicKey: 'FILL' })).split('"FILL"');
  const ips = allowedIPs(Math.floor((size - 300) / 16));
  while (JSON.stringify(ips).length > size - 300) ips.length -= 1000;
  const random = Buffer.alloc(size);
  for (let i = 0; i < size; i++) random[i] = (i * 2654435761) >>> 24;
  return {
    // Each `{}` costs ~20 times its size in heap once parsed.
    objects: filled(size, list('{}')),
    // Numbers that are not small integers: a heap number each (~7 times the text in heap).
    doubles: filled(size, list('1.5')),
    // JSON.stringify of such a value overflows the stack (validatePeer quotes bad entries).
    deep: filled(size, (room) => '['.repeat(room >> 1) + ']'.repeat(room >> 1)),
    // One object with as many members as a body may hold: the most heap a parse takes.
    keys: filled(size, () => `{${Array.from({ length: MAX_MEMBERS - 1000 }, (_, i) => `"${i.toString(36).padStart(22, 'k')}":${i}`).join(',')}}`, 'extra'),
    // A 3 MB public key that a denial quotes back.
    'long-string': Buffer.from(pre + JSON.stringify('A'.repeat(size - pre.length - post.length - 2)) + post),
    // Invalid UTF-8 decodes to U+FFFD: one byte becomes two in a two-byte string.
    'bad-utf8': Buffer.concat([Buffer.from(pre + '"'), Buffer.alloc(size - pre.length - post.length - 2, 0xff), Buffer.from('"' + post)]),
    // ~185,000 allowed IPs: parsed, then denied (at most 1,024 per Peer, plan/claims.ts).
    cidrs: Buffer.from(JSON.stringify(review({ allowedIPs: ips, publicKey }))),
    random,
    'over-limit': Buffer.alloc(size + (2 << 20), 0x20),
  };
}

export interface WebhookProcess {
  pid: number;
  port: number;
  metricsPort: number;
  ca: string;
  child: ChildProcess;
  output(): string;
  stop(): Promise<number | null>;
}

/** Starts `kg webhook` (this build, or another build's cli.js) on ephemeral ports with a fresh certificate. */
export async function startWebhookProcess(cli = BUILT_CLI, nodeOptions = '', extraArgs: string[] = []): Promise<WebhookProcess> {
  const dir = mkdtempSync(join(tmpdir(), 'kg-webhook-bench-'));
  const pki = makePki({ ips: ['127.0.0.1'], dns: [] });
  writeFileSync(join(dir, 'tls.crt'), pki.server.certPem);
  writeFileSync(join(dir, 'tls.key'), pki.server.keyPem, { mode: 0o600 });
  const args = [cli, 'webhook', `--cert-file=${join(dir, 'tls.crt')}`, `--key-file=${join(dir, 'tls.key')}`, '--listen=127.0.0.1:0', '--listen-metrics=127.0.0.1:0', ...extraArgs];
  // NODE_OPTIONS as the Deployment sets it (so an option Node refuses there fails here too).
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NODE_OPTIONS: nodeOptions } });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-1 << 20)));
  child.stderr!.on('data', (c: Buffer) => (out = (out + c.toString()).slice(-1 << 20)));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 8000);
    const code = await exited;
    clearTimeout(t);
    rmSync(dir, { recursive: true, force: true });
    return code;
  };
  const started = Date.now();
  while (!out.includes('"listening"') && Date.now() - started < 15_000 && child.exitCode === null) await new Promise((r) => setTimeout(r, 20));
  const line = out.split('\n').find((l) => l.includes('"listening"'));
  if (!line) {
    await stop();
    throw new Error(`kg webhook did not start: ${out}`);
  }
  const { webhookPort, metricsPort } = JSON.parse(line) as { webhookPort: number; metricsPort: number };
  return { pid: child.pid!, port: webhookPort, metricsPort, ca: pki.ca.certPem, child, output: () => out, stop };
}

/** Resident and peak resident set size of a process (bytes), from /proc. */
export function rss(pid: number): { now: number; peak: number } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, 'm').exec(s)?.[1] ?? 0) * 1024;
    return { now: kb('VmRSS'), peak: kb('VmHWM') };
  } catch {
    return { now: 0, peak: 0 };
  }
}

export interface AttackResult {
  seconds: number;
  parallel: number;
  requests: number;
  /** Answers by HTTP status; `error` counts requests with no answer (reset, timeout). */
  statuses: Record<string, number>;
  /** The same, per kind of body. */
  byKind: Record<string, Record<string, number>>;
  /** Bytes of the largest answer body. */
  largestAnswer: number;
  peakRss: number;
  /** /healthz probed once a second from another process, each probe timing out as the readiness probe's does. */
  healthMaxMs: number;
  healthMedianMs: number;
  healthProbes: number;
  healthFailures: number;
  /** The longest run of failed probes: the kubelet acts on failureThreshold of them in a row. */
  healthFailuresInARow: number;
  alive: boolean;
}

function request(agent: https.Agent, port: number, ca: string, method: string, path: string, body: Buffer | null, timeoutMs: number): Promise<{ status: number; size: number }> {
  return new Promise((resolve) => {
    const req = https.request({ host: '127.0.0.1', port, path, method, ca, agent, headers: { 'Content-Type': 'application/json' }, timeout: timeoutMs }, (res) => {
      let size = 0;
      res.on('data', (c: Buffer) => (size += c.length));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, size }));
      res.on('error', () => resolve({ status: -1, size }));
    });
    req.on('error', () => resolve({ status: -1, size: 0 }));
    // A server that cuts a refused upload resets the socket, also after the answer was read.
    req.on('socket', (s) => s.listenerCount('error') > 1 || s.on('error', () => {}));
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end(body ?? undefined);
  });
}

/** GET /healthz over HTTPS once a second for `seconds`, from a child process, without verifying the certificate (as the kubelet). */
function probeHealth(port: number, seconds: number, timeoutMs: number): Promise<{ healthMaxMs: number; healthMedianMs: number; healthProbes: number; healthFailures: number; healthFailuresInARow: number }> {
  const script = `
    import https from 'node:https';
    const r = { healthMaxMs: 0, healthMedianMs: 0, healthProbes: 0, healthFailures: 0, healthFailuresInARow: 0 };
    const times = [];
    let run = 0;
    const end = Date.now() + ${seconds * 1000};
    while (Date.now() < end) {
      const t0 = performance.now();
      const ok = await new Promise((resolve) => {
        const req = https.get({ host: '127.0.0.1', port: ${port}, path: '/healthz', rejectUnauthorized: false, agent: false }, (res) => { res.resume(); res.on('end', () => resolve(res.statusCode === 200)); });
        const t = setTimeout(() => req.destroy(), ${timeoutMs}); req.on('close', () => clearTimeout(t));
        req.on('error', () => resolve(false));
      });
      times.push(performance.now() - t0);
      r.healthMaxMs = Math.max(r.healthMaxMs, performance.now() - t0);
      r.healthProbes++;
      run = ok ? 0 : run + 1;
      if (!ok) r.healthFailures++;
      r.healthFailuresInARow = Math.max(r.healthFailuresInARow, run);
      await new Promise((t) => setTimeout(t, Math.max(0, 1000 - (performance.now() - t0))));
    }
    times.sort((a, b) => a - b);
    r.healthMedianMs = times[times.length >> 1] ?? 0;
    process.stdout.write(JSON.stringify(r));`;
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    p.stdout!.on('data', (c: Buffer) => (out += c.toString()));
    p.on('error', reject);
    p.on('close', () => {
      try {
        resolve(JSON.parse(out));
      } catch {
        reject(new Error(`health prober: ${out}`));
      }
    });
  });
}

/** `parallel` clients post the given bodies in turn for `seconds`; the server's RSS and health are watched. */
export async function attack(w: { pid: number; port: number; ca: string; child: ChildProcess }, bodies: [string, Buffer][], parallel: number, seconds: number, probeTimeoutMs = 3000): Promise<AttackResult> {
  const agent = new https.Agent({ keepAlive: true, maxSockets: parallel });
  const deadline = Date.now() + seconds * 1000;
  const statuses: Record<string, number> = {};
  const byKind: Record<string, Record<string, number>> = {};
  let requests = 0;
  let largestAnswer = 0;
  let peak = 0;
  const sampler = setInterval(() => (peak = Math.max(peak, rss(w.pid).now)), 50);
  // The probe runs in a process of its own, as the kubelet does: in this one it would wait for
  // the attackers' own event loop.
  const prober = probeHealth(w.port, seconds, probeTimeoutMs);
  const client = async (k: number) => {
    for (let i = k; Date.now() < deadline && w.child.exitCode === null; i++) {
      const [kind, body] = bodies[i % bodies.length];
      const r = await request(agent, w.port, w.ca, 'POST', '/validate', body, 20_000);
      requests++;
      const key = r.status === -1 ? 'error' : String(r.status);
      statuses[key] = (statuses[key] ?? 0) + 1;
      byKind[kind] ??= {};
      byKind[kind][key] = (byKind[kind][key] ?? 0) + 1;
      largestAnswer = Math.max(largestAnswer, r.size);
    }
  };
  const [health] = await Promise.all([prober, ...Array.from({ length: parallel }, (_, k) => client(k))]);
  clearInterval(sampler);
  agent.destroy();
  const alive = w.child.exitCode === null && w.child.signalCode === null;
  return { seconds, parallel, requests, statuses, byKind, largestAnswer, peakRss: Math.max(peak, rss(w.pid).peak), ...health, alive };
}

function timeIt(fn: () => unknown): number {
  const t0 = performance.now();
  fn();
  return performance.now() - t0;
}

const FLAGS: FlagDef[] = [
  { name: 'mode', type: 'string', default: 'all', usage: 'What to measure: all, overlap or attack.' },
  { name: 'overlap-sizes', type: 'strings', default: ['10000', '100000'], usage: 'Allowed IPs per Peer for the overlap check (comma-separated).' },
  { name: 'quadratic-max', type: 'int', default: 100_000, usage: 'Largest size at which the old quadratic check is timed too (it takes minutes at 100,000).' },
  { name: 'parallel', type: 'int', default: 32, usage: 'Parallel attacking clients.' },
  { name: 'seconds', type: 'int', default: 10, usage: 'Length of the attack.' },
  { name: 'kinds', type: 'strings', default: [...ATTACK_KINDS], usage: `Hostile bodies sent in turn: ${ATTACK_KINDS.join(', ')}.` },
  { name: 'cli', type: 'string', default: BUILT_CLI, usage: 'The cli.js of the kg build to attack (another checkout\'s, to compare).' },
  { name: 'node-options', type: 'string', default: '', usage: 'Node options for the webhook process (default: the manifest\'s NODE_OPTIONS).' },
  { name: 'probe-timeout', type: 'int', default: 0, usage: 'Timeout of a /healthz probe in ms (default: the manifest\'s readiness timeoutSeconds).' },
  { name: 'json', type: 'bool', default: false, usage: 'Print the results as JSON.' },
  { name: 'help', type: 'bool', default: false, usage: 'Show this help.', short: 'h' },
];

async function main(argv: string[]): Promise<number> {
  const values = commandFlags(argv, FLAGS, 'node dist/bench/webhook.js [flags]', "The overlap check against the old quadratic one, and kg webhook's peak RSS under a\nhostile-body attack against the manifest's memory limit.", (v) => {
    if (!['all', 'overlap', 'attack'].includes(v.mode as string)) throw new FlagError(`--mode ${v.mode} unknown; possible values are: all, overlap, attack`);
    for (const k of v.kinds as string[]) if (!(ATTACK_KINDS as readonly string[]).includes(k)) throw new FlagError(`--kinds: ${k} unknown; possible values are: ${ATTACK_KINDS.join(', ')}`);
  });
  const results: Record<string, unknown> = {};
  const say = (s: string) => values.json || console.log(s);
  if (values.mode !== 'attack') {
    const { publicKey } = generateKeyPair();
    for (const size of (values['overlap-sizes'] as string[]).map(Number)) {
      const peer = { spec: { allowedIPs: allowedIPs(size), publicKey } };
      let warnings: string[] = [];
      const sweep = Math.min(...[0, 1, 2].map(() => timeIt(() => (warnings = overlapWarnings(peer)))));
      const row: Record<string, unknown> = { size, sweepMs: sweep, warnings: warnings.length, summary: warnings[warnings.length - 1] };
      if (size <= (values['quadratic-max'] as number)) {
        let pairs = 0;
        row.quadraticMs = timeIt(() => (pairs = quadraticOverlaps(peer)));
        row.quadraticPairs = pairs;
        row.ratio = (row.quadraticMs as number) / sweep;
      }
      results[`overlap/${size}`] = row;
      say(`overlap check, ${size} allowed IPs: sweep ${sweep.toFixed(1)} ms` + (row.quadraticMs !== undefined ? `, quadratic (before) ${(row.quadraticMs as number).toFixed(0)} ms (${(row.ratio as number).toFixed(0)}x), ${row.quadraticPairs} overlapping pairs` : '') + `; ${warnings.length} warnings, last: ${row.summary}`);
    }
  }
  if (values.mode !== 'overlap') {
    const m = manifestWebhook();
    const nodeOptions = (values['node-options'] as string) || m.nodeOptions;
    const all = hostileBodies();
    const bodies = (values.kinds as AttackKind[]).map((k) => [k, all[k]] as [string, Buffer]);
    const w = await startWebhookProcess(values.cli as string, nodeOptions);
    try {
      const idle = rss(w.pid).now;
      const probeTimeout = (values['probe-timeout'] as number) || m.probeTimeoutMs;
      const r = await attack(w, bodies, values.parallel as number, values.seconds as number, probeTimeout);
      results.attack = { ...r, idleRss: idle, memoryLimit: m.memoryLimit, nodeOptions, kinds: values.kinds };
      const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
      say(`attack: ${r.parallel} clients, ${r.seconds} s, kinds ${(values.kinds as string[]).join(',')}, NODE_OPTIONS ${JSON.stringify(nodeOptions)}`);
      say(`  requests ${r.requests}, answers ${JSON.stringify(r.statuses)}, largest answer ${r.largestAnswer} B`);
      for (const [k, v] of Object.entries(r.byKind)) say(`    ${k.padEnd(12)} ${JSON.stringify(v)}`);
      say(`  RSS idle ${mib(idle)}, peak ${mib(r.peakRss)} against the manifest's limit ${mib(m.memoryLimit)} (${((100 * r.peakRss) / m.memoryLimit).toFixed(0)}%)`);
      say(`  /healthz (a probe a second, ${probeTimeout / 1000} s timeout): median ${r.healthMedianMs.toFixed(0)} ms, slowest ${r.healthMaxMs.toFixed(0)} ms, ${r.healthFailures} of ${r.healthProbes} failed, at most ${r.healthFailuresInARow} in a row (readiness fails at ${m.readinessFailureThreshold}); process ${r.alive ? 'alive' : `DEAD: ${w.output().slice(-2000)}`}`);
    } finally {
      await w.stop();
    }
  }
  if (values.json) console.log(JSON.stringify(results, null, 2));
  return 0;
}

if (isEntry(import.meta.url)) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e: Error) => {
      console.error(e.stack ?? e.message);
      process.exit(1);
    },
  );
}
