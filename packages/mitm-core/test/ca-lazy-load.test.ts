/**
 * Steady state loads no @peculiar/x509 (README "Memory"): a process that loads a CA from PEM, mints leaves and
 * serves an intercepted HTTPS request never loads @peculiar/*, tsyringe, reflect-metadata or asn1js; only
 * creating certificates other than leaves does (the control case). Each case runs in a fresh child process
 * (test/fixtures/ca-steady-state.ts) that reports the npm packages in its module cache.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../src/ca/index.js';

const run = promisify(execFile);
const fixture = new URL('./fixtures/ca-steady-state.ts', import.meta.url).pathname;
const packageDir = new URL('..', import.meta.url).pathname;
const X509_PACKAGES = /^(@peculiar\/|tsyringe$|reflect-metadata$|asn1js$|pvtsutils$|pvutils$)/;
let dir = '';
let ca: CertificateAuthority;

interface ChildReport {
  loaded: string[];
  leafPem?: string;
  subject?: string;
  request?: {
    authorized: boolean;
    peerSubjectAltName: string;
    peerIssuerCN: string;
    statusLine: string;
    body: string;
  };
}

async function runChild(mode: 'steady' | 'create'): Promise<ChildReport> {
  const { stdout } = await run(process.execPath, ['--import', 'tsx', fixture, mode, dir], {
    cwd: packageDir,
    timeout: 60_000,
  });
  return JSON.parse(stdout.trim().split('\n').pop() ?? '') as ChildReport;
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mitm-ca-lazy-'));
  ca = await CertificateAuthority.create({
    commonName: 'lazy-load, steady state CA',
    organization: 'httpmesh',
  });
  await ca.saveToDir(join(dir, 'ca'));
  const upstreamCa = await CertificateAuthority.create({ commonName: 'lazy-load upstream CA' });
  const upstreamLeaf = await upstreamCa.issueLeaf(['localhost']);
  writeFileSync(join(dir, 'upstream-ca.crt'), upstreamCa.certPem);
  writeFileSync(join(dir, 'upstream.crt'), upstreamLeaf.chainPem);
  writeFileSync(join(dir, 'upstream.key'), upstreamLeaf.keyPem);
});

afterAll(() => {
  if (dir !== '') rmSync(dir, { recursive: true, force: true });
});

describe('steady state without @peculiar/x509', () => {
  test('loading a CA, minting leaves and serving an intercepted request load no x509 package', async () => {
    const report = await runChild('steady');
    expect(report.loaded.filter((name) => X509_PACKAGES.test(name))).toEqual([]);
    // The detection sees CommonJS packages at all (undici is one, loaded by the proxy).
    expect(report.loaded).toContain('undici');
    expect(report.subject).toBe(ca.subject);
    expect(report.subject).toBe('CN=lazy-load\\, steady state CA, O=httpmesh');
    expect(report.request).toMatchObject({
      authorized: true,
      peerSubjectAltName: 'DNS:localhost',
      peerIssuerCN: 'lazy-load, steady state CA',
      statusLine: 'HTTP/1.1 200 OK',
      body: 'upstream saw GET /steady',
    });
    const leaf = new X509Certificate(report.leafPem ?? '');
    expect(leaf.verify(new X509Certificate(ca.certPem).publicKey)).toBe(true);
    expect(leaf.checkIssued(new X509Certificate(ca.certPem))).toBe(true);
    expect(leaf.subjectAltName).toBe('DNS:steady.example.test, IP Address:127.0.0.1');
    expect(leaf.ca).toBe(false);
  }, 90_000);

  test('control: creating a root and an intermediate does load @peculiar/x509', async () => {
    const report = await runChild('create');
    expect(report.loaded).toContain('@peculiar/x509');
    expect(report.loaded).toContain('reflect-metadata');
  }, 90_000);
});
