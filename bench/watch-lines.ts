// Benchmark: consuming one watch line without a newline, of 64 and 256 MiB, in chunks, with the
// old splitter (`rest += chunk; rest.indexOf('\n')`, main before issue 15) and the new one
// (watch/lines.ts), each in a child process of its own: wall time and peak RSS above the child's
// level before the first chunk (VmHWM - VmRSS). The new splitter runs twice: with its default
// limit (it refuses the line at 8 MiB) and with the limit above the line (it holds it all: the
// linear-time case). The old one is stopped after --old-budget seconds.
//
//   node dist/bench/watch-lines.js [--sizes 64,256] [--chunk 16384] [--old-budget 120] [--json]
import { readFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { StringDecoder } from 'node:string_decoder';
import { parseArgs } from 'node:util';
import { DEFAULT_MAX_LINE_BYTES, LineSplitter } from '../watch/lines.js';

const HELP = `usage: node dist/bench/watch-lines.js [options]
  --sizes <MiB,...>     line sizes in MiB (default 64,256)
  --chunk <bytes>       chunk size (default 16384: one TLS record)
  --old-budget <s>      stop the old splitter after this many seconds (default 120)
  --json                print one JSON object per run instead of the table
  --help                this text`;

type Variant = 'old' | 'new-default-limit' | 'new-unbounded';
interface Result { variant: Variant; mib: number; consumed: number; seconds: number; peakMiB: number; finished: boolean; note: string }

const MiB = 1024 * 1024;
const status = (k: string) => Number(new RegExp(`${k}:\\s+(\\d+)`).exec(readFileSync('/proc/self/status', 'utf8'))![1]) / 1024;

/** One run inside the child: feeds `size` bytes of 'a' (no newline) in chunks. */
function child(variant: Variant, size: number, chunkBytes: number, budgetS: number): Result {
  const chunk = Buffer.alloc(chunkBytes, 'a');
  const base = status('VmRSS');
  const t0 = performance.now();
  let consumed = 0;
  let finished = true;
  let note = '';
  const lines: string[] = [];
  if (variant === 'old') {
    // watch/kube.ts before: res.setEncoding('utf8') (a StringDecoder), then this, per chunk.
    const dec = new StringDecoder('utf8');
    let rest = '';
    while (consumed < size) {
      rest += dec.write(chunk);
      let i: number;
      while ((i = rest.indexOf('\n')) >= 0) {
        lines.push(rest.slice(0, i));
        rest = rest.slice(i + 1);
      }
      consumed += chunk.length;
      if ((consumed / chunk.length) % 64 === 0 && performance.now() - t0 > budgetS * 1000) {
        finished = false;
        note = `stopped after ${budgetS} s`;
        break;
      }
    }
    note ||= `held ${(rest.length / MiB).toFixed(0)} Mi characters`;
  } else {
    const s = new LineSplitter(variant === 'new-default-limit' ? DEFAULT_MAX_LINE_BYTES : size + 1);
    try {
      while (consumed < size) {
        s.push(chunk, (l) => lines.push(l));
        consumed += chunk.length;
      }
      note = `held ${(s.buffered / MiB).toFixed(0)} MiB`;
    } catch (e) {
      note = `refused: ${(e as Error).message}`;
    }
  }
  const seconds = (performance.now() - t0) / 1000;
  return { variant, mib: size / MiB, consumed, seconds, peakMiB: status('VmHWM') - base, finished, note };
}

function main(): void {
  let values;
  try {
    ({ values } = parseArgs({
      options: {
        sizes: { type: 'string', default: '64,256' }, chunk: { type: 'string', default: '16384' }, 'old-budget': { type: 'string', default: '120' },
        json: { type: 'boolean', default: false }, help: { type: 'boolean', default: false }, child: { type: 'string' },
      },
      strict: true, allowPositionals: false,
    }));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n${HELP}\n`);
    process.exit(2);
  }
  if (values.help) return void process.stdout.write(HELP + '\n');
  const chunk = Number(values.chunk);
  const budget = Number(values['old-budget']);
  const sizes = values.sizes.split(',').map(Number);
  if (!(chunk > 0) || !(budget > 0) || sizes.some((x) => !(x > 0))) {
    process.stderr.write(`--sizes, --chunk and --old-budget take positive numbers\n${HELP}\n`);
    process.exit(2);
  }
  if (values.child) {
    const [variant, size] = values.child.split(':');
    return void process.stdout.write(JSON.stringify(child(variant as Variant, Number(size), chunk, budget)) + '\n');
  }
  const self = fileURLToPath(import.meta.url);
  const results: Result[] = [];
  for (const mib of sizes) {
    for (const variant of ['new-default-limit', 'new-unbounded', 'old'] as Variant[]) {
      // 1.5 GiB of heap: the old splitter's flattened copies of a 256 MiB string need room.
      const r = spawnSync(process.execPath, ['--max-old-space-size=1536', self, '--child', `${variant}:${mib * MiB}`, '--chunk', String(chunk), '--old-budget', String(budget)], { encoding: 'utf8' });
      const res: Result = r.status === 0
        ? JSON.parse(r.stdout)
        : { variant, mib, consumed: 0, seconds: NaN, peakMiB: NaN, finished: false, note: `child failed: ${(r.stderr.trim().split('\n').pop() ?? '').slice(0, 120)}` };
      results.push(res);
      if (values.json) process.stdout.write(JSON.stringify(res) + '\n');
    }
  }
  if (values.json) return;
  process.stdout.write(`chunk ${chunk} bytes, node ${process.version}\n`);
  process.stdout.write('| line | splitter | consumed | time | MiB/s | peak RSS above start | note |\n|---|---|---|---|---|---|---|\n');
  for (const r of results) {
    const rate = r.seconds > 0 ? (r.consumed / MiB / r.seconds).toFixed(0) : '-';
    process.stdout.write(`| ${r.mib} MiB | ${r.variant} | ${(r.consumed / MiB).toFixed(1)} MiB | ${r.seconds.toFixed(3)} s | ${rate} | ${r.peakMiB.toFixed(1)} MiB | ${r.note} |\n`);
  }
}

main();
