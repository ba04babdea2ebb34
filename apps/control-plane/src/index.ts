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
