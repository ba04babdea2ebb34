import { isIP, BlockList } from 'node:net';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  GeneralName as AsnGeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  NameConstraints,
  id_ce_nameConstraints,
} from '@peculiar/asn1-x509';
import { Extension } from './x509.js';
import type { X509Certificate as PeculiarCertificate } from './x509.js';
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

function subtree(name: AsnGeneralName): GeneralSubtree {
  return new GeneralSubtree({ base: name });
}

/**
 * Builds a critical nameConstraints extension. With no permitted IP ranges every IP address is excluded:
 * RFC 5280 leaves name types without a permitted subtree unconstrained, so an intermediate limited to DNS
 * names could otherwise still sign for any IP address.
 */
export function buildNameConstraintsExtension(
  domains: readonly string[],
  ipRanges: readonly string[],
): Extension {
  const permitted = new GeneralSubtrees(domains.map((d) => subtree(new AsnGeneralName({ dNSName: d }))));
  for (const range of ipRanges) permitted.push(subtree(new AsnGeneralName({ iPAddress: range })));
  const params: Partial<NameConstraints> = { permittedSubtrees: permitted };
  if (ipRanges.length === 0) {
    params.excludedSubtrees = new GeneralSubtrees([
      subtree(new AsnGeneralName({ iPAddress: '0.0.0.0/0' })),
      subtree(new AsnGeneralName({ iPAddress: '::/0' })),
    ]);
  }
  return new Extension(id_ce_nameConstraints, true, AsnConvert.serialize(new NameConstraints(params)));
}

function addToBlockList(list: BlockList, text: string): void {
  const cidr = parseCidr(text);
  if (!cidr)
    throw new CaCertificateInvalidError(`unsupported iPAddress name constraint ${JSON.stringify(text)}`);
  list.addSubnet(cidr.address, cidr.prefix, cidr.family);
}

/** Reads the nameConstraints extension of a certificate; null if it has none. */
export function readNameConstraints(cert: PeculiarCertificate): NameConstraintSet | null {
  const ext = cert.getExtension(id_ce_nameConstraints);
  if (!ext) return null;
  let parsed: NameConstraints;
  try {
    parsed = AsnConvert.parse(ext.value, NameConstraints);
  } catch (error) {
    throw new CaCertificateInvalidError('malformed nameConstraints extension', { cause: error });
  }
  const permittedDns: string[] = [];
  const excludedDns: string[] = [];
  let permittedIp: BlockList | null = null;
  let excludedIp: BlockList | null = null;
  for (const item of parsed.permittedSubtrees ?? []) {
    if (item.base.dNSName !== undefined) permittedDns.push(item.base.dNSName.toLowerCase());
    else if (item.base.iPAddress !== undefined) {
      permittedIp ??= new BlockList();
      addToBlockList(permittedIp, item.base.iPAddress);
    }
  }
  for (const item of parsed.excludedSubtrees ?? []) {
    if (item.base.dNSName !== undefined) excludedDns.push(item.base.dNSName.toLowerCase());
    else if (item.base.iPAddress !== undefined) {
      excludedIp ??= new BlockList();
      addToBlockList(excludedIp, item.base.iPAddress);
    }
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
