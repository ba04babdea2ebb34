/**
 * `run` composed in explicit mode: real upstream servers on loopback port 0, real proxy, real admin
 * endpoint, real rules file changes, graceful drain; and the built bin stopping on SIGTERM.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { SidecarRuntime } from '../src/run.js';
import { startInProcessSidecar } from './harness.js';
import {
  connectTunnel,
  getLocal,
  listenOnLoopback,
  loopbackRunArgs,
  viaProxy as viaProxyTo,
  waitFor,
} from './plugins-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-run-'));
const rulesFile = join(dir, 'rules.yaml');
let logLines: Record<string, unknown>[] = [];

let upstream: Server;
let upstreamPort = 0;
let tlsUpstream: Server;
let tlsUpstreamPort = 0;
let upstreamCaPem = '';
let releaseSlow: (() => void) | null = null;
let runtime: SidecarRuntime;

/** GET through the explicit proxy (absolute-form request target). */
function viaProxy(path: string) {
  return viaProxyTo(runtime.proxyAddress.port, upstreamPort, path);
}

function admin(path: string) {
  return getLocal(runtime.adminAddress.port, path);
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    const reply = () => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ path: req.url, host: req.headers.host }));
    };
    if (req.url === '/slow/1') releaseSlow = reply;
    else reply();
  });
  upstreamPort = await listenOnLoopback(upstream);
  // An HTTPS upstream with its own CA: tunnelled untouched, the client must see this certificate.
  const upstreamCa = await CertificateAuthority.create({ commonName: 'upstream test CA' });
  upstreamCaPem = upstreamCa.certPem;
  const leaf = await upstreamCa.issueLeaf(['127.0.0.1']);
  tlsUpstream = createHttpsServer({ key: leaf.keyPem, cert: leaf.chainPem }, (_req, res) =>
    res.end('tls-upstream'),
  );
  tlsUpstreamPort = await listenOnLoopback(tlsUpstream);

  writeFileSync(rulesFile, 'routes:\n  - host: 127.0.0.1\n    patterns: [/items/:id, /slow/:id]\n');
  ({ runtime, logLines } = await startInProcessSidecar(dir, ['--rules', rulesFile], {
    HTTPMESH_SERVICE: 'shop',
    HTTPMESH_ACCESS_LOG: 'true',
  }));
});

