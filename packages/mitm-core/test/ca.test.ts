import { X509Certificate } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import type { SecureContext, TLSSocket } from 'node:tls';
import { describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../src/ca/index.js';
import type { CreateCaOptions } from '../src/ca/index.js';
import { hasOpenssl, inCi, opensslSelfSigned, opensslText, opensslVerify } from './ca-helpers.js';

const DAY = 86_400_000;
const needsOpenssl = !hasOpenssl && !inCi;

/** A real TLS server whose certificate comes from `secureContextFor(SNI)`; answers "ok" to every connection. */
async function startSniServer(
  ca: CertificateAuthority,
  defaultContext?: { certPem: string; keyPem: string },
) {
  const server = createServer(
    {
      SNICallback: (servername, callback) => {
        ca.secureContextFor(servername).then(
          (context) => callback(null, context),
          (error: Error) => callback(error),
        );
      },
      ...(defaultContext ? { cert: defaultContext.certPem, key: defaultContext.keyPem } : {}),
    },
    (socket) => socket.end('ok'),
  );
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, port: (server.address() as AddressInfo).port };
}

async function tlsFetch(
  port: number,
  options: { ca: string; servername?: string; host?: string },
): Promise<{ body: string; peer: ReturnType<TLSSocket['getPeerCertificate']> }> {
  const socket = connect({
    port,
    host: options.host ?? '127.0.0.1',
    ca: options.ca,
    ...(options.servername ? { servername: options.servername } : {}),
  });
  await once(socket, 'secureConnect');
  const peer = socket.getPeerCertificate();
  let body = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket) body += chunk;
  return { body, peer };
}

describe('CertificateAuthority.create', () => {
  test.skipIf(needsOpenssl)('creates an ECDSA P-256 root that OpenSSL reads as a CA', async () => {
    const before = Date.now();
    const ca = await CertificateAuthority.create({
      commonName: 'httpmesh test root',
      keyAlgorithm: 'ECDSA-P256',
      validityDays: 30,
    });
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.subject).toBe('CN=httpmesh test root');
    expect(cert.issuer).toBe(cert.subject);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(cert.publicKey.asymmetricKeyDetails?.namedCurve).toBe('prime256v1');
    const notAfter = Date.parse(cert.validTo);
    expect(notAfter).toBeGreaterThanOrEqual(before + 30 * DAY - 2000);
    expect(notAfter).toBeLessThanOrEqual(Date.now() + 30 * DAY + 1000);
    const text = opensslText(ca.certPem);
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE/);
    expect(text).toMatch(/Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/);
  });

  test('creates an RSA-2048 root', async () => {
    const ca = await CertificateAuthority.create({
      commonName: 'rsa root',
      keyAlgorithm: 'RSA-2048',
      validityDays: 10,
    });
    const cert = new X509Certificate(ca.certPem);
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
    expect(cert.publicKey.asymmetricKeyDetails?.modulusLength).toBe(2048);
    const leaf = await ca.issueLeaf(['rsa.test']);
    expect(new X509Certificate(leaf.certPem).verify(cert.publicKey)).toBe(true);
  });

  test.each([
    [{ commonName: '' }, 'empty commonName'],
    [{ commonName: 'x'.repeat(65) }, 'long commonName'],
    [{ commonName: 'a', validityDays: 0 }, 'zero validity'],
    [{ commonName: 'a', validityDays: Number.NaN }, 'NaN validity'],
    [{ commonName: 'a', leafValidityDays: 48 }, 'leaf validity over 47 days'],
    [{ commonName: 'a', cacheSize: 0 }, 'empty cache'],
    [{ commonName: 'a', keyAlgorithm: 'DSA' as 'RSA-2048' }, 'unknown algorithm'],
  ] as Array<[CreateCaOptions, string]>)('rejects bad options (%j: %s)', async (options) => {
    await expect(CertificateAuthority.create(options)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_OPTIONS_INVALID',
    });
  });
});

