/** Base class of every control-plane error; callers match on `code`, never on the message. */
export class ControlPlaneError extends Error {
  override readonly name: string = 'ControlPlaneError';
  readonly code: string = 'HTTPMESH_CP_ERROR';
}

export interface ValidationIssue {
  /** Path of the offending field in the request document, e.g. `spec.routes[1].pattern`. */
  field: string;
  reason: string;
}

/** A rule document failed validation; `issues` names every offending field. */
export class RuleValidationError extends ControlPlaneError {
  override readonly name = 'RuleValidationError';
  override readonly code = 'HTTPMESH_CP_RULE_INVALID';
  constructor(readonly issues: readonly ValidationIssue[]) {
    super(issues.map((i) => `${i.field}: ${i.reason}`).join('; '));
  }
}

/** The caller's expected revision is not the stored one (optimistic concurrency). */
export class RevisionConflictError extends ControlPlaneError {
  override readonly name = 'RevisionConflictError';
  override readonly code = 'HTTPMESH_CP_REVISION_CONFLICT';
  constructor(
    message: string,
    readonly currentRevision: number | null,
  ) {
    super(message);
  }
}

export class RuleNotFoundError extends ControlPlaneError {
  override readonly name = 'RuleNotFoundError';
  override readonly code = 'HTTPMESH_CP_RULE_NOT_FOUND';
}

export class RevisionNotFoundError extends ControlPlaneError {
  override readonly name = 'RevisionNotFoundError';
  override readonly code = 'HTTPMESH_CP_REVISION_NOT_FOUND';
}

/** The store's file exists but is not a readable, intact database. */
export class StoreCorruptError extends ControlPlaneError {
  override readonly name = 'StoreCorruptError';
  override readonly code = 'HTTPMESH_CP_STORE_CORRUPT';
}

/** The store backend is unreachable or failed (etcd down, disk error). */
export class StoreUnavailableError extends ControlPlaneError {
  override readonly name = 'StoreUnavailableError';
  override readonly code = 'HTTPMESH_CP_STORE_UNAVAILABLE';
}

/** Invalid command-line flag, environment variable or YAML configuration. */
export class ConfigError extends ControlPlaneError {
  override readonly name = 'ConfigError';
  override readonly code = 'HTTPMESH_CP_CONFIG_INVALID';
}

/** A sidecar certificate request is malformed (bad node id). */
export class CertificateRequestError extends ControlPlaneError {
  override readonly name = 'CertificateRequestError';
  override readonly code = 'HTTPMESH_CP_CERT_REQUEST_INVALID';
}
