import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { performance } from 'node:perf_hooks';
import tls from 'node:tls';
import { describe, expect, test } from 'vitest';
import type { ClientConnectionLimitError, MitmProxyError } from '../src/proxy/errors.js';
import { createMitmProxy, type MitmProxy, type MitmProxyOptions } from '../src/proxy/proxy.js';
import {
  createTestProxy,
  listenLoopback,
  listenRedirecting,
  okHandler,
  rawRequest,
  startTestProxy,
  tlsThroughProxy,
  useUpstreams,
  waitFor,
} from './fixtures/proxy-harness.js';

const testbed = useUpstreams(okHandler);

interface Harness {
  proxy: MitmProxy;
  errors: MitmProxyError[];
  /** When each error was reported (performance.now()). */
  reportedAt: number[];
  /** Port clients connect to. */
  port: number;
  close(): Promise<void>;
}

type EntryPoint = 'listen' | 'acceptConnection' | 'handleConnection';

/**
 * A proxy reached through one of its three entry points: its own listener, a caller's listener handing
 * sockets to `acceptConnection` (the sidecar's explicit mode), or `handleConnection` as after an iptables
 * REDIRECT (the destination is passed in, so no root is needed).
 */
async function harness(entry: EntryPoint, extra: Omit<MitmProxyOptions, 'ca'>): Promise<Harness> {
  const reportedAt: number[] = [];
  const options = { ...extra, onError: () => reportedAt.push(performance.now()) };
  if (entry === 'listen') {
    const { proxy, errors, port } = await startTestProxy(options);
    return { proxy, errors, reportedAt, port, close: () => proxy.close() };
  }
  const { proxy, errors } = await createTestProxy(options);
  const { server, port } = await listenLoopback((socket) => {
    if (entry === 'acceptConnection') proxy.acceptConnection(socket);
    else proxy.handleConnection(socket, { address: '127.0.0.1', port: testbed.plain.port, family: 4 });
  });
  return {
    proxy,
    errors,
    reportedAt,
    port,
    async close() {
      await proxy.close();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** One request as the entry point expects it: absolute-form for the explicit proxy, origin-form when redirected. */
function requestFor(entry: EntryPoint): string {
  const authority = `127.0.0.1:${testbed.plain.port}`;
  return entry === 'handleConnection'
    ? `GET /held HTTP/1.1\r\nhost: ${authority}\r\n\r\n`
    : `GET http://${authority}/held HTTP/1.1\r\nhost: ${authority}\r\n\r\n`;
}

/** A keep-alive client that got one response and keeps its connection open. */
async function heldClient(port: number, request: string): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const response = await rawRequest(socket, request);
  expect(response.status).toBe(200);
  return socket;
}

/** Connects and waits for the proxy to close the connection; returns what the client saw. */
async function refusedClient(port: number): Promise<{ bytes: number; ended: boolean }> {
  const socket = net.connect(port, '127.0.0.1');
  let bytes = 0;
  let ended = false;
  socket.on('data', (chunk: Buffer) => {
    bytes += chunk.length;
  });
  socket.on('end', () => {
    ended = true;
  });
  // A reset is a close too; the assertion is on the bytes.
  socket.on('error', () => {});
  try {
    await once(socket, 'close', { signal: AbortSignal.timeout(5_000) });
  } finally {
    socket.destroy();
  }
  return { bytes, ended };
}

function limitErrors(errors: readonly MitmProxyError[]): ClientConnectionLimitError[] {
  return errors.filter((e) => e.code === 'HTTPMESH_PROXY_CONNECTION_LIMIT') as ClientConnectionLimitError[];
}

describe.each<EntryPoint>(['listen', 'acceptConnection', 'handleConnection'])(
  'maxClientConnections through %s',
  (entry) => {
    test('over the cap a connection is closed unread and reported; a closed one makes room', async () => {
      const h = await harness(entry, { maxClientConnections: 2 });
      const open: net.Socket[] = [];
      try {
        const request = requestFor(entry);
        open.push(await heldClient(h.port, request), await heldClient(h.port, request));
        expect(h.proxy.stats.clientConnections).toBe(2);
        const upstreamConnections = testbed.plain.connections;

        const refused = await refusedClient(h.port);
        expect(refused).toEqual({ bytes: 0, ended: true });
        expect(h.proxy.stats.refusedClientConnections).toBe(1);
        expect(testbed.plain.connections).toBe(upstreamConnections); // nothing was dialled for it
        const [report] = limitErrors(h.errors);
        expect(report).toMatchObject({
          name: 'ClientConnectionLimitError',
          code: 'HTTPMESH_PROXY_CONNECTION_LIMIT',
          limit: 2,
          refused: 1,
        });

        // The held connections were not disturbed by the refusal.
        const again = await rawRequest(open[0] as net.Socket, request);
        expect(again.status).toBe(200);

        (open[1] as net.Socket).destroy();
        await waitFor(() => h.proxy.stats.clientConnections === 1);
        open.push(await heldClient(h.port, request));
        expect(h.proxy.stats.clientConnections).toBe(2);
        expect(h.proxy.stats.refusedClientConnections).toBe(1);
      } finally {
        for (const socket of open) socket.destroy();
        await h.close();
      }
    });
  },
);

test('the cap is shared by every entry point of one proxy', async () => {
  const { proxy, errors, port: explicitPort } = await startTestProxy({ maxClientConnections: 2 });
  const redirected = await listenRedirecting(proxy, testbed.plain.port);
  const handed = await listenLoopback((socket) => proxy.acceptConnection(socket));
  const open: net.Socket[] = [];
  try {
    open.push(await heldClient(explicitPort, requestFor('listen')));
    open.push(await heldClient(redirected.port, requestFor('handleConnection')));
    expect(proxy.stats.clientConnections).toBe(2);
    const refused = await refusedClient(handed.port);
    expect(refused.bytes).toBe(0);
    expect(proxy.stats.refusedClientConnections).toBe(1);
    expect(limitErrors(errors)).toHaveLength(1);
  } finally {
    for (const socket of open) socket.destroy();
    await proxy.close();
    await Promise.all([
      new Promise((resolve) => redirected.server.close(resolve)),
      new Promise((resolve) => handed.server.close(resolve)),
    ]);
  }
});

test('an HTTPS exchange through CONNECT is one connection (cap 1)', async () => {
  const h = await harness('listen', { maxClientConnections: 1 });
  try {
    const socket = await tlsThroughProxy(h.port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
    const response = await rawRequest(socket, 'GET /tls HTTP/1.1\r\nhost: localhost\r\n\r\n');
    expect(response.status).toBe(200);
    expect(response.body).toBe('ok');
    expect(h.proxy.stats.tlsHandshakes).toBe(1);
    expect(h.proxy.stats.clientConnections).toBe(1);
    expect(h.proxy.stats.refusedClientConnections).toBe(0);
    // A second client is the one over the cap.
    expect((await refusedClient(h.port)).bytes).toBe(0);
    expect(h.proxy.stats.refusedClientConnections).toBe(1);
    socket.destroy();
    await waitFor(() => h.proxy.stats.clientConnections === 0);
  } finally {
    await h.close();
  }
});

test('a redirected TLS connection is intercepted under cap 1 and a second one is refused before its handshake', async () => {
  const { proxy, errors } = await createTestProxy({ maxClientConnections: 1 });
  const { server, port } = await listenRedirecting(proxy, testbed.tls.port);
  try {
    const first = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: testbed.pki.proxyCaPem,
    });
    await once(first, 'secureConnect');
    const response = await rawRequest(first, 'GET / HTTP/1.1\r\nhost: localhost\r\n\r\n');
    expect(response.status).toBe(200);
    expect(proxy.stats.clientConnections).toBe(1);

    const second = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: testbed.pki.proxyCaPem,
    });
    const [error] = (await once(second, 'error')) as [Error & { code?: string }];
    // Closed before any server byte: the client's handshake fails on a closed or reset socket.
    expect(error.code).toMatch(/ECONNRESET|EPIPE/);
    expect(proxy.stats.tlsHandshakes).toBe(1);
    expect(limitErrors(errors)).toHaveLength(1);
    expect(errors.some((e) => e.code === 'HTTPMESH_CLIENT_HANDSHAKE_FAILED')).toBe(false);
    first.destroy();
  } finally {
    await proxy.close();
    await new Promise((resolve) => server.close(resolve));
  }
});

