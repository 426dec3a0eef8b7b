// Fuzzing the agent's watch decoding, bounded in time (fixed numbers of runs, a few seconds):
// random byte streams through the line splitter, random lines through the event decoder, and
// random event streams, with bad lines among them, through a reflector over a real TLS socket.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { INVALID_REASONS, InvalidResponseError } from '../../watch/kube-error.js';
import { LineSplitter } from '../../watch/lines.js';
import { silentLogger } from '../../main/log.js';
import { Reflector, type ReflectorEvent } from '../../watch/reflector.js';
import { decodeWatchEvent } from '../../watch/watch-event.js';
import { startHostileApi, until, watchHeaders, type Node } from './watch-server.js';

const SEED = Number(process.env.KG_FUZZ_SEED ?? 20150415);

const isBlank = (s: string) => /^[ \t\r]*$/.test(s);

/** What a splitter with `limit` must deliver for `bytes`: the lines before the first one over the limit, and whether there is one. */
function model(bytes: Buffer, limit: number): { lines: string[]; tooLong: boolean } {
  const lines: string[] = [];
  let start = 0;
  for (;;) {
    const i = bytes.indexOf(10, start);
    const end = i < 0 ? bytes.length : i;
    if (end - start > limit) return { lines, tooLong: true };
    const s = bytes.toString('utf8', start, end);
    if (!isBlank(s)) lines.push(s);
    if (i < 0) return { lines, tooLong: false };
    start = i + 1;
  }
}

/** Cuts `bytes` into chunks of the given sizes, cycled (0 gives empty chunks). */
function cut(bytes: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  for (let at = 0, k = 0; at < bytes.length; k++) {
    const n = sizes.length ? sizes[k % sizes.length] : bytes.length;
    out.push(bytes.subarray(at, at + n));
    at += n;
    if (k > bytes.length * 2 + 4) break;
  }
  return out;
}

const piece = fc.oneof(
  fc.uint8Array({ maxLength: 40 }),
  fc.constant(Uint8Array.of(10)),
  fc.constant(Buffer.from(' \r\n')),
  fc.fullUnicodeString({ maxLength: 20 }).map((s) => Buffer.from(s)),
);

test('fuzz: the line splitter delivers every line in order, holds at most the limit, and only ever throws line_too_long', () => {
  fc.assert(
    fc.property(fc.array(piece, { maxLength: 30 }), fc.array(fc.integer({ min: 0, max: 48 }), { maxLength: 8 }), fc.integer({ min: 1, max: 64 }), (pieces, sizes, limit) => {
      const bytes = Buffer.concat(pieces);
      const want = model(bytes, limit);
      const s = new LineSplitter(limit);
      const got: string[] = [];
      let error: unknown = null;
      try {
        for (const c of cut(bytes, sizes.filter((x) => x > 0).length ? sizes : [])) {
          s.push(c, (l) => got.push(l));
          assert.ok(s.buffered <= limit, `holds ${s.buffered} bytes, limit ${limit}`);
        }
        s.end((l) => got.push(l));
      } catch (e) {
        error = e;
      }
      if (error !== null) {
        assert.ok(error instanceof InvalidResponseError && error.reason === 'line_too_long', `unexpected ${error}`);
        assert.ok(want.tooLong, 'an error only for a line over the limit');
      } else assert.ok(!want.tooLong, 'a line over the limit is an error');
      assert.deepEqual(got, want.lines);
    }),
    { numRuns: 3000, seed: SEED },
  );
});

const anyLine = fc.oneof(
  fc.string(),
  fc.fullUnicodeString(),
  fc.jsonValue().map((v) => JSON.stringify(v)),
  fc.record({
    type: fc.oneof(fc.constantFrom('ADDED', 'MODIFIED', 'DELETED', 'BOOKMARK', 'ERROR', 'added', ''), fc.jsonValue()),
    object: fc.oneof(fc.jsonValue(), fc.record({ metadata: fc.oneof(fc.jsonValue(), fc.record({ name: fc.jsonValue(), resourceVersion: fc.jsonValue() }, { requiredKeys: [] })), code: fc.jsonValue(), message: fc.jsonValue() }, { requiredKeys: [] })),
  }, { requiredKeys: [] }).map((v) => JSON.stringify(v)),
);