describe('issueLeaf', () => {
  test.skipIf(needsOpenssl)(
    'mints a leaf that OpenSSL verifies for TLS server use, with DNS and IP SANs',
    async () => {
      const ca = await CertificateAuthority.create({ commonName: 'leaf root', validityDays: 365 });
      const before = Date.now();
      const leaf = await ca.issueLeaf([
        'Payments.Partner.com.',
        '10.1.2.3',
        '[2001:db8::1]',
        'bücher.example',
      ]);
      const after = Date.now();
      const verified = opensslVerify(ca.certPem, leaf.certPem, undefined, ['-purpose', 'sslserver']);
      expect(verified.output).toContain(': OK');
      expect(verified.ok).toBe(true);
      const cert = new X509Certificate(leaf.certPem);
      expect(cert.ca).toBe(false);
      expect(cert.subjectAltName).toBe(
        'DNS:payments.partner.com, IP Address:10.1.2.3, IP Address:2001:DB8:0:0:0:0:0:1, DNS:xn--bcher-kva.example',
      );
      expect(cert.checkHost('payments.partner.com')).toBe('payments.partner.com');
      expect(cert.checkIP('10.1.2.3')).toBe('10.1.2.3');
      expect(cert.checkHost('other.partner.com')).toBeUndefined();
      expect(cert.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1']);
      const notBefore = Date.parse(cert.validFrom);
      const notAfter = Date.parse(cert.validTo);
      // Backdated one hour (second precision in the certificate).
      expect(notBefore).toBeGreaterThanOrEqual(before - 3_600_000 - 1000);
      expect(notBefore).toBeLessThanOrEqual(after - 3_600_000);
      expect(notAfter - notBefore).toBeLessThanOrEqual(47 * DAY + 3_600_000);
      expect(notAfter).toBeGreaterThan(after + 46 * DAY);
      expect(leaf.notAfter.getTime()).toBe(notAfter);
      const text = opensslText(leaf.certPem);
      expect(text).toMatch(/Basic Constraints: critical\s+CA:FALSE/);
      expect(text).toMatch(/Extended Key Usage:\s+TLS Web Server Authentication/);
      expect(text).toContain('ASN1 OID: prime256v1');
    },
  );

  test('shares one leaf key pair across hosts and never outlives the CA', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'short root', validityDays: 5 });
    const a = await ca.issueLeaf(['a.test']);
    const b = await ca.issueLeaf(['b.test']);
    expect(a.keyPem).toBe(b.keyPem);
    expect(a.keyPem).toContain('BEGIN PRIVATE KEY');
    const certA = new X509Certificate(a.certPem);
    const certB = new X509Certificate(b.certPem);
    expect(certA.publicKey.equals(certB.publicKey)).toBe(true);
    expect(certA.serialNumber).not.toBe(certB.serialNumber);
    expect(certA.checkPrivateKey(await import('node:crypto').then((c) => c.createPrivateKey(a.keyPem)))).toBe(
      true,
    );
    // The CA expires in 5 days, so the leaf does too (not 47).
    expect(Date.parse(certA.validTo)).toBe(ca.notAfter.getTime());
  });

  test('honours leafValidityDays and an RSA leaf key', async () => {
    const ca = await CertificateAuthority.create({
      commonName: 'r',
      leafValidityDays: 2,
      leafKeyAlgorithm: 'RSA-2048',
    });
    const leaf = await ca.issueLeaf(['x.test']);
    const cert = new X509Certificate(leaf.certPem);
    expect(Date.parse(cert.validTo) - Date.parse(cert.validFrom)).toBe(2 * DAY + 3_600_000);
    expect(cert.publicKey.asymmetricKeyType).toBe('rsa');
  });

  test.each([
    [''],
    ['a..b'],
    ['foo bar.com'],
    [`${'x'.repeat(64)}.com`],
    [`${'a.'.repeat(127)}com`],
    ['-lead.com'],
    ['trail-.com'],
    ['*.com'],
    ['a.*.com'],
    ['fe80::1%eth0'],
    ['ex\u0000ample.com'],
    ['\u00ff\u0000.com'],
  ])('rejects invalid hostname %j with HTTPMESH_CA_HOSTNAME_INVALID', async (hostname) => {
    const ca = await CertificateAuthority.create({ commonName: 'names' });
    await expect(ca.issueLeaf([hostname])).rejects.toMatchObject({ code: 'HTTPMESH_CA_HOSTNAME_INVALID' });
    await expect(ca.secureContextFor(hostname)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_HOSTNAME_INVALID',
    });
    // Failures are not cached.
    expect(ca.stats().cacheSize).toBe(0);
  });

  test('rejects an empty or oversized host list', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'list' });
    await expect(ca.issueLeaf([])).rejects.toMatchObject({ code: 'HTTPMESH_CA_OPTIONS_INVALID' });
    const many = Array.from({ length: 101 }, (_, i) => `h${i}.test`);
    await expect(ca.issueLeaf(many)).rejects.toMatchObject({ code: 'HTTPMESH_CA_OPTIONS_INVALID' });
  });
});

