/**
 * Certificate-pinning detection: only a client that refuses our certificate with a certificate-rejection
 * alert (curl / OpenSSL: unknown_ca) pins its host. A client that closes right after a good handshake, one
 * that resets mid-handshake, and one that verifies after the handshake and just closes (Node) do not.
 * curl is a system binary (Debian `curl`): CI installs it.
 */
import { execFile } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { MitmProxy } from '../src/proxy/proxy.js';
import {
  connectTunnel,
  okHandler,
  rawRequest,
  startTestProxy,
  tlsThroughProxy,
  useTlsUpstream,
  waitFor,
} from './fixtures/proxy-harness.js';

const run = promisify(execFile);
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-pinning-'));
const testbed = useTlsUpstream(okHandler);
let upstreamCaFile = '';

beforeAll(() => {
  upstreamCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(upstreamCaFile, testbed.pki.upstreamCaPem);
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** curl trusting only the real upstream CA: rejects our leaf with an unknown_ca alert (exit 60). */
function pinningCurl(proxyPort: number) {
  return run('curl', [
    '-sS',
    '--max-time',
    '10',
    '-x',
    `http://127.0.0.1:${proxyPort}`,
    '--cacert',
    upstreamCaFile,
    `https://localhost:${testbed.tls.port}/pinned`,
  ]);
}

/** An intercepted request still works (the host was not pinned): our CA is what the client sees. */
async function stillIntercepted(proxy: MitmProxy, port: number): Promise<void> {
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  expect(socket.getPeerX509Certificate()?.issuer).toContain('httpmesh test proxy CA');
  expect((await rawRequest(socket, 'GET / HTTP/1.1\r\nhost: localhost\r\n\r\n')).status).toBe(200);
  socket.destroy();
  expect(proxy.stats.pinnedHosts).toBe(0);
}

test('a certificate-rejection alert pins the host: the next connection passes through to the real certificate', async () => {
  const { proxy, port } = await startTestProxy();
  try {
    await expect(pinningCurl(port)).rejects.toMatchObject({ code: 60 });
    await waitFor(() => proxy.stats.pinnedHosts === 1);
    expect((await pinningCurl(port)).stdout).toBe('ok');
    // Passthrough now also for a Node client: it sees the upstream's own certificate.
    const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.upstreamCaPem);
    expect(socket.getPeerX509Certificate()?.issuer).toContain('httpmesh test upstream CA');
    socket.destroy();
  } finally {
    await proxy.close();
  }
});

test('with pinning disabled the alert is reported but nothing is remembered', async () => {
  const { proxy, port } = await startTestProxy({ pinning: { enabled: false } });
  try {
    await expect(pinningCurl(port)).rejects.toMatchObject({ code: 60 });
    await expect(pinningCurl(port)).rejects.toMatchObject({ code: 60 });
    expect(proxy.stats.pinnedHosts).toBe(0);
  } finally {
    await proxy.close();
  }
});

test('a client that closes right after a successful handshake does not pin its host', async () => {
  const { proxy, port } = await startTestProxy();
  try {
    for (let i = 0; i < 3; i++) {
      const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
      const closed = once(socket, 'close');
      socket.end(); // no request at all (a pool probe, a cancelled call)
      await closed;
    }
    await waitFor(() => proxy.stats.openClientSockets === 0);
    expect(proxy.stats.tlsHandshakes).toBe(3);
    await stillIntercepted(proxy, port);
  } finally {
    await proxy.close();
  }
});

test('a client that resets mid-handshake, or verifies after it and closes (Node), does not pin its host', async () => {
  const { proxy, port } = await startTestProxy();
  try {
    // Reset as soon as the client has our ServerHello (its first key-log line is derived from it), i.e.
    // mid-handshake, with our certificate on the wire.
    const tunnel = await connectTunnel(port, `localhost:${testbed.tls.port}`);
    const client = tls.connect({ socket: tunnel, servername: 'localhost', ca: testbed.pki.proxyCaPem });
    client.on('error', () => {});
    await once(client, 'keylog');
    tunnel.resetAndDestroy();
    await waitFor(() => proxy.stats.openClientSockets === 0);
    expect(proxy.stats.pinnedHosts).toBe(0);

    // Node verifies after the handshake and closes without an alert: not distinguishable from a healthy
    // client closing, so not pinned (curl, above, sends unknown_ca and is).
    await expect(
      tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.upstreamCaPem),
    ).rejects.toThrow();
    await waitFor(() => proxy.stats.openClientSockets === 0);
    await stillIntercepted(proxy, port);
  } finally {
    await proxy.close();
  }
});
