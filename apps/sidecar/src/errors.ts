/**
 * Errors of the sidecar's command line, configuration and rules file. One class per failure; match on `code`.
 */

/** A flag the command does not know, or a flag without its value. */
export class UnknownFlagError extends Error {
  override readonly name = 'UnknownFlagError';
  readonly code = 'HTTPMESH_SIDECAR_FLAG_UNKNOWN';
}

/** A value (from a flag, an environment variable or the config file) that does not fit its option. */
export class OptionValueError extends Error {
  override readonly name = 'OptionValueError';
  readonly code = 'HTTPMESH_SIDECAR_OPTION_INVALID';
  /** The option's YAML key, e.g. `outboundPort`. */
  readonly option: string;
  /** Where the value came from: `--flag`, `HTTPMESH_X` or `FILE: key`. */
  readonly source: string;
  constructor(option: string, source: string, message: string) {
    super(`${source}: ${message}`);
    this.option = option;
    this.source = source;
  }
}

/** The YAML config file cannot be read or is not YAML / not a mapping / has unknown keys. */
export class ConfigFileError extends Error {
  override readonly name = 'ConfigFileError';
  readonly code = 'HTTPMESH_SIDECAR_CONFIG_INVALID';
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

/** An unknown subcommand, or a missing one. */
export class UsageError extends Error {
  override readonly name = 'UsageError';
  readonly code = 'HTTPMESH_SIDECAR_USAGE';
}

/** The rules file is unreadable, not YAML, or a field is wrong; `field` names it (e.g. `routes[0].patterns[1]`). */
export class RulesFileError extends Error {
  override readonly name = 'RulesFileError';
  readonly code = 'HTTPMESH_SIDECAR_RULES_INVALID';
  readonly path: string;
  readonly field: string;
  constructor(path: string, field: string, message: string) {
    super(`${path}: ${field ? `${field}: ` : ''}${message}`);
    this.path = path;
    this.field = field;
  }
}

/** `ca init --control-plane-api`: the control plane could not issue an intermediate (reply names why). */
export class ControlPlaneCaError extends Error {
  override readonly name = 'ControlPlaneCaError';
  readonly code = 'HTTPMESH_SIDECAR_CA_FETCH_FAILED';
}

/** `init-net --follow`: the intercept file written by `run` is unreadable or malformed; the last good stays. */
export class InterceptFileError extends Error {
  override readonly name = 'InterceptFileError';
  readonly code = 'HTTPMESH_SIDECAR_INTERCEPT_FILE_INVALID';
  readonly path: string;
  constructor(path: string, message: string) {
    super(`${path}: ${message}`);
    this.path = path;
  }
}

/**
 * The control-plane mTLS files (--control-plane-ca, --node-cert, --node-key) are unreadable, not PEM, the key
 * does not match the certificate, or (on rotation) the certificate is not currently valid.
 */
export class CredentialsInvalidError extends Error {
  override readonly name = 'CredentialsInvalidError';
  readonly code = 'HTTPMESH_SIDECAR_CREDENTIALS_INVALID';
}
