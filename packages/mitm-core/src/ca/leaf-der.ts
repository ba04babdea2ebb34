/**
 * DER assembly for leaf certificates: the minting hot path.
 *
 * @peculiar/x509 builds every certificate through a generic ASN.1 object model and re-parses its own output,
 * which costs ~2-3 ms per leaf. A leaf from a given CA differs from the previous one only in serial number,
 * validity, subject CN and SAN, so the constant parts (issuer name, leaf public key, the other extensions,
 * encoded once per CA by `leafExtensions`) are kept as DER and only the variable parts are encoded here.
 * Nothing here needs @peculiar/x509, so minting stays off it (see certificate-der.ts). The result is checked
 * by OpenSSL and Node's X509Certificate in the tests.
 */
import { tlv } from './der.js';
import type { NormalizedName } from './hostname.js';

export type SignatureKind = 'ecdsa-sha256' | 'ecdsa-sha384' | 'rsa-sha256';

const ALGORITHM_IDENTIFIERS: Record<SignatureKind, Buffer> = {
  // SEQUENCE { OID 1.2.840.10045.4.3.2 }
  'ecdsa-sha256': Buffer.from('300a06082a8648ce3d040302', 'hex'),
  // SEQUENCE { OID 1.2.840.10045.4.3.3 }
  'ecdsa-sha384': Buffer.from('300a06082a8648ce3d040303', 'hex'),
  // SEQUENCE { OID 1.2.840.113549.1.1.11, NULL }
  'rsa-sha256': Buffer.from('300d06092a864886f70d01010b0500', 'hex'),
};

const VERSION_V3 = Buffer.from('a003020102', 'hex');
const OID_COMMON_NAME = Buffer.from('0603550403', 'hex');
const OID_ORGANIZATION = Buffer.from('060355040a', 'hex');
const OID_SUBJECT_ALT_NAME = Buffer.from('0603551d11', 'hex');

function encodeTime(date: Date): Buffer {
  const iso = date.toISOString(); // YYYY-MM-DDTHH:MM:SS.sssZ
  const digits = `${iso.slice(0, 4)}${iso.slice(5, 7)}${iso.slice(8, 10)}${iso.slice(11, 13)}${iso.slice(14, 16)}${iso.slice(17, 19)}Z`;
  const year = date.getUTCFullYear();
  // RFC 5280 4.1.2.5: UTCTime through 2049, GeneralizedTime from 2050.
  if (year >= 1950 && year < 2050) return tlv(0x17, Buffer.from(digits.slice(2), 'latin1'));
  return tlv(0x18, Buffer.from(digits, 'latin1'));
}

function ipv4Bytes(address: string): Buffer {
  return Buffer.from(address.split('.').map(Number));
}

function ipv6Bytes(address: string): Buffer {
  const bytes = Buffer.alloc(16);
  const gap = address.indexOf('::');
  const head = gap >= 0 ? address.slice(0, gap) : address;
  const tail = gap >= 0 ? address.slice(gap + 2) : '';
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === '' ? [] : tail.split(':');
  for (let i = 0; i < headGroups.length; i++)
    bytes.writeUInt16BE(Number.parseInt(headGroups[i] ?? '0', 16), i * 2);
  for (let i = 0; i < tailGroups.length; i++) {
    bytes.writeUInt16BE(Number.parseInt(tailGroups[i] ?? '0', 16), 16 - (tailGroups.length - i) * 2);
  }
  return bytes;
}

function generalName(name: NormalizedName): Buffer {
  if (name.kind === 'dns') return tlv(0x82, Buffer.from(name.value, 'latin1')); // [2] IA5String dNSName
  const bytes = name.value.includes(':') ? ipv6Bytes(name.value) : ipv4Bytes(name.value);
  return tlv(0x87, bytes); // [7] OCTET STRING iPAddress
}

function subjectName(commonName: string): Buffer {
  const attribute =
    commonName === ''
      ? tlv(0x30, OID_ORGANIZATION, tlv(0x0c, Buffer.from('httpmesh', 'utf8')))
      : tlv(0x30, OID_COMMON_NAME, tlv(0x0c, Buffer.from(commonName, 'utf8')));
  return tlv(0x30, tlv(0x31, attribute));
}

