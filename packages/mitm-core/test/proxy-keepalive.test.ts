import { once } from 'node:events';
import net from 'node:net';
import { expect, test } from 'vitest';
import {
  okHandler,
  rawRequest,
  startTestProxy,
  tlsThroughProxy,
  useUpstreams,
  waitFor,
} from './fixtures/proxy-harness.js';

// The client-side idle keep-alive default (75 s, like nginx) is announced in `Keep-Alive: timeout=`, which
// undici clients use to decide how long to keep spare connections; idle connections must still be closed
// at once on stopAccepting, not after the timeout.

const testbed = useUpstreams(okHandler);

function plainGet(port: number): string {
  const authority = `127.0.0.1:${port}`;
  return `GET http://${authority}/ HTTP/1.1\r\nhost: ${authority}\r\n\r\n`;
}

test('by default both client legs announce a 75 s keep-alive, and stopAccepting closes idle ones at once', async () => {
  const { proxy, port } = await startTestProxy();
  try {
    const plain = net.connect(port, '127.0.0.1');
    await once(plain, 'connect');
    const plainResponse = await rawRequest(plain, plainGet(testbed.plain.port));
    expect(plainResponse.status).toBe(200);
    expect(plainResponse.headers['keep-alive']).toBe('timeout=75');

    const intercepted = await tlsThroughProxy(port, 'localhost', testbed.tls.port, testbed.pki.proxyCaPem);
    const tlsResponse = await rawRequest(intercepted, 'GET / HTTP/1.1\r\nhost: localhost\r\n\r\n');
    expect(tlsResponse.status).toBe(200);
    expect(tlsResponse.headers['keep-alive']).toBe('timeout=75');

    // Both now sit idle with 75 s to go: draining must close them itself (the test's timeout is far shorter).
    const closed = Promise.all([once(plain, 'close'), once(intercepted, 'close')]);
    await proxy.stopAccepting();
    await closed;
    await waitFor(() => proxy.stats.openClientSockets === 0);
  } finally {
    await proxy.close();
  }
});

test('keepAliveTimeoutMs still overrides the default', async () => {
  const { proxy, port } = await startTestProxy({ keepAliveTimeoutMs: 2_000 });
  try {
    const plain = net.connect(port, '127.0.0.1');
    await once(plain, 'connect');
    const response = await rawRequest(plain, plainGet(testbed.plain.port));
    expect(response.status).toBe(200);
    expect(response.headers['keep-alive']).toBe('timeout=2');
    plain.destroy();
  } finally {
    await proxy.close();
  }
});
