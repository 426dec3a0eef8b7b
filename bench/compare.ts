// Compares two benchmark results files and flags regressions:
//
//   node dist/bench/compare.js OLD.json NEW.json [--threshold 0.2] [--metric p50|p99|min] [--baseline PREFIX]
//
// --baseline baseline/structuredClone compares each measurement as a ratio to the baseline of
// the same size measured in the same run (npm run bench measures one), so that a machine that is
// slower or busier in one run does not read as a regression.
// Reads `npm run bench` files (format below) and `kg bench -o json` output (one run or a
// sweep). A measurement regresses when NEW / OLD > 1 + threshold (default 0.2: the shared 2-core
// machine is noisy; re-run before trusting a flag). Exit status: 0 no regression, 1 at least one
// regression, 2 bad usage or unreadable input.
//
// Also the results-file format that `npm run bench` (bench/plan.ts) writes: named measurements
// with the same names from commit to commit, plus where they were measured.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { isEntry } from '../main/entry.js';
import { flagHelp, parseFlags, type FlagDef } from '../main/flags.js';

export interface Measurement {
  /** Stable across commits, e.g. "plan/full/5000 nodes/100 loc/location". */
  name: string;
  unit: 'ms';
  p50: number;
  p99?: number;
  min?: number;
}

export interface ResultsFile {
  format: 'kg-bench-results/1';
  bench: string;
  date: string;
  commit: string | null;
  machine: { cpus: number; cpuModel: string; node: string };
  measurements: Measurement[];
  /** Free-form detail (not compared). */
  detail?: unknown;
}

function gitCommit(): string | null {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim() || null;
  } catch {
    return null;
  }
}

export function resultsFile(bench: string, measurements: Measurement[], detail?: unknown): ResultsFile {
  const c = cpus();
  return {
    format: 'kg-bench-results/1', bench, date: new Date().toISOString(), commit: gitCommit(),
    machine: { cpus: c.length, cpuModel: c[0]?.model.trim() ?? 'unknown', node: process.version },
    measurements, ...(detail === undefined ? {} : { detail }),
  };
}

export type Metric = 'p50' | 'p99' | 'min';

export interface Comparison {
  name: string;
  old: number;
  new: number;
  ratio: number;
  verdict: 'regression' | 'improvement' | 'same';
}

export class CompareError extends Error {}

interface Timing { minMs: number; p50Ms: number; p99Ms: number }
interface KgBenchRun {
  cluster: { nodes: number; locations: number };
  config: { granularity: string };
  compute: { plannerPlan?: Timing; fullPlan: Timing; incrementalPlan: Timing };
  kernel: { ran: boolean; coldApply?: { minMs: number; medianMs: number; maxMs: number }; oneChangeApply?: { minMs: number; medianMs: number; maxMs: number }; noopResync?: { minMs: number; medianMs: number; maxMs: number } };
}

function fromKgBench(r: KgBenchRun): Measurement[] {
  const key = `${r.cluster.nodes} nodes/${r.cluster.locations} loc/${r.config.granularity}`;
  const t = (n: string, x: Timing): Measurement => ({ name: `kg-bench/${n}/${key}`, unit: 'ms', p50: x.p50Ms, p99: x.p99Ms, min: x.minMs });
  const out = [t('full-plan', r.compute.fullPlan), t('incremental-plan', r.compute.incrementalPlan), ...(r.compute.plannerPlan ? [t('planner-plan', r.compute.plannerPlan)] : [])];
  const k = r.kernel;
  for (const [n, x] of [['cold-apply', k.coldApply], ['one-change-apply', k.oneChangeApply], ['noop-resync', k.noopResync]] as const) {
    if (k.ran && x) out.push({ name: `kg-bench/${n}/${key}`, unit: 'ms', p50: x.medianMs, p99: x.maxMs, min: x.minMs });
  }
  return out;
}

/** The measurements of a results file, whichever of the known formats it is. */
export function measurementsOf(doc: unknown, path: string): Measurement[] {
  const d = doc as Record<string, unknown> | null;
  if (d && Array.isArray(d.measurements)) {
    for (const m of d.measurements as Measurement[]) {
      if (typeof m?.name !== 'string' || typeof m.p50 !== 'number') throw new CompareError(`${path}: a measurement has no name or p50`);
    }
    return d.measurements as Measurement[];
  }
  if (d && (d as { compute?: unknown }).compute) return fromKgBench(d as unknown as KgBenchRun);
  // A sweep: results.json is an array of runs; `kg bench --sweep -o json` wraps it in { results }.
  const runs = Array.isArray(d) ? d : d && Array.isArray((d as { results?: unknown }).results) ? (d as { results: unknown[] }).results : null;
  if (runs && runs.every((r) => (r as { compute?: unknown } | null)?.compute)) return (runs as KgBenchRun[]).flatMap(fromKgBench);
  throw new CompareError(`${path}: not a benchmark results file (expected npm run bench or kg bench -o json output)`);
}

