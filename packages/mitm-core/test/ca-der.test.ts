/**
 * The DER reader and leaf-extension encoder that replace @peculiar/x509 on the steady-state path (load a CA,
 * mint leaves) must agree with it: the same facts out of the same certificates, the same extension bytes, and
 * a CA's public API reading as before. @peculiar/x509 serves as the reference here; malformed input is
 * rejected with the CA error codes.
 */
import { createPrivateKey, webcrypto } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../src/ca/index.js';
import { parseCertificate } from '../src/ca/certificate-der.js';
import { DerError, tlv } from '../src/ca/der.js';
import { leafExtensions } from '../src/ca/leaf-der.js';
import { namePermitted, readNameConstraints } from '../src/ca/name-constraints.js';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  SubjectKeyIdentifierExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '../src/ca/x509.js';
import { AsnConvert } from '@peculiar/asn1-schema';
import { GeneralName, GeneralSubtree, GeneralSubtrees, NameConstraints } from '@peculiar/asn1-x509';

type PeculiarCrypto = NonNullable<Parameters<typeof X509CertificateGenerator.create>[1]>;
const crypto = webcrypto as unknown as PeculiarCrypto;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

async function keyPair(): Promise<webcrypto.CryptoKeyPair> {
  return (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
}

async function keyPem(keys: webcrypto.CryptoKeyPair): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
  return createPrivateKey({ key: Buffer.from(pkcs8), format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
}

/** A self-signed CA made by @peculiar/x509 with the given name and extensions. */
async function peculiarCa(
  name: string,
  extensions: (keys: webcrypto.CryptoKeyPair) => Promise<Extension[]>,
  serialNumber = '00ff01',
  notAfter = new Date(Date.UTC(2051, 0, 2, 3, 4, 5)),
) {
  const keys = await keyPair();
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber,
      name,
      notBefore: new Date(Date.UTC(2020, 5, 6, 7, 8, 9)),
      notAfter,
      keys,
      signingAlgorithm: SIGN,
      extensions: await extensions(keys),
    },
    crypto,
  );
  return { cert, keys };
}

function nameConstraintsValue(params: Partial<NameConstraints>): Uint8Array {
  return new Uint8Array(AsnConvert.serialize(new NameConstraints(params)));
}

function subtrees(names: Array<Partial<GeneralName>>): GeneralSubtrees {
  return new GeneralSubtrees(names.map((name) => new GeneralSubtree({ base: new GeneralName(name) })));
}

/** A minimal v1 certificate (no extensions) with the given validity texts; the reader does not check signatures. */
function minimalCertificate(utc: string, generalized: string): Buffer {
  const name = tlv(0x30, tlv(0x31, tlv(0x30, Buffer.from('0603550403', 'hex'), tlv(0x0c, Buffer.from('t')))));
  const tbs = tlv(
    0x30,
    tlv(0x02, Buffer.from([1])),
    tlv(0x30, Buffer.from('06082a8648ce3d040302', 'hex')),
    name,
    tlv(0x30, tlv(0x17, Buffer.from(utc)), tlv(0x18, Buffer.from(generalized))),
    name,
    tlv(0x30, tlv(0x30), tlv(0x03, Buffer.from([0, 4, 1, 2]))),
  );
  return tlv(0x30, tbs, tlv(0x30), tlv(0x03, Buffer.from([0])));
}

