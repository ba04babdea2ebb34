import { once } from 'node:events';
import type https from 'node:https';
import net, { type LookupFunction } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { CertificateAuthority } from '../src/ca/index.js';
import type { MitmProxyError } from '../src/proxy/errors.js';
import { createMitmProxy } from '../src/proxy/proxy.js';
import {
  connectTunnel,
  createTestProxy,
  echoHandler,
  listenLoopback,
  rawRequest,
  startHttpsUpstream,
  startTestProxy,
  tlsThroughProxy,
  type Upstream,
  useUpstreams,
  waitFor,
} from './fixtures/proxy-harness.js';

// The plain upstream echoes; it also answers upgrades (WebSocket echo).
const testbed = useUpstreams(echoHandler);

/** Names the tests resolve themselves; a name not listed here fails like an unknown DNS name. */
const NAMES: Record<string, string> = {
  'self.test': '127.0.0.1',
  'self-alias.test': '127.0.0.1',
  'self-v6.test': '::1',
  'upstream.test': '127.0.0.1',
  'wrong.test': '127.0.0.1',
  // TEST-NET-1 (RFC 5737): not this host, and never answers.
  'elsewhere.test': '192.0.2.1',
};

interface RecordingLookup {
  lookup: LookupFunction;
  /** Every name asked for, in order. */
  asked: string[];
}

/**
 * A resolver for NAMES, answering on a later tick in whichever shape node asked for (a list with `all`).
 * `broken.test` fails with ENOTFOUND, `throws.test` throws, `garbage.test` answers with no address at all.
 */
function testLookup(): RecordingLookup {
  const asked: string[] = [];
  const lookup: LookupFunction = (hostname, options, callback) => {
    asked.push(hostname);
    if (hostname === 'throws.test') throw new Error('resolver crashed');
    process.nextTick(() => {
      if (hostname === 'garbage.test') {
        (callback as (error: null, address: unknown) => void)(null, options.all ? [{ nope: 1 }] : 42);
        return;
      }
      const address = NAMES[hostname];
      if (address === undefined) {
        const error = Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), {
          code: 'ENOTFOUND',
          hostname,
        });
        callback(error, '', 0);
        return;
      }
      const family = net.isIP(address);
      if (options.all === true) callback(null, [{ address, family }]);
      else callback(null, address, family);
    });
  };
  return { lookup, asked };
}

/** A raw keep-alive connection to the proxy, for absolute-form requests. */
async function proxyConnection(port: number): Promise<net.Socket> {
  const socket = net.connect(port, '127.0.0.1');
  await once(socket, 'connect');
  return socket;
}

function absoluteGet(authority: string, extra = ''): string {
  return `GET http://${authority}/x HTTP/1.1\r\nhost: ${authority}\r\n${extra}\r\n`;
}

function upgradeRequest(authority: string): string {
  return (
    `GET http://${authority}/ws HTTP/1.1\r\nhost: ${authority}\r\nconnection: Upgrade\r\nupgrade: websocket\r\n` +
    'sec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n'
  );
}

/** Reads until the end of a response head (101 has no body for rawRequest to wait for). */
async function readHead(socket: net.Socket): Promise<string> {
  let head = '';
  while (!head.includes('\r\n\r\n')) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    head += chunk.toString('latin1');
  }
  return head;
}

