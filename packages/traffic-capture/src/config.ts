import { isIPv4 } from 'node:net';
import { CaptureConfigError, InterceptDomainError } from './errors.js';

/** Options for capturing the traffic of one network namespace. Every field has a safe default. */
export interface CaptureOptions {
  /** Port the proxy accepts redirected outbound connections on. Default 15001. */
  outboundPort?: number;
  /** Port the proxy accepts redirected inbound connections on. Default 15006. */
  inboundPort?: number;
  /** Uid the proxy runs as; its own connections are never redirected. Default 1337. */
  proxyUid?: number;
  /** Outbound destination ports redirected for every destination (plain HTTP). Default [80]. */
  outboundHttpPorts?: readonly number[];
  /** Outbound destination ports redirected only for destinations in the ipset (TLS). Default [443]. */
  outboundTlsPorts?: readonly number[];
  /** Service ports whose inbound connections are redirected to `inboundPort`. Default [] (no inbound capture). */
  inboundPorts?: readonly number[];
  /** IPv4 destinations (CIDR or address) never redirected outbound. Default []. */
  excludeCidrs?: readonly string[];
  /** Prefix of the chains created in the nat table: `<prefix>_OUTPUT`, `<prefix>_PREROUTING`. Default HTTPMESH. */
  chainPrefix?: string;
  /** ipset (hash:ip) holding the addresses of intercepted domains. Default httpmesh-intercept. */
  ipsetName?: string;
  /** Seconds an address stays in the ipset after dnsmasq added it; 0 = no timeout. Default 0. */
  ipsetTimeoutSeconds?: number;
  /** Address the local dnsmasq listens on inside the namespace. Default 127.0.0.1. */
  dnsListenAddress?: string;
}

/** {@link CaptureOptions} with every default filled in and every value checked. */
export interface CaptureConfig {
  readonly outboundPort: number;
  readonly inboundPort: number;
  readonly proxyUid: number;
  readonly outboundHttpPorts: readonly number[];
  readonly outboundTlsPorts: readonly number[];
  readonly inboundPorts: readonly number[];
  readonly excludeCidrs: readonly string[];
  readonly chainPrefix: string;
  readonly ipsetName: string;
  readonly ipsetTimeoutSeconds: number;
  readonly dnsListenAddress: string;
}

export const DEFAULT_CAPTURE_CONFIG: CaptureConfig = Object.freeze({
  outboundPort: 15001,
  inboundPort: 15006,
  proxyUid: 1337,
  outboundHttpPorts: Object.freeze([80]),
  outboundTlsPorts: Object.freeze([443]),
  inboundPorts: Object.freeze([]),
  excludeCidrs: Object.freeze([]),
  chainPrefix: 'HTTPMESH',
  ipsetName: 'httpmesh-intercept',
  ipsetTimeoutSeconds: 0,
  dnsListenAddress: '127.0.0.1',
});

function checkPort(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > 65535) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_PORT_INVALID',
      field,
      `expected an integer port 1-65535, got ${String(value)}`,
    );
  }
  return value;
}

function checkPorts(value: unknown, field: string): readonly number[] {
  if (!Array.isArray(value)) {
    throw new CaptureConfigError('HTTPMESH_CAPTURE_PORT_INVALID', field, 'expected a list of ports');
  }
  const ports = value.map((p: unknown, i) => checkPort(p, `${field}[${i}]`));
  return Object.freeze([...new Set(ports)]);
}

const CIDR_RE = /^(\d{1,3}(?:\.\d{1,3}){3})(?:\/(\d{1,2}))?$/;

function checkCidr(value: unknown, field: string): string {
  const m = typeof value === 'string' ? CIDR_RE.exec(value) : null;
  const bits = m?.[2] === undefined ? 32 : Number(m[2]);
  if (!m || !isIPv4(m[1] ?? '') || bits > 32) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_CIDR_INVALID',
      field,
      `expected an IPv4 address or CIDR like 10.0.0.0/8, got ${JSON.stringify(value)}`,
    );
  }
  return `${m[1]}/${bits}`;
}

