import type { Attributes, HrTime, ValueType } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import type {
  AggregationTemporality,
  CollectionResult,
  DataPointType,
  DataPoint,
  Histogram,
  HistogramMetricData,
  MetricData,
  MetricProducer,
  SumMetricData,
} from '@opentelemetry/sdk-metrics';
import { createMatcher, PatternError } from '@httpmesh/url-matcher';
import type { Matcher, RouteSpec as MatcherRouteSpec } from '@httpmesh/url-matcher';
import { MetricsOptionsError, RoutePatternError } from './errors.js';
import { validateRouteSets } from './routes.js';
import type { RouteSetSpec } from './routes.js';
import {
  ATTR_ERROR_TYPE,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_HTTP_ROUTE,
  ATTR_MESH_DIRECTION,
  ATTR_MESH_SOURCE_SERVICE,
  ATTR_OTEL_METRIC_OVERFLOW,
  ATTR_SERVER_ADDRESS,
  BODY_SIZE_BUCKETS_BYTES,
  DURATION_BUCKETS_SECONDS,
  INSTRUMENTS,
  KNOWN_METHODS,
  OTHER_ERROR_TYPE,
  OTHER_METHOD,
} from './semconv.js';
import type { Direction } from './semconv.js';
import type { HistogramDelta, MetricsSnapshot, SnapshotSeries } from './snapshot.js';

/** One completed HTTP exchange, as the sidecar maps it from the proxy's completion event. */
export interface ExchangeRecord {
  direction: Direction;
  method: string;
  /** Host (Host header / :authority); a port suffix is ignored. */
  host: string;
  /** Request target path; a query string is ignored. */
  path: string;
  /** Absent when no response was received/sent. */
  statusCode?: number | undefined;
  /** Failure class (e.g. `ECONNRESET`, `timeout`); see README for how it maps to `error.type`. */
  errorType?: string | undefined;
  durationMs: number;
  requestBytes?: number | undefined;
  responseBytes?: number | undefined;
  /** Calling service, when known (inbound: from mesh identity; outbound: this service). */
  sourceService?: string | undefined;
}

/** The part of an exchange known when it starts; used for the active-requests counter. */
export interface RequestStart {
  direction: Direction;
  method: string;
  host: string;
  path: string;
  sourceService?: string | undefined;
}

/** Opaque token from `startRequest`, handed back to `endRequest`. */
export interface ActiveRequestHandle {
  readonly attributes: Attributes;
}

export interface MeshMetricsOptions {
  /** Initial route configuration (validated). Default: none, everything is `UNMATCHED`. */
  routeSets?: unknown;
  /** Service this sidecar fronts; written into snapshots. Default `unknown_service`. */
  service?: string;
  /** Producer instance id written into snapshots. Default `<service>`. */
  producer?: string;
  /** `http.route` value for requests matching no pattern. Default `UNMATCHED`. */
  unmatchedRoute?: string;
  /** `server.address` value for hosts no RouteSet covers. Default `_OTHER`. */
  unknownHost?: string;
  /**
   * Series per instrument including the overflow series, as OpenTelemetry's cardinality limit.
   * Default 2000 (the SDK default).
   */
  cardinalityLimit?: number;
  /** Duration bucket boundaries in seconds. Default: semconv advice [0.005 … 10]. */
  durationBuckets?: readonly number[];
  /** Body-size bucket boundaries in bytes. */
  bodySizeBuckets?: readonly number[];
}

/** What the route table resolves a request to; also holds the per-route series caches. */
interface RouteInfo {
  readonly route: string;
  readonly host: string;
  /** (direction, method, status) -> sourceService -> errorType -> series */
  readonly seriesCache: Map<number, Map<string, Map<string, ExchangeSeries>>>;
  /** (direction, method) -> sourceService -> active series */
  readonly activeCache: Map<number, Map<string, ActiveSeries>>;
}

