import type { Direction } from './semconv.js';

/** Counts of one histogram since the previous snapshot. `buckets.length === bounds.length + 1`. */
export interface HistogramDelta {
  count: number;
  sum: number;
  buckets: number[];
}

/**
 * One series in a snapshot. Labels carry the same values as the OpenTelemetry attributes;
 * `null` means the attribute is absent. The overflow series has `overflow: true` and null labels.
 */
export interface SnapshotSeries {
  direction: Direction;
  overflow: boolean;
  method: string | null;
  route: string | null;
  host: string | null;
  statusCode: number | null;
  errorType: string | null;
  sourceService: string | null;
  duration: HistogramDelta;
  requestBodySize: HistogramDelta;
  responseBodySize: HistogramDelta;
}

/**
 * Compact, JSON-serialisable delta of everything recorded since the previous `snapshot()` call.
 * Durations are in seconds, sizes in bytes.
 */
export interface MetricsSnapshot {
  version: 1;
  /** Service this producer (sidecar) fronts. */
  service: string;
  /** Identifies the producer instance (e.g. pod name); informational. */
  producer: string;
  startTimeMs: number;
  endTimeMs: number;
  durationBounds: number[];
  bodySizeBounds: number[];
  series: SnapshotSeries[];
}
