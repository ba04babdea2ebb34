import { execFile, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import {
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  statSync,
  writeFileSync,
  existsSync,
} from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer } from 'node:https';
import { afterEach, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../src/ca/index.js';
import { applyTrust, removeTrust, trustInstructions } from '../src/trust/index.js';
import type { CommandRunner } from '../src/trust/index.js';

const inCi = process.env['CI'] === 'true';
const has = (tool: string, args: string[]) => spawnSync(tool, args, { stdio: 'ignore' }).status === 0;
const hasUpdateCa =
  spawnSync('sh', ['-c', 'command -v update-ca-certificates'], { stdio: 'ignore' }).status === 0;
const hasKeytool = spawnSync('sh', ['-c', 'command -v keytool'], { stdio: 'ignore' }).status === 0;
const hasCurl = has('curl', ['--version']);
const hasPython = has('python3', ['--version']);
const isRoot = process.getuid?.() === 0;

const temporaryDirs: string[] = [];
function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  temporaryDirs.push(dir);
  return dir;
}
afterEach(() => {
  for (const dir of temporaryDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

interface Fixture {
  ca: CertificateAuthority;
  caPath: string;
  dir: string;
}

async function fixture(): Promise<Fixture> {
  const dir = tempDir('mitm-trust-');
  const ca = await CertificateAuthority.create({ commonName: `httpmesh trust test ${process.pid}` });
  const caPath = join(dir, 'mesh ca.crt');
  writeFileSync(caPath, ca.certPem);
  return { ca, caPath, dir };
}

/** An HTTPS server on loopback with a leaf from the CA; clients must trust the CA to talk to it. */
async function meshServer(ca: CertificateAuthority) {
  const leaf = await ca.issueLeaf(['localhost', '127.0.0.1']);
  const server = createServer({ cert: leaf.chainPem, key: leaf.keyPem }, (_request, response) => {
    response.end('trusted');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return { server, url: `https://localhost:${(server.address() as AddressInfo).port}/` };
}

function runAsync(
  command: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(command, args, { env, timeout: 30_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({
        code: error ? (typeof error.code === 'number' ? error.code : 1) : 0,
        output: `${stdout}${stderr}`,
      });
    });
  });
}

function readEnvFile(path: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const line of readFileSync(path, 'utf8').split('\n')) {
    const eq = line.indexOf('=');
    if (eq > 0) env[line.slice(0, eq)] = line.slice(eq + 1);
  }
  return env;
}

/**
 * Creates the layout update-ca-certificates expects under a fake root, with one distribution root CA
 * (the tool only rewrites the bundle when at least one certificate is present, as on any real system).
 */
async function fakeDebianRoot(): Promise<{ root: string; distributionPem: string }> {
  const root = tempDir('mitm-trust-root-');
  for (const dir of [
    'usr/share/ca-certificates/distro',
    'usr/local/share/ca-certificates',
    'etc/ssl/certs',
    'etc/ca-certificates/update.d',
  ]) {
    mkdirSync(join(root, dir), { recursive: true });
  }
  const distribution = await CertificateAuthority.create({ commonName: 'distribution root' });
  writeFileSync(join(root, 'usr/share/ca-certificates/distro/distribution-root.crt'), distribution.certPem);
  writeFileSync(join(root, 'etc/ca-certificates.conf'), 'distro/distribution-root.crt\n');
  return { root, distributionPem: distribution.certPem };
}

describe('trustInstructions', () => {
  test('lists commands and variables for every runtime, shell-quoted', async () => {
    const { caPath } = await fixture();
    const found = (name: string) => (name === 'keytool' ? null : `/usr/sbin/${name}`);
    const instructions = trustInstructions(caPath, { findExecutable: found, envFile: '/etc/app/ca.env' });
    expect(instructions.steps.map((step) => [step.runtime, step.available])).toEqual([
      ['debian', true],
      ['java', false],
      ['env', true],
    ]);
    const quoted = `'${caPath}'`;
    expect(instructions.text).toContain(
      `install -m 0644 ${quoted} /usr/local/share/ca-certificates/httpmesh-ca.crt\n/usr/sbin/update-ca-certificates\n`,
    );
    expect(instructions.text).toContain(
      `keytool -importcert -noprompt -trustcacerts -alias httpmesh-ca -file ${quoted} -cacerts -storepass changeit`,
    );
    expect(instructions.text).toContain('(tool not found on this machine)');
    expect(instructions.steps[2]?.env).toEqual({
      NODE_EXTRA_CA_CERTS: '/usr/local/share/ca-certificates/httpmesh-ca.crt',
      SSL_CERT_FILE: '/etc/ssl/certs/ca-certificates.crt',
      REQUESTS_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt',
      CURL_CA_BUNDLE: '/etc/ssl/certs/ca-certificates.crt',
    });
    expect(instructions.text).toContain(
      'export NODE_EXTRA_CA_CERTS=/usr/local/share/ca-certificates/httpmesh-ca.crt',
    );
  });

  test('without the system store, the replacing variables point at a combined bundle', async () => {
    const { caPath } = await fixture();
    const instructions = trustInstructions(caPath, {
      runtimes: ['env'],
      envFile: '/srv/app/ca.env',
      name: 'mesh',
    });
    expect(instructions.steps[0]?.env).toEqual({
      NODE_EXTRA_CA_CERTS: caPath,
      SSL_CERT_FILE: '/srv/app/mesh-bundle.pem',
      REQUESTS_CA_BUNDLE: '/srv/app/mesh-bundle.pem',
      CURL_CA_BUNDLE: '/srv/app/mesh-bundle.pem',
    });
  });

  test.each([['../evil'], ['a/b'], [''], ['x y']])('rejects name %j', (name) => {
    expect(() => trustInstructions('/tmp/ca.crt', { name })).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_TRUST_OPTIONS_INVALID' }),
    );
  });

  test('rejects unknown runtimes and paths with line breaks', () => {
    expect(() => trustInstructions('/tmp/ca.crt', { runtimes: ['windows' as 'env'] })).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_TRUST_OPTIONS_INVALID' }),
    );
    expect(() => trustInstructions('/tmp/ca.crt', { envFile: '/tmp/a\nb' })).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_TRUST_OPTIONS_INVALID' }),
    );
  });
});

