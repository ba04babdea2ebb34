import { isIP } from 'node:net';
import { domainToASCII } from 'node:url';
import { CaHostnameInvalidError } from './errors.js';

export interface NormalizedName {
  readonly kind: 'dns' | 'ip';
  /** Lower-case A-label DNS name, or canonical IP text (IPv6 compressed, no brackets). */
  readonly value: string;
}

const MAX_DNS_LENGTH = 253;
const MAX_LABEL_LENGTH = 63;

function isLabelChar(code: number): boolean {
  // a-z 0-9 '-' '_' (underscore is not a hostname char but real services use it, and verifiers accept it).
  return (code >= 97 && code <= 122) || (code >= 48 && code <= 57) || code === 45 || code === 95;
}

function validateDnsName(original: string, name: string): void {
  if (name.length === 0) throw new CaHostnameInvalidError(original, 'empty');
  if (name.length > MAX_DNS_LENGTH) throw new CaHostnameInvalidError(original, 'longer than 253 characters');
  const labels = name.split('.');
  for (let i = 0; i < labels.length; i++) {
    const label = labels[i] ?? '';
    if (label.length === 0) throw new CaHostnameInvalidError(original, 'empty label');
    if (label.length > MAX_LABEL_LENGTH) throw new CaHostnameInvalidError(original, 'label longer than 63');
    if (label === '*') {
      // A wildcard is only meaningful as the whole left-most label of a name with at least two more labels.
      if (i !== 0 || labels.length < 3) throw new CaHostnameInvalidError(original, 'misplaced wildcard');
      continue;
    }
    for (let j = 0; j < label.length; j++) {
      if (!isLabelChar(label.charCodeAt(j))) throw new CaHostnameInvalidError(original, 'invalid character');
    }
    if (label.charCodeAt(0) === 45 || label.charCodeAt(label.length - 1) === 45) {
      throw new CaHostnameInvalidError(original, 'label starts or ends with "-"');
    }
  }
}

/**
 * Validates and canonicalises a hostname (DNS name, IPv4, IPv6 with or without brackets).
 * Input is untrusted (it usually comes from a TLS ClientHello's SNI), so everything is checked.
 */
export function normalizeHostname(input: string): NormalizedName {
  if (typeof input !== 'string') throw new CaHostnameInvalidError(String(input), 'not a string');
  let text = input;
  if (text.length > 2 && text.charCodeAt(0) === 91 && text.charCodeAt(text.length - 1) === 93) {
    text = text.slice(1, -1);
  }
  const family = isIP(text);
  if (family === 4) return { kind: 'ip', value: text };
  if (family === 6) {
    if (text.includes('%')) throw new CaHostnameInvalidError(input, 'IPv6 zone id not allowed');
    // The WHATWG URL serializer gives the canonical compressed form (also for IPv4-mapped addresses).
    return { kind: 'ip', value: new URL(`http://[${text}]/`).hostname.slice(1, -1) };
  }
  if (text.length > 1 && text.charCodeAt(text.length - 1) === 46) text = text.slice(0, -1);
  let ascii = text.toLowerCase();
  for (let i = 0; i < ascii.length; i++) {
    if (ascii.charCodeAt(i) > 127) {
      ascii = domainToASCII(text);
      if (ascii === '') throw new CaHostnameInvalidError(input, 'not a valid internationalised domain name');
      break;
    }
  }
  validateDnsName(input, ascii);
  return { kind: 'dns', value: ascii };
}

/** RFC 5280 dNSName constraint: `example.com` covers itself and any name with labels added on the left. */
export function dnsNameWithin(name: string, constraint: string): boolean {
  if (constraint.charCodeAt(0) === 46) return name.length > constraint.length && name.endsWith(constraint);
  if (name.length === constraint.length) return name === constraint;
  return (
    name.length > constraint.length &&
    name.charCodeAt(name.length - constraint.length - 1) === 46 &&
    name.endsWith(constraint)
  );
}
