// A list response (`{"kind":…,"metadata":{…},"items":[{…},{…}]}`) split into its items as it
// arrives, so the agent never holds a page's whole JSON text nor all its parsed objects at once:
// each item is handed on as its own text (parsed, slimmed and dropped by the caller while young),
// and everything else (kind, metadata with resourceVersion and continue) is parsed at the end
// with `items` left empty. Linear: strings are skipped with indexOf, an item's bytes copied once.
// Members the caller never reads (a Node's `status` and `metadata.managedFields`, ~90 % of a
// kubelet's Node) can be dropped as they pass: their value reaches the parser as `null`.
import { InvalidResponseError } from './kube-error.js';

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_OBJ = 0x7b;
const CLOSE_OBJ = 0x7d;
const OPEN_ARR = 0x5b;
const CLOSE_ARR = 0x5d;
const COLON = 0x3a;

/** Growable byte buffer with a cap. */
class Bytes {
  buf = Buffer.alloc(0);
  n = 0;
  constructor(private readonly max: number, private readonly what: string) {}
  add(src: Buffer, from: number, to: number): void {
    const need = this.n + to - from;
    if (need > this.max) throw new InvalidResponseError(`${this.what} longer than ${this.max} bytes (${need} bytes seen)`, 'body_too_large', need);
    if (need > this.buf.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.max, Math.max(need, 2 * this.buf.length, 4096)));
      this.buf.copy(grown, 0, 0, this.n);
      this.buf = grown;
    }
    src.copy(this.buf, this.n, from, to);
    this.n = need;
  }
  take(): string {
    const s = this.buf.toString('utf8', 0, this.n);
    this.n = 0;
    if (this.buf.length > 256 * 1024) this.buf = Buffer.alloc(0);
    return s;
  }
}

/** Members of each item to drop: `status`, or `metadata.managedFields` (one or two keys deep). */
export type DropPaths = readonly (readonly [string] | readonly [string, string])[];

const NULL = Buffer.from('null');
/** Depth of an item's own members (`{"items":[{` opens it at 3). */
const ITEM = 3;

export class ListItemSplitter {
  private depth = 0;
  private inString = false;
  /** Backslashes in a row just before, inside a string. */
  private escapes = 0;
  /** Inside the top-level `items` array (depth 2 there, items at depth ≥ 3). */
  private inItems = false;
  /** The last string at depth 1 ended just now and was "items"; a ':' then '[' opens the array. */
  private keyIsItems: 0 | 1 | 2 = 0;
  private key = new Bytes(64, 'list key');
  private rest: Bytes;
  private item: Bytes;
  /** Drop paths by their first key; an empty array: the whole member. */
  private readonly drops = new Map<string, string[]>();
  /** The last string inside an item, one or two levels deep (null: longer than any key dropped). */
  private ikey = new Bytes(64, 'item key');
  private lastString: string | null = null;
  /** The item's member being read, and the key whose value comes next (null: none to drop). */
  private member: string | null = null;
  private valueOf: string | null = null;
  /** Inside a dropped value: its bytes are not copied until the depth is back to this. */
  private skipTo = -1;

  constructor(maxItemBytes: number, maxRestBytes = 1024 * 1024, drop: DropPaths = []) {
    this.item = new Bytes(maxItemBytes, 'list item');
    this.rest = new Bytes(maxRestBytes, 'list envelope');
    for (const [a, b] of drop) this.drops.set(a, b === undefined ? [] : [...(this.drops.get(a) ?? []), b]);
  }

  /** A value starts after key `k` at the current depth: drop it? (Only objects and arrays are.) */
  private dropped(k: string): boolean {
    if (this.depth === ITEM) return this.drops.get(k)?.length === 0;
    return this.depth === ITEM + 1 && this.member !== null && this.drops.get(this.member)?.includes(k) === true;
  }

