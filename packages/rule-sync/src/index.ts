export {
  backoffDelay,
  createRuleSyncClient,
  METRICS_SNAPSHOT_CONTENT_TYPE,
  RuleSyncClient,
} from './client.js';
export type {
  AppliedUpdate,
  BackoffOptions,
  CandidateUpdate,
  ClientEvents,
  RuleSyncClientOptions,
  RuleSyncClientTls,
  RuleSyncClientTlsSource,
} from './client.js';
export { certificateNodeIds, createRuleSyncServer, RuleSyncServer, SPIFFE_NODE_PREFIX } from './server.js';
export type {
  GroupSelector,
  NodeIdentity,
  RuleSyncServerOptions,
  RuleSyncServerTls,
  ServerEvents,
  SidecarStatus,
  TypeStatus,
} from './server.js';
export {
  CredentialsUnavailableError,
  IdentityMismatchError,
  InsecureNonLoopbackError,
  InvalidHelloError,
  InvalidResourceError,
  PeerSilentError,
  PersistedStateCorruptError,
  ProtocolViolationError,
  RuleSyncClosedError,
  RuleSyncError,
  SidecarEvictedError,
  SlowConsumerError,
  UnknownNonceError,
  ValidationRejectedError,
} from './errors.js';
export { readTlsFiles, TlsFileWatcher } from './tls-files.js';
export type {
  ReconnectableClient,
  TlsFileCredentials,
  TlsFilePaths,
  TlsFileWatcherOptions,
} from './tls-files.js';
export { consoleLogger } from './logger.js';
export type { RuleSyncLogger } from './logger.js';
export { decodeStateFile, encodeStateFile, readStateFile, writeStateFile } from './persistence.js';
export {
  checkResource,
  contentVersion,
  groupKey,
  KNOWN_RESOURCE_TYPES,
  resourceTypeName,
  resourceTypeOf,
  systemVersionOf,
} from './resources.js';
export { ruleSyncGrpcDefinition } from './grpc-definition.js';
export {
  Ack,
  ControlMessage,
  DiscoveryResponse,
  ErrorDetail,
  Heartbeat,
  HeldVersions,
  Hello,
  InterceptRule,
  InterceptRule_Action,
  MetricSnapshot,
  Node,
  PersistedState,
  PluginConfig,
  PluginConfig_FailureMode,
  PluginConfig_Phase,
  Policy,
  ProtocolError,
  RateLimit,
  Resource,
  ResourceType,
  RetryPolicy,
  Route,
  RouteSet,
  RuleSyncDefinition,
  SidecarMessage,
} from './gen/httpmesh/rulesync/v1/rule_sync.js';
