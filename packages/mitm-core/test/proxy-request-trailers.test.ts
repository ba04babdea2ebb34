/**
 * Request trailers through the proxy with real clients and upstreams: a node:http client's chunked
 * `addTrailers` through the explicit proxy to a plain upstream and through intercepted TLS to an HTTPS
 * upstream, an h2 client's trailing HEADERS, `onRequestTrailers` changes, and a malformed trailer a filter
 * set is refused with HTTPMESH_REQUEST_TRAILER_INVALID before anything is sent as trailers.
 */
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import { expect, test } from 'vitest';
import type { ExchangeFilter, ExchangeSummary } from '../src/proxy/exchange.js';
import {
  type Handler,
  startHttpUpstream,
  startTestProxy,
  tlsThroughProxy,
  useUpstreams,
  waitFor,
} from './fixtures/proxy-harness.js';

/** Replies with what arrived: the body, the trailers and whether the request was chunked. */
const trailerEcho: Handler = (req, res) => {
  let body = '';
  req.setEncoding('utf8');
  req.on('data', (c: string) => {
    body += c;
  });
  req.on('end', () => {
    res.setHeader('content-type', 'application/json');
    res.end(
      JSON.stringify({
        body,
        trailers: req.trailers,
        chunked: req.headers['transfer-encoding'] === 'chunked',
      }),
    );
  });
};

const testbed = useUpstreams(trailerEcho);

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  json: { body: string; trailers: Record<string, string>; chunked: boolean } | undefined;
}

function send(options: http.RequestOptions, trailers: Record<string, string>): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request({ method: 'POST', ...options }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        text += c;
      });
      res.on('error', reject);
      res.on('end', () => {
        const json = res.headers['content-type'] === 'application/json' ? JSON.parse(text) : undefined;
        resolve({ status: res.statusCode ?? 0, headers: res.headers, json });
      });
    });
    req.on('error', reject);
    req.setHeader('trailer', Object.keys(trailers).join(', '));
    req.write('hello ');
    req.write('world');
    req.addTrailers(trailers);
    req.end();
  });
}

async function explicit(filters: ExchangeFilter[], trailers: Record<string, string>): Promise<Reply> {
  const { proxy, port } = await startTestProxy({ filters });
  try {
    return await send(
      {
        host: '127.0.0.1',
        port,
        path: `http://127.0.0.1:${testbed.plain.port}/t`,
        agent: false,
      },
      trailers,
    );
  } finally {
    await proxy.close();
  }
}

test('explicit proxy: a node:http client addTrailers reaches a plain upstream untouched without filters', async () => {
  const reply = await explicit([], { 'x-checksum': 'abc123', 'x-sig': 's1' });
  expect(reply.status).toBe(200);
  expect(reply.json).toEqual({
    body: 'hello world',
    trailers: { 'x-checksum': 'abc123', 'x-sig': 's1' },
    chunked: true,
  });
});

test('onRequestTrailers sees the client trailers and changes them (sync, then async)', async () => {
  const seen: unknown[] = [];
  const summaries: ExchangeSummary[] = [];
  const reply = await explicit(
    [
      {
        onRequestTrailers(exchange) {
          seen.push({ ...exchange.requestTrailers });
          exchange.requestTrailers = { ...exchange.requestTrailers, 'x-sig': 'rewritten' };
        },
      },
      {
        async onRequestTrailers(exchange) {
          await new Promise((resolve) => setImmediate(resolve));
          const { 'x-checksum': _dropped, ...rest } = exchange.requestTrailers ?? {};
          exchange.requestTrailers = { ...rest, 'x-added': 'by-filter' };
        },
        onComplete: (_exchange, summary) => void summaries.push(summary),
      },
    ],
    { 'x-checksum': 'abc123', 'x-sig': 's1' },
  );
  expect(seen).toEqual([{ 'x-checksum': 'abc123', 'x-sig': 's1' }]);
  expect(reply.json?.body).toBe('hello world');
  expect(reply.json?.trailers).toEqual({ 'x-sig': 'rewritten', 'x-added': 'by-filter' });
  await waitFor(() => summaries.length === 1);
  expect(summaries[0]?.errorCode).toBeUndefined();
});

test('intercepted TLS: client trailers reach an HTTPS upstream verified with the upstream CA', async () => {
  const { proxy, port } = await startTestProxy({
    filters: [
      {
        onRequestTrailers(exchange) {
          exchange.requestTrailers = { ...exchange.requestTrailers, 'x-proxy-saw': 'tls' };
        },
      },
    ],
  });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    const reply = await send(
      { host: 'localhost', port: testbed.tls.port, path: '/tls', createConnection: () => socket },
      { 'x-checksum': 'tls1' },
    );
    expect(reply.status).toBe(200);
    expect(reply.json).toEqual({
      body: 'hello world',
      trailers: { 'x-checksum': 'tls1', 'x-proxy-saw': 'tls' },
      chunked: true,
    });
  } finally {
    socket.destroy();
    await proxy.close();
  }
});