test('fuzz: any line decodes to a well-formed event or to one reason of the fixed set, never an exception', () => {
  fc.assert(
    fc.property(anyLine, (line) => {
      const ev = decodeWatchEvent(line);
      if ('error' in ev) return assert.ok((INVALID_REASONS as readonly string[]).includes(ev.error));
      if (ev.type === 'ERROR') return assert.ok(Number.isInteger(ev.code) && ev.code >= 100 && ev.code <= 599 && typeof ev.message === 'string' && ev.message.length <= 300);
      assert.ok(typeof ev.rv === 'string' && ev.rv !== '');
      if (ev.type !== 'BOOKMARK') assert.ok(typeof ev.name === 'string' && ev.name !== '' && ev.object.metadata?.name === ev.name);
    }),
    { numRuns: 3000, seed: SEED },
  );
  // Well-formed events come back as they were sent.
  fc.assert(
    fc.property(fc.constantFrom('ADDED', 'MODIFIED', 'DELETED'), fc.fullUnicodeString({ minLength: 1 }), fc.string({ minLength: 1 }), fc.dictionary(fc.string(), fc.jsonValue()), (type, name, rv, extra) => {
      const ev = decodeWatchEvent(JSON.stringify({ ...extra, type, object: { ...extra, metadata: { ...extra, name, resourceVersion: rv } } }));
      assert.deepEqual('error' in ev ? ev : [ev.type, ev.type !== 'ERROR' && ev.rv, ev.type !== 'ERROR' && ev.type !== 'BOOKMARK' && ev.name], [type, rv, name]);
    }),
    { numRuns: 1000, seed: SEED },
  );
});

type Item = { kind: 'event'; type: 'ADDED' | 'MODIFIED' | 'DELETED'; name: string; a: string } | { kind: 'bookmark' } | { kind: 'bad'; line: string };
const NAMES = ['a', 'b', 'c', 'd'];
const LINE_LIMIT = 512;
const item: fc.Arbitrary<Item> = fc.oneof(
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('event' as const), type: fc.constantFrom('ADDED' as const, 'MODIFIED' as const, 'DELETED' as const), name: fc.constantFrom(...NAMES), a: fc.fullUnicodeString({ maxLength: 30 }) }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'bookmark' as const }) },
  {
    weight: 1,
    arbitrary: fc.oneof(
      fc.fullUnicodeString({ maxLength: 40 }).map((s) => '#' + s.replace(/\n/g, '')),
      fc.constantFrom('[]', '42', '"ADDED"', '{"type":"ADDED"}', '{"type":"NOPE","object":{"metadata":{"name":"a","resourceVersion":"1"}}}',
        '{"type":"MODIFIED","object":{"metadata":{"name":"a"}}}', '{"type":"DELETED","object":{"metadata":{"resourceVersion":"1"}}}',
        '{"type":"BOOKMARK","object":{}}', '{"type":"ERROR","object":{"code":"gone"}}'),
      fc.integer({ min: LINE_LIMIT + 1, max: 4 * LINE_LIMIT }).map((n) => '{"type":"ADDED","object":{"metadata":{"name":"a","resourceVersion":"1","annotations":{"a":"' + 'x'.repeat(n) + '"}}}}'),
    ).map((line) => ({ kind: 'bad' as const, line })),
  },
);
const state = fc.dictionary(fc.constantFrom(...NAMES), fc.fullUnicodeString({ maxLength: 10 }));

type Rec = { name: string; a: string };
const show = (e: ReflectorEvent<Rec>) => `${e.type} ${e.name} ${e.type === 'delete' ? '' : JSON.stringify(e.obj.a)}`;

