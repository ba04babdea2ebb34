export { MeshAggregator, estimateQuantile, validateSnapshot } from './aggregator.js';
export type {
  HistogramSummary,
  MeshAggregatorOptions,
  ViewDimension,
  ViewKey,
  ViewRow,
} from './aggregator.js';
export {
  MetricsOptionsError,
  RoutePatternError,
  RouteSetError,
  SnapshotBoundsError,
  SnapshotError,
  WindowParameterError,
} from './errors.js';
export { PROMETHEUS_CONTENT_TYPE, createOtlpExport, createPrometheusEndpoint } from './exporters.js';
export type {
  OtlpExport,
  OtlpExportOptions,
  PrometheusEndpoint,
  PrometheusEndpointOptions,
} from './exporters.js';
export { meshPrometheusText } from './mesh-prometheus.js';
export { MeshMetrics } from './mesh-metrics.js';
export type {
  ActiveRequestHandle,
  ExchangeRecord,
  MeshMetricsOptions,
  RequestStart,
} from './mesh-metrics.js';
export { validateRouteSets } from './routes.js';
export type { RouteSetSpec, RouteSpec } from './routes.js';
export {
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
} from './semconv.js';
export type { Direction, InstrumentNames } from './semconv.js';
export type { HistogramDelta, MetricsSnapshot, SnapshotSeries } from './snapshot.js';
export { WindowedAggregator, parseWindowDuration } from './windowed.js';
export type { SeriesPoint, WindowRow, WindowedAggregatorOptions } from './windowed.js';
