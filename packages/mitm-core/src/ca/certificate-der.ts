/**
 * Reads what the CA needs from a DER certificate: the fields node:crypto's X509Certificate does not give on
 * Node 20 (basicConstraints pathLen, keyUsage bits, subject key identifier, name constraints, the issuer and
 * subject Names as DER). This keeps @peculiar/x509 (~16 MB resident with its dependencies) off the path that
 * loads an existing CA and mints leaves; it is imported only to create certificates other than leaves.
 */
import { children, contentOf, DerError, expectTag, oidText, readElement } from './der.js';
import type { DerElement } from './der.js';

const OID_BASIC_CONSTRAINTS = '2.5.29.19';
const OID_KEY_USAGE = '2.5.29.15';
const OID_SUBJECT_KEY_ID = '2.5.29.14';
export const OID_NAME_CONSTRAINTS = '2.5.29.30';

/** keyUsage bit 5 (RFC 5280 4.2.1.3). */
const KEY_USAGE_KEY_CERT_SIGN = 5;

/** Short attribute names, as @peculiar/x509 prints them (so `ca.subject` reads the same as before). */
const ATTRIBUTE_NAMES: Readonly<Record<string, string>> = {
  '2.5.4.3': 'CN',
  '2.5.4.7': 'L',
  '2.5.4.8': 'ST',
  '2.5.4.10': 'O',
  '2.5.4.11': 'OU',
  '2.5.4.6': 'C',
  '0.9.2342.19200300.100.1.25': 'DC',
  '1.2.840.113549.1.9.1': 'E',
  '2.5.4.42': 'G',
  '2.5.4.43': 'I',
  '2.5.4.4': 'SN',
  '2.5.4.12': 'T',
};

export interface NameAttribute {
  /** Short name (CN, O, ...) or dotted OID. */
  readonly type: string;
  readonly value: string;
}

export interface CertificateFacts {
  readonly der: Uint8Array;
  /** Lower-case hex, without a sign-padding zero byte. */
  readonly serialNumber: string;
  readonly issuerDer: Uint8Array;
  readonly subjectDer: Uint8Array;
  /** RFC 4514-style text, e.g. "CN=Mesh CA, O=Example". */
  readonly issuer: string;
  readonly subject: string;
  readonly subjectAttributes: readonly NameAttribute[];
  readonly notBefore: Date;
  readonly notAfter: Date;
  /** Content of the subjectPublicKey BIT STRING (without the unused-bits byte). */
  readonly subjectPublicKey: Uint8Array;
  /** null when the certificate has no basicConstraints extension. */
  readonly basicConstraints: { readonly ca: boolean; readonly pathLength: number | undefined } | null;
  /** Whether keyCertSign is set; null when the certificate has no keyUsage extension. */
  readonly keyCertSign: boolean | null;
  /** Hex key identifier; null without a subjectKeyIdentifier extension. */
  readonly subjectKeyId: string | null;
  /** DER of the nameConstraints extension value; null without one. */
  readonly nameConstraints: Uint8Array | null;
}

/** An attribute value as text: strings decoded, other types as RFC 4514 `#hex` of the encoded value. */
function valueText(der: Uint8Array, element: DerElement): string {
  const bytes = Buffer.from(contentOf(der, element));
  switch (element.tag) {
    case 0x0c: // UTF8String
      return bytes.toString('utf8');
    case 0x13: // PrintableString
    case 0x16: // IA5String
    case 0x14: // TeletexString (treated as Latin-1, as common practice)
      return bytes.toString('latin1');
    case 0x1e: // BMPString: UTF-16BE
      return bytes.swap16().toString('utf16le');
    case 0x1c: {
      // UniversalString: UTF-32BE
      let text = '';
      for (let i = 0; i + 3 < bytes.length; i += 4) text += String.fromCodePoint(bytes.readUInt32BE(i));
      return text;
    }
    default:
      // Not a string type: RFC 4514 prints the whole encoded value in hex.
      return `#${Buffer.from(der.subarray(element.start, element.end)).toString('hex')}`;
  }
}

function isStringTag(tag: number): boolean {
  return tag === 0x0c || tag === 0x13 || tag === 0x16 || tag === 0x14 || tag === 0x1e || tag === 0x1c;
}

