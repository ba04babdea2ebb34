/**
 * Proxy-engine failures. Callers match on `code` (stable strings, documented in the README);
 * the same code travels to clients in the `x-httpmesh-error` response header.
 */
export class MitmProxyError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MitmProxyError';
    this.code = code;
  }
}

export class UpstreamCertificateError extends MitmProxyError {
  constructor(host: string, reason: string, options?: { cause?: unknown }) {
    super(
      'HTTPMESH_UPSTREAM_CERT_INVALID',
      `upstream TLS verification failed for ${host}: ${reason}`,
      options,
    );
    this.name = 'UpstreamCertificateError';
  }
}

export class UpstreamUnreachableError extends MitmProxyError {
  constructor(host: string, reason: string, options?: { cause?: unknown }) {
    super('HTTPMESH_UPSTREAM_UNREACHABLE', `upstream ${host} unreachable: ${reason}`, options);
    this.name = 'UpstreamUnreachableError';
  }
}

export class UpstreamTimeoutError extends MitmProxyError {
  constructor(host: string, reason: string, options?: { cause?: unknown }) {
    super('HTTPMESH_UPSTREAM_TIMEOUT', `upstream ${host} timed out: ${reason}`, options);
    this.name = 'UpstreamTimeoutError';
  }
}

export class UpstreamResetError extends MitmProxyError {
  constructor(host: string, reason: string, options?: { cause?: unknown }) {
    super('HTTPMESH_UPSTREAM_RESET', `upstream ${host} failed mid-exchange: ${reason}`, options);
    this.name = 'UpstreamResetError';
  }
}

export class ClientAbortedError extends MitmProxyError {
  constructor(options?: { cause?: unknown }) {
    super('HTTPMESH_CLIENT_ABORTED', 'client went away before the exchange completed', options);
    this.name = 'ClientAbortedError';
  }
}

export class BadRequestError extends MitmProxyError {
  constructor(reason: string, options?: { cause?: unknown }) {
    super('HTTPMESH_BAD_REQUEST', reason, options);
    this.name = 'BadRequestError';
  }
}

export class ClientHelloInvalidError extends MitmProxyError {
  constructor(reason: string) {
    super('HTTPMESH_CLIENTHELLO_INVALID', `invalid TLS ClientHello: ${reason}`);
    this.name = 'ClientHelloInvalidError';
  }
}

export class ClientHandshakeError extends MitmProxyError {
  constructor(host: string, reason: string, options?: { cause?: unknown }) {
    super('HTTPMESH_CLIENT_HANDSHAKE_FAILED', `client TLS handshake for ${host} failed: ${reason}`, options);
    this.name = 'ClientHandshakeError';
  }
}

export class FilterError extends MitmProxyError {
  constructor(hook: string, options?: { cause?: unknown }) {
    super('HTTPMESH_FILTER_FAILED', `exchange filter ${hook} threw`, options);
    this.name = 'FilterError';
  }
}

/** A request trailer (from the client or set by a filter) is not a valid field name or value. */
export class RequestTrailerInvalidError extends MitmProxyError {
  constructor(name: string, options?: { cause?: unknown }) {
    super(
      'HTTPMESH_REQUEST_TRAILER_INVALID',
      `request trailer ${JSON.stringify(name)} is not a valid field`,
      options,
    );
    this.name = 'RequestTrailerInvalidError';
  }
}

export class RequestBodyTooLargeError extends MitmProxyError {
  constructor(maxBytes: number) {
    super('HTTPMESH_BODY_TOO_LARGE', `request body exceeds the ${maxBytes}-byte buffering cap`);
    this.name = 'RequestBodyTooLargeError';
  }
}

export class ProxyClosedError extends MitmProxyError {
  constructor() {
    super('HTTPMESH_PROXY_CLOSED', 'proxy is closing');
    this.name = 'ProxyClosedError';
  }
}

