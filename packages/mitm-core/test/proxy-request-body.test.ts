/**
 * exchange.setRequestBody: a filter replaces the request body after readRequestBody; the upstream receives
 * exactly the new bytes with a matching content-length and no transfer-encoding, over HTTP/1.1 (length-framed
 * and chunked) and h2 clients. Misuse (before reading, after forwarding) is refused, never silently ignored.
 */
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
} from './fixtures/proxy-harness.js';

interface Received {
  body: string;
  contentLength: string | null;
  transferEncoding: string | null;
}

// Answers with what it received: body bytes and the framing headers.
const testbed = useTlsUpstream((req, res) => {
  const chunks: Buffer[] = [];
  req.on('data', (c: Buffer) => chunks.push(c));
  req.on('end', () => {
    const received: Received = {
      body: Buffer.concat(chunks).toString(),
      contentLength: req.headers['content-length'] ?? null,
      transferEncoding: req.headers['transfer-encoding'] ?? null,
    };
    const text = JSON.stringify(received);
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  });
});

/** Redacts digits in the body (a string), and turns the body of /bytes into raw bytes. */
const redacting: ExchangeFilter = {
  async onRequestHead(exchange) {
    if (exchange.path === '/add') {
      exchange.setRequestBody('added');
      return undefined;
    }
    const body = await exchange.readRequestBody(1024);
    if (exchange.path === '/bytes') exchange.setRequestBody(new Uint8Array([0x68, 0x69]));
    else exchange.setRequestBody(body.toString().replace(/\d/g, '#'));
    return undefined;
  },
};

test('HTTP/1.1: the replacement is sent with its own content-length (length-framed and chunked clients)', async () => {
  const summaries: ExchangeSummary[] = [];
  const { proxy, port } = await startTestProxy({
    filters: [redacting, { onComplete: (_e, summary) => void summaries.push(summary) }],
  });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    const card = 'card=4111111111111111;name=ann';
    const plain = await rawRequest(
      socket,
      `POST /pay HTTP/1.1\r\nhost: localhost\r\ncontent-length: ${card.length}\r\n\r\n${card}`,
    );
    expect(plain.status).toBe(200);
    expect(JSON.parse(plain.body)).toEqual({
      body: 'card=################;name=ann',
      contentLength: String(card.length),
      transferEncoding: null,
    });
    // Chunked from the client: the upstream gets a length-framed replacement of a different size.
    const chunked = await rawRequest(
      socket,
      'POST /pin HTTP/1.1\r\nhost: localhost\r\ntransfer-encoding: chunked\r\n\r\n8\r\npin=1234\r\n0\r\n\r\n',
    );
    expect(JSON.parse(chunked.body)).toEqual({
      body: 'pin=####',
      contentLength: '8',
      transferEncoding: null,
    });
    // Bytes, shorter than the original: the length follows the new body.
    const bytes = await rawRequest(
      socket,
      'POST /bytes HTTP/1.1\r\nhost: localhost\r\ncontent-length: 11\r\n\r\nhello world',
    );
    expect(JSON.parse(bytes.body)).toEqual({ body: 'hi', contentLength: '2', transferEncoding: null });
    // A request that had no body gets one.
    const added = await rawRequest(socket, 'GET /add HTTP/1.1\r\nhost: localhost\r\n\r\n');
    expect(JSON.parse(added.body)).toEqual({ body: 'added', contentLength: '5', transferEncoding: null });
    await waitFor(() => summaries.length === 4);
    // The summary counts what the client sent.
    expect(summaries.map((s) => s.requestBodyBytes)).toEqual([card.length, 8, 11, 0]);
  } finally {
    socket.destroy();
    await proxy.close();
  }
});

test('h2 client: the replacement reaches the upstream with a fixed-up content-length', async () => {
  const { proxy, port } = await startTestProxy({ filters: [redacting] });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem, ['h2']);
  const session = http2.connect(`https://localhost:${testbed.tls.port}`, { createConnection: () => socket });
  try {
    const post = async (headers: http2.OutgoingHttpHeaders, body: string): Promise<Received> => {
      const stream = session.request({ ':method': 'POST', ...headers });
      stream.end(body);
      const [head] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
      expect(head[':status']).toBe(200);
      let text = '';
      stream.setEncoding('utf8');
      for await (const chunk of stream) text += chunk;
      return JSON.parse(text) as Received;
    };
    // With and without a content-length from the client.
    expect(await post({ ':path': '/a', 'content-length': '9' }, 'acct=9876')).toEqual({
      body: 'acct=####',
      contentLength: '9',
      transferEncoding: null,
    });
    expect(await post({ ':path': '/bytes' }, 'a longer body')).toEqual({
      body: 'hi',
      contentLength: '2',
      transferEncoding: null,
    });
  } finally {
    session.close();
    socket.destroy();
    await proxy.close();
  }
});

test('misuse: replacing before reading or after forwarding is refused (500 / reported), nothing sent silently', async () => {
  const errors: unknown[] = [];
  let late: (() => void) | undefined;
  const { proxy, port } = await startTestProxy({
    filters: [
      {
        onRequestHead(exchange) {
          if (exchange.path === '/unread') exchange.setRequestBody('x');
          return undefined;
        },
        onResponseHead(exchange) {
          late = () => exchange.setRequestBody('too late');
        },
      },
    ],
  });
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  try {
    const unread = await rawRequest(
      socket,
      'POST /unread HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4\r\n\r\nbody',
    );
    expect(unread.status).toBe(500);
    expect(unread.headers['x-httpmesh-error']).toBe('HTTPMESH_FILTER_FAILED');
    const ok = await rawRequest(
      socket,
      'POST /ok HTTP/1.1\r\nhost: localhost\r\ncontent-length: 4\r\n\r\nbody',
    );
    expect(JSON.parse(ok.body)).toMatchObject({ body: 'body' });
    try {
      late?.();
    } catch (error) {
      errors.push(error);
    }
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ name: 'FilterError', code: 'HTTPMESH_FILTER_FAILED' });
  } finally {
    socket.destroy();
    await proxy.close();
  }
});