test('intercepted TLS: an upstream the proxy cannot verify is refused (no CA given) with a 502', async () => {
  const { proxy, port } = await startTestProxy({ upstreamCa: [] });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    const reply = await send(
      { host: 'localhost', port: testbed.tls.port, path: '/tls', createConnection: () => socket },
      { 'x-checksum': 'tls1' },
    );
    expect(reply.status).toBe(502);
    expect(reply.headers['x-httpmesh-error']).toBe('HTTPMESH_UPSTREAM_CERT_INVALID');
  } finally {
    socket.destroy();
    await proxy.close();
  }
});

test('intercepted TLS: the insecure-host predicate lets an unverifiable upstream through, as on undici', async () => {
  const asked: string[] = [];
  const { proxy, port } = await startTestProxy({
    upstreamCa: [], // the system roots only: the predicate alone lets the upstream through
    insecureUpstreamHosts: (host) => {
      asked.push(host);
      return host === 'localhost';
    },
  });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    const reply = await send(
      { host: 'localhost', port: testbed.tls.port, path: '/tls', createConnection: () => socket },
      { 'x-checksum': 'tls2' },
    );
    expect(reply.status).toBe(200);
    expect(reply.json?.trailers).toEqual({ 'x-checksum': 'tls2' });
    expect(asked).toContain('localhost');
  } finally {
    socket.destroy();
    await proxy.close();
  }
});

test('an unreachable upstream is classified like the undici path (502 HTTPMESH_UPSTREAM_UNREACHABLE)', async () => {
  const closed = await startHttpUpstream(trailerEcho);
  const deadPort = closed.port;
  await closed.close();
  const { proxy, port } = await startTestProxy();
  try {
    const reply = await send(
      { host: '127.0.0.1', port, path: `http://127.0.0.1:${deadPort}/t`, agent: false },
      { 'x-checksum': 'x' },
    );
    expect(reply.status).toBe(502);
    expect(reply.headers['x-httpmesh-error']).toBe('HTTPMESH_UPSTREAM_UNREACHABLE');
  } finally {
    await proxy.close();
  }
});

test('an upstream slower than the headers timeout gets a 504 HTTPMESH_UPSTREAM_TIMEOUT', async () => {
  const silent = await startHttpUpstream((req) => req.resume());
  const { proxy, port } = await startTestProxy({ upstreamHeadersTimeoutMs: 100 });
  try {
    const reply = await send(
      { host: '127.0.0.1', port, path: `http://127.0.0.1:${silent.port}/t`, agent: false },
      { 'x-checksum': 'x' },
    );
    expect(reply.status).toBe(504);
    expect(reply.headers['x-httpmesh-error']).toBe('HTTPMESH_UPSTREAM_TIMEOUT');
  } finally {
    await proxy.close();
    await silent.close();
  }
});

test('an h2 client sending trailing HEADERS has them forwarded upstream', async () => {
  const { proxy, port } = await startTestProxy();
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem, ['h2']);
  const session = http2.connect(`https://localhost:${testbed.tls.port}`, { createConnection: () => socket });
  try {
    const stream = session.request(
      { ':path': '/grpc', ':method': 'POST', te: 'trailers' },
      { waitForTrailers: true },
    );
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status-details': 'x', 'x-checksum': 'h2' }));
    stream.write('hello ');
    stream.end('world');
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    let text = '';
    stream.setEncoding('utf8');
    for await (const chunk of stream) text += chunk;
    expect(headers[':status']).toBe(200);
    expect(JSON.parse(text)).toEqual({
      body: 'hello world',
      trailers: { 'grpc-status-details': 'x', 'x-checksum': 'h2' },
      chunked: true,
    });
  } finally {
    session.close();
    socket.destroy();
    await proxy.close();
  }
});

test('a malformed trailer value from a filter is refused with HTTPMESH_REQUEST_TRAILER_INVALID', async () => {
  const summaries: ExchangeSummary[] = [];
  const reply = await explicit(
    [
      {
        onRequestTrailers(exchange) {
          exchange.requestTrailers = { 'x-bad': 'a\r\nx-injected: 1' };
        },
        onComplete: (_exchange, summary) => void summaries.push(summary),
      },
    ],
    { 'x-checksum': 'abc123' },
  );
  expect(reply.status).toBe(500);
  expect(reply.headers['x-httpmesh-error']).toBe('HTTPMESH_REQUEST_TRAILER_INVALID');
  await waitFor(() => summaries.length === 1);
  expect(summaries[0]?.errorCode).toBe('HTTPMESH_REQUEST_TRAILER_INVALID');
});

test('a throwing onRequestTrailers hook fails the exchange with HTTPMESH_FILTER_FAILED', async () => {
  const reply = await explicit(
    [
      {
        onRequestTrailers() {
          throw new Error('trailer hook failed');
        },
      },
    ],
    { 'x-checksum': 'abc123' },
  );
  expect(reply.status).toBe(500);
  expect(reply.headers['x-httpmesh-error']).toBe('HTTPMESH_FILTER_FAILED');
});