// Chain names: iptables allows up to 28 characters; `_PREROUTING` takes 11 of them.
const CHAIN_PREFIX_RE = /^[A-Z][A-Z0-9_-]{0,16}$/;
// ipset names: up to 31 characters; keep to characters that need no quoting anywhere.
const IPSET_NAME_RE = /^[A-Za-z][A-Za-z0-9_.-]{0,30}$/;

/** Fills in defaults and checks every option; throws {@link CaptureConfigError} on the first bad one. */
export function resolveCaptureConfig(options: CaptureOptions = {}): CaptureConfig {
  const d = DEFAULT_CAPTURE_CONFIG;
  const proxyUid = options.proxyUid ?? d.proxyUid;
  if (!Number.isInteger(proxyUid) || proxyUid < 0 || proxyUid > 0xfffffffe) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_UID_INVALID',
      'proxyUid',
      `not a uid: ${String(proxyUid)}`,
    );
  }
  if (proxyUid === 0) {
    // Excluding uid 0 would exempt dnsmasq, iptables and most of the system from capture.
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_UID_INVALID',
      'proxyUid',
      'the proxy must not run as root (0)',
    );
  }
  const chainPrefix = options.chainPrefix ?? d.chainPrefix;
  if (!CHAIN_PREFIX_RE.test(chainPrefix)) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_NAME_INVALID',
      'chainPrefix',
      `expected 1-17 of A-Z 0-9 _ - starting with a letter, got ${JSON.stringify(chainPrefix)}`,
    );
  }
  const ipsetName = options.ipsetName ?? d.ipsetName;
  if (!IPSET_NAME_RE.test(ipsetName)) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_NAME_INVALID',
      'ipsetName',
      `expected 1-31 of A-Z a-z 0-9 _ . - starting with a letter, got ${JSON.stringify(ipsetName)}`,
    );
  }
  const timeout = options.ipsetTimeoutSeconds ?? d.ipsetTimeoutSeconds;
  if (!Number.isInteger(timeout) || timeout < 0 || timeout > 2147483) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_TIMEOUT_INVALID',
      'ipsetTimeoutSeconds',
      `expected 0-2147483 seconds, got ${String(timeout)}`,
    );
  }
  const dnsListenAddress = options.dnsListenAddress ?? d.dnsListenAddress;
  if (!isIPv4(dnsListenAddress)) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_ADDRESS_INVALID',
      'dnsListenAddress',
      `expected an IPv4 address, got ${JSON.stringify(dnsListenAddress)}`,
    );
  }
  const outboundPort = checkPort(options.outboundPort ?? d.outboundPort, 'outboundPort');
  const inboundPort = checkPort(options.inboundPort ?? d.inboundPort, 'inboundPort');
  if (outboundPort === inboundPort) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_PORT_INVALID',
      'inboundPort',
      'must differ from outboundPort',
    );
  }
  const inboundPorts = checkPorts(options.inboundPorts ?? d.inboundPorts, 'inboundPorts');
  for (const [i, p] of inboundPorts.entries()) {
    if (p === outboundPort || p === inboundPort) {
      // Redirecting the proxy's own listening ports to themselves would make them unreachable.
      throw new CaptureConfigError(
        'HTTPMESH_CAPTURE_PORT_INVALID',
        `inboundPorts[${i}]`,
        `port ${p} is one of the proxy's own ports`,
      );
    }
  }
  return Object.freeze({
    outboundPort,
    inboundPort,
    proxyUid,
    outboundHttpPorts: checkPorts(options.outboundHttpPorts ?? d.outboundHttpPorts, 'outboundHttpPorts'),
    outboundTlsPorts: checkPorts(options.outboundTlsPorts ?? d.outboundTlsPorts, 'outboundTlsPorts'),
    inboundPorts,
    excludeCidrs: Object.freeze(
      (options.excludeCidrs ?? d.excludeCidrs).map((c, i) => checkCidr(c, `excludeCidrs[${i}]`)),
    ),
    chainPrefix,
    ipsetName,
    ipsetTimeoutSeconds: timeout,
    dnsListenAddress,
  });
}

