/** Trust-helper errors; callers match on `code`. */
export class TrustError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The CA certificate file is missing, unreadable, or not a PEM certificate. */
export class TrustCaInvalidError extends TrustError {
  readonly path: string;
  constructor(path: string, reason: string, options?: ErrorOptions) {
    super('HTTPMESH_TRUST_CA_INVALID', `${path}: ${reason}`, options);
    this.path = path;
  }
}

/** Bad options (name with path separators, newline in a path, unknown runtime ...). */
export class TrustOptionsInvalidError extends TrustError {
  constructor(message: string) {
    super('HTTPMESH_TRUST_OPTIONS_INVALID', message);
  }
}

/** One or more runtimes could not be updated; `results` says which and why. */
export class TrustApplyError extends TrustError {
  readonly results: readonly import('./trust.js').TrustStepResult[];
  constructor(results: readonly import('./trust.js').TrustStepResult[]) {
    const failed = results.filter((result) => result.status === 'failed');
    super(
      'HTTPMESH_TRUST_APPLY_FAILED',
      `trust could not be applied for: ${failed.map((result) => `${result.runtime} (${result.detail})`).join('; ')}`,
    );
    this.results = results;
  }
}