describe('applyTrust into a temporary root', () => {
  test.skipIf(!hasUpdateCa && !inCi)(
    'real update-ca-certificates, env file and bundle; real clients trust the mesh CA; removeTrust undoes it',
    async () => {
      const { ca, caPath } = await fixture();
      const { root, distributionPem } = await fakeDebianRoot();
      const envFile = join(root, 'etc/httpmesh/ca.env');
      mkdirSync(join(root, 'etc/httpmesh'));
      writeFileSync(envFile, 'KEEP_ME=1\nSSL_CERT_FILE=/old/value\n');

      const results = await applyTrust(caPath, { root, envFile, runtimes: ['debian', 'env'] });
      expect(results.map((result) => [result.runtime, result.status])).toEqual([
        ['debian', 'applied'],
        ['env', 'applied'],
      ]);
      const installed = join(root, 'usr/local/share/ca-certificates/httpmesh-ca.crt');
      expect(readFileSync(installed, 'utf8')).toBe(ca.certPem);
      expect(statSync(installed).mode & 0o777).toBe(0o644);
      const bundlePath = join(root, 'etc/ssl/certs/ca-certificates.crt');
      expect(readFileSync(bundlePath, 'utf8')).toBe(distributionPem + ca.certPem);
      const link = join(root, 'etc/ssl/certs/httpmesh-ca.pem');
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(installed);

      const env = readEnvFile(envFile);
      expect(env).toEqual({
        KEEP_ME: '1',
        NODE_EXTRA_CA_CERTS: installed,
        SSL_CERT_FILE: bundlePath,
        REQUESTS_CA_BUNDLE: bundlePath,
        CURL_CA_BUNDLE: bundlePath,
      });

      // Idempotent: applying again changes nothing visible.
      await applyTrust(caPath, { root, envFile, runtimes: ['debian', 'env'] });
      expect(readEnvFile(envFile)).toEqual(env);

      // Real clients, configured only through the env file, trust a server whose leaf the CA minted.
      const { server, url } = await meshServer(ca);
      try {
        const clientEnv = { ...process.env, ...env };
        const node = await runAsync(
          process.execPath,
          [
            '-e',
            `fetch(${JSON.stringify(url)}).then(r=>r.text()).then(t=>console.log(t),e=>{console.error(e.cause?.code??e.message);process.exit(3)})`,
          ],
          clientEnv,
        );
        expect(node.output.trim()).toBe('trusted');
        const untrusted = await runAsync(
          process.execPath,
          [
            '-e',
            `fetch(${JSON.stringify(url)}).then(()=>process.exit(0),e=>{console.error(e.cause?.code);process.exit(3)})`,
          ],
          { ...process.env, NODE_EXTRA_CA_CERTS: '' },
        );
        expect(untrusted.code).toBe(3);
        if (hasCurl || inCi) {
          const curl = await runAsync('curl', ['-sS', url], clientEnv);
          expect(curl.output).toBe('trusted');
        }
        if (hasPython || inCi) {
          const python = await runAsync(
            'python3',
            [
              '-c',
              `import urllib.request;print(urllib.request.urlopen(${JSON.stringify(url)}).read().decode())`,
            ],
            clientEnv,
          );
          expect(python.output.trim()).toBe('trusted');
        }
      } finally {
        server.close();
      }

      const removed = await removeTrust({ root, envFile, runtimes: ['debian', 'env'] });
      expect(removed.map((result) => result.status)).toEqual(['removed', 'removed']);
      expect(existsSync(installed)).toBe(false);
      expect(existsSync(link)).toBe(false);
      expect(readFileSync(bundlePath, 'utf8')).toBe(distributionPem);
      expect(readFileSync(envFile, 'utf8')).toBe('KEEP_ME=1\n');
    },
    60_000,
  );

  test('env only: writes a combined bundle of the system roots plus the CA', async () => {
    const { ca, caPath, dir } = await fixture();
    const root = tempDir('mitm-trust-env-');
    mkdirSync(join(root, 'etc/ssl/certs'), { recursive: true });
    const other = await CertificateAuthority.create({ commonName: 'some public root' });
    writeFileSync(join(root, 'etc/ssl/certs/ca-certificates.crt'), other.certPem);
    const envFile = join(dir, 'out', 'app.env');
    await applyTrust(caPath, { root, envFile, runtimes: ['env'] });
    const env = readEnvFile(envFile);
    const bundle = join(dir, 'out', 'httpmesh-ca-bundle.pem');
    expect(env).toEqual({
      NODE_EXTRA_CA_CERTS: caPath,
      SSL_CERT_FILE: bundle,
      REQUESTS_CA_BUNDLE: bundle,
      CURL_CA_BUNDLE: bundle,
    });
    expect(readFileSync(bundle, 'utf8')).toBe(other.certPem + ca.certPem);
    await removeTrust({ root, envFile, runtimes: ['env'] });
    expect(existsSync(bundle)).toBe(false);
    expect(readFileSync(envFile, 'utf8')).toBe('');
  });

  test.skipIf(!hasKeytool && !inCi)(
    'Java: imports into a keystore with the real keytool, idempotently, and removes',
    async () => {
      const { ca, caPath, dir } = await fixture();
      const keystore = join(dir, 'truststore.p12');
      const options = { runtimes: ['java'] as const, javaKeystore: keystore, javaStorePassword: 'secret1' };
      expect((await applyTrust(caPath, options))[0]).toMatchObject({ runtime: 'java', status: 'applied' });
      expect((await applyTrust(caPath, options))[0]).toMatchObject({ status: 'applied' });
      const list = spawnSync(
        'keytool',
        ['-list', '-v', '-keystore', keystore, '-storepass', 'secret1', '-alias', 'httpmesh-ca'],
        {
          encoding: 'utf8',
        },
      );
      expect(list.status).toBe(0);
      expect(list.stdout).toContain('trustedCertEntry');
      const serial = new (await import('node:crypto')).X509Certificate(ca.certPem).serialNumber
        .toLowerCase()
        .replace(/^0+/, '');
      expect(list.stdout.toLowerCase()).toContain(serial);
      expect((await removeTrust(options))[0]).toMatchObject({ status: 'removed' });
      const after = spawnSync(
        'keytool',
        ['-list', '-keystore', keystore, '-storepass', 'secret1', '-alias', 'httpmesh-ca'],
        {
          encoding: 'utf8',
        },
      );
      expect(after.status).not.toBe(0);
      // Removing again is not an error.
      expect((await removeTrust(options))[0]).toMatchObject({ status: 'removed' });
    },
    60_000,
  );

  test('a failing tool is reported with TrustApplyError while other runtimes still apply', async () => {
    const { caPath, dir } = await fixture();
    const calls: string[][] = [];
    const runCommand: CommandRunner = async (command, args) => {
      calls.push([command, ...args]);
      return { code: 1, stdout: '', stderr: 'E: disk full' };
    };
    const envFile = join(dir, 'ca.env');
    const error = await applyTrust(caPath, {
      root: (await fakeDebianRoot()).root,
      envFile,
      runCommand,
      findExecutable: (name) => `/fake/${name}`,
    }).catch((e: unknown) => e);
    expect(error).toMatchObject({ code: 'HTTPMESH_TRUST_APPLY_FAILED', name: 'TrustApplyError' });
    const results = (error as { results: Array<{ runtime: string; status: string; detail: string }> })
      .results;
    expect(results.map((result) => [result.runtime, result.status])).toEqual([
      ['debian', 'failed'],
      ['java', 'failed'],
      ['env', 'applied'],
    ]);
    expect(results[0]?.detail).toContain('E: disk full');
    expect(calls[0]?.[0]).toBe('/fake/update-ca-certificates');
    expect(calls.some((call) => call[0] === '/fake/keytool' && call.includes('-importcert'))).toBe(true);
    expect(existsSync(envFile)).toBe(true);
  });

  test('tools that are missing are skipped, not failed', async () => {
    const { caPath, dir } = await fixture();
    const results = await applyTrust(caPath, {
      root: (await fakeDebianRoot()).root,
      envFile: join(dir, 'ca.env'),
      findExecutable: () => null,
      runCommand: async () => {
        throw new Error('must not run');
      },
    });
    expect(results.map((result) => [result.runtime, result.status])).toEqual([
      ['debian', 'skipped'],
      ['java', 'skipped'],
      ['env', 'applied'],
    ]);
  });

  test.each([
    ['missing file', null],
    ['not a certificate', 'hello'],
    ['a leaf, not a CA', 'LEAF'],
  ])('rejects a bad CA file (%s) with HTTPMESH_TRUST_CA_INVALID', async (_label, content) => {
    const dir = tempDir('mitm-trust-bad-');
    const path = join(dir, 'ca.crt');
    if (content === 'LEAF') {
      const ca = await CertificateAuthority.create({ commonName: 'leafy' });
      writeFileSync(path, (await ca.issueLeaf(['x.test'])).certPem);
    } else if (content !== null) {
      writeFileSync(path, content);
    }
    await expect(applyTrust(path, { runtimes: ['env'], envFile: join(dir, 'e.env') })).rejects.toMatchObject({
      code: 'HTTPMESH_TRUST_CA_INVALID',
    });
    expect(existsSync(join(dir, 'e.env'))).toBe(false);
  });
});

