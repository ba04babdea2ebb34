import { Agent, request as httpRequest } from 'node:http';
import { isIP } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** One kind of request the generator sends, with a relative weight. */
export interface TrafficTarget {
  method: string;
  /** Absolute URL; `{id}` is replaced by a random number so raw paths vary while the pattern stays. */
  url: string;
  weight?: number;
}

export interface TrafficOptions {
  /** The sidecar's explicit proxy. */
  proxy: { host: string; port: number };
  targets: readonly TrafficTarget[];
  /** PEM(s) the client trusts for HTTPS through the proxy: the mesh CA, since the sidecar intercepts. */
  trustedCa: string | readonly string[];
  /** Requests started per second. Default 20; capped at 200 (this is a demo, not a load test). */
  ratePerSecond?: number;
  /** Requests in flight at most; beyond, ticks are skipped. Default 16. */
  maxInFlight?: number;
  /** Stop after this many requests (default: until `stop()`). */
  maxRequests?: number;
  /** Per-request timeout. Default 10 000 ms. */
  timeoutMs?: number;
}

export interface TrafficStats {
  sent: number;
  completed: number;
  failed: number;
  /** Responses by status code. */
  statuses: Record<number, number>;
  /** Last transport error, if any. */
  lastError: string | null;
}

export interface TrafficGenerator {
  readonly stats: TrafficStats;
  /** Stops starting requests and waits for the ones in flight. */
  stop(): Promise<void>;
}

const MAX_RATE = 200;

function expand(url: string): URL {
  return new URL(url.replaceAll('{id}', String(1 + Math.floor(Math.random() * 9_999))));
}

/**
 * Sends a bounded, steady stream of requests through an explicit proxy: plain HTTP as absolute-URI
 * requests (keep-alive), HTTPS through a CONNECT tunnel per request, TLS inside it verified against
 * `trustedCa` (the sidecar answers with a certificate from the mesh CA when it intercepts).
 */
export function startTrafficGenerator(options: TrafficOptions): TrafficGenerator {
  const rate = Math.min(MAX_RATE, Math.max(0.1, options.ratePerSecond ?? 20));
  const maxInFlight = options.maxInFlight ?? 16;
  const timeoutMs = options.timeoutMs ?? 10_000;
  const ca = typeof options.trustedCa === 'string' ? [options.trustedCa] : [...options.trustedCa];
  const stats: TrafficStats = { sent: 0, completed: 0, failed: 0, statuses: {}, lastError: null };
  const agent = new Agent({ keepAlive: true, maxSockets: maxInFlight });
  const weighted: TrafficTarget[] = options.targets.flatMap((t) =>
    Array.from({ length: Math.max(1, t.weight ?? 1) }, () => t),
  );
  if (weighted.length === 0) throw new TypeError('startTrafficGenerator: at least one target is required');
  const inFlight = new Set<Promise<void>>();
  let stopped = false;

  const record = (status: number | null, error?: Error) => {
    if (status === null) {
      stats.failed++;
      stats.lastError = error?.message ?? 'unknown error';
    } else {
      stats.completed++;
      stats.statuses[status] = (stats.statuses[status] ?? 0) + 1;
    }
  };

  const sendHttp = (method: string, url: URL) =>
    new Promise<void>((resolve) => {
      const req = httpRequest(
        {
          host: options.proxy.host,
          port: options.proxy.port,
          method,
          path: url.href,
          headers: { host: url.host, 'content-type': 'application/json' },
          agent,
          timeout: timeoutMs,
        },
        (res) => {
          res.resume();
          res.once('end', () => {
            record(res.statusCode ?? 0);
            resolve();
          });
          res.once('error', (e) => {
            record(null, e);
            resolve();
          });
        },
      );
      req.once('timeout', () => req.destroy(new Error('request timed out')));
      req.once('error', (e) => {
        record(null, e);
        resolve();
      });
      req.end(method === 'POST' ? '{"demo":true}' : undefined);
    });

  const sendHttps = (method: string, url: URL) =>
    new Promise<void>((resolve) => {
      let settled = false;
      const fail = (e: Error) => {
        if (settled) return;
        settled = true;
        record(null, e);
        resolve();
      };
      const connectReq = httpRequest({
        host: options.proxy.host,
        port: options.proxy.port,
        method: 'CONNECT',
        path: url.host,
        headers: { host: url.host },
        timeout: timeoutMs,
      });
      connectReq.once('timeout', () => connectReq.destroy(new Error('CONNECT timed out')));
      connectReq.once('error', fail);
      connectReq.once('connect', (res, socket) => {
        if (res.statusCode !== 200) {
          socket.destroy();
          fail(new Error(`CONNECT answered ${res.statusCode}`));
          return;
        }
        // SNI carries names only (RFC 6066); an IP target is verified against the certificate's IP SANs.
        const tls =
          isIP(url.hostname) === 0
            ? tlsConnect({ socket, servername: url.hostname, ca })
            : tlsConnect({ socket, host: url.hostname, ca });
        tls.once('error', (e) => {
          tls.destroy();
          fail(e);
        });
        // node:http over the tunnelled TLS socket: https.request would ignore createConnection when given
        // `agent: false` and dial the origin directly, bypassing the proxy.
        const req = httpRequest(
          {
            host: url.hostname,
            port: url.port,
            method,
            path: `${url.pathname}${url.search}`,
            headers: { host: url.host, 'content-type': 'application/json', connection: 'close' },
            createConnection: () => tls,
            timeout: timeoutMs,
          },
          (response) => {
            response.resume();
            response.once('end', () => {
              if (settled) return;
              settled = true;
              record(response.statusCode ?? 0);
              tls.end();
              resolve();
            });
            response.once('error', fail);
          },
        );
        req.once('timeout', () => req.destroy(new Error('request timed out')));
        req.once('error', (e) => {
          tls.destroy();
          fail(e);
        });
        req.end(method === 'POST' ? '{"demo":true}' : undefined);
      });
      connectReq.end();
    });

  const tick = () => {
    if (stopped) return;
    if (options.maxRequests !== undefined && stats.sent >= options.maxRequests) {
      clearInterval(timer);
      return;
    }
    if (inFlight.size >= maxInFlight) return;
    const target = weighted[Math.floor(Math.random() * weighted.length)] ?? weighted[0];
    if (target === undefined) return;
    const url = expand(target.url);
    stats.sent++;
    const done = (url.protocol === 'https:' ? sendHttps : sendHttp)(target.method, url).finally(() =>
      inFlight.delete(done),
    );
    inFlight.add(done);
  };
  const timer = setInterval(tick, Math.max(5, Math.round(1000 / rate)));

  return {
    stats,
    async stop() {
      stopped = true;
      clearInterval(timer);
      await Promise.all(inFlight);
      agent.destroy();
    },
  };
}
