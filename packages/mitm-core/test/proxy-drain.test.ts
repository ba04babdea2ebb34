import { once } from 'node:events';
import http2 from 'node:http2';
import net from 'node:net';
import { afterAll, expect, test } from 'vitest';
import { createMitmProxy } from '../src/proxy/proxy.js';
import {
  createTestProxy,
  listenLoopback,
  rawRequest,
  startTestProxy,
  tlsThroughProxy,
  useTlsUpstream,
  waitFor,
} from './fixtures/proxy-harness.js';

const held: (() => void)[] = [];

// `/slow` is answered only when the test releases it; everything else at once.
const testbed = useTlsUpstream((req, res) => {
  const answer = (): void => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '4' });
    res.end(req.url === '/slow' ? 'slow' : 'fast');
  };
  req.resume();
  if (req.url === '/stream') {
    // Head and half the body now, the rest when released.
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': '10' });
    res.write('hello');
    held.push(() => res.end('world'));
    return;
  }
  if (req.url === '/slow') held.push(answer);
  else answer();
});

// Registered after the upstream's own hook, so it runs before the upstream closes (after-hooks run in reverse).
afterAll(() => {
  for (const release of held) release();
});

function absolute(path: string): string {
  return `GET https://localhost:${testbed.tls.port}${path} HTTP/1.1\r\nhost: localhost:${testbed.tls.port}\r\n\r\n`;
}

test('stopAccepting: new connections are refused, idle ones closed, the in-flight exchange completes with Connection: close', async () => {
  const { proxy, port } = await startTestProxy();

  // An idle keep-alive plain connection and an idle intercepted TLS tunnel.
  const idlePlain = net.connect(port, '127.0.0.1');
  await once(idlePlain, 'connect');
  expect((await rawRequest(idlePlain, absolute('/fast'))).status).toBe(200);
  const idleTls = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  expect((await rawRequest(idleTls, `GET /fast HTTP/1.1\r\nhost: localhost\r\n\r\n`)).status).toBe(200);
  const idleClosed = Promise.all([once(idlePlain, 'close'), once(idleTls, 'close')]);

  // A busy connection: its request waits at the upstream.
  const busy = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  const busyClosed = once(busy, 'close');
  const slowResponse = rawRequest(busy, `GET /slow HTTP/1.1\r\nhost: localhost\r\n\r\n`);
  await waitFor(() => held.length === 1);
  expect(proxy.stats.activeExchanges).toBe(1);

  await proxy.stopAccepting();
  expect(proxy.stats.draining).toBe(true);

  const refused = net.connect(port, '127.0.0.1');
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  expect(error.code).toBe('ECONNREFUSED');
  await idleClosed;

  (held.shift() as () => void)();
  const response = await slowResponse;
  expect(response.status).toBe(200);
  expect(response.body).toBe('slow');
  expect(response.headers['connection']).toBe('close');
  await busyClosed;
  await waitFor(() => proxy.stats.activeExchanges === 0 && proxy.stats.openClientSockets === 0);
  await proxy.close();
});

test('stopAccepting sends HTTP/2 clients GOAWAY while their open stream finishes', async () => {
  const { proxy, port } = await startTestProxy();
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem, ['h2']);
  expect(socket.alpnProtocol).toBe('h2');
  const session = http2.connect(`https://localhost:${testbed.tls.port}`, { createConnection: () => socket });
  const goaway = once(session, 'goaway');
  const stream = session.request({ ':path': '/slow' });
  stream.end();
  await waitFor(() => held.length === 1);

  await proxy.stopAccepting();
  await goaway;
  (held.shift() as () => void)();
  const [headers] = (await once(stream, 'response')) as [http2.IncomingHttpHeaders];
  let body = '';
  stream.setEncoding('utf8');
  for await (const chunk of stream) body += chunk;
  expect(headers[':status']).toBe(200);
  expect(body).toBe('slow');
  await waitFor(() => proxy.stats.activeExchanges === 0);
  session.close();
  await proxy.close();
});

test('stopAccepting without a listener and twice is harmless; close() still ends everything', async () => {
  const proxy = createMitmProxy({ ca: testbed.pki.proxyCa });
  await proxy.stopAccepting();
  await proxy.stopAccepting();
  expect(proxy.stats.draining).toBe(true);
  await proxy.close();
  expect(proxy.stats.openClientSockets).toBe(0);
});

test('a response whose head was already sent when draining began finishes, then its connection closes', async () => {
  const { proxy, port } = await startTestProxy();
  const socket = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
  let received = '';
  socket.on('data', (chunk: Buffer) => {
    received += chunk.toString('latin1');
  });
  const closed = once(socket, 'close');
  socket.write('GET /stream HTTP/1.1\r\nhost: localhost\r\n\r\n');
  await waitFor(() => received.endsWith('hello'));
  // Node announced keep-alive in the head already sent; the drain must still close after the body.
  expect(received.toLowerCase()).toContain('connection: keep-alive');

  await proxy.stopAccepting();
  (held.shift() as () => void)();
  await closed;
  expect(received.endsWith('helloworld')).toBe(true);
  await waitFor(() => proxy.stats.activeExchanges === 0);
  await proxy.close();
});

test('acceptConnection serves explicit-proxy sockets from the caller’s own listener (plain, CONNECT + TLS, loop refused)', async () => {
  const { proxy } = await createTestProxy();
  const { server, port } = await listenLoopback((socket) => proxy.acceptConnection(socket));
  try {
    const plain = net.connect(port, '127.0.0.1');
    await once(plain, 'connect');
    const first = await rawRequest(plain, absolute('/fast'));
    expect(first).toMatchObject({ status: 200, body: 'fast' });
    plain.destroy();

    const tls = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
    const intercepted = await rawRequest(tls, 'GET /fast HTTP/1.1\r\nhost: localhost\r\n\r\n');
    expect(intercepted).toMatchObject({ status: 200, body: 'fast' });
    expect(proxy.stats.tlsHandshakes).toBe(1);
    tls.destroy();

    // The listener's port is known as ours: a request aimed back at it is a loop, not a self-connection.
    const loop = net.connect(port, '127.0.0.1');
    await once(loop, 'connect');
    const looped = await rawRequest(
      loop,
      `GET http://127.0.0.1:${port}/ HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`,
    );
    expect(looped.status).toBe(508);
    expect(looped.headers['x-httpmesh-error']).toBe('HTTPMESH_PROXY_LOOP');
    loop.destroy();
  } finally {
    server.close();
    await proxy.close();
  }
});

test('stopAccepting({ closeListener: false }) keeps the listener open; what it accepts is served with Connection: close', async () => {
  const { proxy, port } = await startTestProxy();
  const idle = net.connect(port, '127.0.0.1');
  await once(idle, 'connect');
  expect((await rawRequest(idle, absolute('/fast'))).status).toBe(200);
  const idleClosed = once(idle, 'close');

  await proxy.stopAccepting({ closeListener: false });
  expect(proxy.stats.draining).toBe(true);
  await idleClosed; // idle keep-alive connections still close

  // A successor sharing the socket may not be accepting yet: this process must not refuse anyone.
  const late = net.connect(port, '127.0.0.1');
  await once(late, 'connect');
  const reply = await rawRequest(late, absolute('/fast'));
  expect(reply.status).toBe(200);
  expect(reply.headers['connection']).toBe('close');
  late.destroy();
  await proxy.close();
  // close() closes the listener it kept.
  const refused = net.connect(port, '127.0.0.1');
  const [error] = (await once(refused, 'error')) as [NodeJS.ErrnoException];
  expect(error.code).toBe('ECONNREFUSED');
});
