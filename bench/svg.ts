// Small dependency-free SVG charts for benchmark reports (kg bench --sweep, load tests).
// Every function returns one complete, standalone <svg> document: text is XML-escaped, axes
// carry "nice" ticks (1/2/5×10^k, or decades on a log scale), and the plot area is marked with
// class="plot-area" so tests (and readers of the source) can check that data stays inside it.

export interface Series { name: string; points: [number, number][] }

export interface LineChartOptions {
  title: string; xLabel: string; yLabel: string; series: Series[];
  logX?: boolean; logY?: boolean; width?: number; height?: number;
}
export interface HistogramOptions {
  title: string; xLabel: string; bins: { lo: number; hi: number; count: number }[];
  marks?: { label: string; x: number }[]; width?: number; height?: number;
  /** y-axis label; defaults to "count". */
  yLabel?: string;
}
export interface BarChartOptions {
  title: string; yLabel: string; bars: { label: string; value: number; group?: string }[];
  width?: number; height?: number;
}

const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
const FONT = 'font-family="sans-serif"';

/** Escapes text for XML content and attribute values. */
export function esc(s: string): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** Compact tick label: 1500 → "1.5k", 0.002 → "0.002", 2e6 → "2M". */
export function fmtTick(v: number): string {
  if (v === 0) return '0';
  const a = Math.abs(v);
  const trim = (x: number) => String(Number(x.toPrecision(3)));
  if (a >= 1e9) return trim(v / 1e9) + 'G';
  if (a >= 1e6) return trim(v / 1e6) + 'M';
  if (a >= 1e4) return trim(v / 1e3) + 'k';
  if (a < 1e-3) return v.toExponential(0);
  return trim(v);
}

/** Linear ticks on 1/2/5×10^k steps covering [lo, hi]; returns the widened domain too. */
export function niceTicks(lo: number, hi: number, count = 5): { lo: number; hi: number; ticks: number[] } {
  if (!Number.isFinite(lo) || !Number.isFinite(hi)) { lo = 0; hi = 1; }
  if (lo === hi) { const d = lo === 0 ? 1 : Math.abs(lo) * 0.1; lo -= d; hi += d; }
  const raw = (hi - lo) / Math.max(1, count);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) ?? 10 * mag;
  const nlo = Math.floor(lo / step + 1e-9) * step;
  const nhi = Math.ceil(hi / step - 1e-9) * step;
  const ticks: number[] = [];
  for (let v = nlo, i = 0; v <= nhi + step / 2 && i < 100; v += step, i++) ticks.push(Number(v.toPrecision(12)));
  return { lo: nlo, hi: nhi, ticks };
}

/** Log ticks: the decades covering [lo, hi] (both > 0), with 2 and 5 added when few decades. */
export function logTicks(lo: number, hi: number): { lo: number; hi: number; ticks: number[] } {
  if (!(lo > 0) || !(hi > 0)) { lo = 1; hi = 10; }
  const a = Math.floor(Math.log10(lo) + 1e-9), b = Math.max(a + 1, Math.ceil(Math.log10(hi) - 1e-9));
  const ticks: number[] = [];
  const mults = b - a <= 2 ? [1, 2, 5] : [1];
  for (let e = a; e <= b; e++) for (const m of mults) {
    const v = Number((m * 10 ** e).toPrecision(12));
    if (v >= 10 ** a && v <= 10 ** b) ticks.push(v);
  }
  return { lo: 10 ** a, hi: 10 ** b, ticks };
}

interface Axis { lo: number; hi: number; ticks: number[]; log: boolean }
function axis(values: number[], log: boolean, zero: boolean): Axis {
  const vs = values.filter((v) => Number.isFinite(v) && (!log || v > 0));
  let lo = vs.length ? Math.min(...vs) : (log ? 1 : 0), hi = vs.length ? Math.max(...vs) : (log ? 10 : 1);
  if (log) return { ...logTicks(lo, hi), log };
  if (zero) { lo = Math.min(0, lo); hi = Math.max(0, hi); }
  return { ...niceTicks(lo, hi), log };
}
function scale(ax: Axis, a: number, b: number): (v: number) => number {
  if (ax.log) {
    const l0 = Math.log10(ax.lo), l1 = Math.log10(ax.hi);
    return (v) => a + ((Math.log10(v) - l0) / (l1 - l0)) * (b - a);
  }
  return (v) => a + ((v - ax.lo) / (ax.hi - ax.lo)) * (b - a);
}

const r1 = (v: number) => Math.round(v * 10) / 10;