describe('parseCertificate agrees with @peculiar/x509', () => {
  test.each([
    ['CN=Plain Root'],
    ['CN=Acme\\, Inc. Root, O=Acme\\, Inc., OU=Mesh, C=DE'],
    ['CN=Root+OU=Multi valued, L=Zürich, ST=ZH, E=ops@example.test'],
    ['CN=\\#hash and trailing space\\ , O=quote \\" plus \\+ less \\< semicolon \\;'],
  ])('subject, issuer, serial, validity and extensions of %s', async (name) => {
    const { cert } = await peculiarCa(name, async (keys) => [
      new BasicConstraintsExtension(true, 2, true),
      new KeyUsagesExtension(KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign, true),
      await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto),
    ]);
    const facts = parseCertificate(new Uint8Array(cert.rawData));
    expect(facts.subject).toBe(cert.subject);
    expect(facts.issuer).toBe(cert.issuer);
    expect(facts.serialNumber).toBe(cert.serialNumber);
    expect(facts.notBefore).toEqual(cert.notBefore);
    expect(facts.notAfter).toEqual(cert.notAfter);
    expect(facts.notAfter.getUTCFullYear()).toBe(2051); // GeneralizedTime from 2050
    expect(facts.basicConstraints).toEqual({ ca: true, pathLength: 2 });
    expect(facts.keyCertSign).toBe(true);
    expect(facts.subjectKeyId).toBe(cert.getExtension(SubjectKeyIdentifierExtension)?.keyId);
    expect(facts.nameConstraints).toBeNull();
    expect(Buffer.from(facts.subjectDer)).toEqual(Buffer.from(cert.subjectName.toArrayBuffer()));
  });

  test('a CA without keyCertSign, SKI or pathLen reads as such', async () => {
    const { cert } = await peculiarCa('CN=Bare', async () => [
      new BasicConstraintsExtension(true, undefined, true),
      new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    ]);
    const facts = parseCertificate(new Uint8Array(cert.rawData));
    expect(facts.basicConstraints).toEqual({ ca: true, pathLength: undefined });
    expect(facts.keyCertSign).toBe(false);
    expect(facts.subjectKeyId).toBeNull();
  });

  test('a serial number with its sign byte is read without it', async () => {
    const { cert } = await peculiarCa('CN=Serial', async () => [], '80aa');
    expect(parseCertificate(new Uint8Array(cert.rawData)).serialNumber).toBe('80aa');
    expect(cert.serialNumber).toBe('80aa');
  });

  test.each([
    [
      'DER UTCTime / GeneralizedTime',
      '200606070809Z',
      '20510102030405Z',
      '2020-06-06T07:08:09Z',
      '2051-01-02T03:04:05Z',
    ],
    ['no seconds', '2006060708Z', '205101020304Z', '2020-06-06T07:08:00Z', '2051-01-02T03:04:00Z'],
    ['offsets', '200606070809+0130', '20510102030405.5-0200', '2020-06-06T05:38:09Z', '2051-01-02T05:04:05Z'],
  ])('validity times: %s', (_, utc, generalized, notBefore, notAfter) => {
    const der = minimalCertificate(utc, generalized);
    const facts = parseCertificate(der);
    expect(facts.notBefore.toISOString()).toBe(new Date(notBefore).toISOString());
    expect(facts.notAfter.toISOString()).toBe(new Date(notAfter).toISOString());
    expect(facts.subject).toBe('CN=t');
    expect(facts.basicConstraints).toBeNull();
    expect(facts.keyCertSign).toBeNull();
    expect(Buffer.from(facts.subjectPublicKey)).toEqual(Buffer.from([4, 1, 2]));
  });

  test.each([
    ['letters in a UTCTime', '20060A070809Z'],
    ['no zone', '200606070809'],
  ])('malformed validity time (%s) is rejected', (_, utc) => {
    expect(() => parseCertificate(minimalCertificate(utc, '20510102030405Z'))).toThrow(DerError);
  });

  test.each([
    ['empty', new Uint8Array(0)],
    ['not a SEQUENCE', new Uint8Array([0x04, 0x00])],
    ['truncated', new Uint8Array([0x30, 0x82, 0x01, 0x00, 0x30])],
    ['length past the end', new Uint8Array([0x30, 0x05, 0x30, 0x03, 0x02, 0x01])],
    ['indefinite length', new Uint8Array([0x30, 0x80, 0x00, 0x00])],
    ['empty TBSCertificate', new Uint8Array([0x30, 0x02, 0x30, 0x00])],
  ])('malformed DER (%s) is rejected', (_, bytes) => {
    expect(() => parseCertificate(bytes)).toThrow(DerError);
  });
});