interface RouteTable {
  readonly matcher: Matcher<RouteInfo>;
  readonly exactHosts: Map<string, RouteInfo>;
  readonly wildcardHosts: { suffix: string; info: RouteInfo }[];
  readonly unknownHost: RouteInfo;
}

interface SeriesLabels {
  method: string | null;
  route: string | null;
  host: string | null;
  statusCode: number | null;
  errorType: string | null;
  sourceService: string | null;
}

interface ExchangeSeries {
  readonly attributes: Attributes;
  readonly labels: SeriesLabels;
  readonly direction: number;
  readonly startTime: HrTime;
  /** Cumulative counts; layout described by MeshMetrics offsets. */
  readonly data: Float64Array;
  /** Copy of `data` at the previous snapshot. */
  snapshotBase: Float64Array | undefined;
}

interface ActiveSeries extends ActiveRequestHandle {
  readonly startTime: HrTime;
  value: number;
}

const DIRECTIONS: readonly Direction[] = ['inbound', 'outbound'];
const METHOD_INDEX = new Map<string, number>(KNOWN_METHODS.map((m, i) => [m, i]));
const OTHER_METHOD_INDEX = KNOWN_METHODS.length;
const METHOD_NAMES: readonly string[] = [...KNOWN_METHODS, OTHER_METHOD];
const SCOPE = { name: '@httpmesh/metrics', version: '0.1.0' };

/*
 * OpenTelemetry's enum values and an empty Resource, written here rather than imported: recording and
 * collecting must not load the SDK (~15 MB resident with @opentelemetry/api and resources), only an
 * exporter does. The enum values are part of the SDK's data model (the OTLP wire values follow them);
 * test/mesh-metrics.test.ts checks them against the SDK's own enums.
 */
const VALUE_TYPE_INT = 0 as ValueType.INT;
const VALUE_TYPE_DOUBLE = 1 as ValueType.DOUBLE;
const CUMULATIVE = 1 as AggregationTemporality.CUMULATIVE;
const DATA_POINT_HISTOGRAM = 0 as DataPointType.HISTOGRAM;
const DATA_POINT_SUM = 3 as DataPointType.SUM;
/** MetricReader keeps the MeterProvider's resource and ignores a producer's, so an empty one suffices. */
const EMPTY_RESOURCE: Resource = Object.freeze({
  attributes: Object.freeze({}),
  merge: (other: Resource | null): Resource => other ?? EMPTY_RESOURCE,
  getRawAttributes: () => [],
});
const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ [ATTR_OTEL_METRIC_OVERFLOW]: true });
const NULL_LABELS: SeriesLabels = Object.freeze({
  method: null,
  route: null,
  host: null,
  statusCode: null,
  errorType: null,
  sourceService: null,
});

function hrTimeOf(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1e6)];
}

function checkBounds(name: string, bounds: readonly number[]): Float64Array {
  if (!Array.isArray(bounds) || bounds.length === 0) {
    throw new MetricsOptionsError(`${name} must be a non-empty array of numbers`);
  }
  for (let i = 0; i < bounds.length; i++) {
    const b = bounds[i];
    if (typeof b !== 'number' || !Number.isFinite(b) || (i > 0 && b <= (bounds[i - 1] as number))) {
      throw new MetricsOptionsError(`${name} must be finite and strictly increasing (index ${i})`);
    }
  }
  return Float64Array.from(bounds);
}

/** Bucket counts, then sum, then count, starting at `offset`. Upper bounds are inclusive, as in OTel. */
function observe(data: Float64Array, offset: number, bounds: Float64Array, value: number): void {
  const n = bounds.length;
  let i = 0;
  while (i < n && value > (bounds[i] as number)) i++;
  data[offset + i]! += 1;
  data[offset + n + 1]! += value;
  data[offset + n + 2]! += 1;
}

function newRouteInfo(route: string, host: string): RouteInfo {
  return { route, host, seriesCache: new Map(), activeCache: new Map() };
}

