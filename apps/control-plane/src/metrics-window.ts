/**
 * Time-windowed, mesh-wide metric views and the mesh-wide Prometheus exposition, built on
 * @httpmesh/metrics' MeshAggregator. The aggregator is cumulative and has no mesh-level Prometheus
 * export; both belong in @httpmesh/metrics and should move there (see README, "Missing in packages").
 */
import { MeshAggregator } from '@httpmesh/metrics';
import type { MetricsSnapshot, SnapshotSeries, ViewDimension, ViewKey, ViewRow } from '@httpmesh/metrics';

const ALL_DIMENSIONS: readonly ViewDimension[] = [
  'service',
  'direction',
  'host',
  'route',
  'method',
  'statusCode',
  'errorType',
  'sourceService',
];

export interface WindowedMetricsOptions {
  /** Width of one time slot. Default 10 000 ms (the sidecars' reporting period). */
  slotMs?: number;
  /** Longest window a query may ask for; older slots are dropped. Default 1 hour. */
  maxWindowMs?: number;
  clock?: () => number;
}

export interface WindowRow {
  key: ViewKey;
  requests: number;
  errors: number;
  /** Requests per second over the window. */
  rate: number;
  /** errors / requests (0 without requests). */
  errorRatio: number;
  /** Latency percentiles in seconds (null without requests). */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Latency histogram (seconds), for charts. */
  durationBounds: readonly number[];
  durationBuckets: number[];
}

interface Slot {
  start: number;
  aggregator: MeshAggregator;
}

/** Turns an aggregator's fully-grouped rows back into snapshots, so slots can be merged into a window. */
function rowsAsSnapshots(aggregator: MeshAggregator, start: number, end: number): MetricsSnapshot[] {
  const byService = new Map<string, SnapshotSeries[]>();
  for (const row of aggregator.view(ALL_DIMENSIONS)) {
    const key = row.key;
    const service = String(key.service);
    const series: SnapshotSeries = {
      direction: key.direction === 'outbound' ? 'outbound' : 'inbound',
      overflow: row.overflow > 0,
      method: (key.method as string | null) ?? null,
      route: (key.route as string | null) ?? null,
      host: (key.host as string | null) ?? null,
      statusCode: (key.statusCode as number | null) ?? null,
      errorType: (key.errorType as string | null) ?? null,
      sourceService: (key.sourceService as string | null) ?? null,
      duration: { count: row.duration.count, sum: row.duration.sum, buckets: row.duration.buckets },
      requestBodySize: {
        count: row.requestBodySize.count,
        sum: row.requestBodySize.sum,
        buckets: row.requestBodySize.buckets,
      },
      responseBodySize: {
        count: row.responseBodySize.count,
        sum: row.responseBodySize.sum,
        buckets: row.responseBodySize.buckets,
      },
    };
    const list = byService.get(service) ?? [];
    list.push(series);
    byService.set(service, list);
  }
  return [...byService].map(([service, series]) => ({
    version: 1,
    service,
    producer: 'control-plane-window',
    startTimeMs: start,
    endTimeMs: end,
    durationBounds: [...aggregator.durationBounds],
    bodySizeBounds: [...aggregator.bodySizeBounds],
    series,
  }));
}

/** Mesh-wide metrics from sidecar delta snapshots: cumulative totals plus fixed time slots for windows. */
export class WindowedMetrics {
  readonly slotMs: number;
  readonly maxWindowMs: number;
  private readonly clock: () => number;
  private readonly slots: Slot[] = [];
  /** Cumulative since start: what Prometheus scrapes (counters must never go down). */
  readonly total = new MeshAggregator();
  private readonly startedAt: number;
  snapshotsRejected = 0;

  constructor(options: WindowedMetricsOptions = {}) {
    this.slotMs = options.slotMs ?? 10_000;
    this.maxWindowMs = options.maxWindowMs ?? 3_600_000;
    this.clock = options.clock ?? Date.now;
    this.startedAt = this.clock();
  }

  /**
   * Validates and merges one snapshot (untrusted JSON from a sidecar) into the current slot and the totals.
   * @throws SnapshotError, SnapshotBoundsError from @httpmesh/metrics; nothing is merged then.
   */
  ingest(snapshot: unknown): void {
    const now = this.clock();
    const start = now - (now % this.slotMs);
    let slot = this.slots[this.slots.length - 1];
    if (slot === undefined || slot.start !== start) {
      slot = { start, aggregator: new MeshAggregator() };
      this.slots.push(slot);
      while (this.slots.length > 0 && (this.slots[0]?.start ?? start) < start - this.maxWindowMs)
        this.slots.shift();
    }
    try {
      slot.aggregator.ingest(snapshot);
    } catch (err) {
      this.snapshotsRejected++;
      throw err;
    }
    // Already validated by the slot aggregator with the same bounds, so this cannot fail half-way.
    this.total.ingest(snapshot);
  }

