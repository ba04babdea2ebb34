import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createMitmProxy, type MitmProxy } from '../src/proxy/proxy.js';
import { connectTunnel, fdCount, rawRequest, useUpstreams, waitFor } from './fixtures/proxy-harness.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

const TLS_CONNECTIONS = 2_000;
const PLAIN_CONNECTIONS = 3_000;
const CONCURRENCY = 32;

const testbed = useUpstreams();
let proxy: MitmProxy;
let proxyPort: number;

beforeAll(async () => {
  // Not startTestProxy: its error list would keep reports alive across the heap check.
  proxy = createMitmProxy({
    ca: testbed.pki.proxyCa,
    upstreamCa: [testbed.pki.upstreamCaPem],
    upstreamKeepAliveTimeoutMs: 200,
    keepAliveTimeoutMs: 200,
  });
  proxyPort = (await proxy.listen(0)).port;
});

afterAll(async () => {
  await proxy.close();
});

async function oneTlsExchange(session: Buffer | undefined): Promise<Buffer | undefined> {
  const tunnel = await connectTunnel(proxyPort, `localhost:${testbed.tls.port}`);
  const socket = tls.connect({
    socket: tunnel,
    servername: 'localhost',
    ca: testbed.pki.proxyCaPem,
    ...(session ? { session } : {}),
  });
  let ticket: Buffer | undefined;
  socket.once('session', (s: Buffer) => {
    ticket = s;
  });
  await once(socket, 'secureConnect');
  const response = await rawRequest(
    socket,
    'GET /soak HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n',
  );
  expect(response.status).toBe(200);
  socket.destroy();
  tunnel.destroy();
  return ticket ?? session;
}

async function onePlainExchange(): Promise<void> {
  const socket = net.connect({ port: proxyPort, host: '127.0.0.1', noDelay: true });
  await once(socket, 'connect');
  const authority = `127.0.0.1:${testbed.plain.port}`;
  const response = await rawRequest(
    socket,
    `GET http://${authority}/soak HTTP/1.1\r\nhost: ${authority}\r\nconnection: close\r\n\r\n`,
  );
  expect(response.status).toBe(200);
  socket.destroy();
}

async function settle(baselineFds: number): Promise<void> {
  await waitFor(() => proxy.stats.openClientSockets === 0, 10_000);
  // Pooled upstream and server-side keep-alive sockets close after their 200 ms idle timeouts.
  await waitFor(() => fdCount() <= baselineFds + 2, 10_000);
}

test(`${TLS_CONNECTIONS + PLAIN_CONNECTIONS} connections leave fds, sockets and heap at baseline`, async () => {
  // Warm up code paths, the leaf cache and the pools, then take the baseline.
  let session = await oneTlsExchange(undefined);
  await onePlainExchange();
  await settle(fdCount());
  gc();
  const baselineFds = fdCount();
  const baselineHeap = process.memoryUsage().heapUsed;

  let tlsLeft = TLS_CONNECTIONS;
  let plainLeft = PLAIN_CONNECTIONS;
  let peakOpen = 0;
  const worker = async (): Promise<void> => {
    while (tlsLeft > 0 || plainLeft > 0) {
      peakOpen = Math.max(peakOpen, proxy.stats.openClientSockets);
      if (tlsLeft > 0 && (plainLeft === 0 || tlsLeft * PLAIN_CONNECTIONS >= plainLeft * TLS_CONNECTIONS)) {
        tlsLeft--;
        session = await oneTlsExchange(session);
      } else {
        plainLeft--;
        await onePlainExchange();
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  // Open sockets never exceed what the clients hold (client side + TLS layer per connection).
  expect(peakOpen).toBeLessThanOrEqual(CONCURRENCY * 2 + 2);

  await settle(baselineFds);
  expect(proxy.stats.openClientSockets).toBe(0);
  // Every exchange completed exactly once: the drain counter is back to zero.
  expect(proxy.stats.activeExchanges).toBe(0);
  expect(fdCount()).toBeLessThanOrEqual(baselineFds + 2);
  gc();
  const heapGrowth = process.memoryUsage().heapUsed - baselineHeap;
  expect(heapGrowth).toBeLessThan(16 * 1024 * 1024);
}, 120_000);
