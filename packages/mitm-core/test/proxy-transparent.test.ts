import { once } from 'node:events';
import net from 'node:net';
import tls from 'node:tls';
import { describe, expect, test } from 'vitest';
import type { MitmProxyError } from '../src/proxy/errors.js';
import { createMitmProxy, type InterceptContext, type MitmProxy } from '../src/proxy/proxy.js';
import {
  connectTunnel,
  createTestProxy,
  listenLoopback,
  rawRequest,
  startTestProxy,
  useUpstreams,
  waitFor,
} from './fixtures/proxy-harness.js';

const testbed = useUpstreams();

interface Redirector {
  port: number;
  accepted: number;
  close(): void;
}

/** Stands in for iptables REDIRECT: hands each accepted socket to the proxy with a given destination. */
async function redirector(
  proxy: MitmProxy,
  destination: (port: number) => { address: string; port: number; family: 4 | 6 } | null | undefined,
): Promise<Redirector> {
  const state: Redirector = { port: 0, accepted: 0, close: () => server.close() };
  const { server, port } = await listenLoopback((socket) => {
    state.accepted++;
    const target = destination(state.port);
    if (target === undefined) proxy.handleConnection(socket);
    else proxy.handleConnection(socket, target);
  });
  state.port = port;
  return state;
}

async function plainGet(port: number, host: string): ReturnType<typeof rawRequest> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  try {
    return await rawRequest(socket, `GET /t HTTP/1.1\r\nhost: ${host}\r\n\r\n`);
  } finally {
    socket.destroy();
  }
}

async function tlsIssuer(
  port: number,
  servername: string | undefined,
  ca: string,
): Promise<string | undefined> {
  const socket = tls.connect({
    host: '127.0.0.1',
    port,
    ca,
    ...(servername === undefined ? {} : { servername }),
  });
  await once(socket, 'secureConnect');
  const issuer = socket.getPeerCertificate().issuer.CN as string | undefined;
  const response = await rawRequest(
    socket,
    `GET /tls HTTP/1.1\r\nhost: ${servername ?? '127.0.0.1'}\r\n\r\n`,
  );
  expect(response.status).toBe(200);
  socket.destroy();
  return issuer;
}

describe('intercept(host, { tls, serverName, originalDestination })', () => {
  test('plain HTTP to an IP is intercepted while TLS without SNI to that IP passes through', async () => {
    const decisions: (InterceptContext & { host: string })[] = [];
    const filtered: string[] = [];
    const { proxy } = await createTestProxy({
      // A transparent sidecar's rule: plain HTTP always, TLS only when SNI names the host.
      intercept: (host, context) => {
        decisions.push({ host, ...context });
        return !context.tls || context.serverName !== undefined;
      },
      filters: [{ onComplete: (exchange) => void filtered.push(exchange.path) }],
    });
    const plainDestination = { address: '127.0.0.1', port: testbed.plain.port, family: 4 as const };
    const tlsDestination = { address: '127.0.0.1', port: testbed.tls.port, family: 4 as const };
    const toPlain = await redirector(proxy, () => plainDestination);
    const toTls = await redirector(proxy, () => tlsDestination);

    const plain = await plainGet(toPlain.port, '127.0.0.1');
    expect(plain.status).toBe(200);
    expect(filtered).toEqual(['/t']); // intercepted: the exchange went through the filter chain

    // No SNI: spliced, so the client sees the upstream's own certificate.
    expect(await tlsIssuer(toTls.port, undefined, testbed.pki.upstreamCaPem)).toBe(
      'httpmesh test upstream CA',
    );
    // With SNI: terminated with a leaf from the proxy CA.
    expect(await tlsIssuer(toTls.port, 'localhost', testbed.pki.proxyCaPem)).toBe('httpmesh test proxy CA');
    expect(filtered).toEqual(['/t', '/tls']);

    expect(decisions).toEqual([
      { host: '127.0.0.1', tls: false, serverName: undefined, originalDestination: plainDestination },
      { host: '127.0.0.1', tls: true, serverName: undefined, originalDestination: tlsDestination },
      { host: 'localhost', tls: true, serverName: 'localhost', originalDestination: tlsDestination },
    ]);
    toPlain.close();
    toTls.close();
    await proxy.close();
  });

  test('explicit CONNECT has no original destination; a one-argument intercept still works', async () => {
    const decisions: InterceptContext[] = [];
    const { proxy, port } = await startTestProxy({
      intercept: (_host, context) => {
        decisions.push(context);
        return true;
      },
    });
    const tunnel = await connectTunnel(port, `localhost:${testbed.tls.port}`);
    const socket = tls.connect({ socket: tunnel, servername: 'localhost', ca: testbed.pki.proxyCaPem });
    await once(socket, 'secureConnect');
    expect(decisions).toEqual([{ tls: true, serverName: 'localhost', originalDestination: null }]);
    socket.destroy();
    await proxy.close();

    const legacy = createMitmProxy({
      ca: testbed.pki.proxyCa,
      intercept: (host: string) => host === 'nothing',
    });
    const legacyRedirect = await redirector(legacy, () => ({
      address: '127.0.0.1',
      port: testbed.tls.port,
      family: 4,
    }));
    expect(await tlsIssuer(legacyRedirect.port, 'localhost', testbed.pki.upstreamCaPem)).toBe(
      'httpmesh test upstream CA',
    );
    legacyRedirect.close();
    await legacy.close();
  });

  test('a throwing intercept passes the connection through and is reported', async () => {
    const reported: MitmProxyError[] = [];
    const proxy = createMitmProxy({
      ca: testbed.pki.proxyCa,
      intercept: () => {
        throw new Error('rules not loaded');
      },
      onError: (error) => reported.push(error),
    });
    const r = await redirector(proxy, () => ({ address: '127.0.0.1', port: testbed.tls.port, family: 4 }));
    expect(await tlsIssuer(r.port, 'localhost', testbed.pki.upstreamCaPem)).toBe('httpmesh test upstream CA');
    expect(reported.map((e) => e.code)).toContain('HTTPMESH_FILTER_FAILED');
    r.close();
    await proxy.close();
  });
});

