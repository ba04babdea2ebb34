import { once } from 'node:events';
import http2 from 'node:http2';
import { expect, test } from 'vitest';
import type { ExchangeFilter, ExchangeSummary } from '../src/proxy/exchange.js';
import {
  rawRequest,
  startTestProxy,
  tlsThroughProxy,
  useTlsUpstream,
  waitFor,
  writeRepeated,
} from './fixtures/proxy-harness.js';

/** Set when the upstream's endless response was torn down by the proxy. */
let endlessAborted = 0;

const testbed = useTlsUpstream((req, res) => {
  req.resume();
  if (req.url === '/chunked') {
    // No content-length: chunked on the wire, in three writes.
    res.writeHead(200, { 'content-type': 'text/plain', 'x-origin': 'upstream' });
    res.write('account=42;');
    res.write('token=s3cr3t;');
    res.end('end');
    return;
  }
  if (req.url === '/big') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    writeRepeated(res, Buffer.alloc(64 * 1024, 0x61), 16);
    return;
  }
  if (req.url === '/endless') {
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    const timer = setInterval(() => res.write(Buffer.alloc(1024)), 5);
    res.on('close', () => {
      clearInterval(timer);
      if (!res.writableFinished) endlessAborted++;
    });
    return;
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '2' });
  res.end('ok');
});

async function withProxy(
  filters: ExchangeFilter[],
  run: (get: (path: string) => ReturnType<typeof rawRequest>) => Promise<void>,
): Promise<void> {
  const { proxy, port } = await startTestProxy({ filters });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    await run((path) => rawRequest(socket, `GET ${path} HTTP/1.1\r\nhost: localhost\r\n\r\n`));
  } finally {
    socket.destroy();
    await proxy.close();
  }
}

test('onResponseHead may replace the upstream response (sync and async); the upstream response is aborted', async () => {
  const summaries: ExchangeSummary[] = [];
  const filters: ExchangeFilter[] = [
    {
      onResponseHead(exchange) {
        if (exchange.path === '/endless')
          return { status: 451, headers: { 'x-replaced': 'sync' }, body: 'blocked' };
        return undefined;
      },
    },
    {
      async onResponseHead(exchange) {
        await new Promise((resolve) => setImmediate(resolve));
        if (exchange.responseHeaders?.['x-origin'] === 'upstream')
          return { status: 403, body: 'async replaced' };
        return undefined;
      },
      onComplete: (_exchange, summary) => void summaries.push(summary),
    },
  ];
  await withProxy(filters, async (get) => {
    const before = endlessAborted;
    const sync = await get('/endless');
    expect(sync.status).toBe(451);
    expect(sync.headers['x-replaced']).toBe('sync');
    expect(sync.body).toBe('blocked');
    await waitFor(() => endlessAborted === before + 1);

    const replaced = await get('/chunked');
    expect(replaced.status).toBe(403);
    expect(replaced.body).toBe('async replaced');
    expect(replaced.headers['x-origin']).toBeUndefined();

    // Untouched responses still flow, on the same keep-alive connection.
    expect((await get('/plain')).body).toBe('ok');
  });
  await waitFor(() => summaries.length === 3);
  expect(summaries.map((s) => [s.status, s.errorCode])).toEqual([
    [451, undefined],
    [403, undefined],
    [200, undefined],
  ]);
  expect(summaries[0]?.responseBodyBytes).toBe(7);
});