/** The reflector's events for `items` from `initial`: in order up to the first bad line, then a relist to `final`. */
function expected(initial: Record<string, string>, items: Item[], final: Record<string, string>): { events: string[]; bad: boolean } {
  const held = new Map<string, string>();
  const out: string[] = [];
  for (const [n, a] of Object.entries(initial)) {
    held.set(n, a);
    out.push(`add ${n} ${JSON.stringify(a)}`);
  }
  for (const it of items) {
    if (it.kind === 'bad') {
      for (const [n, a] of Object.entries(final)) {
        out.push(`${held.has(n) ? 'update' : 'add'} ${n} ${JSON.stringify(a)}`);
      }
      for (const n of held.keys()) if (!(n in final)) out.push(`delete ${n} `);
      return { events: out, bad: true };
    }
    if (it.kind !== 'event') continue;
    if (it.type === 'DELETED') {
      if (held.delete(it.name)) out.push(`delete ${it.name} `);
    } else {
      out.push(`${held.has(it.name) ? 'update' : 'add'} ${it.name} ${JSON.stringify(it.a)}`);
      held.set(it.name, it.a);
    }
  }
  return { events: out, bad: false };
}

const nodeList = (s: Record<string, string>, rv: number) =>
  JSON.stringify({ metadata: { resourceVersion: String(rv) }, items: Object.entries(s).map(([name, a]): Node => ({ metadata: { name, resourceVersion: String(rv), annotations: { a } } })) });

test('fuzz: random event streams in random chunks over TLS: good events in order, a bad line restarts the watch and relists', async (t) => {
  const api = await startHostileApi();
  t.after(() => api.stop());
  let runs = 0;
  await fc.assert(
    fc.asyncProperty(state, fc.array(item, { maxLength: 14 }), state, fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 6 }), async (initial, items, final, sizes) => {
      runs++;
      let rv = 1;
      const lines = items.map((it) => {
        if (it.kind === 'bad') return it.line;
        rv++;
        if (it.kind === 'bookmark') return JSON.stringify({ type: 'BOOKMARK', object: { kind: 'Node', metadata: { resourceVersion: String(rv) } } });
        return JSON.stringify({ type: it.type, object: { metadata: { name: it.name, resourceVersion: String(rv), annotations: { a: it.a } } } });
      });
      // Without a bad line the stream ends with a bookmark to wait for.
      lines.push(JSON.stringify({ type: 'BOOKMARK', object: { metadata: { resourceVersion: 'end' } } }));
      const chunks = cut(Buffer.from(lines.join('\n') + '\n'), sizes);
      let lists = 0;
      let watches = 0;
      api.list = (res) => {
        res.writeHead(200, { 'Content-Type': 'application/json' });
        res.end(++lists === 1 ? nodeList(initial, 1) : nodeList(final, 1000));
      };
      api.watch = (res) => {
        watchHeaders(res);
        res.flushHeaders();
        if (++watches === 1) for (const c of chunks) res.write(c);
      };
      const events: ReflectorEvent<Rec>[] = [];
      // A client per run, all of whose connections are gone before the next: a request of this
      // run cannot reach the next run's scripts.
      const client = api.client({ maxLineBytes: LINE_LIMIT });
      const r = new Reflector<Rec>({
        client, path: '/api/v1/nodes', log: silentLogger, backoffInitialMs: 1, backoffMaxMs: 5, watchTimeoutSeconds: 30,
        slim: (o) => ({ name: o.metadata!.name!, a: (o.metadata as { annotations?: Record<string, string> }).annotations?.a ?? '' }),
        onEvent: (e) => events.push(e),
      });
      const want = expected(initial, items, final);
      r.start();
      try {
        if (want.bad) await until('the relist', () => r.stats.lists === 2, 5000);
        else await until('the last bookmark', () => r.resourceVersion === 'end', 5000);
      } catch (e) {
        throw new Error(`${(e as Error).message}: lists ${lists}, watches ${watches}, stats ${JSON.stringify(r.stats)}, rv ${r.resourceVersion}, events ${events.map(show)}`);
      } finally {
        await r.stop();
        client.close();
        await until('no connection left', () => api.connections === 0, 5000);
      }
      assert.deepEqual(events.map(show), want.events);
      const invalid = INVALID_REASONS.reduce((n, k) => n + r.stats.invalid[k], 0);
      assert.equal(invalid, want.bad ? 1 : 0);
      assert.equal(r.stats.lists, want.bad ? 2 : 1);
    }),
    { numRuns: 60, seed: SEED, endOnFailure: true },
  );
  assert.equal(runs >= 60, true);
});
