/**
 * The x509 issuer (@peculiar/x509) is imported lazily. A failed import must not be kept: the call that saw it
 * fails with HTTPMESH_CA_ISSUER_UNAVAILABLE (the import's error as `cause`), and the next call imports again.
 * The failing import is injected through the loader's test seam, which is not part of the package API.
 */
import { X509Certificate } from 'node:crypto';
import { afterEach, describe, expect, test } from 'vitest';
import { CaError, CaIssuerUnavailableError, CertificateAuthority } from '../src/ca/index.js';
import { setX509IssuerImportForTesting, type X509IssuerImport } from '../src/ca/x509-issuer-loader.js';

/** Fails the first `failures` imports with an EMFILE-like error, then imports the real module. */
function flakyImport(failures: number): { load: X509IssuerImport; readonly calls: number } {
  let calls = 0;
  return {
    load: () => {
      calls++;
      if (calls <= failures) {
        return Promise.reject(
          Object.assign(new Error('EMFILE: too many open files, open x509-issuer.js'), { code: 'EMFILE' }),
        );
      }
      return import('../src/ca/x509-issuer.js');
    },
    get calls() {
      return calls;
    },
  };
}

afterEach(() => setX509IssuerImportForTesting());

describe('lazy import of the x509 issuer', () => {
  test('a failed import fails that call with HTTPMESH_CA_ISSUER_UNAVAILABLE; the next call imports again and succeeds', async () => {
    const loader = flakyImport(1);
    setX509IssuerImportForTesting(loader.load);

    const failure = await CertificateAuthority.create({ commonName: 'retry root' }).then(
      () => null,
      (error: unknown) => error,
    );
    expect(failure).toBeInstanceOf(CaIssuerUnavailableError);
    expect(failure).toBeInstanceOf(CaError);
    expect(failure).toMatchObject({
      name: 'CaIssuerUnavailableError',
      code: 'HTTPMESH_CA_ISSUER_UNAVAILABLE',
    });
    expect((failure as Error).message).toContain('EMFILE');
    expect(((failure as Error).cause as { code?: string }).code).toBe('EMFILE');

    const ca = await CertificateAuthority.create({ commonName: 'retry root' });
    expect(ca.subject).toBe('CN=retry root');
    const cert = new X509Certificate(ca.certPem);
    expect(cert.ca).toBe(true);
    expect(cert.verify(cert.publicKey)).toBe(true);
    expect(loader.calls).toBe(2);

    // A successful import is kept: creating more certificates imports nothing.
    await ca.issueIntermediate({ permittedDomains: ['example.test'] });
    await CertificateAuthority.create({ commonName: 'another root' });
    expect(loader.calls).toBe(2);
  });

  test('callers waiting on the same failing import all fail; the retry after them serves an intermediate', async () => {
    const root = await CertificateAuthority.create({ commonName: 'retry issuer root' });
    const loader = flakyImport(1);
    setX509IssuerImportForTesting(loader.load);

    const concurrent = await Promise.allSettled([
      root.issueIntermediate({ permittedDomains: ['a.example.test'] }),
      root.issueClientLeaf({ nodeId: 'node-a' }),
    ]);
    expect(concurrent.map((r) => (r.status === 'rejected' ? (r.reason as CaError).code : r.status))).toEqual([
      'HTTPMESH_CA_ISSUER_UNAVAILABLE',
      'HTTPMESH_CA_ISSUER_UNAVAILABLE',
    ]);
    expect(loader.calls).toBe(1);

    const intermediate = await root.issueIntermediate({ permittedDomains: ['a.example.test'] });
    expect(loader.calls).toBe(2);
    const cert = new X509Certificate(intermediate.certPem);
    expect(cert.checkIssued(new X509Certificate(root.certPem))).toBe(true);
    expect(cert.verify(new X509Certificate(root.certPem).publicKey)).toBe(true);
  });

  test('an import that throws synchronously is reported the same way and retried', async () => {
    let calls = 0;
    setX509IssuerImportForTesting(() => {
      calls++;
      if (calls === 1) throw new Error('module loader exploded');
      return import('../src/ca/x509-issuer.js');
    });
    await expect(CertificateAuthority.create({ commonName: 'sync throw' })).rejects.toMatchObject({
      code: 'HTTPMESH_CA_ISSUER_UNAVAILABLE',
    });
    await expect(CertificateAuthority.create({ commonName: 'sync throw' })).resolves.toBeInstanceOf(
      CertificateAuthority,
    );
    expect(calls).toBe(2);
  });
});
