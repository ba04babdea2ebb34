import { MetricsOptionsError, SnapshotBoundsError, SnapshotError } from './errors.js';
import { BODY_SIZE_BUCKETS_BYTES, DURATION_BUCKETS_SECONDS } from './semconv.js';
import type { Direction } from './semconv.js';
import type { HistogramDelta, MetricsSnapshot, SnapshotSeries } from './snapshot.js';

/** Dimensions a mesh view can be grouped by. */
export type ViewDimension =
  | 'service'
  | 'direction'
  | 'host'
  | 'route'
  | 'method'
  | 'statusCode'
  | 'errorType'
  | 'sourceService';

export type ViewKey = Partial<Record<ViewDimension, string | number | null>>;

export interface HistogramSummary extends HistogramDelta {
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

export interface ViewRow {
  key: ViewKey;
  requests: number;
  /** Requests whose series carries `error.type`. */
  errors: number;
  /** Requests counted in the overflow series (labels unknown). */
  overflow: number;
  duration: HistogramSummary;
  requestBodySize: HistogramSummary;
  responseBodySize: HistogramSummary;
}

export interface MeshAggregatorOptions {
  durationBounds?: readonly number[];
  bodySizeBounds?: readonly number[];
  /**
   * Distinct merged series kept; beyond it new label sets are merged into one overflow series per
   * (service, direction), so a misbehaving producer cannot grow the control plane without bound.
   * Default 100 000.
   */
  maxSeries?: number;
}

interface AggregateSeries {
  service: string;
  series: SnapshotSeries;
}

/**
 * Estimates quantile `q` from explicit-bucket counts by linear interpolation inside the bucket
 * holding the target rank (the first bucket starts at 0; values in the +Inf bucket are reported
 * as the last finite bound, as Prometheus' histogram_quantile does). Returns null when empty.
 */
export function estimateQuantile(
  bounds: readonly number[],
  buckets: readonly number[],
  q: number,
): number | null {
  let total = 0;
  for (const c of buckets) total += c;
  if (total === 0) return null;
  const rank = q * total;
  let cumulative = 0;
  for (let i = 0; i < buckets.length; i++) {
    const c = buckets[i]!;
    if (c > 0 && cumulative + c >= rank) {
      if (i >= bounds.length) return bounds[bounds.length - 1]!;
      const upper = bounds[i]!;
      const lower = i === 0 ? Math.min(0, upper) : bounds[i - 1]!;
      return lower + (upper - lower) * ((rank - cumulative) / c);
    }
    cumulative += c;
  }
  return bounds[bounds.length - 1]!;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function checkBoundsArray(value: unknown, path: string): number[] {
  if (!Array.isArray(value) || value.length === 0)
    throw new SnapshotError(path, 'expected a non-empty number array');
  for (let i = 0; i < value.length; i++) {
    const v: unknown = value[i];
    if (typeof v !== 'number' || !Number.isFinite(v) || (i > 0 && v <= (value[i - 1] as number))) {
      throw new SnapshotError(`${path}[${i}]`, 'bounds must be finite and strictly increasing');
    }
  }
  return value as number[];
}

function checkHistogram(value: unknown, path: string, bucketCount: number): HistogramDelta {
  if (!isRecord(value)) throw new SnapshotError(path, 'expected an object');
  const { count, sum, buckets } = value;
  if (!isCount(count)) throw new SnapshotError(`${path}.count`, 'expected a non-negative integer');
  if (typeof sum !== 'number' || !Number.isFinite(sum) || sum < 0) {
    throw new SnapshotError(`${path}.sum`, 'expected a finite non-negative number');
  }
  if (!Array.isArray(buckets) || buckets.length !== bucketCount) {
    throw new SnapshotError(`${path}.buckets`, `expected an array of ${bucketCount} counts`);
  }
  let total = 0;
  for (let i = 0; i < buckets.length; i++) {
    const b: unknown = buckets[i];
    if (!isCount(b)) throw new SnapshotError(`${path}.buckets[${i}]`, 'expected a non-negative integer');
    total += b;
  }
  if (total !== count)
    throw new SnapshotError(`${path}.buckets`, `bucket counts add up to ${total}, count is ${count}`);
  return { count, sum, buckets: buckets.slice() as number[] };
}

function nullableString(value: unknown, path: string): string | null {
  if (value === null) return null;
  if (typeof value === 'string' && value.length > 0) return value;
  throw new SnapshotError(path, 'expected a non-empty string or null');
}

/**
 * Checks an untrusted snapshot (e.g. JSON from a sidecar) and returns a deep copy.
 * @throws SnapshotError (`HTTPMESH_METRICS_SNAPSHOT_INVALID`)
 */
export function validateSnapshot(input: unknown): MetricsSnapshot {
  if (!isRecord(input)) throw new SnapshotError('', 'expected an object');
  if (input['version'] !== 1) throw new SnapshotError('.version', 'unsupported version (expected 1)');
  const service = input['service'];
  if (typeof service !== 'string' || service.length === 0)
    throw new SnapshotError('.service', 'expected a non-empty string');
  const producer = input['producer'];
  if (typeof producer !== 'string') throw new SnapshotError('.producer', 'expected a string');
  const startTimeMs = input['startTimeMs'];
  const endTimeMs = input['endTimeMs'];
  if (typeof startTimeMs !== 'number' || !Number.isFinite(startTimeMs)) {
    throw new SnapshotError('.startTimeMs', 'expected a finite number');
  }
  if (typeof endTimeMs !== 'number' || !Number.isFinite(endTimeMs) || endTimeMs < startTimeMs) {
    throw new SnapshotError('.endTimeMs', 'expected a finite number not before startTimeMs');
  }
  const durationBounds = checkBoundsArray(input['durationBounds'], '.durationBounds').slice();
  const bodySizeBounds = checkBoundsArray(input['bodySizeBounds'], '.bodySizeBounds').slice();
  const rawSeries = input['series'];
  if (!Array.isArray(rawSeries)) throw new SnapshotError('.series', 'expected an array');
  const series: SnapshotSeries[] = [];
  for (let i = 0; i < rawSeries.length; i++) {
    const s: unknown = rawSeries[i];
    const at = `.series[${i}]`;
    if (!isRecord(s)) throw new SnapshotError(at, 'expected an object');
    const direction = s['direction'];
    if (direction !== 'inbound' && direction !== 'outbound') {
      throw new SnapshotError(`${at}.direction`, 'expected "inbound" or "outbound"');
    }
    const overflow = s['overflow'];
    if (typeof overflow !== 'boolean') throw new SnapshotError(`${at}.overflow`, 'expected a boolean');
    const statusCode = s['statusCode'];
    if (statusCode !== null && !(isCount(statusCode) && statusCode >= 100 && statusCode <= 599)) {
      throw new SnapshotError(`${at}.statusCode`, 'expected an integer 100-599 or null');
    }
    const method = nullableString(s['method'], `${at}.method`);
    const route = nullableString(s['route'], `${at}.route`);
    const host = nullableString(s['host'], `${at}.host`);
    if (!overflow && (method === null || route === null || host === null)) {
      throw new SnapshotError(at, 'method, route and host are required unless overflow is true');
    }
    series.push({
      direction: direction as Direction,
      overflow,
      method,
      route,
      host,
      statusCode: statusCode as number | null,
      errorType: nullableString(s['errorType'], `${at}.errorType`),
      sourceService: nullableString(s['sourceService'], `${at}.sourceService`),
      duration: checkHistogram(s['duration'], `${at}.duration`, durationBounds.length + 1),
      requestBodySize: checkHistogram(
        s['requestBodySize'],
        `${at}.requestBodySize`,
        bodySizeBounds.length + 1,
      ),
      responseBodySize: checkHistogram(
        s['responseBodySize'],
        `${at}.responseBodySize`,
        bodySizeBounds.length + 1,
      ),
    });
  }
  return { version: 1, service, producer, startTimeMs, endTimeMs, durationBounds, bodySizeBounds, series };
}

function seriesKey(service: string, s: SnapshotSeries): string {
  return JSON.stringify([
    service,
    s.direction,
    s.overflow,
    s.host,
    s.route,
    s.method,
    s.statusCode,
    s.errorType,
    s.sourceService,
  ]);
}

function sameBounds(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function emptyHistogram(n: number): HistogramDelta {
  return { count: 0, sum: 0, buckets: new Array<number>(n + 1).fill(0) };
}

function addInto(target: HistogramDelta, source: HistogramDelta): void {
  target.count += source.count;
  target.sum += source.sum;
  for (let i = 0; i < source.buckets.length; i++) target.buckets[i]! += source.buckets[i]!;
}

/** Every view dimension, in label order (also the Prometheus label order of the mesh export). */
export const ALL_DIMENSIONS: readonly ViewDimension[] = [
  'service',
  'direction',
  'host',
  'route',
  'method',
  'statusCode',
  'errorType',
  'sourceService',
];

/**
 * Merges delta snapshots from many sidecars (bucket by bucket) and answers grouped views with
 * estimated percentiles. Memory is bounded by the distinct label sets the producers report.
 */
export class MeshAggregator {
  readonly durationBounds: readonly number[];
  readonly bodySizeBounds: readonly number[];
  readonly maxSeries: number;
  readonly #series = new Map<string, AggregateSeries>();
  #snapshots = 0;

  constructor(options: MeshAggregatorOptions = {}) {
    const d = options.durationBounds ?? DURATION_BUCKETS_SECONDS;
    const b = options.bodySizeBounds ?? BODY_SIZE_BUCKETS_BYTES;
    try {
      this.durationBounds = Object.freeze(checkBoundsArray(d, 'durationBounds').slice());
      this.bodySizeBounds = Object.freeze(checkBoundsArray(b, 'bodySizeBounds').slice());
    } catch (err) {
      throw new MetricsOptionsError(err instanceof Error ? err.message : String(err));
    }
    const maxSeries = options.maxSeries ?? 100_000;
    if (!Number.isInteger(maxSeries) || maxSeries < 1)
      throw new MetricsOptionsError('maxSeries must be an integer >= 1');
    this.maxSeries = maxSeries;
  }

  /** Distinct merged series currently held (bounded by `maxSeries` plus one overflow series per service and direction). */
  get seriesCount(): number {
    return this.#series.size;
  }

  /** Number of snapshots merged so far. */
  get snapshotCount(): number {
    return this.#snapshots;
  }

  /**
   * Validates and merges one snapshot. On any error nothing is merged.
   * @throws SnapshotError, SnapshotBoundsError
   */
  ingest(input: unknown): void {
    const snapshot = validateSnapshot(input);
    this.#checkBounds(snapshot);
    // validateSnapshot returned fresh copies, so they can be kept without copying again.
    for (const s of snapshot.series) this.#add(snapshot.service, s, false);
    this.#snapshots++;
  }

  /**
   * Merges a snapshot already checked by `validateSnapshot` (so one untrusted document can feed several
   * aggregators after a single validation). Only the bounds are checked; series are copied, never shared.
   * @throws SnapshotBoundsError
   */
  ingestValidated(snapshot: MetricsSnapshot): void {
    this.#checkBounds(snapshot);
    for (const s of snapshot.series) this.#add(snapshot.service, s, true);
    this.#snapshots++;
  }

  /**
   * Adds every series of `other` into this aggregator, series by series (no snapshot round trip).
   * `other` is left unchanged. @throws SnapshotBoundsError when the bucket bounds differ.
   */
  merge(other: MeshAggregator): void {
    if (
      !sameBounds(other.durationBounds, this.durationBounds) ||
      !sameBounds(other.bodySizeBounds, this.bodySizeBounds)
    ) {
      throw new SnapshotBoundsError('cannot merge aggregators whose bucket bounds differ');
    }
    for (const { service, series } of other.#series.values()) this.#add(service, series, true);
    this.#snapshots += other.#snapshots;
  }

  #checkBounds(snapshot: MetricsSnapshot): void {
    if (!sameBounds(snapshot.durationBounds, this.durationBounds)) {
      throw new SnapshotBoundsError(
        `snapshot from ${snapshot.producer}: duration bounds differ from the aggregator's`,
      );
    }
    if (!sameBounds(snapshot.bodySizeBounds, this.bodySizeBounds)) {
      throw new SnapshotBoundsError(
        `snapshot from ${snapshot.producer}: body-size bounds differ from the aggregator's`,
      );
    }
  }

  /** Adds one series; `copy` when the caller keeps (or shares) the object. */
  #add(service: string, s: SnapshotSeries, copy: boolean): void {
    let key = seriesKey(service, s);
    let existing = this.#series.get(key);
    if (existing === undefined && this.#series.size >= this.maxSeries && !s.overflow) {
      // Over the limit: fold this label set into the (service, direction) overflow series.
      const folded: SnapshotSeries = {
        ...copySeries(s),
        overflow: true,
        method: null,
        route: null,
        host: null,
        statusCode: null,
        errorType: null,
        sourceService: null,
      };
      key = seriesKey(service, folded);
      existing = this.#series.get(key);
      if (existing === undefined) {
        this.#series.set(key, { service, series: folded });
        return;
      }
    }
    if (existing === undefined) {
      this.#series.set(key, { service, series: copy ? copySeries(s) : s });
      return;
    }
    addInto(existing.series.duration, s.duration);
    addInto(existing.series.requestBodySize, s.requestBodySize);
    addInto(existing.series.responseBodySize, s.responseBodySize);
  }

  /**
   * One grouped view over several aggregators at once, as if they had been merged, without building the
   * merged aggregator (what a window query over time slots needs). All must share bucket bounds.
   * @throws MetricsOptionsError for an empty list, differing bounds or an unknown dimension
   */
  static combinedView(
    sources: readonly MeshAggregator[],
    dimensions: readonly ViewDimension[],
    filter?: ViewKey,
  ): ViewRow[] {
    const first = sources[0];
    if (first === undefined) throw new MetricsOptionsError('combinedView needs at least one aggregator');
    for (const source of sources) {
      if (
        !sameBounds(source.durationBounds, first.durationBounds) ||
        !sameBounds(source.bodySizeBounds, first.bodySizeBounds)
      ) {
        throw new MetricsOptionsError('combinedView: aggregators have different bucket bounds');
      }
    }
    return groupRows(
      sources.map((source) => source.#series.values()),
      dimensions,
      filter,
      first.durationBounds,
      first.bodySizeBounds,
    );
  }

  /** Groups all merged series by `dimensions`; rows sorted by request count, descending. */
  view(dimensions: readonly ViewDimension[], filter?: ViewKey): ViewRow[] {
    return groupRows([this.#series.values()], dimensions, filter, this.durationBounds, this.bodySizeBounds);
  }

  byService(): ViewRow[] {
    return this.view(['service', 'direction']);
  }

  byHost(): ViewRow[] {
    return this.view(['host', 'direction']);
  }

  /** The per-endpoint view: host + method + pattern. */
  byPattern(): ViewRow[] {
    return this.view(['host', 'method', 'route', 'direction']);
  }
}

function copySeries(s: SnapshotSeries): SnapshotSeries {
  return {
    ...s,
    duration: { count: s.duration.count, sum: s.duration.sum, buckets: s.duration.buckets.slice() },
    requestBodySize: {
      count: s.requestBodySize.count,
      sum: s.requestBodySize.sum,
      buckets: s.requestBodySize.buckets.slice(),
    },
    responseBodySize: {
      count: s.responseBodySize.count,
      sum: s.responseBodySize.sum,
      buckets: s.responseBodySize.buckets.slice(),
    },
  };
}

function groupRows(
  sources: readonly Iterable<AggregateSeries>[],
  dimensions: readonly ViewDimension[],
  filter: ViewKey | undefined,
  durationBounds: readonly number[],
  bodySizeBounds: readonly number[],
): ViewRow[] {
  for (const d of dimensions) {
    if (!ALL_DIMENSIONS.includes(d)) throw new MetricsOptionsError(`unknown view dimension "${String(d)}"`);
  }
  const filterEntries = filter === undefined ? [] : (Object.entries(filter) as [ViewDimension, unknown][]);
  const rows = new Map<string, ViewRow>();
  const nd = durationBounds.length;
  const nb = bodySizeBounds.length;
  for (const source of sources) {
    for (const { service, series } of source) {
      const full: Record<ViewDimension, string | number | null> = {
        service,
        direction: series.direction,
        host: series.host,
        route: series.route,
        method: series.method,
        statusCode: series.statusCode,
        errorType: series.errorType,
        sourceService: series.sourceService,
      };
      let keep = true;
      for (const [k, v] of filterEntries) {
        if (full[k] !== v) {
          keep = false;
          break;
        }
      }
      if (!keep) continue;
      const id = JSON.stringify(dimensions.map((d) => full[d]));
      let row = rows.get(id);
      if (row === undefined) {
        const key: ViewKey = {};
        for (const d of dimensions) key[d] = full[d];
        row = {
          key,
          requests: 0,
          errors: 0,
          overflow: 0,
          duration: { ...emptyHistogram(nd), p50: null, p95: null, p99: null },
          requestBodySize: { ...emptyHistogram(nb), p50: null, p95: null, p99: null },
          responseBodySize: { ...emptyHistogram(nb), p50: null, p95: null, p99: null },
        };
        rows.set(id, row);
      }
      const n = series.duration.count;
      row.requests += n;
      if (series.errorType !== null) row.errors += n;
      if (series.overflow) row.overflow += n;
      addInto(row.duration, series.duration);
      addInto(row.requestBodySize, series.requestBodySize);
      addInto(row.responseBodySize, series.responseBodySize);
    }
  }
  const out: ViewRow[] = [];
  for (const row of rows.values()) {
    summarise(row.duration, durationBounds);
    summarise(row.requestBodySize, bodySizeBounds);
    summarise(row.responseBodySize, bodySizeBounds);
    out.push(row);
  }
  out.sort((a, b) => b.requests - a.requests);
  return out;
}

function summarise(h: HistogramSummary, bounds: readonly number[]): void {
  h.p50 = estimateQuantile(bounds, h.buckets, 0.5);
  h.p95 = estimateQuantile(bounds, h.buckets, 0.95);
  h.p99 = estimateQuantile(bounds, h.buckets, 0.99);
}