describe('loop guard: host names that resolve to this proxy', () => {
  test('an absolute-form request to a name for our own listener gets 508 without a single self-connection', async () => {
    const { lookup, asked } = testLookup();
    const { proxy, errors, port } = await startTestProxy({ lookup, maxClientConnections: 16 });
    try {
      const socket = await proxyConnection(port);
      for (const name of ['self.test', 'self-alias.test', 'self-v6.test']) {
        const response = await rawRequest(socket, absoluteGet(`${name}:${port}`));
        expect(response.status).toBe(508);
        expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_PROXY_LOOP');
        expect(response.body).toContain(`${name}:${port}`);
      }
      // The guard asked the configured lookup, and nothing came back to us: the one client connection is
      // the test's, each request was one exchange, and the cap never refused anyone.
      expect(asked).toEqual(['self.test', 'self-alias.test', 'self-v6.test']);
      expect(proxy.stats.exchanges).toBe(3);
      expect(proxy.stats.clientConnections).toBe(1);
      expect(proxy.stats.refusedClientConnections).toBe(0);
      expect(errors.map((e) => e.code)).not.toContain('HTTPMESH_PROXY_CONNECTION_LIMIT');
      // The connection is still usable for a legitimate target afterwards.
      const ok = await rawRequest(socket, absoluteGet(`upstream.test:${testbed.plain.port}`));
      expect(ok.status).toBe(200);
      socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test('transparent mode: a Host naming our own redirect port gets 508 instead of a burst of self-connections', async () => {
    const { lookup } = testLookup();
    const { proxy, errors } = await createTestProxy({ lookup, maxClientConnections: 16 });
    // No original destination: the proxy routes by Host, as for a connection it cannot read SO_ORIGINAL_DST of.
    let accepted = 0;
    const redirector = await listenLoopback((socket) => {
      accepted++;
      proxy.handleConnection(socket, null);
    });
    try {
      const socket = await proxyConnection(redirector.port);
      const authority = `self.test:${redirector.port}`;
      const response = await rawRequest(socket, `GET /x HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
      expect(response.status).toBe(508);
      expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_PROXY_LOOP');
      expect(accepted).toBe(1);
      expect(proxy.stats.exchanges).toBe(1);
      expect(proxy.stats.refusedClientConnections).toBe(0);
      expect(errors.map((e) => e.code)).not.toContain('HTTPMESH_PROXY_CONNECTION_LIMIT');
      socket.destroy();
    } finally {
      await proxy.close();
      await new Promise((resolve) => redirector.server.close(resolve));
    }
  });

  test('a CONNECT to a name for our own listener that would be spliced is refused and reported', async () => {
    const { lookup, asked } = testLookup();
    const { proxy, errors, port } = await startTestProxy({
      lookup,
      maxClientConnections: 16,
      intercept: () => false,
    });
    try {
      const tunnel = await connectTunnel(port, `self.test:${port}`);
      const closed = once(tunnel, 'close');
      tunnel.write('GET / HTTP/1.1\r\nhost: self.test\r\n\r\n');
      await closed;
      await waitFor(() => errors.some((e) => e.code === 'HTTPMESH_PROXY_LOOP'));
      const loop = errors.find((e) => e.code === 'HTTPMESH_PROXY_LOOP') as MitmProxyError;
      expect(loop.name).toBe('ProxyLoopError');
      expect(loop.message).toContain(`self.test:${port}`);
      expect(asked).toEqual(['self.test']);
      expect(proxy.stats.refusedClientConnections).toBe(0);
      await waitFor(() => proxy.stats.clientConnections === 0);
    } finally {
      await proxy.close();
    }
  });

  test('an upgrade to a name for our own listener gets 508 with the code', async () => {
    const { lookup } = testLookup();
    const { proxy, port } = await startTestProxy({ lookup, maxClientConnections: 16 });
    try {
      const socket = await proxyConnection(port);
      const response = await rawRequest(socket, upgradeRequest(`self.test:${port}`));
      expect(response.status).toBe(508);
      expect(response.headers['x-httpmesh-error']).toBe('HTTPMESH_PROXY_LOOP');
      socket.destroy();
      expect(proxy.stats.refusedClientConnections).toBe(0);
      await waitFor(() => proxy.stats.clientConnections === 0);
    } finally {
      await proxy.close();
    }
  });

  test('a name on our own port that resolves elsewhere is dialled, not called a loop', async () => {
    const { lookup, asked } = testLookup();
    const { proxy, errors, port } = await startTestProxy({
      lookup,
      maxClientConnections: 16,
      upstreamConnectTimeoutMs: 300,
    });
    try {
      const socket = await proxyConnection(port);
      const response = await rawRequest(socket, absoluteGet(`elsewhere.test:${port}`));
      // 192.0.2.1 never answers: a connect timeout, or unreachable where the sandbox has no route to it.
      expect([502, 504]).toContain(response.status);
      expect(['HTTPMESH_UPSTREAM_TIMEOUT', 'HTTPMESH_UPSTREAM_UNREACHABLE']).toContain(
        response.headers['x-httpmesh-error'],
      );
      // Asked twice: by the guard, then by the dial.
      expect(asked).toEqual(['elsewhere.test', 'elsewhere.test']);
      socket.destroy();
      expect(errors.map((e) => e.code)).not.toContain('HTTPMESH_PROXY_LOOP');
    } finally {
      await proxy.close();
    }
  });

  test('a failing, throwing or malformed lookup is the normal upstream error, on our port and elsewhere', async () => {
    const { lookup } = testLookup();
    const { proxy, port } = await startTestProxy({ lookup, maxClientConnections: 16 });
    try {
      const socket = await proxyConnection(port);
      for (const name of ['broken.test', 'throws.test', 'garbage.test']) {
        for (const target of [port, testbed.plain.port]) {
          const response = await rawRequest(socket, absoluteGet(`${name}:${target}`));
          expect(response.status, `${name}:${target}`).toBe(502);
          expect(response.headers['x-httpmesh-error'], `${name}:${target}`).toBe(
            'HTTPMESH_UPSTREAM_UNREACHABLE',
          );
        }
      }
      // Still serving.
      const ok = await rawRequest(socket, absoluteGet(`upstream.test:${testbed.plain.port}`));
      expect(ok.status).toBe(200);
      socket.destroy();
    } finally {
      await proxy.close();
    }
  });

  test('a lookup that is not a function is refused at creation', () => {
    for (const lookup of ['nope', 42, null, {}]) {
      expect(() =>
        createMitmProxy({ ca: testbed.pki.proxyCa, lookup: lookup as unknown as LookupFunction }),
      ).toThrow(
        expect.objectContaining({ name: 'ProxyOptionsError', code: 'HTTPMESH_PROXY_OPTIONS_INVALID' }),
      );
    }
  });
});

describe('lookup is used for every upstream dial', () => {
  /** An HTTPS upstream whose certificate names upstream.test only (not localhost, not 127.0.0.1). */
  let named: { upstream: Upstream; caPem: string; servernames: string[] };

  beforeAll(async () => {
    const ca = await CertificateAuthority.create({ commonName: 'httpmesh loop-test upstream CA' });
    const leaf = await ca.issueLeaf(['upstream.test']);
    const upstream = await startHttpsUpstream(echoHandler, { key: leaf.keyPem, cert: leaf.chainPem });
    const servernames: string[] = [];
    (upstream.server as https.Server).on('secureConnection', (socket: TLSSocket) => {
      servernames.push(String(socket.servername));
    });
    named = { upstream, caPem: ca.certPem, servernames };
  });
  afterAll(() => named.upstream.close());

  test('plain HTTP, request trailers (node:http path), upgrade and splice reach the name through it', async () => {
    const { lookup, asked } = testLookup();
    const { proxy, port } = await startTestProxy({ lookup });
    const passthrough = await startTestProxy({ lookup, intercept: () => false });
    try {
      const authority = `upstream.test:${testbed.plain.port}`;
      const socket = await proxyConnection(port);
      const plain = await rawRequest(socket, absoluteGet(authority));
      expect(plain.status).toBe(200);
      expect(JSON.parse(plain.body).headers.host).toBe(authority);

      const withTrailers = await rawRequest(
        socket,
        `POST http://${authority}/t HTTP/1.1\r\nhost: ${authority}\r\ntransfer-encoding: chunked\r\n` +
          'trailer: x-sum\r\n\r\n3\r\nabc\r\n0\r\nx-sum: 1\r\n\r\n',
      );
      expect(withTrailers.status).toBe(200);
      expect(JSON.parse(withTrailers.body).bodyBytes).toBe(3);
      socket.destroy();

      const upgrading = await proxyConnection(port);
      upgrading.write(upgradeRequest(authority));
      expect(await readHead(upgrading)).toMatch(/^HTTP\/1\.1 101 /);
      // One masked text frame (all-zero mask) echoed back, then a close frame: the upstream ends the socket.
      upgrading.write(Buffer.from([0x81, 0x82, 0, 0, 0, 0, 0x68, 0x69]));
      const [echoed] = (await once(upgrading, 'data')) as [Buffer];
      expect(echoed.subarray(2).toString()).toBe('hi');
      const upgradeClosed = once(upgrading, 'close');
      upgrading.write(Buffer.from([0x88, 0x80, 0, 0, 0, 0]));
      await upgradeClosed;

      const tunnel = await connectTunnel(passthrough.port, authority);
      const spliced = await rawRequest(tunnel, `GET /s HTTP/1.1\r\nhost: ${authority}\r\n\r\n`);
      expect(spliced.status).toBe(200);
      tunnel.destroy();

      expect(asked.filter((name) => name === 'upstream.test').length).toBeGreaterThanOrEqual(4);
    } finally {
      await proxy.close();
      await passthrough.proxy.close();
    }
  });

  test('intercepted HTTPS dials the name via lookup, with SNI and the certificate checked against the name', async () => {
    const { lookup, asked } = testLookup();
    const pkiProxy = await startTestProxy({ lookup, upstreamCa: [named.caPem] });
    const { proxy, port } = pkiProxy;
    try {
      const before = named.servernames.length;
      const client = await tlsThroughProxy(
        port,
        'upstream.test',
        named.upstream.port,
        testbed.pki.proxyCaPem,
      );
      const response = await rawRequest(
        client,
        `GET /secure HTTP/1.1\r\nhost: upstream.test:${named.upstream.port}\r\n\r\n`,
      );
      expect(response.status).toBe(200);
      expect(JSON.parse(response.body).url).toBe('/secure');
      expect(named.servernames.slice(before)).toEqual(['upstream.test']);
      expect(asked).toContain('upstream.test');
      client.destroy();

      // wrong.test resolves to the same upstream, whose certificate does not name it: refused.
      const wrong = await tlsThroughProxy(port, 'wrong.test', named.upstream.port, testbed.pki.proxyCaPem);
      const refused = await rawRequest(
        wrong,
        `GET / HTTP/1.1\r\nhost: wrong.test:${named.upstream.port}\r\n\r\n`,
      );
      expect(refused.status).toBe(502);
      expect(refused.headers['x-httpmesh-error']).toBe('HTTPMESH_UPSTREAM_CERT_INVALID');
      wrong.destroy();
    } finally {
      await proxy.close();
    }
  });
});