export class ResponseBodyTooLargeError extends MitmProxyError {
  constructor(maxBytes: number) {
    super(
      'HTTPMESH_RESPONSE_BODY_TOO_LARGE',
      `upstream response body exceeds the ${maxBytes}-byte buffering cap`,
    );
    this.name = 'ResponseBodyTooLargeError';
  }
}

/** The exchange would be sent back to this proxy's own listener (a forwarding loop). */
export class ProxyLoopError extends MitmProxyError {
  constructor(target: string) {
    super('HTTPMESH_PROXY_LOOP', `refusing to forward to ${target}: that is this proxy's own listener`);
    this.name = 'ProxyLoopError';
  }
}

/** A `createMitmProxy` option or a run-time rule update is malformed. */
export class ProxyOptionsError extends MitmProxyError {
  constructor(reason: string) {
    super('HTTPMESH_PROXY_OPTIONS_INVALID', reason);
    this.name = 'ProxyOptionsError';
  }
}

/**
 * Client connections were refused because the proxy already held `maxClientConnections`. Reported through
 * `onError` at most once a second; `refused` counts the connections refused since the previous report.
 */
export class ClientConnectionLimitError extends MitmProxyError {
  readonly limit: number;
  readonly refused: number;
  constructor(limit: number, refused: number) {
    super(
      'HTTPMESH_PROXY_CONNECTION_LIMIT',
      `refused ${refused} client connection${refused === 1 ? '' : 's'}: ${limit} already open (maxClientConnections)`,
    );
    this.name = 'ClientConnectionLimitError';
    this.limit = limit;
    this.refused = refused;
  }
}

const CERT_ERROR_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_SIGNATURE_FAILURE',
  'INVALID_CA',
  'HOSTNAME_MISMATCH',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'ERR_TLS_CERT_ALTNAME_FORMAT',
]);
const UNREACHABLE_CODES = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
]);

function codeOf(error: unknown): string | undefined {
  if (typeof error !== 'object' || error === null) return undefined;
  const code = (error as { code?: unknown }).code;
  return typeof code === 'string' ? code : undefined;
}

/** Maps an upstream failure (node net/tls or undici error) to one of our classes. */
export function classifyUpstreamError(error: unknown, host: string, headersSent: boolean): MitmProxyError {
  if (error instanceof MitmProxyError) return error;
  const code = codeOf(error) ?? '';
  const message = error instanceof Error ? error.message : String(error);
  if (CERT_ERROR_CODES.has(code))
    return new UpstreamCertificateError(host, `${code}: ${message}`, { cause: error });
  if (headersSent) return new UpstreamResetError(host, `${code || 'error'}: ${message}`, { cause: error });
  if (UNREACHABLE_CODES.has(code) || code === 'UND_ERR_CONNECT_TIMEOUT') {
    return code === 'UND_ERR_CONNECT_TIMEOUT'
      ? new UpstreamTimeoutError(host, message, { cause: error })
      : new UpstreamUnreachableError(host, `${code}: ${message}`, { cause: error });
  }
  if (code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT') {
    return new UpstreamTimeoutError(host, message, { cause: error });
  }
  if (code.startsWith('ERR_SSL') || code.startsWith('ERR_TLS')) {
    return new UpstreamCertificateError(host, `${code}: ${message}`, { cause: error });
  }
  return new UpstreamResetError(host, `${code || 'error'}: ${message}`, { cause: error });
}

/** HTTP status a client sees for an error produced before any response byte was sent. */
export function statusForError(error: MitmProxyError): number {
  switch (error.code) {
    case 'HTTPMESH_UPSTREAM_TIMEOUT':
      return 504;
    case 'HTTPMESH_BAD_REQUEST':
      return 400;
    case 'HTTPMESH_BODY_TOO_LARGE':
      return 413;
    case 'HTTPMESH_FILTER_FAILED':
    case 'HTTPMESH_REQUEST_TRAILER_INVALID':
      return 500;
    case 'HTTPMESH_PROXY_CLOSED':
    case 'HTTPMESH_PROXY_CONNECTION_LIMIT':
      return 503;
    case 'HTTPMESH_PROXY_LOOP':
      return 508;
    default:
      return 502;
  }
}