  /** Scans a dropped value from `i` to its next quote, or to the bracket that ends it; returns where it stopped. */
  private skipValue(chunk: Buffer, i: number): number {
    let depth = this.depth;
    for (; i < chunk.length; i++) {
      const c = chunk[i];
      if (c === QUOTE) break;
      if (c === OPEN_OBJ || c === OPEN_ARR) depth++;
      else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
        if (depth - 1 === this.skipTo) break;
        depth--;
      }
    }
    this.depth = depth;
    return i;
  }

  /** Reads a string from `i` (its opening quote behind) to its end or the chunk's; returns where it stopped. */
  private scanString(chunk: Buffer, i: number, tracking: boolean): number {
    const q = chunk.indexOf(QUOTE, i);
    const end = q < 0 ? chunk.length : q;
    // Escapes: count the backslashes right before the quote (across chunk ends too).
    let k = end - 1;
    while (k >= i && chunk[k] === BACKSLASH) k--;
    const run = end - 1 - k;
    this.escapes = k < i ? this.escapes + run : run;
    if (this.depth === 1 && !this.inItems) this.key.n + end - i <= 64 ? this.key.add(chunk, i, end) : (this.key.n = 65);
    const itemKey = tracking && this.inItems && this.skipTo < 0 && (this.depth === ITEM || this.depth === ITEM + 1);
    if (itemKey) this.ikey.n + end - i <= 64 ? this.ikey.add(chunk, i, end) : (this.ikey.n = 65);
    if (q < 0) return chunk.length;
    if (this.escapes % 2 === 1) {
      if (this.depth === 1 && !this.inItems && this.key.n <= 64) this.key.add(chunk, q, q + 1);
      // An escaped key never matches (a dropped member is written plainly).
      if (itemKey) this.ikey.n = 65;
      this.escapes = 0;
      return q + 1;
    }
    this.inString = false;
    this.escapes = 0;
    if (itemKey) {
      this.lastString = this.ikey.n <= 64 ? this.ikey.take() : null;
      this.ikey.n = 0;
    }
    if (this.depth === 1 && !this.inItems) this.keyIsItems = this.key.n === 5 && this.key.take() === 'items' ? 1 : 0;
    return q + 1;
  }

  push(chunk: Buffer, onItem: (json: string) => void): void {
    let i = 0;
    let mark = 0; // start of the bytes not yet copied to `rest` or `item`
    const flush = (to: number) => {
      if (to > mark && this.skipTo < 0) (this.inItems && this.depth >= 3 ? this.item : this.rest).add(chunk, mark, to);
      mark = to;
    };
    const tracking = this.drops.size > 0;
    while (i < chunk.length) {
      if (this.inString) {
        i = this.scanString(chunk, i, tracking);
        continue;
      }
      if (this.skipTo >= 0) {
        // Inside a dropped value only strings and brackets matter: a tight loop up to either.
        i = this.skipValue(chunk, i);
        if (i === chunk.length) break;
      }
      const c = chunk[i];
      if (c === QUOTE) {
        this.inString = true;
        this.key.n = 0;
        this.ikey.n = 0;
        i++;
        continue;
      }
      if (tracking && this.inItems && this.skipTo < 0) {
        if (c === COLON) {
          // A member's key: at the item's level it also names the member read from now on.
          if (this.depth === ITEM) this.member = this.lastString;
          this.valueOf = this.lastString;
        } else if (c > 0x20) {
          if (this.valueOf !== null && (c === OPEN_OBJ || c === OPEN_ARR) && this.dropped(this.valueOf)) {
            flush(i);
            this.item.add(NULL, 0, NULL.length);
            this.skipTo = this.depth;
          }
          this.valueOf = null;
        }
      }
      if (c === COLON && this.keyIsItems === 1 && this.depth === 1) this.keyIsItems = 2;
      else if (c === OPEN_ARR && this.keyIsItems === 2 && this.depth === 1) {
        // Enter the items: `[` goes to `rest`, the items themselves do not.
        this.keyIsItems = 0;
        this.depth++;
        i++;
        flush(i);
        this.inItems = true;
        continue;
      } else if (c > 0x20) this.keyIsItems = 0;
      if (c === OPEN_OBJ || c === OPEN_ARR) {
        if (this.inItems && this.depth === 2) {
          mark = i; // an item starts (commas and spaces before it are dropped)
          this.member = null;
        }
        this.depth++;
      } else if (c === CLOSE_OBJ || c === CLOSE_ARR) {
        this.depth--;
        if (this.depth === this.skipTo) {
          // The dropped value ends: copying resumes after its closing bracket.
          this.skipTo = -1;
          mark = i + 1;
        } else if (this.inItems && this.depth === 2) {
          this.item.add(chunk, mark, i + 1);
          mark = i + 1;
          onItem(this.item.take());
        } else if (this.inItems && this.depth === 1) {
          this.inItems = false;
          mark = i; // the `]` goes to `rest`
        }
      }
      if (this.inItems && this.depth === 2) mark = i + 1;
      i++;
    }
    flush(chunk.length);
  }

  /** The rest of the response (its items left out), parsed. */
  end(): unknown {
    if (this.depth !== 0 || this.inString) throw new InvalidResponseError('list response ends inside a value', 'not_json', this.rest.n);
    const text = this.rest.take();
    try {
      return JSON.parse(text);
    } catch {
      throw new InvalidResponseError(`list response is not JSON (${text.length} bytes outside its items)`, 'not_json', text.length);
    }
  }
}