interface Frame { x0: number; y0: number; x1: number; y1: number; w: number; h: number }
function frame(w: number, h: number, right: number): Frame {
  const x0 = 70, y0 = 40, x1 = w - right, y1 = h - 55;
  return { x0, y0, x1, y1, w, h };
}
function open(f: Frame, title: string): string[] {
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${f.w}" height="${f.h}" viewBox="0 0 ${f.w} ${f.h}" ${FONT} font-size="12">`,
    `<title>${esc(title)}</title>`,
    `<rect width="${f.w}" height="${f.h}" fill="#fff"/>`,
    `<text x="${f.w / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${esc(title)}</text>`,
    `<rect class="plot-area" x="${f.x0}" y="${f.y0}" width="${f.x1 - f.x0}" height="${f.y1 - f.y0}" fill="none" stroke="#999"/>`,
  ];
}
function yAxis(f: Frame, ax: Axis, sy: (v: number) => number, label: string): string[] {
  const out = ax.ticks.map((t) => {
    const y = r1(sy(t));
    return `<line x1="${f.x0}" x2="${f.x1}" y1="${y}" y2="${y}" stroke="#eee"/>` +
      `<text x="${f.x0 - 6}" y="${y + 4}" text-anchor="end">${esc(fmtTick(t))}</text>`;
  });
  const cy = (f.y0 + f.y1) / 2;
  out.push(`<text x="16" y="${cy}" text-anchor="middle" transform="rotate(-90 16 ${cy})">${esc(label)}</text>`);
  return out;
}
function xAxis(f: Frame, ax: Axis, sx: (v: number) => number, label: string): string[] {
  const out = ax.ticks.map((t) => {
    const x = r1(sx(t));
    return `<line x1="${x}" x2="${x}" y1="${f.y0}" y2="${f.y1}" stroke="#eee"/>` +
      `<text x="${x}" y="${f.y1 + 16}" text-anchor="middle">${esc(fmtTick(t))}</text>`;
  });
  out.push(`<text x="${(f.x0 + f.x1) / 2}" y="${f.h - 12}" text-anchor="middle">${esc(label)}</text>`);
  return out;
}
function legend(f: Frame, names: string[]): string[] {
  return names.map((n, i) => {
    const y = f.y0 + 8 + i * 18, x = f.x1 + 12, c = PALETTE[i % PALETTE.length];
    return `<g class="legend"><rect x="${x}" y="${y - 8}" width="12" height="10" fill="${c}"/>` +
      `<text x="${x + 18}" y="${y + 1}">${esc(n)}</text></g>`;
  });
}
function noData(f: Frame): string {
  return `<text x="${(f.x0 + f.x1) / 2}" y="${(f.y0 + f.y1) / 2}" text-anchor="middle" fill="#999">no data</text>`;
}

/** Line chart of one or more series; non-positive values are dropped on a log axis. */
export function lineChart(o: LineChartOptions): string {
    const keep = (p: [number, number]) => Number.isFinite(p[0]) && Number.isFinite(p[1]) && (!o.logX || p[0] > 0) && (!o.logY || p[1] > 0);
  // A series whose values cannot be drawn (e.g. all zero on a log axis) says so in its legend.
  const series = o.series.map((s) => {
    const points = s.points.filter(keep).sort((a, b) => a[0] - b[0]);
    const name = points.length === 0 && s.points.length > 0 ? `${s.name} (${o.logX || o.logY ? '≤ 0, ' : ''}not drawn)` : s.name;
    return { name, points };
  });
  const legendW = Math.min(300, 44 + Math.max(0, ...series.map((s) => s.name.length)) * 7.2);
  const f = frame(o.width ?? 720, o.height ?? 420, legendW);
  const all = series.flatMap((s) => s.points);
  const ax = axis(all.map((p) => p[0]), !!o.logX, false);
  const ay = axis(all.map((p) => p[1]), !!o.logY, true);
  const sx = scale(ax, f.x0, f.x1), sy = scale(ay, f.y1, f.y0);
  const out = open(f, o.title);
  out.push(...yAxis(f, ay, sy, o.yLabel), ...xAxis(f, ax, sx, o.xLabel));
  if (all.length === 0) out.push(noData(f));
  series.forEach((s, i) => {
    const c = PALETTE[i % PALETTE.length];
    const pts = s.points.map(([x, y]) => `${r1(sx(x))},${r1(sy(y))}`);
    out.push(`<g class="series" data-name="${esc(s.name)}">`);
    if (pts.length > 1) out.push(`<polyline fill="none" stroke="${c}" stroke-width="2" points="${pts.join(' ')}"/>`);
    for (const [x, y] of s.points) {
      out.push(`<circle cx="${r1(sx(x))}" cy="${r1(sy(y))}" r="3" fill="${c}"><title>${esc(`${s.name}: ${fmtTick(x)} → ${fmtTick(y)}`)}</title></circle>`);
    }
    out.push('</g>');
  });
  out.push(...legend(f, series.map((s) => s.name)), '</svg>');
  return out.join('\n');
}

