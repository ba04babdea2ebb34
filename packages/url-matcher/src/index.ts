export { createMatcher } from './matcher.js';
export type { Matcher, MatcherOptions, RouteMatch, RouteSpec } from './matcher.js';
export { MatcherOptionsError, PatternError } from './errors.js';
export type { PatternErrorCode, PatternErrorDetails } from './errors.js';
