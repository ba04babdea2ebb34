/**
 * A real sidecar process (dist/cli.js, explicit mode) and a self-signed HTTPS upstream: upstream verification is
 * on by default (502 + x-httpmesh-error), a rules-file edit marking the domain `upstreamTlsVerify: false` lets the
 * exchange through, and reverting it restores verification, all without a restart. The domain is `localhost`:
 * explicit mode accepts single-label names and IP literals as intercept domains (transparent mode does not).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createHttpsServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectTunnel, listenOnLoopback, loopbackRunArgs, waitFor } from './plugins-harness.js';
import { parseRules } from '../src/index.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-verify-'));
const rulesFile = join(dir, 'rules.yaml');
let upstream: Server;
let upstreamPort = 0;
let child: ChildProcess;
const lines: Record<string, unknown>[] = [];

/** Writes the rules atomically (rename), as a config-map update does. */
function writeRules(verify: boolean | undefined): void {
  const rule =
    verify === undefined
      ? '  - domain: localhost\n'
      : `  - domain: localhost\n    upstreamTlsVerify: ${verify}\n`;
  const temporary = `${rulesFile}.tmp`;
  writeFileSync(temporary, `intercept:\n${rule}routes:\n  - host: localhost\n    patterns: [/v/:id]\n`);
  renameSync(temporary, rulesFile);
}

/** One HTTPS request to localhost through the sidecar, trusting only the mesh CA. */
async function viaSidecar(proxyPort: number, path: string) {
  const socket = tlsConnect({
    socket: await connectTunnel(proxyPort, `localhost:${upstreamPort}`),
    servername: 'localhost',
    ca: readFileSync(join(dir, 'ca', 'ca.crt'), 'utf8'),
  });
  await new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost:${upstreamPort}\r\nConnection: close\r\n\r\n`);
  let text = '';
  socket.setEncoding('utf8');
  for await (const chunk of socket) text += chunk as string;
  const [head = '', body = ''] = text.split('\r\n\r\n');
  const status = Number(head.split(' ')[1]);
  const error = /^x-httpmesh-error: (.*)$/im.exec(head)?.[1]?.trim();
  return { status, error, body };
}

function appliedCount(): number {
  return lines.filter((l) => l['event'] === 'rules.applied').length;
}

beforeAll(async () => {
  // Self-signed: the certificate is its own issuer and nobody gave it to the sidecar.
  const selfSigned = await CertificateAuthority.create({ commonName: 'localhost' });
  const { certPem, keyPem } = await selfSigned.toPem();
  upstream = createHttpsServer({ cert: certPem, key: keyPem }, (req, res) =>
    res.end(`self-signed ${req.url}`),
  );
  upstreamPort = await listenOnLoopback(upstream);
  writeRules(undefined);
  child = spawn(cli, ['run', ...loopbackRunArgs(join(dir, 'ca')), '--rules', rulesFile], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { PATH: process.env['PATH'] ?? '' },
  });
  let buffered = '';
  child.stderr?.on('data', (b: Buffer) => {
    buffered += b.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const p of parts) if (p.startsWith('{')) lines.push(JSON.parse(p) as Record<string, unknown>);
  });
});

afterAll(async () => {
  if (child !== undefined && child.exitCode === null) {
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
  upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('upstreamTlsVerify from the rules file (real sidecar process)', () => {
  test('verified by default (502), opted out live (200), verified again after the revert (502)', async () => {
    const started = await waitFor(
      () => lines.find((l) => l['event'] === 'sidecar.started'),
      (l) => l !== undefined,
    );
    const proxyPort = (started?.['proxy'] as { port: number } | undefined)?.port ?? 0;

    const verified = await viaSidecar(proxyPort, '/v/1');
    expect(verified.status).toBe(502);
    expect(verified.error).toMatch(/^HTTPMESH_/);
    // The body says why, and the upstream's own answer never reached the client.
    expect(verified.body).toMatch(/verification failed for localhost/);
    expect(verified.body).not.toContain('self-signed /v/1');

    let applied = appliedCount();
    writeRules(false);
    await waitFor(appliedCount, (n) => n > applied);
    const optedOut = await viaSidecar(proxyPort, '/v/2');
    expect(optedOut).toMatchObject({ status: 200, error: undefined, body: 'self-signed /v/2' });

    applied = appliedCount();
    writeRules(true);
    await waitFor(appliedCount, (n) => n > applied);
    const again = await viaSidecar(proxyPort, '/v/3');
    expect(again.status).toBe(502);
    expect(again.error).toBe(verified.error);
  });
});

describe('intercept domains by mode', () => {
  const rules = (domain: string) => `intercept:\n  - domain: '${domain}'\n`;

  test('explicit mode accepts single-label names and IP literals', () => {
    for (const domain of ['localhost', 'my-service', '127.0.0.1', '::1', '[::1]']) {
      const doc = parseRules(rules(domain), 'rules.yaml', { localNames: true });
      expect(doc.intercept[0]?.domain).toBe(domain === '[::1]' ? '::1' : domain);
    }
  });

  test('transparent (default) validation keeps rejecting them; garbage is rejected in both', () => {
    for (const domain of ['localhost', '127.0.0.1', '::1']) {
      expect(() => parseRules(rules(domain), 'rules.yaml')).toThrow(/intercept\[0\]\.domain/);
    }
    // A one-label wildcard would capture a whole top-level domain, in any mode.
    for (const domain of ['', 'bad_label', '*.', 'a..b', '[::1', '*.127.0.0.1', '*.localhost', '*.test']) {
      expect(() => parseRules(rules(domain), 'rules.yaml', { localNames: true })).toThrow(
        /intercept\[0\]\.domain/,
      );
    }
  });
});
