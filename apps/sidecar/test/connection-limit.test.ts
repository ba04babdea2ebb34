/**
 * `run --max-client-connections`: the cap reaches the proxy, a connection over it is closed unread and
 * logged with mitm-core's code, and `/connections` reports the count and the refusals. Explicit mode on
 * loopback port 0 (transparent mode takes the same option; its entry point is tested in mitm-core).
 */
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { SidecarRuntime } from '../src/run.js';
import { startInProcessSidecar } from './harness.js';
import { getLocal, listenOnLoopback, tempDir, waitFor } from './plugins-harness.js';

const tmp = tempDir('httpmesh-sidecar-cap-');
let logLines: Record<string, unknown>[] = [];
let upstream: Server;
let upstreamPort = 0;
let runtime: SidecarRuntime;

interface ProxyStats {
  clientConnections: number;
  maxClientConnections: number;
  refusedClientConnections: number;
}

async function connections(): Promise<{ outbound: ProxyStats }> {
  const reply = await getLocal(runtime.adminAddress.port, '/connections');
  return JSON.parse(reply.body) as { outbound: ProxyStats };
}

/** A keep-alive client that got one response through the proxy and keeps its connection. */
async function heldClient(): Promise<Socket> {
  const socket = connect(runtime.proxyAddress.port, '127.0.0.1');
  await once(socket, 'connect');
  const authority = `127.0.0.1:${upstreamPort}`;
  socket.write(`GET http://${authority}/held HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
  let head = '';
  while (!head.includes('\r\n\r\nok')) {
    const [chunk] = (await once(socket, 'data', { signal: AbortSignal.timeout(5_000) })) as [Buffer];
    head += chunk.toString('latin1');
  }
  expect(head.startsWith('HTTP/1.1 200')).toBe(true);
  return socket;
}

beforeAll(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
    res.end('ok');
  });
  upstreamPort = await listenOnLoopback(upstream);
  ({ runtime, logLines } = await startInProcessSidecar(tmp.dir, ['--max-client-connections', '1']));
});

afterAll(async () => {
  await runtime?.drain(1_000);
  upstream?.closeAllConnections();
  upstream?.close();
  tmp.remove();
});

test('a connection over --max-client-connections is closed unread, logged once, and counted', async () => {
  const held = await heldClient();
  try {
    expect((await connections()).outbound).toMatchObject({
      clientConnections: 1,
      maxClientConnections: 1,
      refusedClientConnections: 0,
    });

    const refused = connect(runtime.proxyAddress.port, '127.0.0.1');
    let bytes = 0;
    refused.on('data', (chunk: Buffer) => {
      bytes += chunk.length;
    });
    refused.on('error', () => {});
    await once(refused, 'close', { signal: AbortSignal.timeout(5_000) });
    expect(bytes).toBe(0);

    expect((await connections()).outbound).toMatchObject({
      clientConnections: 1,
      refusedClientConnections: 1,
    });
    const warnings = logLines.filter((l) => l['code'] === 'HTTPMESH_PROXY_CONNECTION_LIMIT');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]).toMatchObject({ event: 'proxy.connection_error', level: 40 });
  } finally {
    held.destroy();
  }
  // The closed connection makes room for the next client.
  await waitFor(connections, (c) => c.outbound.clientConnections === 0);
  const next = await heldClient();
  next.destroy();
});
