import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { afterEach, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../src/ca/index.js';
import { hasOpenssl, inCi, opensslSelfSigned, opensslVerify } from './ca-helpers.js';

const needsOpenssl = !hasOpenssl && !inCi;
const DAY = 86_400_000;
const temporaryDirs: string[] = [];

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'mitm-ca-files-'));
  temporaryDirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of temporaryDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** The base64 body of a PEM block, the part that would betray a key if it leaked anywhere. */
function pemBody(pem: string): string {
  return pem.replace(/-----[^-]+-----/g, '').replace(/\s+/g, '');
}

describe('saveToDir / loadFromDir', () => {
  test('writes the key with mode 0600 and the certificate with mode 0644, and reloads', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'files root' });
    const dir = join(tempDir(), 'nested', 'ca');
    const files = await ca.saveToDir(dir);
    expect(files).toEqual({ certPath: join(dir, 'ca.crt'), keyPath: join(dir, 'ca.key') });
    expect(statSync(files.keyPath).mode & 0o777).toBe(0o600);
    expect(statSync(files.certPath).mode & 0o777).toBe(0o644);
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readFileSync(files.certPath, 'utf8')).toBe(ca.certPem);
    expect(readFileSync(files.keyPath, 'utf8')).toBe((await ca.toPem()).keyPem);

    const reloaded = await CertificateAuthority.loadFromDir(dir);
    expect(reloaded.certPem).toBe(ca.certPem);
    const leaf = await reloaded.issueLeaf(['reloaded.test']);
    expect(new X509Certificate(leaf.certPem).verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
  });

  test('overwriting an existing key file keeps mode 0600 even if the old file was wider', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'overwrite' });
    const dir = tempDir();
    writeFileSync(join(dir, 'my.key'), 'old', { mode: 0o666 });
    const files = await ca.saveToDir(dir, { keyFileName: 'my.key', certFileName: 'my.crt' });
    expect(statSync(files.keyPath).mode & 0o777).toBe(0o600);
    expect(readFileSync(files.keyPath, 'utf8')).toContain('BEGIN PRIVATE KEY');
    await expect(
      CertificateAuthority.loadFromDir(dir, { keyFileName: 'my.key', certFileName: 'my.crt' }),
    ).resolves.toBeInstanceOf(CertificateAuthority);
  });

  test('missing files reject with HTTPMESH_CA_FILE', async () => {
    const dir = tempDir();
    await expect(CertificateAuthority.loadFromDir(dir)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_FILE',
      path: expect.stringContaining(dir),
    });
  });

  test('an unwritable target rejects with HTTPMESH_CA_FILE', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'unwritable' });
    const file = join(tempDir(), 'plain-file');
    writeFileSync(file, 'x');
    await expect(ca.saveToDir(file)).rejects.toMatchObject({ code: 'HTTPMESH_CA_FILE' });
  });
});

describe('private keys never leak', () => {
  test('inspect, String, JSON and template output carry no key material', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'secret keeper' });
    await ca.issueLeaf(['warm.test']);
    const { keyPem } = await ca.toPem();
    const body = pemBody(keyPem);
    const renderings = [
      inspect(ca),
      inspect(ca, { showHidden: true, depth: Number.POSITIVE_INFINITY, getters: true }),
      String(ca),
      `${ca}`,
      JSON.stringify(ca),
      JSON.stringify({ nested: [ca] }),
    ];
    for (const text of renderings) {
      expect(text).not.toContain('PRIVATE KEY');
      expect(text).not.toContain(body.slice(20, 60));
    }
    expect(inspect(ca)).toContain('CN=secret keeper');
    // Own enumerable properties expose nothing at all.
    expect(Object.keys(ca)).toEqual([]);
  });

  test('errors from load() never echo the key', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'k' });
    const other = await CertificateAuthority.create({ commonName: 'other' });
    const { keyPem } = await other.toPem();
    const corrupted = keyPem.replace(/[A-Za-z]{8}(?=\n)/, 'AAAAAAAA');
    for (const key of [keyPem, corrupted, keyPem.slice(0, 120)]) {
      const error = (await CertificateAuthority.load(ca.certPem, key).catch((e: unknown) => e)) as Error;
      expect(error).toBeInstanceOf(Error);
      const rendered = `${error.message} ${inspect(error)} ${JSON.stringify(error)}`;
      expect(rendered).not.toContain(pemBody(key).slice(10, 40));
    }
  });
});