afterAll(async () => {
  upstream?.closeAllConnections();
  upstream?.close();
  tlsUpstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('run (explicit mode)', () => {
  test('the proxy listens on loopback; health and readiness answer', async () => {
    expect(runtime.proxyAddress.address).toBe('127.0.0.1');
    expect(runtime.adminAddress.address).toBe('127.0.0.1');
    expect((await admin('/healthz')).status).toBe(200);
    expect(JSON.parse((await admin('/readyz')).body)).toMatchObject({ ready: true, rulesSource: 'file' });
    expect((await admin('/nope')).status).toBe(404);
  });

  test('HTTP through the proxy reaches the upstream and is measured per pattern', async () => {
    const reply = await viaProxy('/items/42?x=1');
    expect(reply.status).toBe(200);
    expect(JSON.parse(reply.body)).toMatchObject({ path: '/items/42?x=1' });
    const metrics = await admin('/metrics');
    expect(metrics.status).toBe(200);
    expect(metrics.body).toMatch(
      /http_client_request_duration_count\{[^}]*http_route="\/items\/:id"[^}]*\} 1/,
    );
    expect(metrics.body).not.toContain('/items/42');
    const access = logLines.find((l) => l['event'] === 'access');
    expect(access).toMatchObject({
      method: 'GET',
      path: '/items/42?x=1',
      status: 200,
      direction: 'outbound',
    });
    const connections = JSON.parse((await admin('/connections')).body) as { outbound: { exchanges: number } };
    expect(connections.outbound.exchanges).toBeGreaterThanOrEqual(1);
  });

  test('CONNECT to a host not in the intercept rules is tunnelled: the client sees the upstream certificate', async () => {
    const socket = await connectTunnel(runtime.proxyAddress.port, `127.0.0.1:${tlsUpstreamPort}`);
    // No SNI for an IP; the certificate is checked against the IP SAN.
    const tls = tlsConnect({ socket, ca: upstreamCaPem, host: '127.0.0.1' });
    await new Promise<void>((resolve, reject) => {
      tls.once('secureConnect', resolve);
      tls.once('error', reject);
    });
    const peer = new X509Certificate(tls.getPeerX509Certificate()?.raw ?? Buffer.alloc(0));
    expect(peer.checkIssued(new X509Certificate(upstreamCaPem))).toBe(true);
    tls.destroy();
  });

  test('a rules file change is applied without restart; a malformed edit keeps the last good rules', async () => {
    const before = JSON.parse((await admin('/config')).body) as { rules: { version: string } };
    writeFileSync(rulesFile, 'routes:\n  - host: 127.0.0.1\n    patterns: [/orders/:id, /slow/:id]\n');
    const after = await waitFor(
      async () =>
        JSON.parse((await admin('/config')).body) as { rules: { version: string; routes: unknown[] } },
      (c) => c.rules.version !== before.rules.version,
    );
    expect(JSON.stringify(after.rules.routes)).toContain('/orders/:id');
    await viaProxy('/orders/7');
    expect((await admin('/metrics')).body).toContain('http_route="/orders/:id"');

    writeFileSync(rulesFile, 'routes:\n  - host: 127.0.0.1\n    patterns: [orders]\n');
    const rejected = await waitFor(
      () => logLines.find((l) => l['event'] === 'rules.rejected'),
      (l) => l !== undefined,
    );
    expect(rejected).toMatchObject({
      code: 'HTTPMESH_SIDECAR_RULES_INVALID',
      field: 'routes[0].patterns[0]',
    });
    const kept = JSON.parse((await admin('/config')).body) as { rules: { version: string } };
    expect(kept.rules.version).toBe(after.rules.version);
  });

  test('drain waits for the in-flight request, reports not ready meanwhile, then closes', async () => {
    const pending = viaProxy('/slow/1');
    await waitFor(
      () => runtime.inFlight,
      (n) => n === 1,
    );
    const drained = runtime.drain(5000);
    await waitFor(
      async () => (await admin('/readyz')).status,
      (s) => s === 503,
    );
    expect(releaseSlow).not.toBeNull();
    releaseSlow?.();
    expect((await pending).status).toBe(200);
    expect(await drained).toEqual({ drained: true, abandoned: 0 });
    await expect(admin('/healthz')).rejects.toThrow();
  });
});

describe('httpmesh-sidecar run (built bin)', () => {
  test('starts with ephemeral ports, serves /healthz, exits 0 on SIGTERM', async () => {
    const cli = new URL('../dist/cli.js', import.meta.url).pathname;
    const child: ChildProcess = spawn(cli, ['run', ...loopbackRunArgs(join(dir, 'bin-ca'))], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '' },
    });
    const lines: Record<string, unknown>[] = [];
    let buffered = '';
    child.stderr?.on('data', (b: Buffer) => {
      buffered += b.toString();
      const parts = buffered.split('\n');
      buffered = parts.pop() ?? '';
      for (const p of parts) if (p) lines.push(JSON.parse(p) as Record<string, unknown>);
    });
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    try {
      const started = await waitFor(
        () => lines.find((l) => l['event'] === 'sidecar.started'),
        (l) => l !== undefined,
        10_000,
      );
      const adminPort = (started?.['admin'] as { port: number } | undefined)?.port ?? 0;
      expect((await getLocal(adminPort, '/healthz')).status).toBe(200);
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(lines.some((l) => l['event'] === 'sidecar.stopped')).toBe(true);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
