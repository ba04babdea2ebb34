export { ChainExchange, PluginChain } from './chain.js';
export type { ChainBodyDecision, ChainHeadersDecision } from './chain.js';
export { parsePluginConfig } from './config.js';
export type { PluginConfig } from './config.js';
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
} from './headers.js';
export type { HeaderList, HeaderRecord } from './headers.js';
export { PHASE_NAMES, PROTOCOL_VERSION } from './protocol.js';
export type { BodyModeName, PhaseName } from './protocol.js';