test('readResponseBody buffers the body for a body-phase filter: forward it, or rewrite it', async () => {
  const seen: string[] = [];
  const filters: ExchangeFilter[] = [
    {
      async onResponseHead(exchange) {
        const body = await exchange.readResponseBody(1024);
        seen.push(body.toString());
        if (exchange.path === '/chunked' && exchange.requestHeaders['x-redact'] === undefined)
          return undefined;
        return {
          status: exchange.status,
          headers: { 'content-type': 'text/plain', 'x-redacted': '1' },
          body: body.toString().replace(/token=[^;]*/, 'token=***'),
        };
      },
    },
  ];
  await withProxy(filters, async (get) => {
    const forwarded = await get('/chunked');
    expect(forwarded.status).toBe(200);
    expect(forwarded.body).toBe('account=42;token=s3cr3t;end');
    // The buffered body is sent with its length instead of chunked framing.
    expect(forwarded.headers['content-length']).toBe('27');
    expect(forwarded.headers['transfer-encoding']).toBeUndefined();
    expect(forwarded.headers['x-origin']).toBe('upstream');

    const plain = await get('/plain');
    expect(plain.headers['x-redacted']).toBe('1');
    expect(plain.body).toBe('ok');
  });
  expect(seen).toEqual(['account=42;token=s3cr3t;end', 'ok']);
});

test('a rewritten body reaches HTTP/2 clients too', async () => {
  const { proxy, port } = await startTestProxy({
    filters: [
      {
        async onResponseHead(exchange) {
          const body = await exchange.readResponseBody(1024);
          return { status: 200, body: body.toString().toUpperCase() };
        },
      },
    ],
  });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem, ['h2']);
  const session = http2.connect(`https://localhost:${testbed.tls.port}`, { createConnection: () => socket });
  const stream = session.request({ ':path': '/chunked' });
  stream.end();
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  let body = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) body += chunk;
  expect(headers[':status']).toBe(200);
  expect(body).toBe('ACCOUNT=42;TOKEN=S3CR3T;END');
  session.close();
  await proxy.close();
});

test('a response body over the cap gives 502 HTTPMESH_RESPONSE_BODY_TOO_LARGE; misuse gives 500', async () => {
  const filters: ExchangeFilter[] = [
    {
      onRequestHead(exchange) {
        // Only valid from onResponseHead: rejects, so the client gets 500.
        if (exchange.path === '/misuse') return exchange.readResponseBody(10).then(() => undefined);
        return undefined;
      },
      async onResponseHead(exchange) {
        if (exchange.path === '/big') await exchange.readResponseBody(100 * 1024);
        return undefined;
      },
    },
  ];
  await withProxy(filters, async (get) => {
    const tooLarge = await get('/big');
    expect(tooLarge.status).toBe(502);
    expect(tooLarge.headers['x-httpmesh-error']).toBe('HTTPMESH_RESPONSE_BODY_TOO_LARGE');
  });
  await withProxy(filters, async (get) => {
    const misuse = await get('/misuse');
    expect(misuse.status).toBe(500);
    expect(misuse.headers['x-httpmesh-error']).toBe('HTTPMESH_FILTER_FAILED');
  });
});

test('without body hooks a 1 MiB response still streams through a response-head filter', async () => {
  let sawHead = 0;
  const { proxy, port } = await startTestProxy({
    filters: [
      {
        async onResponseHead() {
          sawHead++;
          return undefined;
        },
      },
    ],
  });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  socket.write('GET /big HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n');
  let received = 0;
  for await (const chunk of socket) received += (chunk as Buffer).length;
  expect(received).toBeGreaterThan(16 * 64 * 1024);
  expect(sawHead).toBe(1);
  await proxy.close();
});

test.each([Number.NaN, -1, 1.5, Number.POSITIVE_INFINITY])(
  'a malformed cap (%s) for readResponseBody / readRequestBody is refused with 500, never uncapped',
  async (cap) => {
    const filters: ExchangeFilter[] = [
      {
        async onRequestHead(exchange) {
          if (exchange.path === '/request-cap') await exchange.readRequestBody(cap);
          return undefined;
        },
        async onResponseHead(exchange) {
          if (exchange.path === '/chunked') await exchange.readResponseBody(cap);
          return undefined;
        },
      },
    ];
    await withProxy(filters, async (get) => {
      for (const path of ['/chunked', '/request-cap']) {
        const response = await get(path);
        expect(response.status).toBe(500);
        expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_FILTER_FAILED');
      }
    });
  },
);
