// bench/svg.ts: charts are well-formed XML, data stays inside the plot area, scales are right.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { barChart, histogram, lineChart, logTicks, niceTicks } from '../../bench/svg.js';

function wellFormed(svg: string): void {
  const v = XMLValidator.validate(svg);
  assert.equal(v, true, `not well-formed XML: ${JSON.stringify(v)}`);
  assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
  assert.match(svg, /<\/svg>$/);
}
function plotArea(svg: string) {
  const m = /<rect class="plot-area" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/.exec(svg);
  assert.ok(m, 'plot area present');
  const [x, y, w, h] = m.slice(1).map(Number);
  return { x0: x, y0: y, x1: x + w, y1: y + h };
}
function circles(svg: string): { cx: number; cy: number }[] {
  return [...svg.matchAll(/<circle cx="([-\d.]+)" cy="([-\d.]+)"/g)].map((m) => ({ cx: Number(m[1]), cy: Number(m[2]) }));
}
function inside(svg: string, pts: { cx: number; cy: number }[]): void {
  const a = plotArea(svg);
  for (const p of pts) {
    assert.ok(p.cx >= a.x0 - 0.5 && p.cx <= a.x1 + 0.5 && p.cy >= a.y0 - 0.5 && p.cy <= a.y1 + 0.5, `point ${JSON.stringify(p)} outside ${JSON.stringify(a)}`);
  }
}

test('niceTicks uses 1/2/5 steps that cover the range', () => {
  const t = niceTicks(3, 97);
  assert.deepEqual(t.ticks, [0, 20, 40, 60, 80, 100]);
  assert.ok(t.lo <= 3 && t.hi >= 97);
  const s = niceTicks(0.013, 0.048);
  for (const v of s.ticks) assert.ok(/^(0|0\.0[0-9]+)$/.test(String(v)), `tick ${v} is a clean decimal`);
  assert.ok(niceTicks(5, 5).ticks.length >= 2, 'a single value still gets an axis');
});

test('logTicks covers the range with decades', () => {
  const t = logTicks(100, 10000);
  assert.deepEqual([t.lo, t.hi], [100, 10000]);
  assert.deepEqual(t.ticks, [100, 200, 500, 1000, 2000, 5000, 10000]);
  assert.deepEqual(logTicks(3, 200000).ticks, [1, 10, 100, 1000, 10000, 100000, 1000000]);
});

test('lineChart: well-formed, escaped, every point in the plot area, one legend entry per series', () => {
  const svg = lineChart({
    title: 'plan time <ms> & "nodes"', xLabel: 'nodes', yLabel: 'ms',
    series: [
      { name: 'full <plan>', points: [[100, 0.5], [1000, 4], [5000, 22], [10000, 51]] },
      { name: "incremental 'one'", points: [[100, 0.1], [1000, 0.6], [5000, 2.5], [10000, 5.2]] },
    ],
  });
  wellFormed(svg);
  assert.ok(svg.includes('plan time &lt;ms&gt; &amp; &quot;nodes&quot;'));
  assert.ok(!svg.includes('<plan>'));
  const parsed = new XMLParser({ ignoreAttributes: false }).parse(svg);
  assert.ok(parsed.svg, 'root element is svg');
  const pts = circles(svg);
  assert.equal(pts.length, 8);
  inside(svg, pts);
  assert.equal((svg.match(/class="legend"/g) ?? []).length, 2);
});

test('lineChart on log axes: equal ratios are equal distances, non-positive values dropped', () => {
  const svg = lineChart({
    title: 'log', xLabel: 'x', yLabel: 'y', logX: true, logY: true,
    series: [{ name: 's', points: [[10, 1], [100, 10], [1000, 100], [0, 5], [50, -1]] }],
  });
  wellFormed(svg);
  const pts = circles(svg);
  assert.equal(pts.length, 3, 'x=0 and y=-1 cannot be shown on a log axis');
  inside(svg, pts);
  const [a, b, c] = pts;
  assert.ok(Math.abs((b.cx - a.cx) - (c.cx - b.cx)) < 0.5, 'decades equally spaced on x');
  assert.ok(Math.abs((a.cy - b.cy) - (b.cy - c.cy)) < 0.5, 'decades equally spaced on y');
  assert.ok(a.cy > c.cy, 'larger y is higher up');
  assert.match(svg, />1000</, 'decade tick labelled');
});

test('lineChart: a series with nothing drawable on a log axis says so in the legend', () => {
  const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', logY: true, series: [{ name: 'zero', points: [[1, 0], [2, 0]] }, { name: 'ok', points: [[1, 1], [2, 3]] }] });
  wellFormed(svg);
  assert.ok(svg.includes('zero (≤ 0, not drawn)'));
  assert.equal(circles(svg).length, 2);
});

test('lineChart with no data still renders a valid document', () => {
  const svg = lineChart({ title: 't', xLabel: 'x', yLabel: 'y', series: [] });
  wellFormed(svg);
  assert.match(svg, /no data/);
});

test('histogram: bins and marks inside the plot area', () => {
  const bins = Array.from({ length: 20 }, (_, i) => ({ lo: i * 5, hi: (i + 1) * 5, count: Math.round(100 * Math.exp(-i / 4)) }));
  const svg = histogram({ title: 'latency', xLabel: 'ms', bins, marks: [{ label: 'p50 <', x: 7 }, { label: 'p99', x: 80 }] });
  wellFormed(svg);
  const a = plotArea(svg);
  const rects = [...svg.matchAll(/<rect class="bin" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)].map((m) => m.slice(1).map(Number));
  assert.equal(rects.length, 20);
  for (const [x, y, w, h] of rects) {
    assert.ok(x >= a.x0 - 0.5 && x + w <= a.x1 + 0.5 && y >= a.y0 - 0.5 && y + h <= a.y1 + 0.5, 'bin inside');
  }
  assert.ok(rects[0][3] > rects[19][3], 'taller bar for a larger count');
  assert.equal((svg.match(/class="mark"/g) ?? []).length, 2);
  assert.ok(svg.includes('p50 &lt;'));
});

test('barChart: groups get a legend, bars sit on zero inside the plot area', () => {
  const svg = barChart({
    title: 'throughput', yLabel: 'plans/s',
    bars: [{ label: 'pool', value: 900, group: 'piscina' }, { label: 'one thread', value: 450, group: 'inline' }, { label: 'x&y', value: 0 }],
  });
  wellFormed(svg);
  const a = plotArea(svg);
  const rects = [...svg.matchAll(/<rect class="bar" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/g)].map((m) => m.slice(1).map(Number));
  assert.equal(rects.length, 3);
  for (const [x, y, w, h] of rects) assert.ok(x >= a.x0 && x + w <= a.x1 && y >= a.y0 - 0.5 && y + h <= a.y1 + 0.5);
  assert.ok(Math.abs(rects[0][3] - 2 * rects[1][3]) < 1, 'heights proportional to values');
  assert.equal((svg.match(/class="legend"/g) ?? []).length, 2);
  assert.ok(svg.includes('x&amp;y'));
});