/** ECDSA signatures from WebCrypto are r||s; X.509 wants SEQUENCE { INTEGER r, INTEGER s }. */
function ecdsaRawToDer(raw: Uint8Array): Buffer {
  const half = raw.length / 2;
  const integer = (bytes: Uint8Array): Buffer => {
    let start = 0;
    while (start < bytes.length - 1 && bytes[start] === 0) start++;
    const trimmed = bytes.subarray(start);
    const needsPad = ((trimmed[0] ?? 0) & 0x80) !== 0;
    return tlv(0x02, needsPad ? Buffer.concat([Buffer.from([0]), trimmed]) : trimmed);
  };
  return tlv(0x30, integer(raw.subarray(0, half)), integer(raw.subarray(half)));
}

/** The per-CA constant parts of every leaf. */
export interface LeafTemplate {
  readonly signature: SignatureKind;
  /** DER of the issuer Name (the CA's subject). */
  readonly issuer: Uint8Array;
  /** DER SubjectPublicKeyInfo of the shared leaf key. */
  readonly subjectPublicKeyInfo: Uint8Array;
  /** DER of each constant Extension (basicConstraints, keyUsage, EKU, SKI, AKI). */
  readonly extensions: readonly Uint8Array[];
}

export interface LeafFields {
  readonly serialHex: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly commonName: string;
  readonly names: readonly NormalizedName[];
}

export function encodeTbsCertificate(template: LeafTemplate, fields: LeafFields): Buffer {
  const san = tlv(0x30, OID_SUBJECT_ALT_NAME, tlv(0x04, tlv(0x30, ...fields.names.map(generalName))));
  return tlv(
    0x30,
    VERSION_V3,
    tlv(0x02, Buffer.from(fields.serialHex, 'hex')),
    ALGORITHM_IDENTIFIERS[template.signature],
    template.issuer,
    tlv(0x30, encodeTime(fields.notBefore), encodeTime(fields.notAfter)),
    subjectName(fields.commonName),
    template.subjectPublicKeyInfo,
    tlv(0xa3, tlv(0x30, ...template.extensions, san)),
  );
}

/** Wraps a TBSCertificate and its WebCrypto signature into a DER Certificate. */
export function encodeCertificate(
  signature: SignatureKind,
  tbs: Uint8Array,
  rawSignature: Uint8Array,
): Buffer {
  const value = signature === 'rsa-sha256' ? rawSignature : ecdsaRawToDer(rawSignature);
  return tlv(0x30, tbs, ALGORITHM_IDENTIFIERS[signature], tlv(0x03, Buffer.from([0]), value));
}

const OID_BASIC_CONSTRAINTS = Buffer.from('0603551d13', 'hex');
const OID_KEY_USAGE = Buffer.from('0603551d0f', 'hex');
const OID_EXTENDED_KEY_USAGE = Buffer.from('0603551d25', 'hex');
const OID_SUBJECT_KEY_ID = Buffer.from('0603551d0e', 'hex');
const OID_AUTHORITY_KEY_ID = Buffer.from('0603551d23', 'hex');
const CRITICAL = Buffer.from('0101ff', 'hex');
// SEQUENCE { OID 1.3.6.1.5.5.7.3.1 id-kp-serverAuth }
const SERVER_AUTH = Buffer.from('300a06082b06010505070301', 'hex');

function extension(oid: Buffer, critical: boolean, value: Uint8Array): Buffer {
  return critical ? tlv(0x30, oid, CRITICAL, tlv(0x04, value)) : tlv(0x30, oid, tlv(0x04, value));
}

/**
 * The constant extensions of every server leaf, in this order: basicConstraints cA=false (critical),
 * keyUsage digitalSignature (+keyEncipherment for RSA keys; critical), EKU serverAuth, SKI, AKI.
 * `subjectKeyId` and `authorityKeyId` are hex.
 */
export function leafExtensions(
  keyEncipherment: boolean,
  subjectKeyId: string,
  authorityKeyId: string,
): Buffer[] {
  // keyUsage is a named BIT STRING: digitalSignature is bit 0, keyEncipherment bit 2; DER drops trailing zero
  // bits, which the first byte (the unused-bit count) records.
  const keyUsage = keyEncipherment ? Buffer.from([0x05, 0xa0]) : Buffer.from([0x07, 0x80]);
  return [
    extension(OID_BASIC_CONSTRAINTS, true, tlv(0x30)),
    extension(OID_KEY_USAGE, true, tlv(0x03, keyUsage)),
    extension(OID_EXTENDED_KEY_USAGE, false, SERVER_AUTH),
    extension(OID_SUBJECT_KEY_ID, false, tlv(0x04, Buffer.from(subjectKeyId, 'hex'))),
    extension(OID_AUTHORITY_KEY_ID, false, tlv(0x30, tlv(0x80, Buffer.from(authorityKeyId, 'hex')))),
  ];
}
