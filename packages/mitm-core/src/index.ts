export { CertificateAuthority, SPIFFE_NODE_PREFIX, isMeshNodeId, spiffeNodeUri } from './ca/index.js';
export type {
  CaKeyAlgorithm,
  CaPem,
  CaFileNames,
  CaFiles,
  CaStats,
  CreateCaOptions,
  IssueClientLeafOptions,
  IssueIntermediateOptions,
  IssuedClientLeaf,
  IssuedLeaf,
  LeafKeyAlgorithm,
  LeafPolicy,
  NormalizedName,
  WebCryptoProvider,
} from './ca/index.js';
export {
  CaCertificateInvalidError,
  CaError,
  CaExpiredError,
  CaFileError,
  CaHostnameInvalidError,
  CaIssuerUnavailableError,
  CaKeyInvalidError,
  CaKeyMismatchError,
  CaKeyUnsupportedError,
  CaNameNotPermittedError,
  CaNotAuthorityError,
  CaOptionsInvalidError,
  normalizeHostname,
} from './ca/index.js';
export {
  createOriginalDestinationReader,
  getOriginalDestination,
  originalDestinationSupported,
} from './native/index.js';
export type {
  OriginalDestination,
  OriginalDestinationLogger,
  OriginalDestinationReader,
  OriginalDestinationReaderOptions,
} from './native/index.js';
export { createMitmProxy } from './proxy/proxy.js';
export type { HostRule } from './proxy/host-rules.js';
export type {
  InterceptContext,
  MitmProxy,
  MitmProxyOptions,
  MitmProxyStats,
  PinningOptions,
  SecureContextSource,
  StopAcceptingOptions,
} from './proxy/proxy.js';
export type {
  Exchange,
  BodyChunkTransform,
  ExchangeFilter,
  ExchangeSummary,
  ExchangeTimings,
  ImmediateResponse,
  MaybePromise,
  UpstreamTarget,
} from './proxy/exchange.js';
export { DEFAULT_MAX_CLIENT_HELLO_BYTES, parseClientHello, peekClientHello } from './proxy/clienthello.js';
export type { ClientHelloInfo, ClientHelloParseResult, PeekResult } from './proxy/clienthello.js';
export {
  BadRequestError,
  ClientAbortedError,
  ClientConnectionLimitError,
  ClientHandshakeError,
  ClientHelloInvalidError,
  FilterError,
  MitmProxyError,
  ProxyClosedError,
  ProxyLoopError,
  ProxyOptionsError,
  RequestBodyTooLargeError,
  RequestTrailerInvalidError,
  ResponseBodyTooLargeError,
  UpstreamCertificateError,
  UpstreamResetError,
  UpstreamTimeoutError,
  UpstreamUnreachableError,
} from './proxy/errors.js';
export {
  TRUST_ENV_VARIABLES,
  TrustApplyError,
  TrustCaInvalidError,
  TrustError,
  TrustOptionsInvalidError,
  applyTrust,
  removeTrust,
  trustInstructions,
} from './trust/index.js';
export type {
  CommandResult,
  CommandRunner,
  TrustEnvVariable,
  TrustInstructions,
  TrustOptions,
  TrustRuntime,
  TrustStep,
  TrustStepResult,
} from './trust/index.js';
