/** Stable codes carried by {@link PatternError}; callers match on `code`, never on the message. */
export type PatternErrorCode =
  | 'HTTPMESH_PATTERN_INVALID'
  | 'HTTPMESH_PATTERN_UNSUPPORTED'
  | 'HTTPMESH_PATTERN_CONFLICT'
  | 'HTTPMESH_ROUTE_INVALID';

export interface PatternErrorDetails {
  /** The offending pattern as written in the RouteSpec. */
  pattern: string;
  /** UTF-16 offset into `pattern` where the problem is (syntax and unsupported-construct errors). */
  position?: number;
  /** For conflicts: the earlier pattern that matches exactly the same requests. */
  conflictsWith?: string;
}

/** A route could not be compiled: bad syntax, an unsupported construct, a bad host/method, or a conflict. */
export class PatternError extends Error {
  override readonly name = 'PatternError';
  readonly code: PatternErrorCode;
  readonly pattern: string;
  readonly position: number | undefined;
  readonly conflictsWith: string | undefined;

  constructor(code: PatternErrorCode, message: string, details: PatternErrorDetails) {
    super(message);
    this.code = code;
    this.pattern = details.pattern;
    this.position = details.position;
    this.conflictsWith = details.conflictsWith;
  }
}

/** `createMatcher` was given options it cannot honour (e.g. a negative maxParamLength). */
export class MatcherOptionsError extends Error {
  override readonly name = 'MatcherOptionsError';
  readonly code = 'HTTPMESH_MATCHER_OPTIONS_INVALID';
}
