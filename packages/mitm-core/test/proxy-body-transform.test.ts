/**
 * Per-chunk body transforms (`transformRequestBody` / `transformResponseBody`) with a real client and
 * upstream: every chunk passes through the transform in order, the end is signalled with an empty chunk,
 * the framing follows the new bytes, misuse and transform failures fail the exchange.
 */
import http from 'node:http';
import { expect, test } from 'vitest';
import type { ExchangeFilter, ExchangeSummary } from '../src/proxy/exchange.js';
import { startTestProxy, tlsThroughProxy, useTlsUpstream, waitFor } from './fixtures/proxy-harness.js';

const testbed = useTlsUpstream((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const body = `${req.headers['content-length'] ?? 'chunked'}|${Buffer.concat(chunks).toString()}`;
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  });
});

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
}

/** One POST through the proxy with node:http; rejects when the response is broken off. */
async function post(filters: ExchangeFilter[], body: string): Promise<Reply> {
  const { proxy, port } = await startTestProxy({ filters });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    return await new Promise<Reply>((resolve, reject) => {
      const req = http.request(
        {
          host: 'localhost',
          port: testbed.tls.port,
          method: 'POST',
          path: '/t',
          createConnection: () => socket,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => {
            text += c;
          });
          res.on('aborted', () => reject(new Error('response aborted')));
          res.on('error', reject);
          res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: text }));
        },
      );
      req.on('error', reject);
      req.setHeader('content-length', Buffer.byteLength(body));
      req.end(body);
    });
  } finally {
    socket.destroy();
    await proxy.close();
  }
}

test('request and response bodies pass chunk by chunk through transforms (sync and async), end last', async () => {
  const calls: string[] = [];
  const reply = await post(
    [
      {
        onRequestHead(exchange) {
          exchange.transformRequestBody((chunk, end) => {
            calls.push(`req:${end}`);
            return end ? Buffer.from('|tail') : Buffer.from(chunk.toString().replace('secret', '[x]'));
          });
          return undefined;
        },
        onResponseHead(exchange) {
          exchange.transformResponseBody(async (chunk, end) => {
            calls.push(`res:${end}`);
            await new Promise((resolve) => setImmediate(resolve));
            return end ? undefined : Buffer.from(chunk.toString().toUpperCase());
          });
        },
      },
    ],
    'a secret here',
  );
  expect(reply.status).toBe(200);
  // The upstream saw the transformed request without a length (chunked), the client the transformed response.
  expect(reply.body).toBe('CHUNKED|A [X] HERE|TAIL');
  expect(reply.headers['content-length']).toBeUndefined();
  expect(calls.at(-1)).toBe('res:true');
  expect(calls.filter((c) => c === 'req:true')).toHaveLength(1);
  expect(calls.indexOf('req:true')).toBeLessThan(calls.indexOf('res:false'));
});

test('transformResponseBody outside onResponseHead and a failing transform fail the exchange', async () => {
  const summaries: ExchangeSummary[] = [];
  const misuse = await post(
    [
      {
        onRequestHead(exchange) {
          exchange.transformResponseBody(() => undefined);
          return undefined;
        },
      },
    ],
    'x',
  );
  expect(misuse.status).toBe(500);
  expect(misuse.headers['x-httpmesh-error']).toBe('HTTPMESH_FILTER_FAILED');
  await expect(
    post(
      [
        {
          onResponseHead(exchange) {
            exchange.transformResponseBody(() => {
              throw new Error('transform failed');
            });
          },
          onComplete: (_exchange, summary) => void summaries.push(summary),
        },
      ],
      'y',
    ),
  ).rejects.toThrow();
  await waitFor(() => summaries.length === 1);
  expect(summaries[0]?.errorCode).toBe('HTTPMESH_FILTER_FAILED');
});
