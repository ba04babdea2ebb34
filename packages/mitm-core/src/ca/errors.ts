/**
 * Certificate-authority errors. One class per failure, each with a stable `code` callers match on.
 * Messages never contain key material: only the kind of problem and, where safe, a hostname or path.
 */
export class CaError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: ErrorOptions) {
    super(message, options);
    this.code = code;
    this.name = new.target.name;
  }
}

/** The certificate PEM is not a parsable X.509 certificate. */
export class CaCertificateInvalidError extends CaError {
  constructor(message: string, options?: ErrorOptions) {
    super('HTTPMESH_CA_CERT_INVALID', message, options);
  }
}

/** The private key PEM could not be parsed (the parser's own message is dropped: it may echo input). */
export class CaKeyInvalidError extends CaError {
  constructor(message: string) {
    super('HTTPMESH_CA_KEY_INVALID', message);
  }
}

/** The key is of an algorithm this CA cannot sign with. */
export class CaKeyUnsupportedError extends CaError {
  constructor(message: string) {
    super('HTTPMESH_CA_KEY_UNSUPPORTED', message);
  }
}

/** The private key does not belong to the certificate. */
export class CaKeyMismatchError extends CaError {
  constructor() {
    super('HTTPMESH_CA_KEY_MISMATCH', 'private key does not match the CA certificate public key');
  }
}

/** The certificate is not a CA (no basicConstraints cA=TRUE, or no keyCertSign usage). */
export class CaNotAuthorityError extends CaError {
  constructor(message: string) {
    super('HTTPMESH_CA_NOT_CA', message);
  }
}

/** The CA certificate is outside its validity period. */
export class CaExpiredError extends CaError {
  constructor(message: string) {
    super('HTTPMESH_CA_EXPIRED', message);
  }
}

/** Bad options (validity, algorithm, cache size, empty host list ...). */
export class CaOptionsInvalidError extends CaError {
  constructor(message: string) {
    super('HTTPMESH_CA_OPTIONS_INVALID', message);
  }
}

/** A hostname given for a leaf (e.g. an SNI value) is not a valid DNS name or IP address. */
export class CaHostnameInvalidError extends CaError {
  readonly hostname: string;
  constructor(hostname: string, reason: string) {
    super(
      'HTTPMESH_CA_HOSTNAME_INVALID',
      `invalid hostname ${JSON.stringify(hostname.slice(0, 300))}: ${reason}`,
    );
    this.hostname = hostname;
  }
}

/** The CA's X.509 name constraints do not permit the requested name. */
export class CaNameNotPermittedError extends CaError {
  readonly hostname: string;
  constructor(hostname: string) {
    super(
      'HTTPMESH_CA_NAME_NOT_PERMITTED',
      `name constraints of this CA do not permit ${JSON.stringify(hostname)}`,
    );
    this.hostname = hostname;
  }
}

/** Reading or writing CA files failed (missing file, bad permissions ...). */
export class CaFileError extends CaError {
  readonly path: string;
  constructor(path: string, message: string, options?: ErrorOptions) {
    super('HTTPMESH_CA_FILE', `${path}: ${message}`, options);
    this.path = path;
  }
}

/**
 * The module that creates roots, intermediates and client certificates (@peculiar/x509, imported on first
 * use) could not be loaded. The import's own error is the `cause`; the next call tries the import again.
 */
export class CaIssuerUnavailableError extends CaError {
  constructor(message: string, options?: ErrorOptions) {
    super('HTTPMESH_CA_ISSUER_UNAVAILABLE', message, options);
  }
}
