/**
 * `run --max-client-connections`: the cap reaches the proxy, a connection over it is closed unread and
 * logged with mitm-core's code, and `/connections` reports the count and the refusals. Explicit mode on
 * loopback port 0 (transparent mode takes the same option; its entry point is tested in mitm-core).
 */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { type AddressInfo, connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createLogger, resolveOptions } from '../src/index.js';
import { type SidecarRuntime, startSidecar } from '../src/run.js';

const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-cap-'));
const logLines: Record<string, unknown>[] = [];
const logSink = new Writable({
  write(chunk: Buffer, _enc, done) {
    for (const line of chunk.toString().split('\n'))
      if (line) logLines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  },
});

let upstream: Server;
let upstreamPort = 0;
let runtime: SidecarRuntime;

interface ProxyStats {
  clientConnections: number;
  maxClientConnections: number;
  refusedClientConnections: number;
}

function connections(): Promise<{ outbound: ProxyStats }> {
  return new Promise((resolve, reject) => {
    request(
      { host: '127.0.0.1', port: runtime.adminAddress.port, path: '/connections', agent: false },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve(JSON.parse(body) as { outbound: ProxyStats }));
      },
    )
      .on('error', reject)
      .end();
  });
}

async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms = 5_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 20));
  }
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
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  upstreamPort = (upstream.address() as AddressInfo).port;
  const { options } = resolveOptions(
    'run',
    [
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--ca-dir',
      join(dir, 'ca'),
      '--max-client-connections',
      '1',
    ],
    {},
    dir,
  );
  runtime = await startSidecar(options, createLogger('info', logSink));
});

afterAll(async () => {
  await runtime?.drain(1_000);
  upstream?.closeAllConnections();
  upstream?.close();
  rmSync(dir, { recursive: true, force: true });
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
  await eventually(connections, (c) => c.outbound.clientConnections === 0);
  const next = await heldClient();
  next.destroy();
});
