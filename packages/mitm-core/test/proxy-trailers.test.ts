/**
 * Response trailers through the proxy with real clients and upstreams: HTTP/1.1 chunked trailers
 * (node:http `addTrailers`) and h2 trailing HEADERS (`waitForTrailers`), forwarded untouched without filters,
 * changed by `onResponseTrailers` hooks (sync and async), and a failing hook breaks the response instead of
 * ending it cleanly.
 */
import { once } from 'node:events';
import http from 'node:http';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { ExchangeFilter, ExchangeSummary } from '../src/proxy/exchange.js';
import {
  startTestProxy,
  tlsThroughProxy,
  upstreamCert,
  useTlsUpstream,
  waitFor,
} from './fixtures/proxy-harness.js';

/** The HTTP/1.1 upstream (`testbed.tls`): a chunked body ending with trailers. */
const testbed = useTlsUpstream((req, res) => {
  req.resume();
  res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum, x-status' });
  res.write('part1;');
  res.write('part2');
  res.addTrailers({ 'x-checksum': 'abc123', 'x-status': 'ok' });
  res.end();
});
let h2Upstream: http2.Http2SecureServer;
let h2Port = 0;

beforeAll(async () => {
  h2Upstream = http2.createSecureServer(upstreamCert(testbed.pki));
  h2Upstream.on('stream', (stream) => {
    stream.resume();
    stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
    stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' }));
    stream.end('h2-body');
  });
  h2Upstream.listen(0, '127.0.0.1');
  await once(h2Upstream, 'listening');
  h2Port = (h2Upstream.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => h2Upstream.close(resolve));
});

/** One HTTP/1.1 GET through the proxy with node:https; resolves body and trailers, rejects on a broken response. */
async function h1Get(
  filters: ExchangeFilter[],
): Promise<{ status: number; body: string; trailers: NodeJS.Dict<string> }> {
  const { proxy, port } = await startTestProxy({ filters });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    return await new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: 'localhost',
          port: testbed.tls.port,
          path: '/t',
          createConnection: () => socket,
        },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            body += c;
          });
          res.on('aborted', () => reject(new Error('response aborted')));
          res.on('error', reject);
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body, trailers: res.trailers }));
        },
      );
      req.on('error', reject);
      req.end();
    });
  } finally {
    socket.destroy();
    await proxy.close();
  }
}

test('HTTP/1.1 chunked trailers are forwarded untouched when no filter is installed', async () => {
  const reply = await h1Get([]);
  expect(reply).toEqual({
    status: 200,
    body: 'part1;part2',
    trailers: { 'x-checksum': 'abc123', 'x-status': 'ok' },
  });
});

test('onResponseTrailers sees the upstream trailers and changes them (sync, then async)', async () => {
  const seen: unknown[] = [];
  const summaries: ExchangeSummary[] = [];
  const reply = await h1Get([
    {
      onResponseTrailers(exchange) {
        seen.push({ ...exchange.responseTrailers });
        exchange.responseTrailers = { ...exchange.responseTrailers, 'x-status': 'rewritten' };
      },
    },
    {
      async onResponseTrailers(exchange) {
        await new Promise((resolve) => setImmediate(resolve));
        const { 'x-checksum': _dropped, ...rest } = exchange.responseTrailers ?? {};
        exchange.responseTrailers = { ...rest, 'x-added': 'by-filter' };
      },
      onComplete: (_exchange, summary) => void summaries.push(summary),
    },
  ]);
  expect(seen).toEqual([{ 'x-checksum': 'abc123', 'x-status': 'ok' }]);
  expect(reply.body).toBe('part1;part2');
  expect(reply.trailers).toEqual({ 'x-status': 'rewritten', 'x-added': 'by-filter' });
  await waitFor(() => summaries.length === 1);
  expect(summaries[0]?.errorCode).toBeUndefined();
});

test('a throwing trailer hook or an invalid trailer breaks the response instead of ending it cleanly', async () => {
  const summaries: ExchangeSummary[] = [];
  await expect(
    h1Get([
      {
        onResponseTrailers() {
          throw new Error('trailer hook failed');
        },
        onComplete: (_exchange, summary) => void summaries.push(summary),
      },
    ]),
  ).rejects.toThrow();
  await expect(
    h1Get([
      {
        onResponseTrailers(exchange) {
          exchange.responseTrailers = { 'x-bad': 'a\r\nx-injected: 1' };
        },
        onComplete: (_exchange, summary) => void summaries.push(summary),
      },
    ]),
  ).rejects.toThrow();
  await waitFor(() => summaries.length === 2);
  for (const s of summaries) expect(s.errorCode).toBe('HTTPMESH_FILTER_FAILED');
});

test('h2 trailers (grpc-status) pass from an h2 upstream to an h2 client, changed by a filter', async () => {
  const { proxy, port } = await startTestProxy({
    upstreamHttp2: true,
    filters: [
      {
        onResponseTrailers(exchange) {
          exchange.responseTrailers = { ...exchange.responseTrailers, 'x-proxy-saw': 'grpc' };
        },
      },
    ],
  });
  const socket = await tlsThroughProxy(port, 'localhost', h2Port, testbed.pki.proxyCaPem, ['h2']);
  const session = http2.connect(`https://localhost:${h2Port}`, { createConnection: () => socket });
  try {
    const stream = session.request({ ':path': '/grpc', ':method': 'POST' });
    stream.end('req');
    const trailers = new Promise<http2.IncomingHttpHeaders>((resolve) =>
      stream.once('trailers', (t: http2.IncomingHttpHeaders) => resolve(t)),
    );
    const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
    let body = '';
    stream.setEncoding('utf8');
    for await (const chunk of stream) body += chunk;
    expect(headers[':status']).toBe(200);
    expect(body).toBe('h2-body');
    const t = await trailers;
    expect({ status: t['grpc-status'], message: t['grpc-message'], saw: t['x-proxy-saw'] }).toEqual({
      status: '0',
      message: 'fine',
      saw: 'grpc',
    });
  } finally {
    session.close();
    await proxy.close();
  }
});