/** Histogram of pre-binned counts, with optional labelled vertical marks (e.g. p50, p99). */
export function histogram(o: HistogramOptions): string {
  const f = frame(o.width ?? 720, o.height ?? 380, 30);
  const bins = o.bins.filter((b) => Number.isFinite(b.lo) && Number.isFinite(b.hi) && b.hi >= b.lo && b.count >= 0);
  const marks = (o.marks ?? []).filter((m) => Number.isFinite(m.x));
  const ax = axis([...bins.flatMap((b) => [b.lo, b.hi]), ...marks.map((m) => m.x)], false, false);
  const ay = axis(bins.map((b) => b.count), false, true);
  const sx = scale(ax, f.x0, f.x1), sy = scale(ay, f.y1, f.y0);
  const out = open(f, o.title);
  out.push(...yAxis(f, ay, sy, o.yLabel ?? 'count'), ...xAxis(f, ax, sx, o.xLabel));
  if (bins.length === 0) out.push(noData(f));
  for (const b of bins) {
    const x = sx(b.lo), w = Math.max(0.5, sx(b.hi) - x), y = sy(b.count);
    out.push(`<rect class="bin" x="${r1(x)}" y="${r1(y)}" width="${r1(w)}" height="${r1(f.y1 - y)}" fill="${PALETTE[0]}" fill-opacity="0.75" stroke="#fff" stroke-width="0.5"><title>${esc(`${fmtTick(b.lo)}–${fmtTick(b.hi)}: ${b.count}`)}</title></rect>`);
  }
  marks.forEach((m, i) => {
    const x = r1(sx(m.x)), c = PALETTE[(i + 1) % PALETTE.length];
    out.push(`<g class="mark"><line x1="${x}" x2="${x}" y1="${f.y0}" y2="${f.y1}" stroke="${c}" stroke-dasharray="4 3" stroke-width="1.5"/>` +
      `<text x="${x + 3}" y="${f.y0 + 12 + (i % 4) * 14}" fill="${c}" stroke="#fff" stroke-width="3" paint-order="stroke">${esc(m.label)}</text></g>`);
  });
  out.push('</svg>');
  return out.join('\n');
}

/** Vertical bar chart; bars sharing a group share a colour and a legend entry. */
export function barChart(o: BarChartOptions): string {
  const groups = [...new Set(o.bars.map((b) => b.group).filter((g): g is string => g !== undefined))];
  const legendW = groups.length ? Math.min(240, 44 + Math.max(...groups.map((g) => g.length)) * 7.2) : 30;
  const f = frame(o.width ?? 720, o.height ?? 400, legendW);
  const bars = o.bars.filter((b) => Number.isFinite(b.value));
  const ay = axis(bars.map((b) => b.value), false, true);
  const sy = scale(ay, f.y1, f.y0);
  const out = open(f, o.title);
  out.push(...yAxis(f, ay, sy, o.yLabel));
  if (bars.length === 0) out.push(noData(f));
  const slot = (f.x1 - f.x0) / Math.max(1, bars.length), bw = slot * 0.7;
  bars.forEach((b, i) => {
    const gi = b.group === undefined ? 0 : groups.indexOf(b.group);
    const x = f.x0 + i * slot + (slot - bw) / 2, y0 = sy(0), y = sy(b.value);
    const top = Math.min(y, y0), h = Math.abs(y0 - y);
    out.push(`<rect class="bar" x="${r1(x)}" y="${r1(top)}" width="${r1(bw)}" height="${r1(h)}" fill="${PALETTE[gi % PALETTE.length]}"><title>${esc(`${b.label}: ${fmtTick(b.value)}`)}</title></rect>`);
    const cx = r1(x + bw / 2), ty = f.y1 + 16;
    // Long or many labels are tilted so they do not overlap.
    const tilt = bars.length > 6 || b.label.length * 7 > slot;
    out.push(tilt
      ? `<text x="${cx}" y="${ty}" text-anchor="end" font-size="11" transform="rotate(-30 ${cx} ${ty})">${esc(b.label)}</text>`
      : `<text x="${cx}" y="${ty}" text-anchor="middle">${esc(b.label)}</text>`);
  });
  if (groups.length) out.push(...legend(f, groups));
  out.push('</svg>');
  return out.join('\n');
}
