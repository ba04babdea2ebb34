import { createServer } from 'node:http';
import { connect } from 'node:net';
import { CertificateAuthority, createMitmProxy, type MitmProxy } from '@httpmesh/mitm-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  type DemoUpstream,
  type HttpsDemoUpstream,
  startPaymentsService,
  startShopService,
} from '../src/upstreams.js';
import { startTrafficGenerator, type TrafficGenerator } from '../src/traffic.js';

/** Raw request (no client-side normalisation) to 127.0.0.1:port. */
function raw(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    let out = '';
    socket.on('data', (c: Buffer) => {
      out += c.toString('latin1');
    });
    socket.once('error', reject);
    socket.once('end', () => resolve(out));
    socket.write(text);
  });
}

async function finished(generator: TrafficGenerator, count: number, deadlineMs: number): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (generator.stats.completed + generator.stats.failed < count) {
    if (Date.now() > end) throw new Error(`only ${JSON.stringify(generator.stats)} within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
  await generator.stop();
}

describe('demo upstreams', () => {
  let shop: DemoUpstream;
  beforeAll(async () => {
    shop = await startShopService({ errorRatio: 0, maxDelayMs: 0 });
  });
  afterAll(() => shop.close());

  test('answer their dynamic-path endpoints and list them as route patterns', async () => {
    expect(shop.routes).toEqual([
      { pattern: '/orders/:id', methods: ['GET'] },
      { pattern: '/orders', methods: ['POST'] },
      { pattern: '/users/:id/cart', methods: ['GET'] },
      { pattern: '/products/:sku', methods: ['GET'] },
    ]);
    const res = await fetch(`http://127.0.0.1:${shop.port}/users/u%2042/cart?x=1`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ user: 'u 42', items: [] });
    expect((await fetch(`http://127.0.0.1:${shop.port}/orders`, { method: 'POST', body: '{}' })).status).toBe(
      201,
    );
  });

  test.each([
    ['GET /orders/%E0%A4%A HTTP/1.1', 404],
    ['GET /orders/ HTTP/1.1', 404],
    ['GET /nothing/here HTTP/1.1', 404],
    ['DELETE /orders/1 HTTP/1.1', 404],
    ['GET /orders/1/2/3/4 HTTP/1.1', 404],
  ])('%s -> %i, and the service keeps serving', async (line, status) => {
    const reply = await raw(shop.port, `${line}\r\nhost: shop.demo.test\r\nconnection: close\r\n\r\n`);
    expect(reply.startsWith(`HTTP/1.1 ${status}`)).toBe(true);
    expect((await fetch(`http://127.0.0.1:${shop.port}/orders/7`)).status).toBe(200);
  });

  test('the HTTPS service presents a certificate for its name from its own CA', async () => {
    const payments: HttpsDemoUpstream = await startPaymentsService({ maxDelayMs: 0 });
    try {
      expect(payments.origin).toBe(`https://payments.demo.test:${payments.port}`);
      expect(payments.caPem).toContain('BEGIN CERTIFICATE');
      const { connect: tlsConnect } = await import('node:tls');
      const verified = await new Promise<string>((resolve, reject) => {
        const socket = tlsConnect({
          host: '127.0.0.1',
          port: payments.port,
          servername: 'payments.demo.test',
          ca: payments.caPem,
        });
        socket.once('secureConnect', () => {
          resolve(String(socket.getPeerCertificate().subject?.CN));
          socket.end();
        });
        socket.once('error', reject);
      });
      expect(verified).toBe('payments.demo.test');
    } finally {
      await payments.close();
    }
  });
});

