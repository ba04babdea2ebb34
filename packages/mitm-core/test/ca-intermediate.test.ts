import { X509Certificate as NodeX509Certificate, createPrivateKey, webcrypto } from 'node:crypto';
import { once } from 'node:events';
import type { AddressInfo } from 'node:net';
import { connect, createServer } from 'node:tls';
import { describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../src/ca/index.js';
import {
  SubjectAlternativeNameExtension,
  X509Certificate,
  X509CertificateGenerator,
} from '../src/ca/x509.js';
import { hasOpenssl, inCi, opensslSelfSigned, opensslText, opensslVerify } from './ca-helpers.js';

const needsOpenssl = !hasOpenssl && !inCi;

/**
 * Signs a leaf with the intermediate's private key directly, bypassing the CA's own constraint check:
 * this is what a stolen sidecar key could do, and what a verifier must reject.
 */
async function forgeLeaf(
  intermediate: CertificateAuthority,
  sans: Array<{ type: 'dns' | 'ip'; value: string }>,
) {
  const { keyPem } = await intermediate.toPem();
  const pkcs8 = createPrivateKey(keyPem).export({ type: 'pkcs8', format: 'der' });
  const signingKey = await webcrypto.subtle.importKey(
    'pkcs8',
    pkcs8,
    { name: 'ECDSA', namedCurve: 'P-256' },
    false,
    ['sign'],
  );
  const leafKeys = await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, [
    'sign',
    'verify',
  ]);
  const issuer = new X509Certificate(intermediate.certPem);
  const cert = await X509CertificateGenerator.create(
    {
      serialNumber: '01',
      subject: [{ CN: [sans[0]?.value ?? 'x'] }],
      issuer: issuer.subjectName,
      notBefore: new Date(Date.now() - 3_600_000),
      notAfter: new Date(Date.now() + 86_400_000),
      publicKey: leafKeys.publicKey,
      signingKey,
      signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
      extensions: [new SubjectAlternativeNameExtension(sans)],
    },
    webcrypto as unknown as NonNullable<Parameters<typeof X509CertificateGenerator.create>[1]>,
  );
  const exported = await webcrypto.subtle.exportKey('pkcs8', leafKeys.privateKey);
  const leafKeyPem = createPrivateKey({ key: Buffer.from(exported), format: 'der', type: 'pkcs8' }).export({
    type: 'pkcs8',
    format: 'pem',
  }) as string;
  return { certPem: `${cert.toString('pem')}\n`, keyPem: leafKeyPem };
}

/** Serves one fixed certificate chain over TLS and reports how a verifying Node client fares. */
async function nodeClientVerdict(rootPem: string, chainPem: string, keyPem: string, servername: string) {
  const server = createServer({ cert: chainPem, key: keyPem }, (socket) => socket.end('ok'));
  server.on('tlsClientError', () => {});
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  try {
    const socket = connect({
      port: (server.address() as AddressInfo).port,
      host: '127.0.0.1',
      servername,
      ca: rootPem,
    });
    const outcome = await new Promise<string>((resolve) => {
      socket.once('secureConnect', () => resolve('ok'));
      socket.once('error', (error: NodeJS.ErrnoException) => resolve(`${error.code}: ${error.message}`));
    });
    socket.destroy();
    return outcome;
  } finally {
    server.close();
  }
}

