import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { MitmProxyError } from '../src/proxy/errors.js';
import { compileHostRule } from '../src/proxy/host-rules.js';
import { createMitmProxy } from '../src/proxy/proxy.js';
import { hasOpenssl, inCi } from './ca-helpers.js';
import {
  rawRequest,
  startHttpsUpstream,
  type TestPki,
  testPki,
  tlsThroughProxy,
  type Upstream,
} from './fixtures/proxy-harness.js';

let pki: TestPki;
let selfSigned: Upstream | undefined;

/** A genuinely self-signed upstream certificate (no CA at all), made by the openssl CLI. */
function selfSignedCert(): { key: string; cert: string } {
  const dir = mkdtempSync(join(tmpdir(), 'mitm-self-signed-'));
  try {
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:P-256',
        '-nodes',
        '-days',
        '2',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=DNS:localhost,IP:127.0.0.1',
        '-keyout',
        join(dir, 'key.pem'),
        '-out',
        join(dir, 'cert.pem'),
      ],
      { stdio: 'ignore' },
    );
    return {
      key: readFileSync(join(dir, 'key.pem'), 'utf8'),
      cert: readFileSync(join(dir, 'cert.pem'), 'utf8'),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const needsOpenssl = !hasOpenssl && !inCi;

beforeAll(async () => {
  pki = await testPki();
  if (!needsOpenssl) selfSigned = await startHttpsUpstream(undefined, selfSignedCert());
});

afterAll(async () => {
  await selfSigned?.close();
});

async function getThrough(
  proxyPort: number,
  upstreamPort: number,
): Promise<{ status: number; code: string | undefined }> {
  const socket = await tlsThroughProxy(proxyPort, 'localhost', upstreamPort, pki.proxyCaPem);
  try {
    const response = await rawRequest(socket, `GET /v HTTP/1.1\r\nhost: localhost:${upstreamPort}\r\n\r\n`);
    return { status: response.status, code: response.headers['x-httpmesh-error'] };
  } finally {
    socket.destroy();
  }
}

/** WebSocket-style upgrade through an intercepted tunnel; resolves to the status line's code. */
async function upgradeThrough(proxyPort: number, upstreamPort: number): Promise<number> {
  const socket = await tlsThroughProxy(proxyPort, 'localhost', upstreamPort, pki.proxyCaPem);
  socket.write(
    `GET /ws HTTP/1.1\r\nhost: localhost\r\nupgrade: websocket\r\nconnection: Upgrade\r\n` +
      `sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n`,
  );
  let head = '';
  for await (const chunk of socket) {
    head += (chunk as Buffer).toString('latin1');
    if (head.includes('\r\n')) break;
  }
  socket.destroy();
  return Number(head.split(' ')[1]);
}

describe.skipIf(needsOpenssl)('insecureUpstreamHosts as a run-time predicate (needs the openssl CLI)', () => {
  test('a self-signed upstream gets 502 by default, 200 while the predicate allows it, 502 again after', async () => {
    let allow = false;
    const asked: string[] = [];
    const proxy = createMitmProxy({
      ca: pki.proxyCa,
      insecureUpstreamHosts: (host) => {
        asked.push(host);
        return allow;
      },
    });
    const { port } = await proxy.listen(0);
    const upstreamPort = (selfSigned as Upstream).port;
    expect(await getThrough(port, upstreamPort)).toEqual({
      status: 502,
      code: 'HTTPMESH_UPSTREAM_CERT_INVALID',
    });
    allow = true;
    expect(await getThrough(port, upstreamPort)).toEqual({ status: 200, code: undefined });
    // Connections made without verification are never reused once the rule says "verify" again.
    allow = false;
    expect(await getThrough(port, upstreamPort)).toEqual({
      status: 502,
      code: 'HTTPMESH_UPSTREAM_CERT_INVALID',
    });
    expect(asked).toEqual(['localhost', 'localhost', 'localhost']);
    await proxy.close();
  });

  test('the upgrade (WebSocket) path consults the same rule', async () => {
    let allow = false;
    const proxy = createMitmProxy({ ca: pki.proxyCa, insecureUpstreamHosts: () => allow });
    const { port } = await proxy.listen(0);
    const upstreamPort = (selfSigned as Upstream).port;
    expect(await upgradeThrough(port, upstreamPort)).toBe(502);
    allow = true;
    expect(await upgradeThrough(port, upstreamPort)).toBe(101);
    await proxy.close();
  });

  test('setInsecureUpstreamHosts swaps lists live; a throwing predicate fails closed and is reported', async () => {
    const reported: MitmProxyError[] = [];
    const proxy = createMitmProxy({ ca: pki.proxyCa, onError: (error) => reported.push(error) });
    const { port } = await proxy.listen(0);
    const upstreamPort = (selfSigned as Upstream).port;
    expect((await getThrough(port, upstreamPort)).status).toBe(502);
    proxy.setInsecureUpstreamHosts(['*.localhost']); // subdomains only: not "localhost" itself
    expect((await getThrough(port, upstreamPort)).status).toBe(502);
    proxy.setInsecureUpstreamHosts(['LOCALHOST']);
    expect((await getThrough(port, upstreamPort)).status).toBe(200);
    proxy.setInsecureUpstreamHosts(() => {
      throw new Error('rule store unavailable');
    });
    expect((await getThrough(port, upstreamPort)).status).toBe(502);
    expect(reported.some((e) => e.code === 'HTTPMESH_FILTER_FAILED')).toBe(true);
    proxy.setInsecureUpstreamHosts(undefined);
    expect((await getThrough(port, upstreamPort)).status).toBe(502);
    await proxy.close();
  });
});

describe('host rule lists', () => {
  test('exact names are case-insensitive; *.x matches any subdomain of x but not x', () => {
    const match = compileHostRule(['Api.Example.com', '*.internal.test'], 'rule') as (h: string) => boolean;
    expect(match('api.example.com')).toBe(true);
    expect(match('API.EXAMPLE.COM')).toBe(true);
    expect(match('example.com')).toBe(false);
    expect(match('a.internal.test')).toBe(true);
    expect(match('a.b.internal.test')).toBe(true);
    expect(match('internal.test')).toBe(false);
    expect(match('evilinternal.test')).toBe(false);
    expect(compileHostRule([], 'rule')).toBeUndefined();
    expect(compileHostRule(undefined, 'rule')).toBeUndefined();
  });

  test.each([
    [['']],
    [['*']],
    [['a*b.com']],
    [['*.']],
    [['.example.com']],
    [['host name']],
    [['user@host']],
    [[42]],
  ])('malformed list %j is refused with HTTPMESH_PROXY_OPTIONS_INVALID', (list) => {
    expect(() =>
      createMitmProxy({
        ca: { secureContextFor: () => Promise.reject(new Error('unused')) },
        insecureUpstreamHosts: list as string[],
      }),
    ).toThrow(expect.objectContaining({ code: 'HTTPMESH_PROXY_OPTIONS_INVALID', name: 'ProxyOptionsError' }));
    const proxy = createMitmProxy({ ca: { secureContextFor: () => Promise.reject(new Error('unused')) } });
    expect(() => proxy.setInsecureUpstreamHosts(list as string[])).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PROXY_OPTIONS_INVALID' }),
    );
    void proxy.close();
  });

  test('a non-array, non-function rule is refused', () => {
    expect(() => compileHostRule('localhost' as unknown as string[], 'insecureUpstreamHosts')).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PROXY_OPTIONS_INVALID' }),
    );
  });
});
