import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import tls from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ExchangeFilter, ExchangeSummary } from '../src/proxy/exchange.js';
import { createMitmProxy, type MitmProxy } from '../src/proxy/proxy.js';
import {
  connectTunnel,
  createTestProxy,
  listenLoopback,
  listenRedirecting,
  rawRequest,
  startHttpsUpstream,
  startTestProxy,
  tlsThroughProxy,
  upstreamCert,
  useUpstreams,
  waitFor,
} from './fixtures/proxy-harness.js';

const testbed = useUpstreams();
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
  ({ proxy, port: proxyPort } = await startTestProxy({
    intercept: (host) => host !== '127.0.0.1',
    filters: [recorder],
  }));
});

afterAll(async () => {
  await proxy.close();
});

function get(socket: net.Socket, host: string, path = '/hello', extra = ''): ReturnType<typeof rawRequest> {
  return rawRequest(socket, `GET ${path} HTTP/1.1\r\nhost: ${host}\r\n${extra}\r\n`);
}

describe('explicit proxy, plain HTTP', () => {
  test('absolute-URI request is forwarded with Host preserved and hop-by-hop headers removed', async () => {
    const socket = net.connect(proxyPort, '127.0.0.1');
    await once(socket, 'connect');
    const authority = `127.0.0.1:${testbed.plain.port}`;
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
    const socket = await tlsThroughProxy(proxyPort, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
    const issuer = socket.getPeerCertificate().issuer;
    expect(issuer.CN).toBe('httpmesh test proxy CA');
    const before = testbed.tls.connections;
    for (let i = 0; i < 3; i++) {
      const response = await get(socket, `localhost:${testbed.tls.port}`, `/r${i}`);
      expect(response.status).toBe(200);
      const echoed = JSON.parse(response.body) as { url: string; headers: Record<string, string> };
      expect(echoed.url).toBe(`/r${i}`);
      expect(echoed.headers['host']).toBe(`localhost:${testbed.tls.port}`);
    }
    // Sequential requests reuse one pooled upstream connection.
    expect(testbed.tls.connections - before).toBeLessThanOrEqual(1);
    socket.destroy();
  });

  test('non-intercepted host is spliced: the client sees the upstream certificate', async () => {
    const socket = await tlsThroughProxy(proxyPort, '127.0.0.1', testbed.tls.port, testbed.pki.upstreamCaPem);
    expect(socket.getPeerCertificate().issuer.CN).toBe('httpmesh test upstream CA');
    const response = await get(socket, `127.0.0.1:${testbed.tls.port}`);
    expect(response.status).toBe(200);
    socket.destroy();
  });

  test('HTTP/2 is negotiated with clients offering h2', async () => {
    const socket = await tlsThroughProxy(proxyPort, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem, [
      'h2',
      'http/1.1',
    ]);
    expect(socket.alpnProtocol).toBe('h2');
    const session = http2.connect(`https://localhost:${testbed.tls.port}`, {
      createConnection: () => socket,
    });
    const stream = session.request({ ':path': '/h2', ':method': 'POST' });
    stream.end('hello body');
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    let body = '';
    stream.setEncoding('utf8');
    for await (const chunk of stream) body += chunk;
    expect(headers[':status']).toBe(200);
    const echoed = JSON.parse(body) as {
      url: string;
      method: string;
      bodyBytes: number;
      headers: Record<string, string>;
    };
    expect(echoed).toMatchObject({ url: '/h2', method: 'POST', bodyBytes: 10 });
    expect(echoed.headers['host']).toBe(`localhost:${testbed.tls.port}`);
    session.close();
  });
});

describe('bad input', () => {
  async function rawToProxy(bytes: string | Buffer): Promise<string> {
    const socket = net.connect(proxyPort, '127.0.0.1');
    await once(socket, 'connect');
    socket.write(bytes);
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
    });
    await once(socket, 'close');
    return data;
  }

  test('malformed request line gets 400', async () => {
    const reply = await rawToProxy('GET\u0000/ nonsense\r\n\r\n');
    expect(reply.startsWith('HTTP/1.1 400')).toBe(true);
    expect(reply).toContain('x-httpmesh-error: HTTPMESH_BAD_REQUEST');
  });

  test('request head over the limit gets 431', async () => {
    const reply = await rawToProxy(
      `GET http://127.0.0.1:1/ HTTP/1.1\r\nhost: a\r\nx-big: ${'a'.repeat(20_000)}\r\n\r\n`,
    );
    expect(reply.startsWith('HTTP/1.1 431')).toBe(true);
    expect(reply).toContain('HTTPMESH_HEADERS_TOO_LARGE');
  });

  test('TLS spoken to the plain proxy port gets 400 and a close', async () => {
    const hello = await new Promise<Buffer>((resolve) => {
      const capture = net.createServer((s) => s.once('data', (d: Buffer) => resolve(d)));
      capture.listen(0, '127.0.0.1', () => {
        const c = tls.connect({
          port: (capture.address() as net.AddressInfo).port,
          host: '127.0.0.1',
          servername: 'x.test',
        });
        c.on('error', () => {});
        c.once('close', () => capture.close());
        setImmediate(() => setTimeout(() => c.destroy(), 100));
      });
    });
    const reply = await rawToProxy(hello);
    expect(reply.startsWith('HTTP/1.1 400')).toBe(true);
  });

  test('malformed CONNECT target gets 400', async () => {
    const reply = await rawToProxy('CONNECT nohost HTTP/1.1\r\nhost: nohost\r\n\r\n');
    expect(reply.startsWith('HTTP/1.1 400')).toBe(true);
  });

  test('garbage that looks like TLS inside a tunnel is dropped and reported', async () => {
    const tunnel = await connectTunnel(proxyPort, `localhost:${testbed.tls.port}`);
    tunnel.write(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x05, 0x02, 0x00, 0x00, 0x01, 0x00]));
    await once(tunnel, 'close');
    expect(tunnel.destroyed).toBe(true);
  });

  test('plain HTTP inside a tunnel to an intercepted host is proxied as HTTP', async () => {
    const tunnel = await connectTunnel(proxyPort, `localhost:${testbed.plain.port}`);
    const response = await get(tunnel, `localhost:${testbed.plain.port}`, '/plain-in-tunnel');
    expect(response.status).toBe(200);
    expect((JSON.parse(response.body) as { url: string }).url).toBe('/plain-in-tunnel');
    tunnel.destroy();
  });

  test('plain HTTP to a TLS upstream (HTTP on a TLS port) gets a clear 502', async () => {
    const tunnel = await connectTunnel(proxyPort, `localhost:${testbed.tls.port}`);
    const response = await get(tunnel, `localhost:${testbed.tls.port}`);
    expect(response.status).toBe(502);
    expect(response.headers['x-httpmesh-error']).toMatch(/^HTTPMESH_UPSTREAM_/);
    tunnel.destroy();
  });

  test('slow client that never finishes its head gets 408', async () => {
    const { proxy: slowProxy, port } = await startTestProxy({ headersTimeoutMs: 300 });
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    socket.write('GET http://127.0.0.1:1/ HTTP/1.1\r\nhost: a\r\n');
    let data = '';
    socket.on('data', (chunk: Buffer) => {
      data += chunk.toString('latin1');
    });
    await once(socket, 'close');
    expect(data.startsWith('HTTP/1.1 408')).toBe(true);
    expect(data).toContain('HTTPMESH_HEADERS_TIMEOUT');
    await slowProxy.close();
  });
});

