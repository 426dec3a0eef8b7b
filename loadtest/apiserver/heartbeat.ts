// Drives kilo.squat.ai/last-seen heartbeats the way N agents would: every node once per period,
// spread evenly over the period rather than in bursts.
import http from 'node:http';
import https from 'node:https';
import type { Store } from './store.js';
import { nextAdvertised, checkInPeriodSeconds, CHECK_IN_PERIOD_ANNOTATION, type HeartbeatPolicy } from '../../plan/heartbeat.js';

export interface HeartbeatOptions {
  names: string[];
  periodMs: number;
  /** Timer resolution; each tick patches the nodes that came due since the last one. */
  tickMs?: number;
  /** Stop after this many rounds over all names (default: run until stopped). */
  rounds?: number;
  /** Names that skip their turn (a node whose agent has stopped); may change while running. */
  skip?: ReadonlySet<string>;
}

export interface Heartbeats {
  /** Patches sent so far (and failures, for the HTTP driver). */
  sent(): number;
  failed(): number;
  stop(): Promise<void>;
}

type PatchFn = (name: string, lastSeen: string) => Promise<void> | void;

function drive(o: HeartbeatOptions, patch: PatchFn): Heartbeats {
  const tick = o.tickMs ?? 20;
  const start = Date.now();
  let done = 0;
  let sent = 0;
  let failed = 0;
  const inflight = new Set<Promise<void>>();
  const timer = setInterval(() => {
    // Nodes due = elapsed fraction of the period × node count (cumulative, so no drift).
    let due = Math.floor(((Date.now() - start) / o.periodMs) * o.names.length);
    if (o.rounds !== undefined) due = Math.min(due, o.rounds * o.names.length);
    const now = String(Math.floor(Date.now() / 1000));
    // Bounded per tick so a stalled server cannot make the driver pile up requests.
    const limit = Math.min(due, done + o.names.length);
    for (; done < limit; done++) {
      const name = o.names[done % o.names.length];
      if (o.skip?.has(name)) continue;
      try {
        const r = patch(name, now);
        if (r) {
          const p = r.then(() => void sent++, () => void failed++).finally(() => inflight.delete(p));
          inflight.add(p);
        } else sent++;
      } catch {
        failed++;
      }
    }
  }, tick);
  return {
    sent: () => sent,
    failed: () => failed,
    async stop() {
      clearInterval(timer);
      await Promise.allSettled([...inflight]);
    },
  };
}

/** Heartbeats written straight into a store (no HTTP): for in-process load. */
export function storeHeartbeats(store: Store, o: HeartbeatOptions): Heartbeats {
  const t = store.nodes();
  return drive(o, (name, now) => {
    store.patchAnnotations(t, undefined, name, { 'kilo.squat.ai/last-seen': now });
  });
}

/**
 * Heartbeats written into a store as agents in a heartbeat mode (plan/heartbeat.ts) would send
 * them: Kilo's 30 s period, or the adaptive period for the cluster's size, with the period
 * advertised in kilo.squat.ai/check-in-period (set it on the objects at creation too, see
 * checkInAnnotations, so that readers stretch the readiness window from the start).
 */
export function modeHeartbeats(
  store: Store,
  o: Omit<HeartbeatOptions, 'periodMs'> & {
    policy: HeartbeatPolicy;
    nodeCount?: number;
    /** Overrides: a different period, and annotations to set (null deletes), e.g. for a round that switches modes. */
    periodSeconds?: number;
    annotations?: Record<string, string | null>;
  },
): Heartbeats & { periodSeconds: number } {
  const periodSeconds = o.periodSeconds ?? checkInPeriodSeconds(o.policy, o.nodeCount ?? o.names.length);
  const extra = o.annotations ?? checkInAnnotations(o.policy, o.nodeCount ?? o.names.length);
  const t = store.nodes();
  const hb = drive({ ...o, periodMs: periodSeconds * 1000 }, (name, now) => {
    store.patchAnnotations(t, undefined, name, { 'kilo.squat.ai/last-seen': now, ...extra });
  });
  return { ...hb, periodSeconds };
}

/** The annotations a node in this mode carries besides last-seen (none in Kilo's mode). */
export function checkInAnnotations(p: HeartbeatPolicy, nodeCount: number): Record<string, string> {
  // What an agent of this policy advertises after its first check-in (plan/heartbeat.ts).
  const v = nextAdvertised(p, 0, nodeCount);
  return v === 0 ? {} : { [CHECK_IN_PERIOD_ANNOTATION]: String(v) };
}

/** Heartbeats sent as HTTP merge patches, as agents send them. */
export function httpHeartbeats(
  target: { url: string; token?: string; caCert?: string },
  o: HeartbeatOptions & { maxSockets?: number; /** Called with each committed write's resourceVersion and the time its answer arrived. */ onCommitted?: (rv: number, at: number) => void },
): Heartbeats {
  const u = new URL(target.url);
  const isHttps = u.protocol === 'https:';
  const agent = isHttps ? new https.Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 16, ca: target.caCert }) : new http.Agent({ keepAlive: true, maxSockets: o.maxSockets ?? 16 });
  const hb = drive(o, (name, now) => {
    const body = JSON.stringify({ metadata: { annotations: { 'kilo.squat.ai/last-seen': now } } });
    return new Promise<void>((ok, fail) => {
      const req = (isHttps ? https : http).request(
        {
          host: u.hostname,
          port: u.port,
          method: 'PATCH',
          path: `/api/v1/nodes/${name}`,
          agent,
          headers: {
            'content-type': 'application/merge-patch+json',
            'content-length': Buffer.byteLength(body),
            accept: 'application/json',
            ...(target.token ? { authorization: `Bearer ${target.token}` } : {}),
          },
          timeout: 10_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          if (o.onCommitted) res.on('data', (c: Buffer) => chunks.push(c));
          else res.resume();
          res.on('end', () => {
            if (res.statusCode !== 200) return fail(new Error(`status ${res.statusCode}`));
            if (o.onCommitted) {
              const m = /"resourceVersion":"(\d+)"/.exec(Buffer.concat(chunks).toString('utf8'));
              if (m) o.onCommitted(Number(m[1]), performance.timeOrigin + performance.now());
            }
            ok();
          });
        },
      );
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', fail);
      req.end(body);
    });
  });
  return {
    ...hb,
    async stop() {
      await hb.stop();
      agent.destroy();
    },
  };
}
