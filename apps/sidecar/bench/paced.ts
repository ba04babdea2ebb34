// Open-loop paced load over a fixed pool of keep-alive connections, for the "moderate load" scenarios.
//
// Why not autocannon's `overallRate`: each connection sends its per-second quota back to back and then idles
// until the next second, so "1,000 req/s" there is a full-speed burst every second and its p99 is that of a
// saturated proxy. Here request i is due at start + i / rate whatever the answers do (open loop), and its
// latency is counted from that due time, not from when it actually left: a stall (in the proxy, or a full
// pool) shows up in every request it delayed instead of being hidden (coordinated omission).
import { Client } from 'undici';

export interface PacedTarget {
  /** `http://host:port` or `https://host:port`: where the connections go. */
  readonly origin: string;
  readonly path: string;
  readonly headers: Record<string, string>;
  /** SNI for TLS targets; the chain is checked once before load (bench/index.ts), not per connection. */
  readonly servername?: string;
}

export interface PacedResult {
  /** Responses per second over the sending window. */
  readonly rps: number;
  /** Latency from the request's due time to the end of its body (ms). */
  readonly p50: number;
  readonly p99: number;
  /** Latency from the moment the request was handed to its connection (ms), for comparison. */
  readonly sentP99: number;
  readonly errors: number;
  /** Connections opened during the run (the pool is opened before it: 0 unless something closed one). */
  readonly reconnects: number;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] as number;
}

/**
 * A fixed set of keep-alive connections (one undici Client each, no pipelining). Free connections are
 * used in least-recently-used order so every one of them carries traffic and none reaches an idle timeout.
 */
export class PacedPool {
  readonly #target: PacedTarget;
  readonly #clients: Client[] = [];
  #connects = 0;

  constructor(target: PacedTarget, connections: number) {
    this.#target = target;
    for (let i = 0; i < connections; i++) {
      const client = new Client(target.origin, {
        pipelining: 1,
        // Our side never closes an idle connection during a bench; the server's Keep-Alive hint still counts.
        keepAliveTimeout: 600_000,
        ...(target.servername === undefined
          ? {}
          : { connect: { servername: target.servername, rejectUnauthorized: false } }),
      });
      client.on('connect', () => {
        this.#connects++;
      });
      this.#clients.push(client);
    }
  }

  /** Opens every connection (one request each) so handshakes are not part of a measured run. */
  async open(): Promise<void> {
    await Promise.all(this.#clients.map((client) => this.#once(client)));
  }

  async #once(client: Client): Promise<number> {
    const response = await client.request({
      method: 'GET',
      path: this.#target.path,
      headers: this.#target.headers,
    });
    await response.body.dump();
    return response.statusCode;
  }

  /**
   * Sends `rate` req/s for `seconds`, evenly spaced (a 1 ms timer sends whatever has fallen due), then waits
   * for the answers up to `drainMs`; what is still unanswered then counts as errors.
   */
  async run(rate: number, seconds: number, drainMs = 10_000): Promise<PacedResult> {
    const total = Math.round(rate * seconds);
    const intervalMs = 1000 / rate;
    const fromDue = new Float64Array(total);
    const fromSend = new Float64Array(total);
    let answered = 0;
    let errors = 0;
    let sent = 0;
    let settled = 0;
    const connectsBefore = this.#connects;
    const free: Client[] = [...this.#clients];
    const waiting: number[] = [];
    let start = 0;
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });

    const dispatch = (client: Client, index: number): void => {
      const sentAt = performance.now();
      const dueAt = start + index * intervalMs;
      this.#once(client).then(
        (status) => {
          const now = performance.now();
          if (status === 200) {
            fromDue[answered] = now - dueAt;
            fromSend[answered] = now - sentAt;
            answered++;
          } else errors++;
          release(client);
        },
        () => {
          errors++;
          release(client);
        },
      );
    };
    const release = (client: Client): void => {
      if (++settled === total) finish();
      const next = waiting.shift();
      if (next === undefined) free.push(client);
      else dispatch(client, next);
    };

    start = performance.now();
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor((performance.now() - start) / intervalMs) + 1);
      while (sent < due) {
        const client = free.shift();
        if (client === undefined) waiting.push(sent);
        else dispatch(client, sent);
        sent++;
      }
      if (sent >= total) clearInterval(timer);
    }, 1);
    let drainTimer: NodeJS.Timeout | undefined;
    const sendWindow = seconds * 1000;
    const timedOut = new Promise<boolean>((resolve) => {
      drainTimer = setTimeout(() => resolve(true), sendWindow + drainMs);
    });
    const late = await Promise.race([finished.then(() => false), timedOut]);
    clearTimeout(drainTimer);
    clearInterval(timer);
    const elapsed = Math.max(sendWindow, performance.now() - start) / 1000;
    if (late) errors += total - settled;
    const byDue = fromDue.subarray(0, answered).sort();
    const bySend = fromSend.subarray(0, answered).sort();
    return {
      rps: answered / elapsed,
      p50: percentile(byDue, 0.5),
      p99: percentile(byDue, 0.99),
      sentP99: percentile(bySend, 0.99),
      errors,
      reconnects: this.#connects - connectsBefore,
    };
  }

  async close(): Promise<void> {
    await Promise.all(this.#clients.map((client) => client.destroy()));
  }
}
