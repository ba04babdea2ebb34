/**
 * Every failure this package raises has its own class with a stable `code`; callers match on `code`.
 */

/** A RouteSet document (or list of them) is structurally malformed. */
export class RouteSetError extends Error {
  override readonly name = 'RouteSetError';
  readonly code = 'HTTPMESH_METRICS_ROUTESET_INVALID';
  /** JSON-path-like location of the offending value, e.g. `[1].routes[0].pattern`. */
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path || '<root>'}: ${message}`);
    this.path = path;
  }
}

/** A route pattern was rejected by @httpmesh/url-matcher. `matcherCode` carries the matcher's own code. */
export class RoutePatternError extends Error {
  override readonly name = 'RoutePatternError';
  readonly code = 'HTTPMESH_METRICS_ROUTE_PATTERN_INVALID';
  readonly matcherCode: string;
  constructor(message: string, matcherCode: string, cause: unknown) {
    super(message, { cause });
    this.matcherCode = matcherCode;
  }
}

/** A delta snapshot handed to the aggregator is malformed; the aggregate is left untouched. */
export class SnapshotError extends Error {
  override readonly name = 'SnapshotError';
  readonly code = 'HTTPMESH_METRICS_SNAPSHOT_INVALID';
  readonly path: string;
  constructor(path: string, message: string) {
    super(`snapshot${path}: ${message}`);
    this.path = path;
  }
}

/** A well-formed snapshot whose histogram bucket boundaries differ from the aggregator's. */
export class SnapshotBoundsError extends Error {
  override readonly name = 'SnapshotBoundsError';
  readonly code = 'HTTPMESH_METRICS_SNAPSHOT_BOUNDS_MISMATCH';
}

/** Invalid options passed to a constructor or helper. */
export class MetricsOptionsError extends Error {
  override readonly name = 'MetricsOptionsError';
  readonly code = 'HTTPMESH_METRICS_OPTIONS_INVALID';
}

/** A time-window parameter (a window length such as `"5m"`, or a window in ms) is malformed or out of range. */
export class WindowParameterError extends Error {
  override readonly name = 'WindowParameterError';
  readonly code = 'HTTPMESH_METRICS_WINDOW_INVALID';
  /** Which parameter was rejected, e.g. `window` or `windowMs`. */
  readonly parameter: string;
  constructor(parameter: string, message: string) {
    super(`${parameter}: ${message}`);
    this.parameter = parameter;
  }
}