/**
 * Per-URL-pattern HTTP metrics with bounded cardinality.
 *
 * Recording aggregates into pre-built series (attribute objects and bucket arrays are created once
 * per series), because the OpenTelemetry SDK's own `Histogram.record` hashes the attribute object on
 * every call (about 2 µs for these attributes, see README). The data is handed to OpenTelemetry
 * readers/exporters through `metricProducer` in the SDK's own data model.
 */
export class MeshMetrics {
  readonly service: string;
  readonly producer: string;
  readonly unmatchedRoute: string;
  readonly unknownHost: string;
  readonly cardinalityLimit: number;
  /** Exchanges ignored because of an invalid duration or direction. */
  droppedRecords = 0;

  readonly #durationBounds: Float64Array;
  readonly #bodyBounds: Float64Array;
  readonly #requestOffset: number;
  readonly #responseOffset: number;
  readonly #seriesLength: number;
  readonly #createdMs = Date.now();
  #table: RouteTable;
  /** Canonical key -> series; survives route changes so counts are never lost. */
  readonly #series = new Map<string, ExchangeSeries>();
  readonly #seriesByDirection: ExchangeSeries[][] = [[], []];
  readonly #overflow: (ExchangeSeries | undefined)[] = [undefined, undefined];
  readonly #active = new Map<string, ActiveSeries>();
  readonly #activeByDirection: ActiveSeries[][] = [[], []];
  readonly #activeOverflow: (ActiveSeries | undefined)[] = [undefined, undefined];
  #lastSnapshotMs: number;

  /** Hands this instance's data to an OpenTelemetry MetricReader (`metricProducers: [m.metricProducer]`). */
  readonly metricProducer: MetricProducer;

