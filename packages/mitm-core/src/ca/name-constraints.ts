import { isIP, BlockList } from 'node:net';
import { children, contentOf, DerError, expectTag, readElement } from './der.js';
import { CaCertificateInvalidError, CaNameNotPermittedError, CaOptionsInvalidError } from './errors.js';
import { dnsNameWithin, normalizeHostname } from './hostname.js';
import type { NormalizedName } from './hostname.js';

/** Name constraints of one CA certificate, in the form needed to check a name quickly. */
export interface NameConstraintSet {
  readonly permittedDns: readonly string[];
  readonly excludedDns: readonly string[];
  /** null when the certificate places no permitted-subtree limit on IP addresses. */
  readonly permittedIp: BlockList | null;
  readonly excludedIp: BlockList | null;
}

interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}

function parseCidr(text: string): Cidr | null {
  const slash = text.indexOf('/');
  if (slash < 0) return null;
  const address = text.slice(0, slash);
  const prefixText = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(prefixText)) return null;
  const prefix = Number(prefixText);
  const family = isIP(address);
  if (family === 4 && prefix <= 32) return { address, prefix, family: 'ipv4' };
  if (family === 6 && prefix <= 128) return { address, prefix, family: 'ipv6' };
  return null;
}

/** Canonical dNSName constraint text; a leading "." (subdomains only) is kept. */
export function normalizeDomainConstraint(domain: string): string {
  if (typeof domain !== 'string' || domain.length === 0) {
    throw new CaOptionsInvalidError('permittedDomains entries must be non-empty strings');
  }
  const leadingDot = domain.charCodeAt(0) === 46;
  const name = normalizeHostname(leadingDot ? domain.slice(1) : domain);
  if (name.kind !== 'dns' || name.value.startsWith('*')) {
    throw new CaOptionsInvalidError(
      `permittedDomains entry ${JSON.stringify(domain)} is not a plain DNS name`,
    );
  }
  return leadingDot ? `.${name.value}` : name.value;
}

export function validateIpRange(range: string): string {
  const cidr = typeof range === 'string' ? parseCidr(range) : null;
  if (!cidr) throw new CaOptionsInvalidError(`permittedIpRanges entry ${JSON.stringify(range)} is not CIDR`);
  return `${cidr.address}/${cidr.prefix}`;
}

function ipConstraintText(bytes: Uint8Array): Cidr {
  // RFC 5280 4.2.1.10: address followed by mask, 4+4 bytes for IPv4 and 16+16 for IPv6.
  if (bytes.length !== 8 && bytes.length !== 32) {
    throw new CaCertificateInvalidError(`unsupported iPAddress name constraint of ${bytes.length} bytes`);
  }
  const half = bytes.length / 2;
  let prefix = 0;
  let ended = false;
  for (let i = half; i < bytes.length; i++) {
    for (let bit = 7; bit >= 0; bit--) {
      const set = ((bytes[i] as number) >> bit) & 1;
      if (set && ended)
        throw new CaCertificateInvalidError('iPAddress name constraint mask is not contiguous');
      if (set) prefix++;
      else ended = true;
    }
  }
  if (half === 4) return { address: Array.from(bytes.subarray(0, 4)).join('.'), prefix, family: 'ipv4' };
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2)
    groups.push((((bytes[i] as number) << 8) | (bytes[i + 1] as number)).toString(16));
  return { address: groups.join(':'), prefix, family: 'ipv6' };
}

/** Reads a nameConstraints extension value (DER); dNSName and iPAddress subtrees, others are ignored. */
export function readNameConstraints(value: Uint8Array): NameConstraintSet {
  const permittedDns: string[] = [];
  const excludedDns: string[] = [];
  let permittedIp: BlockList | null = null;
  let excludedIp: BlockList | null = null;
  try {
    const sequence = expectTag(readElement(value, 0), 0x30, 'NameConstraints SEQUENCE');
    for (const subtrees of children(value, sequence)) {
      // [0] permittedSubtrees, [1] excludedSubtrees (IMPLICIT SEQUENCE OF GeneralSubtree)
      if (subtrees.tag !== 0xa0 && subtrees.tag !== 0xa1)
        throw new DerError('unexpected NameConstraints field');
      const permitted = subtrees.tag === 0xa0;
      for (const subtree of children(value, subtrees)) {
        const base = children(value, expectTag(subtree, 0x30, 'GeneralSubtree'))[0];
        if (base === undefined) throw new DerError('GeneralSubtree without base');
        if (base.tag === 0x82) {
          const dns = Buffer.from(contentOf(value, base)).toString('latin1').toLowerCase();
          (permitted ? permittedDns : excludedDns).push(dns);
        } else if (base.tag === 0x87) {
          const cidr = ipConstraintText(contentOf(value, base));
          if (permitted) {
            permittedIp ??= new BlockList();
            permittedIp.addSubnet(cidr.address, cidr.prefix, cidr.family);
          } else {
            excludedIp ??= new BlockList();
            excludedIp.addSubnet(cidr.address, cidr.prefix, cidr.family);
          }
        }
      }
    }
  } catch (error) {
    if (error instanceof CaCertificateInvalidError) throw error;
    throw new CaCertificateInvalidError('malformed nameConstraints extension', { cause: error });
  }
  return { permittedDns, excludedDns, permittedIp, excludedIp };
}

/** True if the name satisfies the constraints (RFC 5280 section 4.2.1.10 semantics for dNSName and iPAddress). */
export function namePermitted(constraints: NameConstraintSet, name: NormalizedName): boolean {
  if (name.kind === 'dns') {
    for (const excluded of constraints.excludedDns) if (dnsNameWithin(name.value, excluded)) return false;
    if (constraints.permittedDns.length === 0) return true;
    for (const permitted of constraints.permittedDns) if (dnsNameWithin(name.value, permitted)) return true;
    return false;
  }
  const family = isIP(name.value) === 4 ? 'ipv4' : 'ipv6';
  if (constraints.excludedIp?.check(name.value, family)) return false;
  return constraints.permittedIp === null || constraints.permittedIp.check(name.value, family);
}

export function assertNamePermitted(chain: readonly NameConstraintSet[], name: NormalizedName): void {
  for (const constraints of chain) {
    if (!namePermitted(constraints, name)) throw new CaNameNotPermittedError(name.value);
  }
}