describe('leaf extensions', () => {
  test.each([
    [false, KeyUsageFlags.digitalSignature],
    [true, KeyUsageFlags.digitalSignature | KeyUsageFlags.keyEncipherment],
  ])('keyEncipherment=%s encodes exactly as @peculiar/x509 does', (keyEncipherment, usages) => {
    const ski = '0102030405060708090a0b0c0d0e0f1011121314';
    const aki = 'a1a2a3a4a5a6a7a8';
    const reference = [
      new BasicConstraintsExtension(false, undefined, true),
      new KeyUsagesExtension(usages, true),
      new ExtendedKeyUsageExtension([ExtendedKeyUsage.serverAuth], false),
      new SubjectKeyIdentifierExtension(ski, false),
      new AuthorityKeyIdentifierExtension(aki),
    ].map((extension) => Buffer.from(extension.rawData));
    expect(leafExtensions(keyEncipherment, ski, aki)).toEqual(reference);
  });

  test('leaves of a loaded CA without SKI carry the RFC 5280 key id of the CA key as AKI', async () => {
    const { cert, keys } = await peculiarCa('CN=No SKI', async () => [
      new BasicConstraintsExtension(true, undefined, true),
    ]);
    const ca = await CertificateAuthority.load(cert.toString('pem'), await keyPem(keys));
    const leaf = new X509Certificate((await ca.issueLeaf(['a.example.test'])).certPem);
    const expected = await SubjectKeyIdentifierExtension.create(keys.publicKey, false, crypto);
    expect(leaf.getExtension(AuthorityKeyIdentifierExtension)?.keyId).toBe(expected.keyId);
    expect(ca.subject).toBe('CN=No SKI');
    expect(ca.serialNumber).toBe(cert.serialNumber);
    expect(ca.notAfter).toEqual(cert.notAfter);
    // The leaf's own SKI is that of the shared leaf key, computed the same way.
    const leafSki = await SubjectKeyIdentifierExtension.create(leaf.publicKey, false, crypto);
    expect(leaf.getExtension(SubjectKeyIdentifierExtension)?.keyId).toBe(leafSki.keyId);
  });
});

describe('readNameConstraints', () => {
  test('dNSName and iPAddress subtrees, permitted and excluded, IPv4 and IPv6', () => {
    const set = readNameConstraints(
      nameConstraintsValue({
        permittedSubtrees: subtrees([
          { dNSName: 'Corp.Test' },
          { iPAddress: '10.1.0.0/16' },
          { iPAddress: '2001:db8::/32' },
          { uniformResourceIdentifier: 'https://ignored.test' },
        ]),
        excludedSubtrees: subtrees([{ dNSName: 'secret.corp.test' }, { iPAddress: '10.1.2.0/24' }]),
      }),
    );
    expect(set.permittedDns).toEqual(['corp.test']);
    expect(set.excludedDns).toEqual(['secret.corp.test']);
    expect(namePermitted(set, { kind: 'dns', value: 'api.corp.test' })).toBe(true);
    expect(namePermitted(set, { kind: 'dns', value: 'x.secret.corp.test' })).toBe(false);
    expect(namePermitted(set, { kind: 'dns', value: 'other.test' })).toBe(false);
    expect(namePermitted(set, { kind: 'ip', value: '10.1.9.9' })).toBe(true);
    expect(namePermitted(set, { kind: 'ip', value: '10.1.2.3' })).toBe(false);
    expect(namePermitted(set, { kind: 'ip', value: '10.2.0.1' })).toBe(false);
    expect(namePermitted(set, { kind: 'ip', value: '2001:db8:1::5' })).toBe(true);
    expect(namePermitted(set, { kind: 'ip', value: '2001:db9::5' })).toBe(false);
  });

  test.each([
    ['not a SEQUENCE', [0x04, 0x00]],
    ['truncated', [0x30, 0x05, 0xa0, 0x03]],
    ['unknown field', [0x30, 0x02, 0x82, 0x00]],
    ['subtree without base', [0x30, 0x04, 0xa0, 0x02, 0x30, 0x00]],
    ['5-byte iPAddress', [0x30, 0x0b, 0xa0, 0x09, 0x30, 0x07, 0x87, 0x05, 10, 0, 0, 0, 255]],
    ['non-contiguous mask', [0x30, 0x0e, 0xa0, 0x0c, 0x30, 0x0a, 0x87, 0x08, 10, 0, 0, 0, 255, 0, 255, 0]],
  ])('malformed value (%s) is CaCertificateInvalidError', (_, bytes) => {
    expect(() => readNameConstraints(new Uint8Array(bytes))).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_CA_CERT_INVALID' }),
    );
  });

  test('a CA whose nameConstraints extension is malformed is refused by load', async () => {
    const { cert, keys } = await peculiarCa('CN=Bad constraints', async () => [
      new BasicConstraintsExtension(true, undefined, true),
      // Well-formed for OpenSSL (an iPAddress is any OCTET STRING) but no address/mask pair.
      new Extension(
        '2.5.29.30',
        true,
        new Uint8Array([0x30, 0x0b, 0xa0, 0x09, 0x30, 0x07, 0x87, 0x05, 10, 0, 0, 0, 255]),
      ),
    ]);
    await expect(CertificateAuthority.load(cert.toString('pem'), await keyPem(keys))).rejects.toMatchObject({
      code: 'HTTPMESH_CA_CERT_INVALID',
    });
  });
});