  constructor(options: MeshMetricsOptions = {}) {
    this.service = options.service ?? 'unknown_service';
    this.producer = options.producer ?? this.service;
    this.unmatchedRoute = options.unmatchedRoute ?? 'UNMATCHED';
    this.unknownHost = options.unknownHost ?? '_OTHER';
    if (typeof this.unmatchedRoute !== 'string' || this.unmatchedRoute.length === 0) {
      throw new MetricsOptionsError('unmatchedRoute must be a non-empty string');
    }
    if (typeof this.unknownHost !== 'string' || this.unknownHost.length === 0) {
      throw new MetricsOptionsError('unknownHost must be a non-empty string');
    }
    const limit = options.cardinalityLimit ?? 2000;
    if (!Number.isInteger(limit) || limit < 2) {
      throw new MetricsOptionsError(
        'cardinalityLimit must be an integer >= 2 (it includes the overflow series)',
      );
    }
    this.cardinalityLimit = limit;
    this.#durationBounds = checkBounds(
      'durationBuckets',
      options.durationBuckets ?? DURATION_BUCKETS_SECONDS,
    );
    this.#bodyBounds = checkBounds('bodySizeBuckets', options.bodySizeBuckets ?? BODY_SIZE_BUCKETS_BYTES);
    const durationLength = this.#durationBounds.length + 3;
    const bodyLength = this.#bodyBounds.length + 3;
    this.#requestOffset = durationLength;
    this.#responseOffset = durationLength + bodyLength;
    this.#seriesLength = durationLength + 2 * bodyLength;
    this.#lastSnapshotMs = this.#createdMs;
    this.#table = this.#compile(validateRouteSets(options.routeSets ?? []));
    this.metricProducer = { collect: async () => this.collect() };
  }

  /**
   * Replaces the route configuration. Existing series (and their counts) are kept; only the
   * mapping of future requests changes.
   * @throws RouteSetError, RoutePatternError — the previous configuration stays active.
   */
  setRoutes(routeSets: unknown): void {
    this.#table = this.#compile(validateRouteSets(routeSets));
  }

  /** Records one completed exchange. */
  record(exchange: ExchangeRecord): void {
    const durationMs = exchange.durationMs;
    const direction = exchange.direction === 'inbound' ? 0 : exchange.direction === 'outbound' ? 1 : -1;
    // `!(x >= 0)` also rejects NaN and non-numbers.
    if (direction < 0 || !(durationMs >= 0) || durationMs === Number.POSITIVE_INFINITY) {
      this.droppedRecords++;
      return;
    }
    const series = this.#seriesFor(exchange, direction);
    const data = series.data;
    observe(data, 0, this.#durationBounds, durationMs / 1000);
    // Sizes are optional; non-finite ones are skipped so that sums (and snapshots) stay finite.
    const requestBytes = exchange.requestBytes;
    if (requestBytes !== undefined && requestBytes >= 0 && requestBytes < Number.POSITIVE_INFINITY) {
      observe(data, this.#requestOffset, this.#bodyBounds, requestBytes);
    }
    const responseBytes = exchange.responseBytes;
    if (responseBytes !== undefined && responseBytes >= 0 && responseBytes < Number.POSITIVE_INFINITY) {
      observe(data, this.#responseOffset, this.#bodyBounds, responseBytes);
    }
  }

  /** Counts a request as active until `endRequest` is called with the returned handle. */
  startRequest(request: RequestStart): ActiveRequestHandle {
    const direction = request.direction === 'outbound' ? 1 : 0;
    const info = this.#resolve(request.method, request.host, request.path);
    const methodIndex = METHOD_INDEX.get(request.method) ?? OTHER_METHOD_INDEX;
    const source = request.sourceService ?? '';
    const key = (direction << 4) | methodIndex;
    let series = info.activeCache.get(key)?.get(source);
    if (series === undefined) series = this.#slowActive(info, key, direction, methodIndex, source);
    series.value++;
    return series;
  }

  endRequest(handle: ActiveRequestHandle): void {
    (handle as ActiveSeries).value--;
  }

  /** Number of distinct series (excluding overflow) per direction; bounded by `cardinalityLimit - 1`. */
  seriesCount(direction: Direction): number {
    return this.#seriesByDirection[direction === 'inbound' ? 0 : 1]!.length;
  }

  #seriesFor(exchange: ExchangeRecord, direction: number): ExchangeSeries {
    const info = this.#resolve(exchange.method, exchange.host, exchange.path);
    const methodIndex = METHOD_INDEX.get(exchange.method) ?? OTHER_METHOD_INDEX;
    const code = exchange.statusCode;
    const status = code !== undefined && code >= 100 && code <= 599 && Number.isInteger(code) ? code : 0;
    const key = (direction << 14) | (methodIndex << 10) | status;
    const source = exchange.sourceService ?? '';
    const errorType = exchange.errorType ?? '';
    const series = info.seriesCache.get(key)?.get(source)?.get(errorType);
    if (series !== undefined) return series;
    return this.#slowSeries(info, key, direction, methodIndex, status, source, errorType);
  }

  #resolve(method: string, rawHost: string, path: string): RouteInfo {
    const table = this.#table;
    // The matcher ignores query strings and host ports/case itself, so the hit path allocates nothing here.
    const match = table.matcher.match(path, method, rawHost);
    if (match !== null && match.data !== undefined) return match.data;
    const host = typeof rawHost === 'string' ? normaliseHost(rawHost) : '';
    const exact = table.exactHosts.get(host);
    if (exact !== undefined) return exact;
    const wildcards = table.wildcardHosts;
    for (let i = 0; i < wildcards.length; i++) {
      const w = wildcards[i]!;
      if (host.length > w.suffix.length && host.endsWith(w.suffix)) return w.info;
    }
    return table.unknownHost;
  }

  #slowSeries(
    info: RouteInfo,
    key: number,
    direction: number,
    methodIndex: number,
    status: number,
    source: string,
    errorType: string,
  ): ExchangeSeries {
    const canonical = `${key}\u0000${info.host}\u0000${info.route}\u0000${source}\u0000${errorType}`;
    let series = this.#series.get(canonical);
    if (series === undefined) {
      const list = this.#seriesByDirection[direction]!;
      if (list.length >= this.cardinalityLimit - 1) {
        // Not cached: overflowing combinations must not grow the caches either.
        return this.#overflowSeries(direction);
      }
      series = this.#newSeries(info, direction, methodIndex, status, source, errorType);
      this.#series.set(canonical, series);
      list.push(series);
    }
    let bySource = info.seriesCache.get(key);
    if (bySource === undefined) {
      bySource = new Map();
      info.seriesCache.set(key, bySource);
    }
    let byError = bySource.get(source);
    if (byError === undefined) {
      byError = new Map();
      bySource.set(source, byError);
    }
    byError.set(errorType, series);
    return series;
  }

  #newSeries(
    info: RouteInfo,
    direction: number,
    methodIndex: number,
    status: number,
    source: string,
    errorType: string,
  ): ExchangeSeries {
    const method = METHOD_NAMES[methodIndex]!;
    let effectiveError: string | null = errorType === '' ? null : errorType;
    // Semconv: without a response the error type must be set; 5xx (server) / 4xx+5xx (client) are errors.
    if (effectiveError === null) {
      if (status === 0) effectiveError = OTHER_ERROR_TYPE;
      else if (status >= 500 || (direction === 1 && status >= 400)) effectiveError = String(status);
    }
    const attributes: Attributes = {
      [ATTR_HTTP_REQUEST_METHOD]: method,
      [ATTR_HTTP_ROUTE]: info.route,
      [ATTR_SERVER_ADDRESS]: info.host,
      [ATTR_MESH_DIRECTION]: DIRECTIONS[direction]!,
    };
    if (status !== 0) attributes[ATTR_HTTP_RESPONSE_STATUS_CODE] = status;
    if (effectiveError !== null) attributes[ATTR_ERROR_TYPE] = effectiveError;
    if (source !== '') attributes[ATTR_MESH_SOURCE_SERVICE] = source;
    return {
      attributes: Object.freeze(attributes),
      labels: Object.freeze({
        method,
        route: info.route,
        host: info.host,
        statusCode: status === 0 ? null : status,
        errorType: effectiveError,
        sourceService: source === '' ? null : source,
      }),
      direction,
      startTime: hrTimeOf(Date.now()),
      data: new Float64Array(this.#seriesLength),
      snapshotBase: undefined,
    };
  }

  #overflowSeries(direction: number): ExchangeSeries {
    let series = this.#overflow[direction];
    if (series === undefined) {
      series = {
        attributes: OVERFLOW_ATTRIBUTES,
        labels: NULL_LABELS,
        direction,
        startTime: hrTimeOf(Date.now()),
        data: new Float64Array(this.#seriesLength),
        snapshotBase: undefined,
      };
      this.#overflow[direction] = series;
    }
    return series;
  }

  #slowActive(
    info: RouteInfo,
    key: number,
    direction: number,
    methodIndex: number,
    source: string,
  ): ActiveSeries {
    const canonical = `${key}\u0000${info.host}\u0000${info.route}\u0000${source}`;
    let series = this.#active.get(canonical);
    if (series === undefined) {
      const list = this.#activeByDirection[direction]!;
      if (list.length >= this.cardinalityLimit - 1) {
        let overflow = this.#activeOverflow[direction];
        if (overflow === undefined) {
          overflow = { attributes: OVERFLOW_ATTRIBUTES, startTime: hrTimeOf(Date.now()), value: 0 };
          this.#activeOverflow[direction] = overflow;
        }
        return overflow;
      }
      const attributes: Attributes = {
        [ATTR_HTTP_REQUEST_METHOD]: METHOD_NAMES[methodIndex]!,
        [ATTR_HTTP_ROUTE]: info.route,
        [ATTR_SERVER_ADDRESS]: info.host,
        [ATTR_MESH_DIRECTION]: DIRECTIONS[direction]!,
      };
      if (source !== '') attributes[ATTR_MESH_SOURCE_SERVICE] = source;
      series = { attributes: Object.freeze(attributes), startTime: hrTimeOf(Date.now()), value: 0 };
      this.#active.set(canonical, series);
      list.push(series);
    }
    let bySource = info.activeCache.get(key);
    if (bySource === undefined) {
      bySource = new Map();
      info.activeCache.set(key, bySource);
    }
    bySource.set(source, series);
    return series;
  }

  #compile(routeSets: RouteSetSpec[]): RouteTable {
    const specs: MatcherRouteSpec<RouteInfo>[] = [];
    const exactHosts = new Map<string, RouteInfo>();
    const wildcardHosts: { suffix: string; info: RouteInfo }[] = [];
    // One RouteInfo per (host, pattern) so routes split by method share caches.
    const infos = new Map<string, RouteInfo>();
    for (const set of routeSets) {
      const unmatched = newRouteInfo(this.unmatchedRoute, set.host);
      if (set.host.startsWith('*.')) wildcardHosts.push({ suffix: set.host.slice(1), info: unmatched });
      else exactHosts.set(set.host, unmatched);
      for (const route of set.routes) {
        const infoKey = `${set.host}\u0000${route.pattern}`;
        let info = infos.get(infoKey);
        if (info === undefined) {
          info = newRouteInfo(route.pattern, set.host);
          infos.set(infoKey, info);
        }
        const spec: MatcherRouteSpec<RouteInfo> = { pattern: route.pattern, host: set.host, data: info };
        if (route.methods !== undefined) spec.methods = route.methods;
        specs.push(spec);
      }
    }
    // Most specific wildcard first.
    wildcardHosts.sort((a, b) => b.suffix.length - a.suffix.length);
    let matcher: Matcher<RouteInfo>;
    try {
      matcher = createMatcher<RouteInfo>(specs);
    } catch (err) {
      if (err instanceof PatternError) {
        throw new RoutePatternError(`invalid route pattern: ${err.message}`, err.code, err);
      }
      throw err;
    }
    return {
      matcher,
      exactHosts,
      wildcardHosts,
      unknownHost: newRouteInfo(this.unmatchedRoute, this.unknownHost),
    };
  }

  #histogramPoints(
    list: ExchangeSeries[],
    offset: number,
    bounds: Float64Array,
    endTime: HrTime,
  ): DataPoint<Histogram>[] {
    const n = bounds.length;
    const boundaries = Array.from(bounds);
    const points: DataPoint<Histogram>[] = [];
    for (const series of list) {
      const data = series.data;
      const count = data[offset + n + 2]!;
      if (count === 0) continue;
      points.push({
        startTime: series.startTime,
        endTime,
        attributes: series.attributes,
        value: {
          buckets: { boundaries, counts: Array.from(data.subarray(offset, offset + n + 1)) },
          sum: data[offset + n + 1]!,
          count,
        },
      });
    }
    return points;
  }

  /** Cumulative OpenTelemetry data for everything recorded so far. */
  collect(): CollectionResult {
    const endTime = hrTimeOf(Date.now());
    const metrics: MetricData[] = [];
    for (let d = 0; d < 2; d++) {
      const names = INSTRUMENTS[DIRECTIONS[d]!];
      const list = this.#seriesByDirection[d]!.slice();
      const overflow = this.#overflow[d];
      if (overflow !== undefined) list.push(overflow);
      const histograms: [string, string, string, number, Float64Array][] = [
        [names.duration, 's', 'Duration of HTTP requests.', 0, this.#durationBounds],
        [names.requestBodySize, 'By', 'Size of HTTP request bodies.', this.#requestOffset, this.#bodyBounds],
        [
          names.responseBodySize,
          'By',
          'Size of HTTP response bodies.',
          this.#responseOffset,
          this.#bodyBounds,
        ],
      ];
      for (const [name, unit, description, offset, bounds] of histograms) {
        const dataPoints = this.#histogramPoints(list, offset, bounds, endTime);
        if (dataPoints.length === 0) continue;
        const metric: HistogramMetricData = {
          descriptor: { name, unit, description, valueType: VALUE_TYPE_DOUBLE },
          aggregationTemporality: CUMULATIVE,
          dataPointType: DATA_POINT_HISTOGRAM,
          dataPoints,
        };
        metrics.push(metric);
      }
      const active = this.#activeByDirection[d]!.slice();
      const activeOverflow = this.#activeOverflow[d];
      if (activeOverflow !== undefined) active.push(activeOverflow);
      if (active.length > 0) {
        const metric: SumMetricData = {
          descriptor: {
            name: names.activeRequests,
            unit: '{request}',
            description: 'Number of active HTTP requests.',
            valueType: VALUE_TYPE_INT,
          },
          aggregationTemporality: CUMULATIVE,
          dataPointType: DATA_POINT_SUM,
          isMonotonic: false,
          dataPoints: active.map((s) => ({
            startTime: s.startTime,
            endTime,
            attributes: s.attributes,
            value: s.value,
          })),
        };
        metrics.push(metric);
      }
    }
    return {
      resourceMetrics: { resource: EMPTY_RESOURCE, scopeMetrics: [{ scope: SCOPE, metrics }] },
      errors: [],
    };
  }

  /**
   * Delta of everything recorded since the previous call (or since construction), as a plain
   * serialisable object for the control plane's MeshAggregator.
   */
  snapshot(): MetricsSnapshot {
    const now = Date.now();
    const series: SnapshotSeries[] = [];
    for (let d = 0; d < 2; d++) {
      const list = this.#seriesByDirection[d]!.slice();
      const overflow = this.#overflow[d];
      if (overflow !== undefined) list.push(overflow);
      for (const s of list) {
        const data = s.data;
        const base = s.snapshotBase;
        const duration = this.#deltaOf(data, base, 0, this.#durationBounds.length);
        const requestBodySize = this.#deltaOf(data, base, this.#requestOffset, this.#bodyBounds.length);
        const responseBodySize = this.#deltaOf(data, base, this.#responseOffset, this.#bodyBounds.length);
        if (duration.count === 0 && requestBodySize.count === 0 && responseBodySize.count === 0) continue;
        series.push({
          direction: DIRECTIONS[d]!,
          overflow: s === overflow,
          ...s.labels,
          duration,
          requestBodySize,
          responseBodySize,
        });
        if (base === undefined) s.snapshotBase = data.slice();
        else base.set(data);
      }
    }
    const snapshot: MetricsSnapshot = {
      version: 1,
      service: this.service,
      producer: this.producer,
      startTimeMs: this.#lastSnapshotMs,
      endTimeMs: now,
      durationBounds: Array.from(this.#durationBounds),
      bodySizeBounds: Array.from(this.#bodyBounds),
      series,
    };
    this.#lastSnapshotMs = now;
    return snapshot;
  }

  #deltaOf(data: Float64Array, base: Float64Array | undefined, offset: number, n: number): HistogramDelta {
    const buckets: number[] = new Array(n + 1);
    for (let i = 0; i <= n; i++)
      buckets[i] = data[offset + i]! - (base === undefined ? 0 : base[offset + i]!);
    const sum = data[offset + n + 1]! - (base === undefined ? 0 : base[offset + n + 1]!);
    const count = data[offset + n + 2]! - (base === undefined ? 0 : base[offset + n + 2]!);
    return { count, sum, buckets };
  }
}

/** Lower-cases and strips a `:port` suffix (also from `[v6]:port`) and a trailing dot. Allocates only when it must. */
function normaliseHost(host: string): string {
  let end = host.length;
  if (host.charCodeAt(0) === 91 /* [ */) {
    const close = host.indexOf(']');
    if (close !== -1) end = close + 1;
  } else {
    const colon = host.lastIndexOf(':');
    if (colon !== -1) end = colon;
  }
  if (end > 0 && host.charCodeAt(end - 1) === 46 /* . */) end--;
  const h = end === host.length ? host : host.slice(0, end);
  for (let i = 0; i < h.length; i++) {
    const c = h.charCodeAt(i);
    if (c >= 65 && c <= 90) return h.toLowerCase();
  }
  return h;
}
