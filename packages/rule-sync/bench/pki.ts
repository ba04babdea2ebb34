// Bench-only PKI built in memory with @peculiar/x509 (1,000 client certificates in about a second).
import 'reflect-metadata'; // tsyringe (used by @peculiar/x509) needs it loaded first
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' };
x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

async function pemKey(key: webcrypto.CryptoKey): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY');
}

export interface BenchPki {
  ca: string;
  server: { cert: string; key: string };
  /** One shared client key; one certificate per node id (URI SAN spiffe://httpmesh/node/<id>). */
  clientKey: string;
  clientCert(nodeId: string): Promise<string>;
}

export async function createBenchPki(): Promise<BenchPki> {
  const notBefore = new Date(Date.now() - 60_000);
  const notAfter = new Date(Date.now() + 24 * 3600_000);
  const caKeys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const ca = await x509.X509CertificateGenerator.createSelfSigned({
    name: 'CN=httpmesh bench CA',
    keys: caKeys,
    notBefore,
    notAfter,
    signingAlgorithm: ALG,
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
    ],
  });
  const leaf = async (
    subject: string,
    keys: webcrypto.CryptoKeyPair,
    extensions: x509.Extension[],
  ): Promise<string> =>
    (
      await x509.X509CertificateGenerator.create({
        subject,
        issuer: ca.subject,
        notBefore,
        notAfter,
        signingAlgorithm: ALG,
        publicKey: keys.publicKey,
        signingKey: caKeys.privateKey,
        extensions,
      })
    ).toString('pem');
  const serverKeys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  const serverCert = await leaf('CN=control-plane', serverKeys, [
    new x509.SubjectAlternativeNameExtension([
      { type: 'ip', value: '127.0.0.1' },
      { type: 'dns', value: 'localhost' },
    ]),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
  ]);
  const clientKeys = (await webcrypto.subtle.generateKey(ALG, true, [
    'sign',
    'verify',
  ])) as webcrypto.CryptoKeyPair;
  return {
    ca: ca.toString('pem'),
    server: { cert: serverCert, key: await pemKey(serverKeys.privateKey) },
    clientKey: await pemKey(clientKeys.privateKey),
    clientCert: (nodeId) =>
      leaf('CN=sidecar', clientKeys, [
        new x509.SubjectAlternativeNameExtension([
          { type: 'url', value: `spiffe://httpmesh/node/${nodeId}` },
        ]),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth]),
      ]),
  };
}
