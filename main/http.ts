// HTTP on --listen (spec §13.1): the index page, /health, /metrics, /graph. Plain HTTP, no auth,
// as in Kilo; nothing here serves a key.
import http from 'node:http';
import { spawn } from 'node:child_process';
import type { Registry } from 'prom-client';

export interface HttpDeps {
  registry: Registry;
  health(): { ok: boolean; reason: string };
  graph(): Promise<string | null>;
}

const FORMATS: Record<string, string> = {
  svg: 'image/svg+xml', png: 'image/png', bmp: 'image/bmp', fig: 'application/x-xfig', gif: 'image/gif', json: 'application/json', ps: 'application/postscript',
};
const LAYOUTS = new Set(['circo', 'dot', 'neato', 'twopi', 'fdp']);

const INDEX = `<!doctype html>
<html><head><meta charset="utf-8"><title>Internal Kilo API</title></head>
<body><h1>Internal Kilo API</h1><ul>
<li><a href="/debug/">/debug/</a>: profiling (not available in the TypeScript agent)</li>
<li><a href="/graph">/graph</a>: the mesh topology (?format=svg|png|dot|…&amp;layout=circo|dot|neato|twopi|fdp)</li>
<li><a href="/health">/health</a>: 200 once the dataplane is programmed and fresh, 503 otherwise</li>
<li><a href="/metrics">/metrics</a>: Prometheus metrics</li>
</ul></body></html>
`;

/** Renders DOT with Graphviz (bounded in time); null when it fails or is not installed. */
export function renderDOT(dot: string, layout: string, format: string, timeoutMs = 10_000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    let p;
    try {
      p = spawn('dot', [`-K${layout}`, `-T${format}`], { stdio: ['pipe', 'pipe', 'ignore'] });
    } catch {
      return resolve(null);
    }
    const out: Buffer[] = [];
    const t = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.stdout.on('data', (c: Buffer) => out.push(c));
    p.on('error', () => {
      clearTimeout(t);
      resolve(null);
    });
    p.on('close', (code) => {
      clearTimeout(t);
      resolve(code === 0 ? Buffer.concat(out) : null);
    });
    p.stdin.on('error', () => {});
    p.stdin.end(dot);
  });
}

export function createHttpServer(d: HttpDeps): http.Server {
  return http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://localhost');
    const send = (status: number, body: string | Buffer, type?: string) => {
      res.writeHead(status, type ? { 'Content-Type': type } : {});
      res.end(body);
    };
    void (async () => {
      switch (url.pathname) {
        case '/health': {
          const h = d.health();
          return h.ok ? send(200, '') : send(503, `${h.reason}\n`, 'text/plain; charset=utf-8');
        }
        case '/metrics':
          return send(200, await d.registry.metrics(), d.registry.contentType);
        case '/debug/':
          res.writeHead(301, { Location: '/debug/pprof/' });
          return res.end();
        case '/graph': {
          const format = url.searchParams.get('format') || 'svg';
          const layout = url.searchParams.get('layout') || 'circo';
          if (format !== 'dot' && format !== 'gv' && !(format in FORMATS)) return send(500, 'unsupported format\n');
          if (!LAYOUTS.has(layout)) return send(500, 'unsupported layout\n');
          const dot = await d.graph();
          if (dot === null) return send(500, 'did not find any valid Kilo nodes in the cluster\n');
          if (format === 'dot' || format === 'gv') return send(200, dot);
          const img = await renderDOT(dot, layout, format);
          return img ? send(200, img, FORMATS[format]) : send(500, 'unable to render graph\n');
        }
        default:
          if (url.pathname.startsWith('/debug/pprof')) return send(404, 'pprof is not available in the TypeScript agent\n');
          return send(200, INDEX, 'text/html; charset=utf-8');
      }
    })().catch((e: Error) => send(500, `${e.message}\n`));
  });
}

/** Go's listen address form: ":1107" (all interfaces), "host:port", "[v6]:port". */
export function parseListen(addr: string): { host: string | undefined; port: number } {
  const i = addr.lastIndexOf(':');
  if (i < 0) throw new Error(`invalid --listen ${JSON.stringify(addr)}: missing port`);
  const host = addr.slice(0, i).replace(/^\[|\]$/g, '');
  const port = Number(addr.slice(i + 1));
  if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`invalid --listen ${JSON.stringify(addr)}: bad port`);
  return { host: host || undefined, port };
}