describe('load() input validation', () => {
  test.skipIf(needsOpenssl)('loads a CA made by OpenSSL with SEC1 (EC) and PKCS#1 (RSA) keys', async () => {
    for (const [algorithmArgs, keyHeader] of [
      [['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256'], 'EC PRIVATE KEY'],
      [['-newkey', 'rsa:2048'], 'RSA PRIVATE KEY'],
    ] as const) {
      const made = opensslSelfSigned({
        subject: '/CN=Org CA',
        keyArgs: algorithmArgs,
        extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,keyCertSign,cRLSign'],
      });
      // Convert the PKCS#8 key OpenSSL wrote to the traditional format.
      const traditional = execFileSync(
        'openssl',
        [algorithmArgs[1] === 'ec' ? 'ec' : 'rsa', ...(algorithmArgs[1] === 'ec' ? [] : ['-traditional'])],
        { encoding: 'utf8', input: made.keyPem, stdio: ['pipe', 'pipe', 'ignore'] },
      );
      expect(traditional).toContain(keyHeader);
      const { certPem } = made;
      const ca = await CertificateAuthority.load(certPem, traditional);
      const leaf = await ca.issueLeaf(['org.test']);
      expect(opensslVerify(certPem, leaf.certPem, undefined, ['-purpose', 'sslserver']).ok).toBe(true);
    }
  });

  test.each([
    ['garbage', 'not a pem at all'],
    ['empty', ''],
    ['armour without body', '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n'],
    [
      'random DER',
      `-----BEGIN CERTIFICATE-----\n${Buffer.from('hello world, not DER').toString('base64')}\n-----END CERTIFICATE-----\n`,
    ],
  ])('malformed certificate PEM (%s) -> HTTPMESH_CA_CERT_INVALID', async (_label, certPem) => {
    const ca = await CertificateAuthority.create({ commonName: 'x' });
    const { keyPem } = await ca.toPem();
    await expect(CertificateAuthority.load(certPem, keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_CERT_INVALID',
      name: 'CaCertificateInvalidError',
    });
  });

  test('a truncated certificate -> HTTPMESH_CA_CERT_INVALID', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'x' });
    const lines = ca.certPem.trim().split('\n');
    const truncated = [...lines.slice(0, 3), lines.at(-1)].join('\n');
    await expect(CertificateAuthority.load(truncated, (await ca.toPem()).keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_CERT_INVALID',
    });
  });

  test.each([
    ['garbage', 'nope'],
    ['empty', ''],
    ['certificate instead of key', 'CERT'],
    ['encrypted', 'ENCRYPTED'],
  ])('malformed key PEM (%s) -> HTTPMESH_CA_KEY_INVALID', async (_label, keyKind) => {
    const ca = await CertificateAuthority.create({ commonName: 'x' });
    let keyPem = keyKind;
    if (keyKind === 'CERT') keyPem = ca.certPem;
    if (keyKind === 'ENCRYPTED') {
      const { createPrivateKey } = await import('node:crypto');
      keyPem = createPrivateKey((await ca.toPem()).keyPem).export({
        type: 'pkcs8',
        format: 'pem',
        cipher: 'aes-256-cbc',
        passphrase: 'pw',
      }) as string;
    }
    await expect(CertificateAuthority.load(ca.certPem, keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_KEY_INVALID',
    });
  });

  test('a key of another CA -> HTTPMESH_CA_KEY_MISMATCH', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'a' });
    const other = await CertificateAuthority.create({ commonName: 'b' });
    await expect(CertificateAuthority.load(ca.certPem, (await other.toPem()).keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_KEY_MISMATCH',
    });
  });

  test('a leaf certificate with its own key -> HTTPMESH_CA_NOT_CA', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'a' });
    const leaf = await ca.issueLeaf(['leaf.test']);
    await expect(CertificateAuthority.load(leaf.certPem, leaf.keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NOT_CA',
    });
  });

  test.skipIf(needsOpenssl)('a CA without keyCertSign usage -> HTTPMESH_CA_NOT_CA', async () => {
    const { certPem, keyPem } = opensslSelfSigned({
      subject: '/CN=NoSign',
      days: 3,
      extensions: ['basicConstraints=critical,CA:TRUE', 'keyUsage=critical,digitalSignature'],
    });
    await expect(CertificateAuthority.load(certPem, keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NOT_CA',
    });
  });

  test.skipIf(needsOpenssl)('an Ed25519 CA -> HTTPMESH_CA_KEY_UNSUPPORTED', async () => {
    const { certPem, keyPem } = opensslSelfSigned({
      subject: '/CN=Ed',
      keyArgs: ['-newkey', 'ed25519'],
      days: 3,
      extensions: ['basicConstraints=critical,CA:TRUE'],
    });
    await expect(CertificateAuthority.load(certPem, keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_KEY_UNSUPPORTED',
    });
  });

  test('an expired CA -> HTTPMESH_CA_EXPIRED', async () => {
    const past = Date.now() - 100 * DAY;
    const old = await CertificateAuthority.create({ commonName: 'old', validityDays: 10, clock: () => past });
    const { certPem, keyPem } = await old.toPem();
    await expect(CertificateAuthority.load(certPem, keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_EXPIRED',
    });
    // The same files are fine for a clock inside the validity window.
    await expect(
      CertificateAuthority.load(certPem, keyPem, { clock: () => past + DAY }),
    ).resolves.toBeInstanceOf(CertificateAuthority);
  });

  test('non-string inputs are rejected with codes, not TypeErrors', async () => {
    const ca = await CertificateAuthority.create({ commonName: 'types' });
    const { keyPem } = await ca.toPem();
    await expect(CertificateAuthority.load(42 as unknown as string, keyPem)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_CERT_INVALID',
    });
    await expect(CertificateAuthority.load(ca.certPem, null as unknown as string)).rejects.toMatchObject({
      code: 'HTTPMESH_CA_KEY_INVALID',
    });
  });
});