describe('issueIntermediate', () => {
  test.skipIf(needsOpenssl)('creates a name-constrained intermediate CA that OpenSSL accepts', async () => {
    const root = await CertificateAuthority.create({ commonName: 'mesh root', validityDays: 365 });
    const intermediate = await root.issueIntermediate({
      permittedDomains: ['corp.test', '.svc.test'],
      validityDays: 30,
    });
    expect(intermediate.constrained).toBe(true);
    const cert = new NodeX509Certificate(intermediate.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.issuer).toBe('CN=mesh root');
    expect(cert.verify(new NodeX509Certificate(root.certPem).publicKey)).toBe(true);
    const text = opensslText(intermediate.certPem);
    expect(text).toMatch(
      /Name Constraints: critical\s+Permitted:\s+DNS:corp\.test\s+DNS:\.svc\.test\s+Excluded:\s+IP:0\.0\.0\.0\/0\.0\.0\.0/,
    );
    expect(text).toMatch(/Basic Constraints: critical\s+CA:TRUE, pathlen:0/);
    expect(opensslVerify(root.certPem, intermediate.certPem).ok).toBe(true);
  });

  test.skipIf(needsOpenssl)(
    'leaf -> intermediate -> root verifies with OpenSSL and a real Node TLS client',
    async () => {
      const root = await CertificateAuthority.create({ commonName: 'chain root' });
      const intermediate = await root.issueIntermediate({
        permittedDomains: ['corp.test'],
        validityDays: 30,
      });
      const leaf = await intermediate.issueLeaf(['api.corp.test', 'corp.test', 'a.b.corp.test']);
      // The chain a server sends is leaf + intermediate, never the root.
      expect(leaf.chainPem).toBe(leaf.certPem + intermediate.certPem);
      const verified = opensslVerify(root.certPem, leaf.certPem, intermediate.certPem, [
        '-purpose',
        'sslserver',
      ]);
      expect(verified.output).toContain(': OK');

      // A real TLS server whose contexts come from the intermediate; the client only trusts the root.
      const server = createServer(
        {
          SNICallback: (name, callback) => {
            intermediate.secureContextFor(name).then(
              (context) => callback(null, context),
              (error: Error) => callback(error),
            );
          },
        },
        (socket) => socket.end('ok'),
      );
      server.on('tlsClientError', () => {});
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      try {
        const socket = connect({
          port: (server.address() as AddressInfo).port,
          host: '127.0.0.1',
          servername: 'pay.corp.test',
          ca: root.certPem,
        });
        await once(socket, 'secureConnect');
        expect(socket.authorized).toBe(true);
        expect(socket.getPeerCertificate(true).issuerCertificate.subject.CN).toBe('chain root intermediate');
        socket.setEncoding('utf8');
        let body = '';
        for await (const chunk of socket) body += chunk;
        expect(body).toBe('ok');
      } finally {
        server.close();
      }
    },
  );

  test('refuses to mint outside its constraints, with a code', async () => {
    const root = await CertificateAuthority.create({ commonName: 'refuse root' });
    const intermediate = await root.issueIntermediate({ permittedDomains: ['corp.test'] });
    for (const name of ['evil.com', 'xcorp.test', 'corp.test.evil.com', '10.0.0.1', '::1']) {
      await expect(intermediate.issueLeaf(['ok.corp.test', name])).rejects.toMatchObject({
        code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
        name: 'CaNameNotPermittedError',
      });
      await expect(intermediate.secureContextFor(name)).rejects.toMatchObject({
        code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
      });
    }
    expect(() => intermediate.assertCanIssue('deep.sub.corp.test')).not.toThrow();
    expect(intermediate.stats()).toMatchObject({ leavesIssued: 0, cacheSize: 0 });
  });

  test('a flood of refused or invalid names does not evict cached contexts', async () => {
    const root = await CertificateAuthority.create({ commonName: 'flood root' });
    const intermediate = await root.issueIntermediate({ permittedDomains: ['corp.test'], cacheSize: 2 });
    const a = await intermediate.secureContextFor('a.corp.test');
    const b = await intermediate.secureContextFor('b.corp.test');
    for (let i = 0; i < 50; i++) {
      await expect(intermediate.secureContextFor(`x${i}.evil.test`)).rejects.toMatchObject({
        code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
      });
      await expect(intermediate.secureContextFor(`bad name ${i}`)).rejects.toMatchObject({
        code: 'HTTPMESH_CA_HOSTNAME_INVALID',
      });
    }
    expect(await intermediate.secureContextFor('a.corp.test')).toBe(a);
    expect(await intermediate.secureContextFor('b.corp.test')).toBe(b);
    expect(intermediate.stats()).toMatchObject({ leavesIssued: 2, cacheSize: 2 });
  });

  test('".domain" permits only subdomains', async () => {
    const root = await CertificateAuthority.create({ commonName: 'dot root' });
    const intermediate = await root.issueIntermediate({ permittedDomains: ['.svc.test'] });
    await expect(intermediate.issueLeaf(['a.svc.test'])).resolves.toMatchObject({
      certPem: expect.any(String),
    });
    await expect(intermediate.issueLeaf(['svc.test'])).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
    });
  });

  test.skipIf(needsOpenssl)('permittedIpRanges allow IP SANs inside the ranges only', async () => {
    const root = await CertificateAuthority.create({ commonName: 'ip root' });
    const intermediate = await root.issueIntermediate({
      permittedDomains: ['corp.test'],
      permittedIpRanges: ['10.0.0.0/8', 'fd00::/8'],
    });
    const leaf = await intermediate.issueLeaf(['10.1.2.3', 'fd00::5']);
    expect(opensslVerify(root.certPem, leaf.certPem, intermediate.certPem).ok).toBe(true);
    await expect(intermediate.issueLeaf(['192.168.1.1'])).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
    });
    await expect(intermediate.issueLeaf(['fe80::1'])).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
    });
  });

  test.skipIf(needsOpenssl)('OpenSSL and Node reject forged leaves outside the constraints', async () => {
    const root = await CertificateAuthority.create({ commonName: 'forge root' });
    const intermediate = await root.issueIntermediate({ permittedDomains: ['corp.test'] });

    // Control: the forging path itself produces valid certificates when the name is allowed.
    const allowed = await forgeLeaf(intermediate, [{ type: 'dns', value: 'ok.corp.test' }]);
    expect(opensslVerify(root.certPem, allowed.certPem, intermediate.certPem).ok).toBe(true);
    expect(
      await nodeClientVerdict(
        root.certPem,
        allowed.certPem + intermediate.certPem,
        allowed.keyPem,
        'ok.corp.test',
      ),
    ).toBe('ok');

    const outsideDns = await forgeLeaf(intermediate, [{ type: 'dns', value: 'bank.example' }]);
    const dnsVerdict = opensslVerify(root.certPem, outsideDns.certPem, intermediate.certPem);
    expect(dnsVerdict.ok).toBe(false);
    expect(dnsVerdict.output).toContain('permitted subtree violation');
    expect(
      await nodeClientVerdict(
        root.certPem,
        outsideDns.certPem + intermediate.certPem,
        outsideDns.keyPem,
        'bank.example',
      ),
    ).toMatch(/permitted subtree violation/);

    const outsideIp = await forgeLeaf(intermediate, [{ type: 'ip', value: '10.0.0.1' }]);
    const ipVerdict = opensslVerify(root.certPem, outsideIp.certPem, intermediate.certPem);
    expect(ipVerdict.ok).toBe(false);
    expect(ipVerdict.output).toContain('excluded subtree violation');
  });

  test.skipIf(needsOpenssl)(
    'a loaded constrained CA cannot widen its constraints in an intermediate',
    async () => {
      const { certPem: rootPem, keyPem } = opensslSelfSigned({
        subject: '/CN=Constrained Org CA',
        extensions: [
          'basicConstraints=critical,CA:TRUE',
          'keyUsage=critical,keyCertSign',
          'nameConstraints=critical,permitted;DNS:corp.test',
        ],
      });
      const org = await CertificateAuthority.load(rootPem, keyPem);
      expect(org.constrained).toBe(true);
      await expect(org.issueLeaf(['evil.example'])).rejects.toMatchObject({
        code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
      });
      await expect(org.issueIntermediate({ permittedDomains: ['evil.example'] })).rejects.toMatchObject({
        code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
      });
      const narrower = await org.issueIntermediate({ permittedDomains: ['team.corp.test'] });
      await expect(narrower.issueLeaf(['other.corp.test'])).rejects.toMatchObject({
        code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
      });
      const leaf = await narrower.issueLeaf(['api.team.corp.test']);
      expect(opensslVerify(rootPem, leaf.certPem, narrower.certPem).ok).toBe(true);
    },
  );

  test('an intermediate (pathlen 0) cannot create further intermediates', async () => {
    const root = await CertificateAuthority.create({ commonName: 'path root' });
    const intermediate = await root.issueIntermediate({ permittedDomains: ['corp.test'] });
    await expect(intermediate.issueIntermediate({ permittedDomains: ['a.corp.test'] })).rejects.toMatchObject(
      {
        code: 'HTTPMESH_CA_NOT_CA',
      },
    );
  });

  test.each([[[]], [['']], [['*.corp.test']], [['10.0.0.1']], [['bad domain']]])(
    'rejects bad permittedDomains %j',
    async (permittedDomains) => {
      const root = await CertificateAuthority.create({ commonName: 'opts root' });
      await expect(root.issueIntermediate({ permittedDomains })).rejects.toMatchObject({
        code: expect.stringMatching(/^HTTPMESH_CA_(OPTIONS|HOSTNAME)_INVALID$/),
      });
    },
  );

  test.each([['10.0.0.0'], ['10.0.0.0/33'], ['nonsense/8'], ['::/129']])(
    'rejects bad permittedIpRanges %j',
    async (range) => {
      const root = await CertificateAuthority.create({ commonName: 'cidr root' });
      await expect(
        root.issueIntermediate({ permittedDomains: ['a.test'], permittedIpRanges: [range] }),
      ).rejects.toMatchObject({
        code: 'HTTPMESH_CA_OPTIONS_INVALID',
      });
    },
  );

  test.skipIf(needsOpenssl)('a saved and reloaded intermediate keeps its constraints and chain', async () => {
    const root = await CertificateAuthority.create({ commonName: 'reload root' });
    const intermediate = await root.issueIntermediate({ permittedDomains: ['corp.test'], validityDays: 10 });
    const pem = await intermediate.toPem();
    const reloaded = await CertificateAuthority.load(pem.certPem, pem.keyPem);
    expect(reloaded.constrained).toBe(true);
    expect(reloaded.certPem).toBe(intermediate.certPem);
    await expect(reloaded.issueLeaf(['evil.com'])).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
    });
    const leaf = await reloaded.issueLeaf(['x.corp.test']);
    expect(leaf.chainPem).toBe(leaf.certPem + intermediate.certPem);
    expect(opensslVerify(root.certPem, leaf.certPem, intermediate.certPem).ok).toBe(true);
    // A bundle that also carries the self-signed root: the root is not sent to clients.
    const withRoot = await CertificateAuthority.load(pem.certPem + root.certPem, pem.keyPem);
    expect(withRoot.chainPems).toEqual([]);
    expect((await withRoot.issueLeaf(['y.corp.test'])).chainPem).not.toContain(root.certPem.trim());
  });
});
