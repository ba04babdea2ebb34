/** Upper bounds (ms) of the latency histogram buckets; the last bucket is +Inf. */
export const LATENCY_BUCKETS_MS: readonly number[] = [
  0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000,
];

export interface HistogramSnapshot {
  /** Bucket upper bounds in ms (cumulative counts in `counts`, last entry is +Inf). */
  readonly bucketsMs: readonly number[];
  readonly counts: readonly number[];
  readonly count: number;
  readonly sumMs: number;
}

export interface PluginMetricsSnapshot {
  readonly plugin: string;
  /** Messages sent that expect a reply. */
  readonly requests: number;
  /** Observe-only messages sent without waiting. */
  readonly observed: number;
  /** Failures by error code (timeouts included). */
  readonly errors: Readonly<Record<string, number>>;
  readonly timeouts: number;
  readonly restarts: number;
  readonly upgrades: number;
  readonly healthCheckFailures: number;
  /** Round-trip latency of answered messages. */
  readonly latency: HistogramSnapshot;
}

/** Plain counters and a fixed-bucket histogram; cheap to update on the hot path. */
export class PluginMetrics {
  readonly plugin: string;
  requests = 0;
  observed = 0;
  timeouts = 0;
  restarts = 0;
  upgrades = 0;
  healthCheckFailures = 0;
  private readonly errors = new Map<string, number>();
  private readonly buckets = new Float64Array(LATENCY_BUCKETS_MS.length + 1);
  private latencyCount = 0;
  private latencySum = 0;

  constructor(plugin: string) {
    this.plugin = plugin;
  }

  recordLatency(ms: number): void {
    let i = 0;
    const n = LATENCY_BUCKETS_MS.length;
    while (i < n && ms > (LATENCY_BUCKETS_MS[i] as number)) i++;
    this.buckets[i] = (this.buckets[i] as number) + 1;
    this.latencyCount++;
    this.latencySum += ms;
  }

  recordError(code: string): void {
    this.errors.set(code, (this.errors.get(code) ?? 0) + 1);
    if (code === 'HTTPMESH_PLUGIN_TIMEOUT') this.timeouts++;
  }

  errorCount(): number {
    let total = 0;
    for (const v of this.errors.values()) total += v;
    return total;
  }

  snapshot(): PluginMetricsSnapshot {
    const counts: number[] = [];
    let cumulative = 0;
    for (const c of this.buckets) {
      cumulative += c;
      counts.push(cumulative);
    }
    return {
      plugin: this.plugin,
      requests: this.requests,
      observed: this.observed,
      errors: Object.fromEntries(this.errors),
      timeouts: this.timeouts,
      restarts: this.restarts,
      upgrades: this.upgrades,
      healthCheckFailures: this.healthCheckFailures,
      latency: { bucketsMs: LATENCY_BUCKETS_MS, counts, count: this.latencyCount, sumMs: this.latencySum },
    };
  }
}