test('a flood of refusals is reported at most once a second, with the count', async () => {
  const h = await harness('listen', { maxClientConnections: 1 });
  const held = await heldClient(h.port, requestFor('listen'));
  try {
    const flood = 10;
    const results = await Promise.all(Array.from({ length: flood }, () => refusedClient(h.port)));
    expect(results.every((r) => r.bytes === 0)).toBe(true);
    expect(h.proxy.stats.refusedClientConnections).toBe(flood);
    // Refusals after the first wait for the end of its one-second window.
    await waitFor(() => limitErrors(h.errors).reduce((sum, e) => sum + e.refused, 0) === flood, 5_000);
    const reports = limitErrors(h.errors);
    expect(reports[0]?.refused).toBe(1);
    expect(reports.length).toBeLessThan(flood);
    // Every error of this proxy is a limit report here, so their times are the reports' times.
    expect(h.errors).toHaveLength(reports.length);
    for (let i = 1; i < h.reportedAt.length; i++) {
      // Timers may fire a little early by the clock they are compared with.
      expect((h.reportedAt[i] as number) - (h.reportedAt[i - 1] as number)).toBeGreaterThanOrEqual(990);
    }
  } finally {
    held.destroy();
    await h.close();
  }
});

test('close() reports refusals still waiting for their window', async () => {
  const h = await harness('listen', { maxClientConnections: 1 });
  const held = await heldClient(h.port, requestFor('listen'));
  await refusedClient(h.port);
  await refusedClient(h.port);
  await refusedClient(h.port);
  const early = limitErrors(h.errors).reduce((sum, e) => sum + e.refused, 0);
  held.destroy();
  await h.close();
  const reports = limitErrors(h.errors);
  expect(reports.reduce((sum, e) => sum + e.refused, 0)).toBe(3);
  // Unless the machine stalled for a second, the first report came at once and the rest at close().
  expect(early).toBeGreaterThanOrEqual(1);
});