describe('upstream failures', () => {
  test('unreachable upstream gets 502 HTTPMESH_UPSTREAM_UNREACHABLE', async () => {
    const closed = net.createServer();
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    const deadPort = (closed.address() as net.AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const socket = await tlsThroughProxy(proxyPort, 'localhost', deadPort, testbed.pki.proxyCaPem);
    const response = await get(socket, `localhost:${deadPort}`);
    expect(response.status).toBe(502);
    expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_UPSTREAM_UNREACHABLE');
    expect(response.body).toContain('ECONNREFUSED');
    socket.destroy();
  });

  test('upstream certificate from an untrusted CA gets 502 explaining why; per-host opt-out accepts it', async () => {
    const rogue = await startHttpsUpstream(undefined, {
      key: testbed.pki.rogueKeyPem,
      cert: testbed.pki.rogueCertPem,
    });
    const socket = await tlsThroughProxy(proxyPort, 'localhost', rogue.port, testbed.pki.proxyCaPem);
    const response = await get(socket, `localhost:${rogue.port}`);
    expect(response.status).toBe(502);
    expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_UPSTREAM_CERT_INVALID');
    expect(response.body).toMatch(/verification failed for localhost/);
    socket.destroy();

    const lenient = createMitmProxy({ ca: testbed.pki.proxyCa, insecureUpstreamHosts: ['localhost'] });
    const { port } = await lenient.listen(0);
    const socket2 = await tlsThroughProxy(port, 'localhost', rogue.port, testbed.pki.proxyCaPem);
    expect((await get(socket2, `localhost:${rogue.port}`)).status).toBe(200);
    socket2.destroy();
    await lenient.close();
    await rogue.close();
  });

  test('upstream reset mid-response breaks the client response and is reported', async () => {
    const resetting = await startHttpsUpstream((_req, res) => {
      res.writeHead(200, { 'content-length': '100000' });
      res.write(Buffer.alloc(1000, 1), () => res.socket?.destroy());
    }, upstreamCert(testbed.pki));
    const socket = await tlsThroughProxy(proxyPort, 'localhost', resetting.port, testbed.pki.proxyCaPem);
    const done = completed.length;
    await expect(get(socket, `localhost:${resetting.port}`)).rejects.toThrow(/connection closed/);
    await waitFor(() => completed.slice(done).some((c) => c.summary.errorCode === 'HTTPMESH_UPSTREAM_RESET'));
    socket.destroy();
    await resetting.close();
  });

  test('client abort mid-upload aborts the upstream request and frees everything', async () => {
    let upstreamAborted = false;
    let upstreamGotBytes = 0;
    const sink = await startHttpsUpstream((req) => {
      req.on('data', (chunk: Buffer) => {
        upstreamGotBytes += chunk.length;
      });
      req.on('aborted', () => {
        upstreamAborted = true;
      });
      req.on('close', () => {
        if (!req.complete) upstreamAborted = true;
      });
    }, upstreamCert(testbed.pki));
    const done = completed.length;
    const socket = await tlsThroughProxy(proxyPort, 'localhost', sink.port, testbed.pki.proxyCaPem);
    socket.write(`POST /upload HTTP/1.1\r\nhost: localhost\r\ncontent-length: 10000000\r\n\r\n`);
    socket.write(Buffer.alloc(64 * 1024, 7));
    await waitFor(() => upstreamGotBytes > 0);
    socket.destroy();
    await waitFor(() => upstreamAborted);
    await waitFor(() => completed.slice(done).some((c) => c.summary.errorCode === 'HTTPMESH_CLIENT_ABORTED'));
    await waitFor(
      () =>
        sink.server.listenerCount('request') > 0 &&
        proxy.stats.openClientSockets === 0 &&
        proxy.stats.activeExchanges === 0,
    );
    await sink.close();
  });
});

describe('filter chain', () => {
  test('short-circuit, header mutation, upstream choice, async hooks and completion summary', async () => {
    const events: string[] = [];
    const summaries: ExchangeSummary[] = [];
    const { proxy: filtered, port } = await startTestProxy({
      filters: [
        {
          onRequestHead(exchange) {
            events.push(`head:${exchange.path}`);
            if (exchange.path === '/deny') {
              return { status: 403, headers: { 'x-reason': 'policy' }, body: 'denied' };
            }
            exchange.requestHeaders['x-added'] = 'yes';
            return undefined;
          },
        },
        {
          async onRequestHead(exchange) {
            await new Promise((resolve) => setImmediate(resolve));
            if (exchange.path === '/reroute')
              exchange.upstream = { ...exchange.upstream, protocol: 'http:', port: testbed.plain.port };
            return undefined;
          },
          async onResponseHead(exchange) {
            await new Promise((resolve) => setImmediate(resolve));
            if (exchange.responseHeaders !== undefined) exchange.responseHeaders['x-filtered'] = '1';
          },
          onComplete(_exchange, summary) {
            summaries.push(summary);
          },
        },
      ],
    });
    const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
    const denied = await get(socket, 'localhost', '/deny');
    expect(denied).toMatchObject({ status: 403, body: 'denied' });
    expect(denied.headers['x-reason']).toBe('policy');

    const ok = await rawRequest(
      socket,
      'POST /echo HTTP/1.1\r\nhost: localhost\r\ncontent-length: 5\r\n\r\nhello',
    );
    expect(ok.status).toBe(200);
    expect(ok.headers['x-filtered']).toBe('1');
    const echoed = JSON.parse(ok.body) as { headers: Record<string, string>; bodyBytes: number };
    expect(echoed.headers['x-added']).toBe('yes');
    expect(echoed.bodyBytes).toBe(5);

    const rerouted = await get(socket, 'localhost', '/reroute');
    expect(rerouted.status).toBe(200);
    expect((JSON.parse(rerouted.body) as { url: string }).url).toBe('/reroute');
    await waitFor(() => summaries.length === 3);
    const [deny, post] = summaries as [ExchangeSummary, ExchangeSummary];
    expect(deny.status).toBe(403);
    expect(deny.timings.upstreamConnect).toBeUndefined();
    expect(post.requestBodyBytes).toBe(5);
    expect(post.responseBodyBytes).toBe(ok.body.length);
    const t = post.timings;
    expect(t.start).toBeLessThanOrEqual(t.upstreamConnect as number);
    expect(t.upstreamConnect as number).toBeLessThanOrEqual(t.firstByte as number);
    expect(t.firstByte as number).toBeLessThanOrEqual(t.end as number);
    expect(events).toEqual(['head:/deny', 'head:/echo', 'head:/reroute']);

    // Swap the chain at run time: the new rule applies to the next request on the same connection.
    filtered.setFilters([{ onRequestHead: () => ({ status: 429, body: 'slow down' }) }]);
    expect((await get(socket, 'localhost', '/echo')).status).toBe(429);
    filtered.setFilters([]);
    expect((await get(socket, 'localhost', '/echo')).status).toBe(200);
    socket.destroy();
    await filtered.close();
  });

  test('a throwing filter gives 500 HTTPMESH_FILTER_FAILED, not a crash', async () => {
    const { proxy: broken, port } = await startTestProxy({
      filters: [
        {
          onRequestHead() {
            throw new Error('boom');
          },
        },
      ],
    });
    const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
    const response = await get(socket, 'localhost');
    expect(response.status).toBe(500);
    expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_FILTER_FAILED');
    socket.destroy();
    await broken.close();
  });
});

describe('WebSocket and transparent mode (pinning: proxy-pinning.test.ts)', () => {
  test('WebSocket upgrade is proxied end to end through an intercepted tunnel', async () => {
    const socket = await tlsThroughProxy(proxyPort, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
    socket.write(
      'GET /ws HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: Upgrade\r\n' +
        'sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n',
    );
    let data = Buffer.alloc(0);
    const read = async (predicate: () => boolean): Promise<void> => {
      while (!predicate()) {
        const [chunk] = (await once(socket, 'data')) as [Buffer];
        data = Buffer.concat([data, chunk]);
      }
    };
    await read(() => data.includes('\r\n\r\n'));
    const headEnd = data.indexOf('\r\n\r\n') + 4;
    expect(data.subarray(0, headEnd).toString()).toContain('HTTP/1.1 101');
    expect(data.subarray(0, headEnd).toString().toLowerCase()).toContain(
      'sec-websocket-accept: s3pplmbitxaq9kygzzhzrbk+xoo=',
    );
    data = data.subarray(headEnd);
    const payload = Buffer.from('ping through mesh');
    const mask = Buffer.from([1, 2, 3, 4]);
    const masked = Buffer.from(payload.map((b, i) => b ^ (mask[i % 4] as number)));
    socket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]));
    await read(() => data.length >= 2 + payload.length);
    expect(data[0]).toBe(0x81);
    expect(data.subarray(2, 2 + payload.length).toString()).toBe('ping through mesh');
    socket.destroy();
  });

  test('transparent mode: handleConnection intercepts by SNI and dials the original destination', async () => {
    const { server: redirector, port } = await listenRedirecting(proxy, testbed.tls.port);
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      servername: 'localhost',
      ca: testbed.pki.proxyCaPem,
    });
    await once(socket, 'secureConnect');
    expect(socket.getPeerCertificate().issuer.CN).toBe('httpmesh test proxy CA');
    const response = await get(socket, 'localhost', '/transparent');
    expect(response.status).toBe(200);
    expect((JSON.parse(response.body) as { url: string }).url).toBe('/transparent');
    socket.destroy();

    // No SNI: the certificate is minted for the original destination IP (an explicitly intercepted IP).
    const { proxy: ipProxy } = await createTestProxy();
    const ipRedirector = await listenRedirecting(ipProxy, testbed.tls.port);
    const ipSocket = tls.connect({ host: '127.0.0.1', port: ipRedirector.port, ca: testbed.pki.proxyCaPem });
    await once(ipSocket, 'secureConnect');
    expect(ipSocket.getPeerCertificate().subjectaltname).toContain('IP Address:127.0.0.1');
    expect((await get(ipSocket, '127.0.0.1', '/no-sni')).status).toBe(200);
    ipSocket.destroy();
    ipRedirector.server.close();
    await ipProxy.close();
    redirector.close();
  });
});

