// Structured logs on stdout: JSON lines (the Go agent's format: ts, caller, level, msg, fields)
// or logfmt. Levels follow --log-level. Fields named like secrets are redacted: a private key
// must never reach a log.
import type { LogLevel } from './flags.js';

export type Level = 'debug' | 'info' | 'warn' | 'error';
const RANK: Record<LogLevel, number> = { all: 0, debug: 0, info: 1, warn: 2, error: 3, none: 4 };
const LEVEL_RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };
const SECRET_RE = /private.?key|preshared|secret|token|password/i;

export type Fields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, f?: Fields): void;
  info(msg: string, f?: Fields): void;
  warn(msg: string, f?: Fields): void;
  error(msg: string, f?: Fields): void;
  with(f: Fields): Logger;
}

export interface LoggerOptions {
  level: LogLevel;
  format?: 'json' | 'logfmt';
  write?: (line: string) => void;
  caller?: string;
}

function clean(f: Fields): Fields {
  const out: Fields = {};
  for (const [k, v] of Object.entries(f)) {
    if (SECRET_RE.test(k)) out[k] = '(redacted)';
    else if (v instanceof Error) out[k] = v.message;
    else out[k] = v;
  }
  return out;
}

function logfmtValue(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v) ?? 'null';
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s);
}

export function createLogger(o: LoggerOptions, base: Fields = {}): Logger {
  const min = RANK[o.level];
  const write = o.write ?? ((line: string) => process.stdout.write(line + '\n'));
  const emit = (level: Level, msg: string, f?: Fields) => {
    if (LEVEL_RANK[level] < min) return;
    const rec: Fields = { ts: new Date().toISOString(), caller: o.caller ?? 'kg', level, msg, ...clean({ ...base, ...f }) };
    write(o.format === 'logfmt' ? Object.entries(rec).map(([k, v]) => `${k}=${logfmtValue(v)}`).join(' ') : JSON.stringify(rec));
  };
  return {
    debug: (m, f) => emit('debug', m, f),
    info: (m, f) => emit('info', m, f),
    warn: (m, f) => emit('warn', m, f),
    error: (m, f) => emit('error', m, f),
    with: (f) => createLogger(o, { ...base, ...f }),
  };
}

/** A logger that drops everything (tests, benchmarks). */
export const silentLogger: Logger = createLogger({ level: 'none' });