describe('applyTrust on the real system store (root)', () => {
  test.skipIf(!(isRoot && hasUpdateCa) && !inCi)(
    'adds the CA to /etc/ssl/certs, a default curl trusts it, then removal restores the store',
    async () => {
      const { ca, caPath } = await fixture();
      const name = `httpmesh-test-${process.pid}`;
      const bundlePath = '/etc/ssl/certs/ca-certificates.crt';
      const before = readFileSync(bundlePath, 'utf8');
      const options = { runtimes: ['debian'] as const, name };
      try {
        const results = await applyTrust(caPath, options);
        expect(results[0]).toMatchObject({ runtime: 'debian', status: 'applied' });
        expect(readFileSync(bundlePath, 'utf8')).toContain(ca.certPem.trim());
        expect(lstatSync(`/etc/ssl/certs/${name}.pem`).isSymbolicLink()).toBe(true);
        const { server, url } = await meshServer(ca);
        try {
          // No --cacert: curl uses the system store.
          const curl = await runAsync('curl', ['-sS', url], process.env);
          expect(curl.output).toBe('trusted');
        } finally {
          server.close();
        }
      } finally {
        await removeTrust(options);
      }
      expect(existsSync(`/usr/local/share/ca-certificates/${name}.crt`)).toBe(false);
      expect(existsSync(`/etc/ssl/certs/${name}.pem`)).toBe(false);
      const after = readFileSync(bundlePath, 'utf8');
      expect(after).not.toContain(ca.certPem.trim());
      expect(after).toBe(before);
    },
    180_000,
  );
});