test('transparent mode without an original destination routes plain HTTP by Host', async () => {
  const { server: redirector, port } = await listenLoopback((socket) => proxy.handleConnection(socket, null));
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  const response = await get(socket, `localhost:${testbed.plain.port}`, '/by-host');
  expect(response.status).toBe(200);
  expect((JSON.parse(response.body) as { url: string }).url).toBe('/by-host');
  const noHost = await rawRequest(socket, 'GET / HTTP/1.1\r\n\r\n');
  expect(noHost.status).toBe(400);
  socket.destroy();
  redirector.close();
});

test('transparent mode dials the original destination address while verifying the SNI name', async () => {
  const { CertificateAuthority } = await import('../src/ca/index.js');
  const svcCa = await CertificateAuthority.create({ commonName: 'svc upstream CA' });
  const svcLeaf = await svcCa.issueLeaf(['svc.invalid']);
  const svc = await startHttpsUpstream(undefined, { key: svcLeaf.keyPem, cert: svcLeaf.chainPem });
  const { proxy: transparent } = await createTestProxy({ upstreamCa: [svcCa.certPem] });
  const { server: redirector, port } = await listenRedirecting(transparent, svc.port);
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    servername: 'svc.invalid',
    ca: testbed.pki.proxyCaPem,
  });
  await once(socket, 'secureConnect');
  // `.invalid` never resolves: a 200 proves the proxy dialled 127.0.0.1 and verified "svc.invalid".
  const response = await get(socket, 'svc.invalid', '/dialled');
  expect(response.status).toBe(200);
  expect((JSON.parse(response.body) as { headers: Record<string, string> }).headers['host']).toBe(
    'svc.invalid',
  );
  socket.destroy();
  redirector.close();
  await transparent.close();
  await svc.close();
});

