export {
  CertificateRequestError,
  ConfigError,
  ControlPlaneError,
  RevisionConflictError,
  RevisionNotFoundError,
  RuleNotFoundError,
  RuleValidationError,
  StoreCorruptError,
  StoreUnavailableError,
} from './errors.js';
export type { ValidationIssue } from './errors.js';
export { compileRule, isRuleKind, RULE_KINDS, SIDECAR_KINDS } from './rules.js';
export type {
  AlertRuleSpec,
  CompiledRule,
  JsonObject,
  JsonValue,
  RuleDocument,
  RuleKind,
  SidecarKind,
} from './rules.js';
export { EtcdStore } from './store/etcd-store.js';
export type { EtcdStoreOptions } from './store/etcd-store.js';
export { SqliteStore } from './store/sqlite-store.js';
export type {
  ChangeAction,
  ChangeListener,
  RuleRevision,
  Store,
  StoreChange,
  StoredRule,
  WriteOptions,
} from './store/types.js';
export { AlertEngine } from './alerts.js';
export type {
  AlertEngineOptions,
  AlertNotification,
  AlertState,
  AlertStatus,
  WebhookOptions,
} from './alerts.js';
export { createApiServer } from './api.js';
export type { ApiOptions } from './api.js';
export { ADMIN_TOKEN_FILE, loadOrCreateAdminToken } from './admin-token.js';
export type { StoredAdminToken } from './admin-token.js';
export { ControlPlane } from './control-plane.js';
export type { ControlPlaneAddresses, ControlPlaneOptions } from './control-plane.js';
export { RuleDistributor } from './distributor.js';
export { ControlPlanePki } from './pki.js';
export type { InterceptionIntermediate, SidecarBundle } from './pki.js';
export { DEFAULTS as SERVE_DEFAULTS, resolveServeConfig } from './config.js';
export type { ServeConfig } from './config.js';