function escapeValue(value: string): string {
  return value
    .replace(/([,+"\\<>;])/g, '\\$1')
    .replace(/^([ #])/, '\\$1')
    .replace(/([ ]$)/, '\\$1')
    .replace(/([\r\n\t])/, (char) => `\\${Buffer.from(char, 'utf8').toString('hex').toUpperCase()}`);
}

interface ParsedName {
  readonly text: string;
  readonly attributes: readonly NameAttribute[];
}

function parseName(der: Uint8Array, name: DerElement): ParsedName {
  const attributes: NameAttribute[] = [];
  const rdnTexts: string[] = [];
  for (const rdn of children(der, name)) {
    expectTag(rdn, 0x31, 'RelativeDistinguishedName SET');
    const parts: string[] = [];
    for (const pair of children(der, rdn)) {
      const [type, value] = children(der, expectTag(pair, 0x30, 'AttributeTypeAndValue'));
      const oid = oidText(contentOf(der, expectTag(type, 0x06, 'attribute type')));
      if (value === undefined) throw new DerError('attribute without value');
      const attribute = { type: ATTRIBUTE_NAMES[oid] ?? oid, value: valueText(der, value) };
      attributes.push(attribute);
      const printed = isStringTag(value.tag) ? escapeValue(attribute.value) : attribute.value;
      parts.push(`${attribute.type}=${printed}`);
    }
    rdnTexts.push(parts.join('+'));
  }
  return { text: rdnTexts.join(', '), attributes };
}

/**
 * UTCTime (years 1950-2049) or GeneralizedTime. DER demands seconds and "Z"; older CAs sometimes omit the
 * seconds or give an offset, which OpenSSL accepts too, so those are read rather than refused.
 */
function parseTime(der: Uint8Array, element: DerElement): Date {
  const text = Buffer.from(contentOf(der, element)).toString('latin1');
  const match =
    element.tag === 0x17
      ? /^(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(Z|[+-]\d{4})$/.exec(text)
      : element.tag === 0x18
        ? /^(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)?(?:\.\d+)?(Z|[+-]\d{4})$/.exec(text)
        : null;
  if (match === null) throw new DerError('malformed or missing Time');
  let year = Number(match[1]);
  if (element.tag === 0x17) year += year >= 50 ? 1900 : 2000;
  const [month, day, hour, minute] = match.slice(2, 6).map(Number) as [number, number, number, number];
  const second = Number(match[6] ?? 0);
  const zone = match[7] as string;
  const offsetMinutes =
    zone === 'Z'
      ? 0
      : (zone[0] === '-' ? -1 : 1) * (Number(zone.slice(1, 3)) * 60 + Number(zone.slice(3, 5)));
  return new Date(Date.UTC(year, month - 1, day, hour, minute, second) - offsetMinutes * 60_000);
}

function hex(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('hex');
}

function readInteger(bytes: Uint8Array): number {
  if (bytes.length === 0 || bytes.length > 4 || ((bytes[0] as number) & 0x80) !== 0) {
    throw new DerError('unsupported INTEGER');
  }
  let value = 0;
  for (const byte of bytes) value = value * 256 + byte;
  return value;
}

/** Parses a DER certificate. Throws DerError when its structure is not what RFC 5280 describes. */
export function parseCertificate(der: Uint8Array): CertificateFacts {
  const certificate = expectTag(readElement(der, 0), 0x30, 'Certificate SEQUENCE');
  const tbs = expectTag(children(der, certificate)[0], 0x30, 'TBSCertificate SEQUENCE');
  const fields = children(der, tbs);
  let index = fields[0]?.tag === 0xa0 ? 1 : 0;
  const serial = expectTag(fields[index++], 0x02, 'serialNumber');
  expectTag(fields[index++], 0x30, 'signature AlgorithmIdentifier');
  const issuer = expectTag(fields[index++], 0x30, 'issuer Name');
  const validity = children(der, expectTag(fields[index++], 0x30, 'Validity'));
  const subject = expectTag(fields[index++], 0x30, 'subject Name');
  const spki = children(der, expectTag(fields[index++], 0x30, 'SubjectPublicKeyInfo'));
  const publicKeyBits = expectTag(spki[1], 0x03, 'subjectPublicKey BIT STRING');
  const notBefore = validity[0];
  const notAfter = validity[1];
  if (notBefore === undefined || notAfter === undefined) throw new DerError('incomplete Validity');

  let serialBytes = contentOf(der, serial);
  if (serialBytes.length > 1 && serialBytes[0] === 0 && (serialBytes[1] as number) > 0x7f) {
    serialBytes = serialBytes.subarray(1);
  }
  let basicConstraints: CertificateFacts['basicConstraints'] = null;
  let keyCertSign: boolean | null = null;
  let subjectKeyId: string | null = null;
  let nameConstraints: Uint8Array | null = null;
  for (; index < fields.length; index++) {
    const field = fields[index] as DerElement;
    if (field.tag !== 0xa3) continue;
    const list = expectTag(children(der, field)[0], 0x30, 'Extensions SEQUENCE');
    for (const extension of children(der, list)) {
      const parts = children(der, expectTag(extension, 0x30, 'Extension SEQUENCE'));
      const oid = oidText(contentOf(der, expectTag(parts[0], 0x06, 'extension OID')));
      const valueElement = expectTag(parts[parts.length - 1], 0x04, 'extension value OCTET STRING');
      const value = contentOf(der, valueElement);
      if (oid === OID_BASIC_CONSTRAINTS) {
        const sequence = readElement(value, 0);
        let ca = false;
        let pathLength: number | undefined;
        for (const item of children(value, expectTag(sequence, 0x30, 'BasicConstraints'))) {
          if (item.tag === 0x01) ca = (value[item.contentStart] ?? 0) !== 0;
          else if (item.tag === 0x02) pathLength = readInteger(contentOf(value, item));
        }
        basicConstraints = { ca, pathLength };
      } else if (oid === OID_KEY_USAGE) {
        const bits = contentOf(value, expectTag(readElement(value, 0), 0x03, 'KeyUsage BIT STRING'));
        const byte = bits[1 + (KEY_USAGE_KEY_CERT_SIGN >> 3)] ?? 0;
        keyCertSign = (byte & (0x80 >> (KEY_USAGE_KEY_CERT_SIGN & 7))) !== 0;
      } else if (oid === OID_SUBJECT_KEY_ID) {
        subjectKeyId = hex(contentOf(value, expectTag(readElement(value, 0), 0x04, 'SubjectKeyIdentifier')));
      } else if (oid === OID_NAME_CONSTRAINTS) {
        nameConstraints = value;
      }
    }
  }
  const subjectName = parseName(der, subject);
  return {
    der,
    serialNumber: hex(serialBytes),
    issuerDer: der.subarray(issuer.start, issuer.end),
    subjectDer: der.subarray(subject.start, subject.end),
    issuer: parseName(der, issuer).text,
    subject: subjectName.text,
    subjectAttributes: subjectName.attributes,
    notBefore: parseTime(der, notBefore),
    notAfter: parseTime(der, notAfter),
    subjectPublicKey: contentOf(der, publicKeyBits).subarray(1),
    basicConstraints,
    keyCertSign,
    subjectKeyId,
    nameConstraints,
  };
}