test('upstreamHttp2 negotiates h2 with upstreams that accept it', async () => {
  const { default: http2 } = await import('node:http2');
  const h2Upstream = http2.createSecureServer(
    { ...upstreamCert(testbed.pki), allowHTTP1: true },
    (req, res) => {
      const body = `version=${req.httpVersion} authority=${req.headers[':authority'] ?? req.headers.host}`;
      res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
      res.end(body);
    },
  );
  h2Upstream.listen(0, '127.0.0.1');
  await once(h2Upstream, 'listening');
  const port = (h2Upstream.address() as net.AddressInfo).port;
  const { proxy: h2Proxy, port: h2ProxyPort } = await startTestProxy({ upstreamHttp2: true });
  const socket = await tlsThroughProxy(h2ProxyPort, 'localhost', port, testbed.pki.proxyCaPem);
  const response = await get(socket, `localhost:${port}`, '/');
  expect(response.status).toBe(200);
  expect(response.body).toBe(`version=2.0 authority=localhost:${port}`);
  socket.destroy();
  await h2Proxy.close();
  h2Upstream.close();
});

test('transparent plain HTTP also gets 408 for a head that never completes', async () => {
  const { proxy: slow } = await createTestProxy({ headersTimeoutMs: 300 });
  const { server: redirector, port } = await listenLoopback((s) => slow.handleConnection(s, null));
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  socket.write('GET / HTTP/1.1\r\nhost: a\r\n');
  let data = '';
  socket.on('data', (chunk: Buffer) => {
    data += chunk.toString('latin1');
  });
  await once(socket, 'close');
  expect(data.startsWith('HTTP/1.1 408')).toBe(true);
  redirector.close();
  await slow.close();
});

