/**
 * The control plane's PKI: a root CA from mitm-core's CertificateAuthority (kept in --ca-dir), the
 * rule-sync server certificate, sidecar mTLS client certificates and per-sidecar interception
 * intermediates. mitm-core's `issueLeaf` only issues serverAuth leaves, so client certificates
 * (clientAuth EKU + SPIFFE URI SAN) are signed here with @peculiar/x509 using the CA key; that signer
 * belongs in mitm-core (`issueClientLeaf`) and should move there.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import * as x509 from '@peculiar/x509';
import { SPIFFE_NODE_PREFIX } from '@httpmesh/rule-sync';
import { CertificateRequestError } from './errors.js';

type PeculiarCrypto = Parameters<typeof x509.X509CertificateGenerator.create>[1];
type CryptoKey = webcrypto.CryptoKey;
// @peculiar/x509 is typed against the DOM Crypto; Node's webcrypto implements the same interface.
const peculiarCrypto = webcrypto as unknown as PeculiarCrypto;

export interface SidecarBundle {
  nodeId: string;
  /** The sidecar's client certificate (PEM), identity in URI SAN `spiffe://httpmesh/node/<id>` and CN. */
  certPem: string;
  keyPem: string;
  /** CA the sidecar trusts for the control plane's server certificate. */
  caPem: string;
  notAfter: string;
}

export interface InterceptionIntermediate {
  nodeId: string;
  certPem: string;
  keyPem: string;
  /** Intermediate + root, for the sidecar's leaf chains. */
  chainPem: string;
  permittedDomains: readonly string[];
  notAfter: string;
}

const NODE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;
const DAY_MS = 86_400_000;

function toPem(der: ArrayBuffer, label: string): string {
  const b64 = Buffer.from(der)
    .toString('base64')
    .replace(/(.{64})/g, '$1\n')
    .replace(/\n$/, '');
  return `-----BEGIN ${label}-----\n${b64}\n-----END ${label}-----\n`;
}

function pemBody(pem: string): Buffer {
  return Buffer.from(pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, ''), 'base64');
}

export class ControlPlanePki {
  private constructor(
    readonly ca: CertificateAuthority,
    private readonly caKeyPem: string,
  ) {}

  /** Loads the CA from `dir`, or creates and saves one there (key mode 0600) when the dir has none. */
  static async open(dir: string): Promise<ControlPlanePki> {
    let ca: CertificateAuthority;
    if (existsSync(join(dir, 'ca.crt'))) {
      ca = await CertificateAuthority.loadFromDir(dir);
    } else {
      ca = await CertificateAuthority.create({
        commonName: 'httpmesh control plane CA',
        keyAlgorithm: 'ECDSA-P256',
      });
      await ca.saveToDir(dir);
    }
    const pem = await ca.toPem();
    return new ControlPlanePki(ca, pem.keyPem);
  }

  get caPem(): string {
    return this.ca.certPem;
  }

  /** Server certificate for the rule-sync port (serverAuth), for the given host names / addresses. */
  async serverCertificate(hosts: readonly string[]): Promise<{ cert: string; key: string; ca: string }> {
    const leaf = await this.ca.issueLeaf(hosts);
    return { cert: leaf.chainPem, key: leaf.keyPem, ca: this.caPem };
  }

