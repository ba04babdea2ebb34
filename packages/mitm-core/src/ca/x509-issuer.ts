/**
 * Certificates other than server leaves (roots, intermediates, client certificates), built with
 * @peculiar/x509. CertificateAuthority imports this module dynamically (x509-issuer-loader.ts), only when one
 * of those is issued, so a process that loads an existing CA and mints leaves never loads @peculiar/x509,
 * tsyringe or the ASN.1 schemas.
 */
import type { webcrypto } from 'node:crypto';
import { AsnConvert } from '@peculiar/asn1-schema';
import {
  GeneralName as AsnGeneralName,
  GeneralSubtree,
  GeneralSubtrees,
  NameConstraints,
  id_ce_nameConstraints,
} from '@peculiar/asn1-x509';
import {
  AuthorityKeyIdentifierExtension,
  BasicConstraintsExtension,
  ExtendedKeyUsage,
  ExtendedKeyUsageExtension,
  Extension,
  KeyUsageFlags,
  KeyUsagesExtension,
  Name,
  SubjectAlternativeNameExtension,
  SubjectKeyIdentifierExtension,
  X509CertificateGenerator,
} from './x509.js';
import type { JsonName } from './x509.js';
import type { WebCryptoProvider } from './crypto-provider.js';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
type SigningAlgorithm = webcrypto.Algorithm | webcrypto.EcdsaParams;
type PeculiarCrypto = NonNullable<Parameters<typeof X509CertificateGenerator.create>[1]>;

function toPeculiarCrypto(provider: WebCryptoProvider): PeculiarCrypto {
  // @peculiar/x509 is typed against the DOM Crypto; Node's webcrypto implements the same interface.
  return provider as unknown as PeculiarCrypto;
}

const CA_KEY_USAGE = KeyUsageFlags.keyCertSign | KeyUsageFlags.cRLSign | KeyUsageFlags.digitalSignature;

function nameOf(commonName: string, organization?: string): JsonName {
  return organization === undefined ? [{ CN: [commonName] }] : [{ CN: [commonName] }, { O: [organization] }];
}

export interface RootParams {
  readonly crypto: WebCryptoProvider;
  readonly keys: CryptoKeyPair;
  readonly signingAlgorithm: SigningAlgorithm;
  readonly serialNumber: string;
  readonly commonName: string;
  readonly organization: string | undefined;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

/** DER of a self-signed root: basicConstraints cA (critical), keyUsage keyCertSign/cRLSign/digitalSignature, SKI. */
export async function createRootCertificate(params: RootParams): Promise<Uint8Array> {
  const crypto = toPeculiarCrypto(params.crypto);
  const cert = await X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: params.serialNumber,
      name: nameOf(params.commonName, params.organization),
      notBefore: params.notBefore,
      notAfter: params.notAfter,
      keys: params.keys,
      signingAlgorithm: params.signingAlgorithm,
      extensions: [
        new BasicConstraintsExtension(true, undefined, true),
        new KeyUsagesExtension(CA_KEY_USAGE, true),
        await SubjectKeyIdentifierExtension.create(params.keys.publicKey, false, crypto),
      ],
    },
    crypto,
  );
  return new Uint8Array(cert.rawData);
}

/** What every certificate signed by an existing CA needs to know about its issuer. */
export interface IssuerParams {
  readonly crypto: WebCryptoProvider;
  /** DER of the issuer's subject Name, reused as the new certificate's issuer. */
  readonly issuerName: Uint8Array;
  readonly issuerKeyId: string;
  readonly signingKey: CryptoKey;
  readonly signingAlgorithm: SigningAlgorithm;
}

/** What every certificate signed by an existing CA carries besides its subject and extensions. */
export interface SignedParams extends IssuerParams {
  readonly publicKey: CryptoKey;
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

export interface IntermediateParams extends SignedParams {
  readonly commonName: string;
  readonly permittedDomains: readonly string[];
  readonly permittedIpRanges: readonly string[];
}

function subtree(name: AsnGeneralName): GeneralSubtree {
  return new GeneralSubtree({ base: name });
}

/**
 * A critical nameConstraints extension. With no permitted IP ranges every IP address is excluded: RFC 5280
 * leaves name types without a permitted subtree unconstrained, so an intermediate limited to DNS names could
 * otherwise still sign for any IP address.
 */
function nameConstraintsExtension(domains: readonly string[], ipRanges: readonly string[]): Extension {
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

/** DER of an intermediate CA with pathLen 0 and critical name constraints. */
export function createIntermediateCertificate(params: IntermediateParams): Promise<Uint8Array> {
  return signCertificate(
    params,
    params.commonName,
    [new BasicConstraintsExtension(true, 0, true), new KeyUsagesExtension(CA_KEY_USAGE, true)],
    [nameConstraintsExtension(params.permittedDomains, params.permittedIpRanges)],
  );
}

/** DER of a certificate for `subject` signed by the issuer: `leading` extensions, SKI, AKI, then `trailing`. */
async function signCertificate(
  params: SignedParams,
  subject: string,
  leading: readonly Extension[],
  trailing: readonly Extension[] = [],
): Promise<Uint8Array> {
  const crypto = toPeculiarCrypto(params.crypto);
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: params.serialNumber,
      subject: nameOf(subject),
      issuer: new Name(params.issuerName),
      notBefore: params.notBefore,
      notAfter: params.notAfter,
      publicKey: params.publicKey,
      signingKey: params.signingKey,
      signingAlgorithm: params.signingAlgorithm,
      extensions: [
        ...leading,
        await SubjectKeyIdentifierExtension.create(params.publicKey, false, crypto),
        new AuthorityKeyIdentifierExtension(params.issuerKeyId),
        ...trailing,
      ],
    },
    crypto,
  );
  return new Uint8Array(cert.rawData);
}

export interface ClientParams extends SignedParams {
  readonly nodeId: string;
  readonly uris: readonly string[];
}

/** DER of an mTLS client certificate: EKU clientAuth, keyUsage digitalSignature, URI SANs, SKI/AKI. */
export function createClientCertificate(params: ClientParams): Promise<Uint8Array> {
  return signCertificate(params, params.nodeId, [
    new BasicConstraintsExtension(false, undefined, true),
    new KeyUsagesExtension(KeyUsageFlags.digitalSignature, true),
    new ExtendedKeyUsageExtension([ExtendedKeyUsage.clientAuth], false),
    new SubjectAlternativeNameExtension(
      params.uris.map((value) => ({ type: 'url' as const, value })),
      false,
    ),
  ]);
}
