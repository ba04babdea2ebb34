/**
 * `ca init --control-plane-api`: the built sidecar bin asks a real control plane (its built bin, own CA,
 * admin token) for an intermediate constrained to the rules' intercept domains; leaves it signs chain to
 * the control plane's root, names outside the domains are refused, and `ca show` / `ca trust` hand out
 * the root. Failures (bad token, no domains, unreachable, a reply that is not JSON) are coded.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpServer, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const controlPlaneCli = join(
  dirname(createRequire(import.meta.url).resolve('@httpmesh/control-plane/package.json')),
  'dist',
  'cli.js',
);
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-ca-cp-'));
const TOKEN = 'test-admin-token-0123456789';
let controlPlane: ChildProcess | null = null;
let api = '';
let garbage: Server;

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cli, ...args],
      { env: { PATH: process.env['PATH'] ?? '', ...env }, cwd: dir },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

const rulesFile = join(dir, 'rules.yaml');

beforeAll(async () => {
  writeFileSync(
    rulesFile,
    [
      'intercept:',
      "  - domain: '*.partner.test'",
      '  - domain: api.other.test',
      '  - domain: bank.test',
      '    action: passthrough',
      '',
    ].join('\n'),
  );
  writeFileSync(join(dir, 'empty-rules.yaml'), 'intercept: []\n');
  const child = spawn(
    process.execPath,
    [
      controlPlaneCli,
      'serve',
      '--grpc',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data-dir',
      join(dir, 'cp-data'),
      '--ca-dir',
      join(dir, 'cp-ca'),
      '--admin-token',
      TOKEN,
    ],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  controlPlane = child;
  api = await new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`control plane did not start: ${out}`)), 20_000);
    child.stdout?.on('data', (b: Buffer) => {
      out += b.toString();
      const line = out.split('\n').find((l) => l.includes('control plane listening'));
      if (line !== undefined) {
        clearTimeout(timer);
        resolve((JSON.parse(line) as { http: string }).http);
      }
    });
    child.stderr?.on('data', (b: Buffer) => {
      out += b.toString();
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`control plane exited ${code}: ${out}`));
    });
  });
  // A server whose reply is not JSON: a malformed control-plane answer.
  garbage = createHttpServer((_req, res) => {
    res.writeHead(201, { 'content-type': 'application/json' });
    res.end('{"certPem": ');
  });
  await new Promise<void>((resolve) => garbage.listen(0, '127.0.0.1', () => resolve()));
}, 30_000);

afterAll(async () => {
  controlPlane?.kill('SIGTERM');
  garbage?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('ca init with a control plane', () => {
  test('fetches an intermediate constrained to the intercept domains; clients trust the root', async () => {
    const caDir = join(dir, 'mesh-ca');
    const init = await runCli(
      [
        'ca',
        'init',
        '--ca-dir',
        caDir,
        '--control-plane-api',
        api,
        '--rules',
        rulesFile,
        '--node-id',
        'shop-1',
      ],
      { HTTPMESH_CONTROL_PLANE_TOKEN: TOKEN },
    );
    expect(init.stderr).toContain('"ca.fetched"');
    expect(init.code).toBe(0);
    expect(JSON.parse(init.stdout)).toMatchObject({ trustAnchor: join(caDir, 'root.crt') });

    const rootReply = (await (await fetch(`${api}/api/ca`)).json()) as { certPem: string };
    const root = new X509Certificate(rootReply.certPem);
    const intermediate = new X509Certificate(readFileSync(join(caDir, 'ca.crt')));
    expect(intermediate.ca).toBe(true);
    expect(intermediate.issuer).toBe(root.subject);
    expect(intermediate.verify(root.publicKey)).toBe(true);
    expect(intermediate.subject).toContain('shop-1');

    // `ca show` prints what clients trust: the control plane's root.
    const show = await runCli(['ca', 'show', '--ca-dir', caDir]);
    expect(show.code).toBe(0);
    expect(new X509Certificate(show.stdout).fingerprint256).toBe(root.fingerprint256);

    // The sidecar loads it as its CA: leaves for intercepted names chain to the root over real TLS...
    const ca = await CertificateAuthority.loadFromDir(caDir);
    const leaf = await ca.issueLeaf(['api.partner.test']);
    const { createServer } = await import('node:https');
    const server = createServer({ key: leaf.keyPem, cert: leaf.chainPem }, (_req, res) => res.end('ok'));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
    try {
      const authorized = await new Promise<boolean>((resolve, reject) => {
        const socket = connect(
          {
            host: '127.0.0.1',
            port: (server.address() as AddressInfo).port,
            servername: 'api.partner.test',
            ca: [show.stdout],
          },
          () => {
            resolve(socket.authorized);
            socket.end();
          },
        );
        socket.on('error', reject);
      });
      expect(authorized).toBe(true);
    } finally {
      server.close();
    }
    // ...and names outside the intercept domains (passthrough ones included) are refused by the constraint.
    await expect(ca.issueLeaf(['bank.test'])).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
    });
    await expect(ca.issueLeaf(['www.elsewhere.test'])).rejects.toMatchObject({
      code: 'HTTPMESH_CA_NAME_NOT_PERMITTED',
    });

    // ca trust hands clients the root too.
    const envFile = join(dir, 'trust.env');
    const trust = await runCli([
      'ca',
      'trust',
      '--ca-dir',
      caDir,
      '--trust',
      'env',
      '--trust-env-file',
      envFile,
    ]);
    expect(trust.code).toBe(0);
    expect(readFileSync(envFile, 'utf8')).toContain(`NODE_EXTRA_CA_CERTS=${join(caDir, 'root.crt')}`);

    // Once present, the CA is loaded, not fetched again.
    const again = await runCli(
      ['ca', 'init', '--ca-dir', caDir, '--control-plane-api', api, '--rules', rulesFile],
      {
        HTTPMESH_CONTROL_PLANE_TOKEN: 'wrong',
      },
    );
    expect(again.code).toBe(0);
    expect(again.stderr).toContain('"ca.loaded"');
  });

  test.each([
    ['a wrong token', () => ['--rules', rulesFile], 'wrong-token', /HTTPMESH_CP_UNAUTHORIZED/],
    ['no intercept domains', () => ['--rules', join(dir, 'empty-rules.yaml')], TOKEN, /no intercept domains/],
  ])(
    '%s: exit 1 with HTTPMESH_SIDECAR_CA_FETCH_FAILED and no CA written',
    async (_what, extra, token, message) => {
      const caDir = join(dir, `failed-${Math.random().toString(16).slice(2)}`);
      const r = await runCli(['ca', 'init', '--ca-dir', caDir, '--control-plane-api', api, ...extra()], {
        HTTPMESH_CONTROL_PLANE_TOKEN: token,
      });
      expect(r.code).toBe(1);
      expect(r.stderr).toContain('[HTTPMESH_SIDECAR_CA_FETCH_FAILED]');
      expect(r.stderr).toMatch(message);
      expect((await runCli(['ca', 'show', '--ca-dir', caDir])).code).toBe(1);
    },
  );

  test('a reply that is not JSON, an unreachable API and a malformed URL are reported', async () => {
    const port = (garbage.address() as AddressInfo).port;
    const bad = await runCli([
      'ca',
      'init',
      '--ca-dir',
      join(dir, 'g'),
      '--control-plane-api',
      `http://127.0.0.1:${port}`,
      '--rules',
      rulesFile,
    ]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/not JSON.*\[HTTPMESH_SIDECAR_CA_FETCH_FAILED\]/);

    // A port that was just free: nothing listens there.
    const closed = createHttpServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', () => resolve()));
    const freePort = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const unreachable = await runCli([
      'ca',
      'init',
      '--ca-dir',
      join(dir, 'u'),
      '--control-plane-api',
      `http://127.0.0.1:${freePort}`,
      '--rules',
      rulesFile,
    ]);
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toMatch(/cannot reach.*\[HTTPMESH_SIDECAR_CA_FETCH_FAILED\]/);

    const malformed = await runCli([
      'ca',
      'init',
      '--ca-dir',
      join(dir, 'm'),
      '--control-plane-api',
      'ftp://x',
    ]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('[HTTPMESH_SIDECAR_OPTION_INVALID]');
  });
});