describe('secureContextFor over real TLS', () => {
  test('a client trusting the root gets a verified connection for the SNI name', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'tls root' });
    const { server, port } = await startSniServer(ca);
    try {
      const first = await tlsFetch(port, { ca: ca.certPem, servername: 'api.example.test' });
      expect(first.body).toBe('ok');
      expect(first.peer.subjectaltname).toBe('DNS:api.example.test');
      const second = await tlsFetch(port, { ca: ca.certPem, servername: 'other.example.test' });
      expect(second.peer.subjectaltname).toBe('DNS:other.example.test');
      // Same host again: served from the cache, same certificate.
      const third = await tlsFetch(port, { ca: ca.certPem, servername: 'api.example.test' });
      expect(third.peer.serialNumber).toBe(first.peer.serialNumber);
      expect(ca.stats().leavesIssued).toBe(2);
    } finally {
      server.close();
    }
  });

  test('a client without SNI verifies an IP-address leaf', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'ip root' });
    const leaf = await ca.issueLeaf(['127.0.0.1']);
    const { server, port } = await startSniServer(ca, { certPem: leaf.chainPem, keyPem: leaf.keyPem });
    try {
      // Node sends no SNI for an IP host; identity is checked against the IP SAN.
      const result = await tlsFetch(port, { ca: ca.certPem, host: '127.0.0.1' });
      expect(result.body).toBe('ok');
      expect(result.peer.subjectaltname).toBe('IP Address:127.0.0.1');
    } finally {
      server.close();
    }
  });

  test('a client that does not trust the root fails verification', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'trusted' });
    const stranger = await CertificateAuthority.create({ commonName: 'stranger' });
    const { server, port } = await startSniServer(ca);
    try {
      const socket = connect({ port, host: '127.0.0.1', servername: 'x.test', ca: stranger.certPem });
      const [error] = (await once(socket, 'error')) as [NodeJS.ErrnoException];
      expect(error.code).toBe('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    } finally {
      server.close();
    }
  });

  test('concurrent first requests for one host mint once (single flight)', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'flight' });
    const contexts = await Promise.all(Array.from({ length: 50 }, () => ca.secureContextFor('same.test')));
    const first = contexts[0];
    expect(contexts.every((context) => context === first)).toBe(true);
    expect(ca.stats().leavesIssued).toBe(1);
    const others = await Promise.all([ca.secureContextFor('one.test'), ca.secureContextFor('two.test')]);
    expect(others[0]).not.toBe(others[1]);
    expect(ca.stats().leavesIssued).toBe(3);
  });

  test('the cache is a bounded LRU', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'lru', cacheSize: 3 });
    const a = await ca.secureContextFor('a.test');
    await ca.secureContextFor('b.test');
    await ca.secureContextFor('c.test');
    // Touch a so b becomes the least recently used.
    expect(await ca.secureContextFor('a.test')).toBe(a);
    await ca.secureContextFor('d.test');
    expect(ca.stats().cacheSize).toBe(3);
    expect(ca.stats().leavesIssued).toBe(4);
    expect(await ca.secureContextFor('a.test')).toBe(a);
    expect(ca.stats().leavesIssued).toBe(4);
    await ca.secureContextFor('b.test');
    expect(ca.stats().leavesIssued).toBe(5);
    expect(ca.stats().cacheSize).toBe(3);
  });

  test('renews a cached context before the leaf expires, serving the old one meanwhile', async () => {
    let now = Date.now();
    const ca = await CertificateAuthority.create({
      commonName: 'renew',
      leafValidityDays: 30,
      renewBeforeDays: 5,
      clock: () => now,
    });
    const original = await ca.secureContextFor('renew.test');
    now += 20 * DAY;
    expect(await ca.secureContextFor('renew.test')).toBe(original);
    expect(ca.stats().leavesIssued).toBe(1);
    // Inside the renewal window: the old (still valid) context is served and a new one is minted behind it.
    now += 6 * DAY;
    expect(await ca.secureContextFor('renew.test')).toBe(original);
    const deadline = Date.now() + 5000;
    let renewed: SecureContext = original;
    while (renewed === original && Date.now() < deadline) {
      await new Promise((resolve) => setImmediate(resolve));
      renewed = await ca.secureContextFor('renew.test');
    }
    expect(renewed).not.toBe(original);
    expect(ca.stats().leavesIssued).toBe(2);
    // Past the old leaf's expiry without a cached replacement, a request waits for a fresh mint.
    now += 31 * DAY;
    const fresh = await ca.secureContextFor('renew.test');
    expect(fresh).not.toBe(renewed);
    expect(ca.stats().leavesIssued).toBe(3);
  });

  test('a renewed leaf carries the new validity window', async () => {
    let now = Date.now();
    const ca = await CertificateAuthority.create({
      commonName: 'renew2',
      leafValidityDays: 10,
      clock: () => now,
    });
    const first = await ca.issueLeaf(['w.test']);
    now += 9 * DAY;
    const second = await ca.issueLeaf(['w.test']);
    expect(second.notBefore.getTime() - first.notBefore.getTime()).toBe(9 * DAY);
    expect(new X509Certificate(second.certPem).validFrom).not.toBe(
      new X509Certificate(first.certPem).validFrom,
    );
  });
});

