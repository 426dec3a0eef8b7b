// The list splitter (watch/list-items.ts): whatever the chunking, the items come out one by one,
// equal to the list's, and the rest (kind, metadata) parses with `items` empty; strings full of
// brackets, quotes and backslashes do not confuse it; an oversized item or a cut body is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ListItemSplitter } from '../../watch/list-items.js';
import { InvalidResponseError } from '../../watch/kube-error.js';

/** A pseudo-random generator (seeded: the same cases every run). */
function rng(seed: number) {
  let s = seed >>> 0;
  return () => ((s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32);
}
const NASTY = ['"', '\\', '{', '}', '[', ']', ':', ',', 'items', '\\"', 'é', '😀', ' ', '\n'];

function randomString(r: () => number): string {
  let s = '';
  for (let n = Math.floor(r() * 8); n > 0; n--) s += r() < 0.5 ? NASTY[Math.floor(r() * NASTY.length)] : String.fromCharCode(97 + Math.floor(r() * 26));
  return s;
}

function split(text: Buffer, cuts: number[], max = 1 << 20) {
  const s = new ListItemSplitter(max);
  const items: unknown[] = [];
  let at = 0;
  for (const c of [...cuts, text.length]) {
    s.push(text.subarray(at, c), (t) => items.push(JSON.parse(t)));
    at = c;
  }
  return { items, rest: s.end() };
}

test('list splitter: random lists cut at random places come out item by item, the rest intact', () => {
  const r = rng(7);
  for (let round = 0; round < 300; round++) {
    const items = Array.from({ length: Math.floor(r() * 6) }, (_, i) => ({
      metadata: { name: `n${i}${randomString(r)}`, annotations: { [randomString(r)]: randomString(r), items: [randomString(r)] } },
      spec: { list: [{ x: randomString(r) }, [], {}], n: i, ok: r() < 0.5, none: null },
    }));
    const body = { kind: 'NodeList', [randomString(r)]: randomString(r), metadata: { resourceVersion: String(round), continue: randomString(r) }, items, after: { items: [1] } };
    const text = Buffer.from(JSON.stringify(body, null, r() < 0.3 ? 2 : undefined));
    const cuts = Array.from({ length: Math.floor(r() * 10) }, () => Math.floor(r() * text.length)).sort((a, b) => a - b);
    const got = split(text, cuts);
    assert.deepEqual(got.items, items, `round ${round}`);
    assert.deepEqual(got.rest, { ...body, items: [] }, `round ${round}`);
  }
});

test('list splitter: byte by byte, an item over the limit, a body cut short, junk', () => {
  const body = Buffer.from(JSON.stringify({ metadata: { resourceVersion: '1' }, items: [{ a: 'x'.repeat(100) }, { b: 1 }] }));
  assert.deepEqual(split(body, Array.from({ length: body.length - 1 }, (_, i) => i + 1)).items, [{ a: 'x'.repeat(100) }, { b: 1 }]);
  assert.throws(() => split(body, [], 64), (e) => e instanceof InvalidResponseError && e.reason === 'body_too_large');
  assert.throws(() => split(body.subarray(0, body.length - 3), []), (e) => e instanceof InvalidResponseError && e.reason === 'not_json');
  assert.throws(() => split(Buffer.from('<html>oops</html>'), []), (e) => e instanceof InvalidResponseError && e.reason === 'not_json');
  // No items at all: the rest says so (the reflector refuses a list without items).
  assert.deepEqual(split(Buffer.from('{"kind":"Status","code":500}'), []).rest, { kind: 'Status', code: 500 });
});

/** The item as the splitter should hand it on with `status` and `metadata.managedFields` dropped. */
function withDropped(item: Record<string, unknown>): Record<string, unknown> {
  const isBig = (v: unknown) => typeof v === 'object' && v !== null;
  const out: Record<string, unknown> = { ...item };
  if (isBig(out.status)) out.status = null;
  const md = out.metadata as Record<string, unknown> | undefined;
  if (md && typeof md === 'object' && !Array.isArray(md) && isBig(md.managedFields)) out.metadata = { ...md, managedFields: null };
  return out;
}

test('list splitter: dropped members reach the parser as null, at their depth only, whatever the chunking', () => {
  const r = rng(11);
  const value = (d: number): unknown => {
    const k = r();
    if (d > 2 || k < 0.3) return k < 0.1 ? null : k < 0.2 ? Math.floor(r() * 100) : randomString(r);
    if (k < 0.65) return Array.from({ length: Math.floor(r() * 4) }, () => value(d + 1));
    return Object.fromEntries(Array.from({ length: Math.floor(r() * 4) }, () => [r() < 0.3 ? 'status' : randomString(r), value(d + 1)]));
  };
  for (let round = 0; round < 400; round++) {
    const items = Array.from({ length: Math.floor(r() * 5) }, (_, i) => {
      const metadata: Record<string, unknown> = { name: `n${i}`, annotations: { status: randomString(r), managedFields: randomString(r) } };
      if (r() < 0.7) metadata.managedFields = value(0);
      // A `status` elsewhere (in spec, or a key that merely ends like it) is kept.
      const item: Record<string, unknown> = { metadata, spec: { status: { x: randomString(r) }, podCIDR: '10.0.0.0/24' }, xstatus: { y: 1 } };
      if (r() < 0.8) item.status = value(0);
      if (r() < 0.2) item['st\u0061tus'] = value(1); // the same key, written as is (JSON.stringify does not escape it)
      return item;
    });
    const body = { kind: 'NodeList', metadata: { resourceVersion: String(round) }, items, status: { kept: true } };
    const text = Buffer.from(JSON.stringify(body, null, r() < 0.3 ? 2 : undefined));
    const cuts = round % 50 === 0 ? Array.from({ length: text.length - 1 }, (_, i) => i + 1) : Array.from({ length: Math.floor(r() * 12) }, () => Math.floor(r() * text.length)).sort((a, b) => a - b);
    const s = new ListItemSplitter(1 << 20, undefined, [['status'], ['metadata', 'managedFields']]);
    const got: unknown[] = [];
    let at = 0;
    for (const c of [...cuts, text.length]) {
      s.push(text.subarray(at, c), (t) => got.push(JSON.parse(t)));
      at = c;
    }
    assert.deepEqual(got, items.map(withDropped), `round ${round}`);
    assert.deepEqual(s.end(), { ...body, items: [] }, `round ${round}`);
  }
});

test('list splitter: an escaped key is not dropped, and a dropped value does not count toward the item limit', () => {
  const text = Buffer.from(`{"items":[{"st\\u0061tus":{"a":1},"status":{"b":"${'x'.repeat(200)}"},"metadata":{"name":"n"}}]}`);
  const got: unknown[] = [];
  const s = new ListItemSplitter(100, undefined, [['status']]);
  s.push(text, (t) => got.push(JSON.parse(t)));
  // JSON.parse reads both keys as "status"; the later one (dropped) wins: null.
  assert.deepEqual(got, [{ status: null, metadata: { name: 'n' } }]);
  assert.throws(() => new ListItemSplitter(100).push(text, () => {}), (e) => e instanceof InvalidResponseError && e.reason === 'body_too_large');
});
