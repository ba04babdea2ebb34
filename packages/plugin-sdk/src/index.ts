export { ChainExchange, PluginChain, parsePluginConfig } from './chain.js';
export type { ChainBodyDecision, ChainHeadersDecision, PluginConfig } from './chain.js';
export {
  applyHeaderMutation,
  CONTINUE,
  ERROR_HEADER,
  failureDecision,
  PluginClient,
  PluginExchange,
  validateReply,
} from './client.js';
export type {
  BodyDelivery,
  ContinueDecision,
  Decision,
  ExchangePolicy,
  ExchangeTimings,
  FailureMode,
  HeaderMutation,
  MutateDecision,
  PluginClientOptions,
  PluginInfo,
  RequestHead,
  RespondDecision,
  ResponseHead,
} from './client.js';
export {
  PluginBodyTooLargeError,
  PluginConfigError,
  PluginError,
  PluginExchangeStateError,
  PluginHandlerError,
  PluginHandshakeError,
  PluginReplyBodyTooLargeError,
  PluginReplyInvalidHeaderError,
  PluginReplyInvalidStatusError,
  PluginReplyMalformedError,
  PluginReplyWrongPhaseError,
  PluginStartError,
  PluginTimeoutError,
  PluginUnavailableError,
} from './errors.js';
export { LATENCY_BUCKETS_MS, PluginMetrics } from './metrics.js';
export type { HistogramSnapshot, PluginMetricsSnapshot } from './metrics.js';
export { definePlugin } from './plugin.js';
export type {
  BodyContext,
  BodyModeSpec,
  CompleteContext,
  DefinedPlugin,
  HeaderInit,
  PluginDefinition,
  PluginReply,
  RequestHeadersContext,
  ResponseHeadersContext,
  ServeOptions,
  ServingPlugin,
  TrailersContext,
} from './plugin.js';
export { PluginSupervisor } from './supervisor.js';
export type { PluginProcessSpec, PluginState, PluginUpgrade, SupervisorOptions } from './supervisor.js';
export {
  headerListFromRecord,
  headerListToRecord,
  isValidHeaderName,
  isValidHeaderValue,
  PHASE_NAMES,
  PROTOCOL_VERSION,
} from './protocol.js';
export type { BodyModeName, HeaderList, HeaderRecord, PhaseName } from './protocol.js';