describe('leaf encoding edge cases', () => {
  test.skipIf(needsOpenssl)('P-384 and RSA-3072 CAs sign leaves OpenSSL verifies', async () => {
    for (const keyAlgorithm of ['ECDSA-P384', 'RSA-3072'] as const) {
      const ca = await CertificateAuthority.create({ commonName: `edge ${keyAlgorithm}`, keyAlgorithm });
      const leaf = await ca.issueLeaf(['edge.test']);
      expect(opensslVerify(ca.certPem, leaf.certPem, undefined, ['-purpose', 'sslserver']).ok).toBe(true);
      expect(opensslText(leaf.certPem)).toContain(
        keyAlgorithm === 'ECDSA-P384' ? 'ecdsa-with-SHA384' : 'sha256WithRSAEncryption',
      );
    }
  });

  test.skipIf(needsOpenssl)('IPv6 forms and IP-only leaves encode correctly', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'v6' });
    const leaf = await ca.issueLeaf([
      '::',
      '::1',
      '1::',
      'fe80::1:2',
      '2001:db8:0:0:1:0:0:1',
      '255.255.255.255',
    ]);
    const cert = new X509Certificate(leaf.certPem);
    expect(cert.subjectAltName).toBe(
      'IP Address:0:0:0:0:0:0:0:0, IP Address:0:0:0:0:0:0:0:1, IP Address:1:0:0:0:0:0:0:0, ' +
        'IP Address:FE80:0:0:0:0:0:1:2, IP Address:2001:DB8:0:0:1:0:0:1, IP Address:255.255.255.255',
    );
    // No DNS name: the subject is O=httpmesh, never an IP in the CN.
    expect(cert.subject).toBe('O=httpmesh');
    expect(cert.checkIP('fe80::1:2')).toBe('fe80::1:2');
    expect(opensslVerify(ca.certPem, leaf.certPem).ok).toBe(true);
  });

  test.skipIf(needsOpenssl)(
    'names longer than 64 characters stay out of the CN but are in the SAN',
    async () => {
      const ca = await CertificateAuthority.create({ commonName: 'long' });
      const longName = `${'a'.repeat(60)}.${'b'.repeat(60)}.example.test`;
      const leaf = await ca.issueLeaf([longName, 'short.test']);
      const cert = new X509Certificate(leaf.certPem);
      expect(cert.subject).toBe('CN=short.test');
      expect(cert.checkHost(longName)).toBe(longName);
      expect(opensslVerify(ca.certPem, leaf.certPem).ok).toBe(true);
    },
  );

  test.skipIf(needsOpenssl)('validity past 2049 is encoded as GeneralizedTime', async () => {
    const now = Date.UTC(2049, 11, 20);
    const ca = await CertificateAuthority.create({ commonName: 'future', clock: () => now });
    const leaf = await ca.issueLeaf(['future.test']);
    const cert = new X509Certificate(leaf.certPem);
    expect(Date.parse(cert.validTo)).toBe(now + 47 * DAY);
    expect(Date.parse(cert.validFrom)).toBe(now - 3_600_000);
    const at = String(Math.floor(now / 1000) + 86_400);
    expect(opensslVerify(ca.certPem, leaf.certPem, undefined, ['-attime', at]).ok).toBe(true);
  });

  test.skipIf(needsOpenssl)(
    'leaves from an OpenSSL CA with a PrintableString subject chain to it',
    async () => {
      const { certPem, keyPem } = opensslSelfSigned({
        subject: '/C=DE/O=Example Org/CN=Org Root',
        extraArgs: ['-config', '/dev/null', '-set_serial', '7', '-utf8', '-multivalue-rdn'],
        extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign'],
        env: { ...process.env, OPENSSL_CONF: '/dev/null' },
      });
      const ca = await CertificateAuthority.load(certPem, keyPem);
      const leaf = await ca.issueLeaf(['org.test']);
      expect(new X509Certificate(leaf.certPem).issuer).toBe(new X509Certificate(certPem).subject);
      expect(opensslVerify(certPem, leaf.certPem).ok).toBe(true);
    },
  );
});