  /** One point per slot of the window (for charts): requests, errors and latency percentiles. */
  points(windowMs: number, filter?: ViewKey): SeriesPoint[] {
    const from = this.clock() - Math.min(windowMs, this.maxWindowMs);
    const out: SeriesPoint[] = [];
    for (const slot of this.slots) {
      if (slot.start + this.slotMs <= from) continue;
      const row = slot.aggregator.view([], filter)[0];
      out.push({
        start: slot.start,
        requests: row?.requests ?? 0,
        errors: row?.errors ?? 0,
        p50: row?.duration.p50 ?? null,
        p95: row?.duration.p95 ?? null,
        p99: row?.duration.p99 ?? null,
      });
    }
    return out;
  }

  /** Grouped rows over the last `windowMs`, busiest first. */
  query(dimensions: readonly ViewDimension[], windowMs: number, filter?: ViewKey): WindowRow[] {
    const now = this.clock();
    const from = now - Math.min(windowMs, this.maxWindowMs);
    const merged = new MeshAggregator();
    for (const slot of this.slots) {
      if (slot.start + this.slotMs <= from) continue;
      for (const snapshot of rowsAsSnapshots(slot.aggregator, slot.start, slot.start + this.slotMs))
        merged.ingest(snapshot);
    }
    // Before the control plane has run for a whole window, the rate is over the time it has seen.
    const seconds = Math.max(1, Math.min(windowMs, now - this.startedAt)) / 1000;
    return merged.view(dimensions, filter).map((row) => toWindowRow(row, seconds, merged.durationBounds));
  }
}

export interface SeriesPoint {
  /** Slot start (ms since epoch). */
  start: number;
  requests: number;
  errors: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

function toWindowRow(row: ViewRow, seconds: number, bounds: readonly number[]): WindowRow {
  return {
    key: row.key,
    requests: row.requests,
    errors: row.errors,
    rate: row.requests / seconds,
    errorRatio: row.requests === 0 ? 0 : row.errors / row.requests,
    p50: row.duration.p50,
    p95: row.duration.p95,
    p99: row.duration.p99,
    durationBounds: bounds,
    durationBuckets: row.duration.buckets,
  };
}

export const PROMETHEUS_TEXT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labels(pairs: readonly (readonly [string, string | number | null | undefined])[]): string {
  const parts: string[] = [];
  for (const [name, value] of pairs)
    if (value !== null && value !== undefined) parts.push(`${name}="${escapeLabel(String(value))}"`);
  return `{${parts.join(',')}}`;
}

/**
 * Prometheus text exposition (format 0.0.4) of the mesh-wide cumulative view: a request counter per
 * service/direction/host/route/method/status/error and a latency histogram per service/direction/host/route/method.
 */
export function meshPrometheusText(aggregator: MeshAggregator): string {
  const out: string[] = [];
  out.push('# HELP httpmesh_mesh_requests_total Requests seen by all sidecars, per pattern and outcome.');
  out.push('# TYPE httpmesh_mesh_requests_total counter');
  for (const row of aggregator.view([
    'service',
    'direction',
    'host',
    'route',
    'method',
    'statusCode',
    'errorType',
  ])) {
    const k = row.key;
    const l = labels([
      ['service', k.service],
      ['direction', k.direction],
      ['host', k.host],
      ['route', k.route],
      ['method', k.method],
      ['status_code', k.statusCode],
      ['error_type', k.errorType],
    ]);
    out.push(`httpmesh_mesh_requests_total${l} ${row.requests}`);
  }
  out.push(
    '# HELP httpmesh_mesh_request_duration_seconds Request latency seen by all sidecars, per pattern.',
  );
  out.push('# TYPE httpmesh_mesh_request_duration_seconds histogram');
  const bounds = aggregator.durationBounds;
  for (const row of aggregator.view(['service', 'direction', 'host', 'route', 'method'])) {
    const k = row.key;
    const base: [string, string | number | null | undefined][] = [
      ['service', k.service],
      ['direction', k.direction],
      ['host', k.host],
      ['route', k.route],
      ['method', k.method],
    ];
    let cumulative = 0;
    for (let i = 0; i < row.duration.buckets.length; i++) {
      cumulative += row.duration.buckets[i] ?? 0;
      const le = i < bounds.length ? String(bounds[i]) : '+Inf';
      out.push(`httpmesh_mesh_request_duration_seconds_bucket${labels([...base, ['le', le]])} ${cumulative}`);
    }
    out.push(`httpmesh_mesh_request_duration_seconds_sum${labels(base)} ${row.duration.sum}`);
    out.push(`httpmesh_mesh_request_duration_seconds_count${labels(base)} ${row.duration.count}`);
  }
  return `${out.join('\n')}\n`;
}