test('Infinity lifts the cap', async () => {
  const h = await harness('listen', { maxClientConnections: Number.POSITIVE_INFINITY });
  const open: net.Socket[] = [];
  try {
    for (let i = 0; i < 3; i++) open.push(await heldClient(h.port, requestFor('listen')));
    expect(h.proxy.stats.maxClientConnections).toBe(Number.POSITIVE_INFINITY);
    expect(h.proxy.stats.clientConnections).toBe(3);
    expect(h.proxy.stats.refusedClientConnections).toBe(0);
  } finally {
    for (const socket of open) socket.destroy();
    await h.close();
  }
});

test('the default leaves room for two proxies and their upstreams within the open-files limit', async () => {
  const proxy = createMitmProxy({ ca: testbed.pki.proxyCa });
  const line = readFileSync('/proc/self/limits', 'latin1')
    .split('\n')
    .find((l) => l.startsWith('Max open files'));
  const soft = Number(line?.split(/\s+/)[3]);
  const cap = proxy.stats.maxClientConnections;
  expect(Number.isSafeInteger(cap)).toBe(true);
  expect(cap).toBeGreaterThanOrEqual(1);
  expect(cap).toBeLessThanOrEqual(8192);
  // Two proxies, two descriptors per connection, and 256 to spare.
  if (Number.isFinite(soft)) expect(4 * cap + 256).toBeLessThanOrEqual(soft);
  await proxy.close();
});

describe('maxClientConnections validation', () => {
  test.each<[string, unknown]>([
    ['zero', 0],
    ['negative', -1],
    ['fraction', 1.5],
    ['NaN', Number.NaN],
    ['negative infinity', Number.NEGATIVE_INFINITY],
    ['a string', '8'],
    ['null', null],
    ['beyond safe integers', 2 ** 53],
  ])('%s is refused with HTTPMESH_PROXY_OPTIONS_INVALID', (_name, value) => {
    expect(() => createMitmProxy({ ca: testbed.pki.proxyCa, maxClientConnections: value as number })).toThrow(
      expect.objectContaining({ name: 'ProxyOptionsError', code: 'HTTPMESH_PROXY_OPTIONS_INVALID' }),
    );
  });
});