describe('traffic generator through a real mitm-core proxy', () => {
  let shop: DemoUpstream;
  let payments: HttpsDemoUpstream;
  let meshCa: CertificateAuthority;
  let proxy: MitmProxy;
  let port: number;
  const seen: string[] = [];

  beforeAll(async () => {
    shop = await startShopService({ errorRatio: 0, maxDelayMs: 0 });
    // Named 127.0.0.1 so the proxy can reach it without the demo's DNS preload (IP SANs on both leaves).
    payments = await startPaymentsService({ host: '127.0.0.1', errorRatio: 0, maxDelayMs: 0 });
    meshCa = await CertificateAuthority.create({ commonName: 'test mesh CA' });
    proxy = createMitmProxy({
      ca: meshCa,
      upstreamCa: [payments.caPem],
      intercept: () => true,
      filters: [
        {
          name: 'seen',
          onComplete(exchange) {
            seen.push(`${exchange.method} ${exchange.path}`);
          },
        },
      ],
    });
    port = (await proxy.listen(0, '127.0.0.1')).port;
  });
  afterAll(async () => {
    await proxy.close();
    await shop.close();
    await payments.close();
  });

  test('sends absolute-URI HTTP through the proxy at a bounded count', async () => {
    const generator = startTrafficGenerator({
      proxy: { host: '127.0.0.1', port },
      targets: [
        { method: 'GET', url: `http://127.0.0.1:${shop.port}/orders/{id}` },
        { method: 'POST', url: `http://127.0.0.1:${shop.port}/orders` },
      ],
      trustedCa: meshCa.certPem,
      ratePerSecond: 100,
      maxRequests: 12,
    });
    await finished(generator, 12, 15_000);
    expect(generator.stats.sent).toBe(12);
    expect(generator.stats.failed).toBe(0);
    expect((generator.stats.statuses[200] ?? 0) + (generator.stats.statuses[201] ?? 0)).toBe(12);
    expect(seen.filter((s) => /^GET \/orders\/\d+$/.test(s) || s === 'POST /orders').length).toBe(12);
  });

  test('HTTPS through CONNECT is intercepted: the client verifies the mesh CA, not the upstream CA', async () => {
    const sameHost = `https://127.0.0.1:${payments.port}/payments/{id}`;
    // Verifying against the mesh CA only works when the proxy terminates TLS with a mesh leaf.
    const intercepted = startTrafficGenerator({
      proxy: { host: '127.0.0.1', port },
      targets: [{ method: 'GET', url: sameHost }],
      trustedCa: meshCa.certPem,
      ratePerSecond: 50,
      maxRequests: 5,
    });
    await finished(intercepted, 5, 15_000);
    expect(intercepted.stats).toMatchObject({ completed: 5, failed: 0, statuses: { 200: 5 } });

    // A client that trusts only the upstream's own CA rejects the mesh leaf: counted as failures.
    const distrustful = startTrafficGenerator({
      proxy: { host: '127.0.0.1', port },
      targets: [{ method: 'GET', url: sameHost }],
      trustedCa: payments.caPem,
      ratePerSecond: 50,
      maxRequests: 2,
    });
    await finished(distrustful, 2, 15_000);
    expect(distrustful.stats.completed).toBe(0);
    expect(distrustful.stats.failed).toBe(2);
    expect(distrustful.stats.lastError).toMatch(/certificate/i);
  });

  test('a proxy that refuses CONNECT or is not there is counted as failures, never thrown', async () => {
    const refusing = await new Promise<{ port: number; close: () => void }>((resolve) => {
      const server = createServer((_req, res) => res.writeHead(403).end());
      server.on('connect', (_req, socket) => socket.end('HTTP/1.1 403 Forbidden\r\n\r\n'));
      server.listen(0, '127.0.0.1', () => {
        const address = server.address();
        resolve({
          port: typeof address === 'object' && address !== null ? address.port : 0,
          close: () => server.close(),
        });
      });
    });
    try {
      const generator = startTrafficGenerator({
        proxy: { host: '127.0.0.1', port: refusing.port },
        targets: [{ method: 'GET', url: `https://127.0.0.1:${payments.port}/payments/{id}` }],
        trustedCa: meshCa.certPem,
        maxRequests: 2,
        ratePerSecond: 50,
      });
      await finished(generator, 2, 10_000);
      expect(generator.stats.failed).toBe(2);
      expect(generator.stats.lastError).toBe('CONNECT answered 403');
    } finally {
      refusing.close();
    }
    expect(() =>
      startTrafficGenerator({ proxy: { host: '127.0.0.1', port }, targets: [], trustedCa: meshCa.certPem }),
    ).toThrow(TypeError);
  });
});