test('limits apply inside intercepted TLS too: oversized head gets 431', async () => {
  const socket = await tlsThroughProxy(proxyPort, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  const response = await rawRequest(
    socket,
    `GET / HTTP/1.1\r\nhost: localhost\r\nx-big: ${'b'.repeat(20_000)}\r\n\r\n`,
  );
  expect(response.status).toBe(431);
  expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_HEADERS_TOO_LARGE');
  socket.destroy();
});

test('a filter may buffer the request body under a hard cap; over the cap the client gets 413', async () => {
  const inspected: string[] = [];
  const { proxy: inspecting, port } = await startTestProxy({
    filters: [
      {
        async onRequestHead(exchange) {
          if (exchange.method !== 'POST') return undefined;
          const body = await exchange.readRequestBody(1024);
          inspected.push(body.toString());
          return body.includes('forbidden') ? { status: 403, body: 'body rejected' } : undefined;
        },
      },
    ],
  });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  const post = (body: string, chunked = false): ReturnType<typeof rawRequest> =>
    rawRequest(
      socket,
      chunked
        ? `POST /b HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n${body.length.toString(16)}\r\n${body}\r\n0\r\n\r\n`
        : `POST /b HTTP/1.1\r\nhost: localhost\r\ncontent-length: ${body.length}\r\n\r\n${body}`,
    );
  const ok = await post('hello inspected body');
  expect(ok.status).toBe(200);
  expect((JSON.parse(ok.body) as { bodyBytes: number }).bodyBytes).toBe(20);
  const chunked = await post('chunked body', true);
  expect(chunked.status).toBe(200);
  expect((JSON.parse(chunked.body) as { bodyBytes: number }).bodyBytes).toBe(12);
  expect((await post('this is forbidden')).status).toBe(403);
  expect(inspected).toEqual(['hello inspected body', 'chunked body', 'this is forbidden']);
  const tooLarge = await post('x'.repeat(5000));
  expect(tooLarge.status).toBe(413);
  expect(tooLarge.headers['x-httpmesh-error']).toBe('HTTPMESH_BODY_TOO_LARGE');
  socket.destroy();
  await inspecting.close();
});

test('a timeout policy set by a filter gives 504 when the upstream is too slow', async () => {
  let release: (() => void) | undefined;
  const slowUpstream = await startHttpsUpstream((_req, res) => {
    release = () => res.end('late');
  }, upstreamCert(testbed.pki));
  const { proxy: timed, port } = await startTestProxy({
    filters: [
      {
        onRequestHead(exchange) {
          exchange.upstreamHeadersTimeoutMs = 200;
          return undefined;
        },
      },
    ],
  });
  const socket = await tlsThroughProxy(port, 'localhost', slowUpstream.port, testbed.pki.proxyCaPem);
  const response = await get(socket, 'localhost', '/slow');
  expect(response.status).toBe(504);
  expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_UPSTREAM_TIMEOUT');
  release?.();
  socket.destroy();
  await timed.close();
  await slowUpstream.close();
});
