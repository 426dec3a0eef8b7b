// Newline-delimited text from a watch stream, split in linear time and bounded memory. Only each
// new chunk is scanned for '\n'; the bytes of an unfinished line are copied once into one buffer
// that doubles up to the line limit. (`rest += chunk; rest.indexOf('\n')` re-copied and re-scanned
// everything held on every chunk: quadratic in the length of a line without a newline, and
// unbounded.) One buffer rather than a list of chunks: a server that sends 1-byte chunks would
// otherwise make the agent hold one Buffer object (~100 bytes) per byte.
import { InvalidResponseError } from './kube-error.js';

const NL = 0x0a;

/**
 * Longest watch line (one event: one object) in bytes. The API server stores objects of at most
 * ~1.5 MiB in etcd and takes requests of at most 3 MiB; as JSON an event is a few MiB at most.
 */
export const DEFAULT_MAX_LINE_BYTES = 8 * 1024 * 1024;

export class LineSplitter {
  private buf: Buffer = Buffer.alloc(0);
  private held = 0;

  constructor(readonly maxLineBytes: number) {}

  /** Bytes of the unfinished line held now (never more than maxLineBytes). */
  get buffered(): number {
    return this.held;
  }

  /**
   * Calls onLine for each complete line that is not blank, in order. A line longer than the
   * limit throws InvalidResponseError('line_too_long') once the limit is passed, without waiting
   * for its end; the lines before it were delivered.
   */
  push(chunk: Buffer, onLine: (line: string) => void): void {
    let start = 0;
    for (let i = chunk.indexOf(NL); i >= 0; i = chunk.indexOf(NL, start)) {
      const n = this.held + i - start;
      if (n > this.maxLineBytes) throw this.tooLong(n);
      let line: string;
      if (this.held === 0) line = chunk.toString('utf8', start, i);
      else {
        this.hold(chunk, start, i);
        line = this.buf.toString('utf8', 0, this.held);
        this.release();
      }
      start = i + 1;
      if (!isBlank(line)) onLine(line);
    }
    if (start < chunk.length) {
      const n = this.held + chunk.length - start;
      if (n > this.maxLineBytes) throw this.tooLong(n);
      this.hold(chunk, start, chunk.length);
    }
  }

  /** At the end of the stream: the last line, when the server left out its final newline. */
  end(onLine: (line: string) => void): void {
    if (this.held === 0) return;
    const line = this.buf.toString('utf8', 0, this.held);
    this.release();
    if (!isBlank(line)) onLine(line);
  }

  private hold(chunk: Buffer, from: number, to: number): void {
    const need = this.held + to - from;
    if (need > this.buf.length) {
      // Doubling keeps the copies linear overall; the cap keeps the buffer within the limit.
      const grown = Buffer.allocUnsafe(Math.min(this.maxLineBytes, Math.max(need, 2 * this.buf.length, 4096)));
      this.buf.copy(grown, 0, 0, this.held);
      this.buf = grown;
    }
    chunk.copy(this.buf, this.held, from, to);
    this.held = need;
  }

  private release(): void {
    this.held = 0;
    // Keep a small buffer for the next line; give a big one (one large event) back to the GC.
    if (this.buf.length > 64 * 1024) this.buf = Buffer.alloc(0);
  }

  private tooLong(n: number): InvalidResponseError {
    this.release();
    return new InvalidResponseError(`watch line longer than ${this.maxLineBytes} bytes (${n} bytes seen)`, 'line_too_long', n);
  }
}

/** Blank: only spaces, tabs and carriage returns (a keep-alive, or the '\r' of a '\r\n'). */
function isBlank(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 32 && c !== 9 && c !== 13) return false;
  }
  return true;
}