export function readResults(path: string): Measurement[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new CompareError(`cannot read ${path}: ${(e as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new CompareError(`${path}: invalid JSON: ${(e as Error).message}`);
  }
  return measurementsOf(doc, path);
}

/**
 * With a baseline prefix (e.g. "baseline/structuredClone"), every measurement "kind/variant/KEY"
 * is first divided by "PREFIX/KEY" from the same file: a machine that is uniformly slower (or
 * busier) in one run then cancels out. Measurements without a same-file baseline are skipped.
 */
function relativeTo(ms: Measurement[], prefix: string, metric: Metric): Measurement[] {
  const byName = new Map(ms.map((m) => [m.name, m]));
  return ms.flatMap((m) => {
    if (m.name.startsWith(prefix + '/')) return [];
    const base = byName.get(`${prefix}/${m.name.split('/').slice(2).join('/')}`)?.[metric];
    const v = m[metric];
    return typeof base === 'number' && base > 0 && typeof v === 'number' ? [{ ...m, [metric]: v / base }] : [];
  });
}

export function compare(oldM: Measurement[], newM: Measurement[], threshold: number, metric: Metric = 'p50', baseline?: string): { rows: Comparison[]; onlyOld: string[]; onlyNew: string[] } {
  if (baseline) {
    oldM = relativeTo(oldM, baseline, metric);
    newM = relativeTo(newM, baseline, metric);
  }
  const byName = new Map(oldM.map((m) => [m.name, m]));
  const newNames = new Set(newM.map((m) => m.name));
  const rows: Comparison[] = [];
  for (const n of newM) {
    const o = byName.get(n.name);
    const a = o?.[metric], b = n[metric];
    if (o === undefined || typeof a !== 'number' || typeof b !== 'number' || a <= 0) continue;
    const ratio = b / a;
    rows.push({ name: n.name, old: a, new: b, ratio, verdict: ratio > 1 + threshold ? 'regression' : ratio < 1 / (1 + threshold) ? 'improvement' : 'same' });
  }
  return { rows, onlyOld: oldM.filter((m) => !newNames.has(m.name)).map((m) => m.name), onlyNew: newM.filter((m) => !byName.has(m.name)).map((m) => m.name) };
}

const FLAGS: FlagDef[] = [
  { name: 'threshold', type: 'string', default: '0.2', usage: 'A measurement regresses when NEW / OLD > 1 + threshold.' },
  { name: 'metric', type: 'string', default: 'p50', usage: 'Statistic compared: p50, p99 or min.' },
  { name: 'baseline', type: 'string', default: '', usage: 'Compare each measurement as a ratio to the measurement with this name prefix, same size, same run.' },
  { name: 'help', short: 'h', type: 'bool', default: false, usage: 'Print this help.' },
];
const USAGE = `Usage: node dist/bench/compare.js OLD.json NEW.json [flags]

Compares two benchmark results files (npm run bench, kg bench -o json) and flags regressions.
Exit status: 0 no regression, 1 at least one regression, 2 bad usage or unreadable input.

Flags:
${flagHelp(FLAGS)}
`;

export function main(argv: string[]): number {
  let parsed: ReturnType<typeof parseFlags>;
  try {
    parsed = parseFlags(argv, FLAGS);
  } catch (e) {
    throw new CompareError((e as Error).message);
  }
  const { values, positionals: files } = parsed;
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  const v = values.threshold as string;
  const threshold = Number(v);
  if (!/^[0-9]*\.?[0-9]+$/.test(v) || !(threshold >= 0)) throw new CompareError(`invalid --threshold "${v}": expected a fraction such as 0.2 (20 %)`);
  const m = values.metric as string;
  if (m !== 'p50' && m !== 'p99' && m !== 'min') throw new CompareError(`invalid --metric "${m}"; possible values are: p50, p99, min`);
  const metric: Metric = m;
  const baseline = (values.baseline as string) || undefined;
  if (files.length !== 2) throw new CompareError('usage: compare OLD.json NEW.json [--threshold 0.2] [--metric p50|p99|min] [--baseline PREFIX]');
  const r = compare(readResults(files[0]), readResults(files[1]), threshold, metric, baseline);
  if (r.rows.length === 0) throw new CompareError(`${files[0]} and ${files[1]} have no measurement in common`);
  const w = Math.max(...r.rows.map((x) => x.name.length));
  for (const x of r.rows) {
    const flag = x.verdict === 'regression' ? 'REGRESSION' : x.verdict === 'improvement' ? 'improved' : '';
    console.log(`${x.name.padEnd(w)}  ${x.old.toFixed(3).padStart(10)} → ${x.new.toFixed(3).padStart(10)} ${baseline ? '× baseline' : 'ms'}  ${x.ratio.toFixed(2)}x  ${flag}`.trimEnd());
  }
  for (const n of r.onlyOld) console.log(`only in ${files[0]}: ${n}`);
  for (const n of r.onlyNew) console.log(`only in ${files[1]}: ${n}`);
  const bad = r.rows.filter((x) => x.verdict === 'regression');
  console.log(bad.length ? `${bad.length} regression(s) beyond ${Math.round(threshold * 100)} % (${metric})` : `no regression beyond ${Math.round(threshold * 100)} % (${metric}) in ${r.rows.length} measurements`);
  return bad.length ? 1 : 0;
}

if (isEntry(import.meta.url)) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`compare: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 2;
  }
}