/** An intercept rule as far as capture cares: its domain and whether TLS to it is intercepted. */
export interface InterceptDomainRule {
  /** `partner.com` (that host) or `*.partner.com` (its subdomains). */
  domain: string;
  /** Default `intercept`. `passthrough` rules put nothing in the ipset. */
  action?: 'intercept' | 'passthrough';
}

const LABEL_RE = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

/**
 * Checks one intercept domain and returns the DNS suffix dnsmasq should watch (lower case, no `*.`, no
 * trailing dot). Throws {@link InterceptDomainError}. Rejecting everything but host-name characters also
 * keeps the generated dnsmasq file free of injected options (`/`, `#`, newlines).
 */
export function normalizeInterceptDomain(domain: unknown, index = -1): string {
  if (typeof domain !== 'string') throw new InterceptDomainError(index, 'expected a string');
  let name = domain.trim().toLowerCase();
  if (name.startsWith('*.')) name = name.slice(2);
  if (name.endsWith('.')) name = name.slice(0, -1);
  if (name.length === 0 || name.length > 253) {
    throw new InterceptDomainError(
      index,
      `expected a host name or *.host name, got ${JSON.stringify(domain)}`,
    );
  }
  const labels = name.split('.');
  for (const label of labels) {
    if (!LABEL_RE.test(label)) {
      throw new InterceptDomainError(
        index,
        `${JSON.stringify(domain)} is not a host name or *.host name (bad label ${JSON.stringify(label)})`,
      );
    }
  }
  if (labels.length === 4 && labels.every((l) => /^\d+$/.test(l))) {
    throw new InterceptDomainError(index, `${JSON.stringify(domain)} is an IP address, not a domain`);
  }
  if (labels.length < 2) {
    // A single label would capture a whole top-level domain (`*.com`); almost certainly a mistake.
    throw new InterceptDomainError(index, `${JSON.stringify(domain)} must have at least two labels`);
  }
  return name;
}

/**
 * The sorted, de-duplicated DNS suffixes whose addresses go into the ipset: every rule whose action is
 * `intercept`. dnsmasq matches a suffix and all names under it, so the set is a superset of the rules
 * (`*.partner.com` also adds `partner.com`); the proxy still decides per connection by SNI.
 */
export function interceptSuffixes(rules: readonly InterceptDomainRule[]): string[] {
  const out = new Set<string>();
  for (const [i, rule] of rules.entries()) {
    if (rule === null || typeof rule !== 'object') throw new InterceptDomainError(i, 'expected an object');
    const action = rule.action ?? 'intercept';
    if (action !== 'intercept' && action !== 'passthrough') {
      throw new InterceptDomainError(
        i,
        `action must be intercept or passthrough, got ${JSON.stringify(action)}`,
      );
    }
    const suffix = normalizeInterceptDomain(rule.domain, i);
    if (action === 'intercept') out.add(suffix);
  }
  return [...out].sort();
}

/** Checks a DNS upstream (`IP` or `IP#port`), the form dnsmasq's `server=` takes. */
export function checkDnsUpstream(value: string, field = 'dnsUpstream'): string {
  const [ip, port, extra] = value.split('#');
  const badPort = port !== undefined && (!/^\d{1,5}$/.test(port) || Number(port) < 1 || Number(port) > 65535);
  if (extra !== undefined || !isIPv4(ip ?? '') || badPort) {
    throw new CaptureConfigError(
      'HTTPMESH_CAPTURE_ADDRESS_INVALID',
      field,
      `expected an IPv4 address, optionally #port, got ${JSON.stringify(value)}`,
    );
  }
  return value;
}