  private async signingKey(): Promise<{
    key: CryptoKey;
    algorithm: webcrypto.EcdsaParams | webcrypto.Algorithm;
  }> {
    const caCert = new x509.X509Certificate(this.caPem);
    const publicAlgorithm = caCert.publicKey.algorithm as
      | webcrypto.EcKeyAlgorithm
      | webcrypto.RsaHashedKeyAlgorithm;
    if (publicAlgorithm.name === 'ECDSA') {
      const namedCurve = (publicAlgorithm as webcrypto.EcKeyAlgorithm).namedCurve;
      const key = await webcrypto.subtle.importKey(
        'pkcs8',
        pemBody(this.caKeyPem),
        { name: 'ECDSA', namedCurve },
        false,
        ['sign'],
      );
      return { key, algorithm: { name: 'ECDSA', hash: namedCurve === 'P-384' ? 'SHA-384' : 'SHA-256' } };
    }
    const key = await webcrypto.subtle.importKey(
      'pkcs8',
      pemBody(this.caKeyPem),
      { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256' },
      false,
      ['sign'],
    );
    return { key, algorithm: { name: 'RSASSA-PKCS1-v1_5' } };
  }

  /**
   * Issues a sidecar's mTLS client certificate bundle. The rule-sync server accepts a sidecar only when its
   * Hello's node id equals the certificate's SPIFFE id.
   * @throws CertificateRequestError for an invalid node id
   */
  async issueSidecarBundle(nodeId: string, validityDays = 30): Promise<SidecarBundle> {
    if (!NODE_ID.test(nodeId)) {
      throw new CertificateRequestError(
        `node id "${nodeId}" must be 1-128 characters of A-Z a-z 0-9 . _ : - starting with a letter or digit`,
      );
    }
    const { key: caKey, algorithm } = await this.signingKey();
    const caCert = new x509.X509Certificate(this.caPem);
    const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
      'sign',
      'verify',
    ])) as webcrypto.CryptoKeyPair;
    const now = Math.floor(Date.now() / 1000) * 1000;
    const notAfter = new Date(Math.min(now + validityDays * DAY_MS, caCert.notAfter.getTime()));
    const cert = await x509.X509CertificateGenerator.create(
      {
        serialNumber: Buffer.from(webcrypto.getRandomValues(new Uint8Array(16)))
          .toString('hex')
          .replace(/^[89a-f]/, '4'),
        subject: `CN=${nodeId}`,
        issuer: caCert.subject,
        notBefore: new Date(now - 3_600_000),
        notAfter,
        publicKey: keys.publicKey as never,
        signingKey: caKey as never,
        signingAlgorithm: algorithm,
        extensions: [
          new x509.BasicConstraintsExtension(false, undefined, true),
          new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
          new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
          new x509.SubjectAlternativeNameExtension(
            [{ type: 'url', value: `${SPIFFE_NODE_PREFIX}${encodeURIComponent(nodeId)}` }],
            false,
          ),
          await x509.AuthorityKeyIdentifierExtension.create(caCert, false, peculiarCrypto),
        ],
      },
      peculiarCrypto,
    );
    const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', keys.privateKey);
    return {
      nodeId,
      certPem: cert.toString('pem'),
      keyPem: toPem(pkcs8, 'PRIVATE KEY'),
      caPem: this.caPem,
      notAfter: notAfter.toISOString(),
    };
  }

  /** A name-constrained intermediate CA for one sidecar's TLS interception (mitm-core issueIntermediate). */
  async issueInterceptionIntermediate(
    nodeId: string,
    permittedDomains: readonly string[],
    validityDays = 30,
  ): Promise<InterceptionIntermediate> {
    if (!NODE_ID.test(nodeId)) throw new CertificateRequestError(`node id "${nodeId}" is invalid`);
    if (permittedDomains.length === 0)
      throw new CertificateRequestError('permittedDomains must list at least one domain');
    let intermediate: CertificateAuthority;
    try {
      intermediate = await this.ca.issueIntermediate({
        permittedDomains,
        validityDays,
        commonName: `httpmesh sidecar ${nodeId}`.slice(0, 64),
      });
    } catch (err) {
      throw new CertificateRequestError(
        `cannot issue an intermediate for ${nodeId}: ${(err as Error).message}`,
      );
    }
    const pem = await intermediate.toPem();
    return {
      nodeId,
      certPem: intermediate.certPem,
      keyPem: pem.keyPem,
      chainPem: [intermediate.certPem, ...intermediate.chainPems].join(''),
      permittedDomains,
      notAfter: intermediate.notAfter.toISOString(),
    };
  }
}
