/**
 * Errors thrown by @httpmesh/traffic-capture. One class per failure; callers match on `code`.
 */

/** A capture option (port, uid, CIDR, name, address) is malformed. */
export class CaptureConfigError extends Error {
  override readonly name = 'CaptureConfigError';
  readonly code: CaptureConfigErrorCode;
  /** Which option was wrong, e.g. `outboundPorts[1]`. */
  readonly field: string;
  constructor(code: CaptureConfigErrorCode, field: string, message: string) {
    super(`${field}: ${message}`);
    this.code = code;
    this.field = field;
  }
}

export type CaptureConfigErrorCode =
  | 'HTTPMESH_CAPTURE_PORT_INVALID'
  | 'HTTPMESH_CAPTURE_UID_INVALID'
  | 'HTTPMESH_CAPTURE_CIDR_INVALID'
  | 'HTTPMESH_CAPTURE_NAME_INVALID'
  | 'HTTPMESH_CAPTURE_ADDRESS_INVALID'
  | 'HTTPMESH_CAPTURE_TIMEOUT_INVALID';

/** An intercept rule's domain cannot be used (not a host name or `*.host` wildcard). */
export class InterceptDomainError extends Error {
  override readonly name = 'InterceptDomainError';
  readonly code = 'HTTPMESH_CAPTURE_DOMAIN_INVALID';
  /** Index of the rule in the list given, or -1 for a single domain. */
  readonly index: number;
  constructor(index: number, message: string) {
    super(index >= 0 ? `intercept[${index}].domain: ${message}` : message);
    this.index = index;
  }
}

/** A system command (iptables, ipset, dnsmasq, ip) failed. */
export class CaptureCommandError extends Error {
  override readonly name = 'CaptureCommandError';
  readonly code = 'HTTPMESH_CAPTURE_COMMAND_FAILED';
  readonly command: string;
  readonly exitCode: number | null;
  readonly stderr: string;
  constructor(command: string, exitCode: number | null, stderr: string) {
    super(`${command} failed (exit ${exitCode ?? 'signal'}): ${stderr.trim()}`);
    this.command = command;
    this.exitCode = exitCode;
    this.stderr = stderr;
  }
}

/** No DNS upstream was given and none could be read from the resolver configuration. */
export class DnsUpstreamError extends Error {
  override readonly name = 'DnsUpstreamError';
  readonly code = 'HTTPMESH_CAPTURE_NO_DNS_UPSTREAM';
}

/** dnsmasq did not start (exited early or did not write its pid file before the deadline). */
export class DnsmasqStartError extends Error {
  override readonly name = 'DnsmasqStartError';
  readonly code = 'HTTPMESH_CAPTURE_DNSMASQ_START_FAILED';
}
