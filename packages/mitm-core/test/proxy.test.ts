import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ExchangeFilter, ExchangeSummary } from '../src/proxy/exchange.js';
import { createMitmProxy, type MitmProxy } from '../src/proxy/proxy.js';
import {
  connectTunnel,
  rawRequest,
  startHttpUpstream,
  startHttpsUpstream,
  type TestPki,
  testPki,
  tlsThroughProxy,
  type Upstream,
  waitFor,
} from './fixtures/proxy-harness.js';

let pki: TestPki;
let upstream: Upstream;
let plainUpstream: Upstream;
let proxy: MitmProxy;
let proxyPort: number;
const completed: { exchangeId: number; summary: ExchangeSummary; authority: string }[] = [];
const recorder: ExchangeFilter = {
  name: 'recorder',
  onComplete(exchange, summary) {
    completed.push({ exchangeId: exchange.id, summary, authority: exchange.authority });
  },
};

beforeAll(async () => {
  pki = await testPki();
  upstream = await startHttpsUpstream(undefined, { key: pki.upstreamKeyPem, cert: pki.upstreamCertPem });
  plainUpstream = await startHttpUpstream();
  proxy = createMitmProxy({
    ca: pki.proxyCa,
    upstreamCa: [pki.upstreamCaPem],
    intercept: (host) => host !== '127.0.0.1',
    filters: [recorder],
    onError: (e) => console.log('proxy error', e.code, e.message),
  });
  proxyPort = (await proxy.listen(0)).port;
});

afterAll(async () => {
  await proxy.close();
  await upstream.close();
  await plainUpstream.close();
});

function get(socket: net.Socket, host: string, path = '/hello', extra = ''): ReturnType<typeof rawRequest> {
  return rawRequest(socket, `GET ${path} HTTP/1.1\r\nhost: ${host}\r\n${extra}\r\n`);
}

describe('explicit proxy, plain HTTP', () => {
  test('absolute-URI request is forwarded with Host preserved and hop-by-hop headers removed', async () => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    await once(socket, 'connect');
    const authority = `127.0.0.1:${plainUpstream.port}`;
    const response = await rawRequest(
      socket,
      `GET http://${authority}/a?b=1 HTTP/1.1\r\nhost: ${authority}\r\nconnection: keep-alive, x-hop\r\n` +
        `x-hop: secret\r\nproxy-connection: keep-alive\r\nte: trailers\r\nx-end: kept\r\n\r\n`,
    );
    expect(response.status).toBe(200);
    const echoed = JSON.parse(response.body) as { url: string; headers: Record<string, string> };
    expect(echoed.url).toBe('/a?b=1');
    expect(echoed.headers['host']).toBe(authority);
    expect(echoed.headers['x-end']).toBe('kept');
    expect(echoed.headers['x-hop']).toBeUndefined();
    expect(echoed.headers['proxy-connection']).toBeUndefined();
    expect(echoed.headers['te']).toBeUndefined();
    // The upstream's Keep-Alive response header is hop-by-hop too.
    expect(response.headers['keep-alive']).not.toBe('timeout=77');
    expect(response.headers['x-upstream']).toBe('yes');
    socket.destroy();
  });

  test('origin-form request sent to the proxy itself gets 400 with an error code', async () => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    await once(socket, 'connect');
    const response = await get(socket, 'whatever');
    expect(response.status).toBe(400);
    expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_BAD_REQUEST');
    socket.destroy();
  });
});

describe('CONNECT interception', () => {
  test('client sees a leaf minted by the proxy CA and gets the upstream response over keep-alive', async () => {
    const socket = await tlsThroughProxy(proxyPort, 'localhost', upstream.port, pki.proxyCaPem);
    const issuer = socket.getPeerCertificate().issuer;
    expect(issuer.CN).toBe('httpmesh test proxy CA');
    const before = upstream.connections;
    for (let i = 0; i < 3; i++) {
      const response = await get(socket, `localhost:${upstream.port}`, `/r${i}`);
      expect(response.status).toBe(200);
      const echoed = JSON.parse(response.body) as { url: string; headers: Record<string, string> };
      expect(echoed.url).toBe(`/r${i}`);
      expect(echoed.headers['host']).toBe(`localhost:${upstream.port}`);
    }
    // Sequential requests reuse one pooled upstream connection.
    expect(upstream.connections - before).toBeLessThanOrEqual(1);
    socket.destroy();
  });

  test('non-intercepted host is spliced: the client sees the upstream certificate', async () => {
    const socket = await tlsThroughProxy(proxyPort, '127.0.0.1', upstream.port, pki.upstreamCaPem);
    expect(socket.getPeerCertificate().issuer.CN).toBe('httpmesh test upstream CA');
    const response = await get(socket, `127.0.0.1:${upstream.port}`);
    expect(response.status).toBe(200);
    socket.destroy();
  });

  test('HTTP/2 is negotiated with clients offering h2', async () => {
    const socket = await tlsThroughProxy(proxyPort, 'localhost', upstream.port, pki.proxyCaPem, ['h2', 'http/1.1']);
    expect(socket.alpnProtocol).toBe('h2');
    const session = http2.connect(`https://localhost:${upstream.port}`, { createConnection: () => socket });
    const stream = session.request({ ':path': '/h2', ':method': 'POST' });
    stream.end('hello body');
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    let body = '';
    stream.setEncoding('utf8');
    for await (const chunk of stream) body += chunk;
    expect(headers[':status']).toBe(200);
    const echoed = JSON.parse(body) as { url: string; method: string; bodyBytes: number; headers: Record<string, string> };
    expect(echoed).toMatchObject({ url: '/h2', method: 'POST', bodyBytes: 10 });
    expect(echoed.headers['host']).toBe(`localhost:${upstream.port}`);
    session.close();
  });
});
