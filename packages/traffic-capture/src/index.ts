export type {
  CaptureConfig,
  CaptureOptions,
  InterceptDomainRule,
} from './config.js';
export {
  checkDnsUpstream,
  DEFAULT_CAPTURE_CONFIG,
  interceptSuffixes,
  normalizeInterceptDomain,
  resolveCaptureConfig,
} from './config.js';
export type { CaptureConfigErrorCode } from './errors.js';
export {
  CaptureCommandError,
  CaptureConfigError,
  DnsmasqStartError,
  DnsUpstreamError,
  InterceptDomainError,
} from './errors.js';
export type { RenderDnsmasqOptions, RenderIptablesOptions } from './render.js';
export {
  chainNames,
  jumpRuleArgs,
  parseNameservers,
  RESOLV_MARKER,
  renderDnsmasqConf,
  renderIptablesRestore,
  renderResolvConf,
} from './render.js';
export type {
  CaptureEvent,
  CaptureStatus,
  TrafficCaptureOptions,
  UpdateResult,
} from './capture.js';
export { TrafficCapture } from './capture.js';