describe('never dialling ourselves', () => {
  test('an original destination equal to our own listener is ignored: plain HTTP is routed by Host', async () => {
    const proxy = createMitmProxy({ ca: testbed.pki.proxyCa });
    // Like conntrack on a connection that was not redirected: the "original" destination is us.
    const r = await redirector(proxy, (port) => ({ address: '127.0.0.1', port, family: 4 }));
    const response = await plainGet(r.port, `localhost:${testbed.plain.port}`);
    expect(response.status).toBe(200);
    expect((JSON.parse(response.body) as { headers: Record<string, string> }).headers['host']).toBe(
      `localhost:${testbed.plain.port}`,
    );
    expect(r.accepted).toBe(1); // the proxy never connected back to its own listener
    r.close();
    await proxy.close();
  });

  test('an own-listener destination with TLS falls back to SNI (and its default port), not to us', async () => {
    const reported: MitmProxyError[] = [];
    const proxy = createMitmProxy({
      ca: testbed.pki.proxyCa,
      intercept: () => false,
      onError: (error) => reported.push(error),
    });
    const r = await redirector(proxy, (port) => ({ address: '::ffff:127.0.0.1', port, family: 6 }));
    const socket = tls.connect({
      host: '127.0.0.1',
      port: r.port,
      servername: 'localhost',
      rejectUnauthorized: false,
    });
    const closed = new Promise((resolve) => socket.once('close', resolve));
    socket.on('error', () => {});
    await closed;
    // Spliced to localhost:443 (SNI, default port), never to the redirector itself: no second accept and
    // no loop to refuse.
    expect(r.accepted).toBe(1);
    expect(reported.map((e) => e.code)).not.toContain('HTTPMESH_PROXY_LOOP');
    r.close();
    await proxy.close();
  });

  test('a request whose target is our own listener gets 508 HTTPMESH_PROXY_LOOP', async () => {
    const reported: MitmProxyError[] = [];
    const proxy = createMitmProxy({ ca: testbed.pki.proxyCa, onError: (error) => reported.push(error) });
    const { port } = await proxy.listen(0);
    const socket = net.connect(port, '127.0.0.1');
    await once(socket, 'connect');
    const looped = await rawRequest(
      socket,
      `GET http://127.0.0.1:${port}/x HTTP/1.1\r\nhost: 127.0.0.1:${port}\r\n\r\n`,
    );
    expect(looped.status).toBe(508);
    expect(looped.headers['x-httpmesh-error']).toBe('HTTPMESH_PROXY_LOOP');
    const viaLocalhost = await rawRequest(
      socket,
      `GET http://localhost:${port}/x HTTP/1.1\r\nhost: localhost\r\n\r\n`,
    );
    expect(viaLocalhost.status).toBe(508);
    socket.destroy();

    // Transparent: no destination, Host naming the transparent listener itself.
    const r = await redirector(proxy, () => null);
    expect((await plainGet(r.port, `127.0.0.1:${r.port}`)).status).toBe(508);
    expect(r.accepted).toBe(1);

    // A CONNECT to ourselves that would be spliced is dropped and reported.
    const passthrough = createMitmProxy({
      ca: testbed.pki.proxyCa,
      intercept: () => false,
      onError: (error) => reported.push(error),
    });
    const passPort = (await passthrough.listen(0)).port;
    const tunnel = await connectTunnel(passPort, `127.0.0.1:${passPort}`);
    tunnel.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n');
    await once(tunnel, 'close');
    await waitFor(() => reported.some((e) => e.code === 'HTTPMESH_PROXY_LOOP'));
    expect(passthrough.stats.openClientSockets).toBe(0);
    r.close();
    await passthrough.close();
    await proxy.close();
  });
});
