import { execFile, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { MitmProxy } from '../src/proxy/proxy.js';
import { startTestProxy, useTlsUpstream } from './fixtures/proxy-harness.js';

const run = promisify(execFile);
const inCi = process.env['CI'] === 'true';
const hasCurl = spawnSync('curl', ['--version']).status === 0;
const hasPython = spawnSync('python3', ['--version']).status === 0;

const testbed = useTlsUpstream();
let proxy: MitmProxy;
let proxyUrl: string;
let dir: string;
let proxyCaFile: string;
let upstreamCaFile: string;

beforeAll(async () => {
  const started = await startTestProxy({ intercept: (host) => host !== '127.0.0.1' });
  proxy = started.proxy;
  proxyUrl = `http://127.0.0.1:${started.port}`;
  dir = mkdtempSync(join(tmpdir(), 'mitm-e2e-'));
  proxyCaFile = join(dir, 'proxy-ca.pem');
  upstreamCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(proxyCaFile, testbed.pki.proxyCaPem);
  writeFileSync(upstreamCaFile, testbed.pki.upstreamCaPem);
});

afterAll(async () => {
  await proxy.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Echo {
  method: string;
  url: string;
  headers: Record<string, string>;
  bodyBytes: number;
}

describe.skipIf(!hasCurl && !inCi)('curl (reason: curl binary missing)', () => {
  test('HTTPS through the proxy with --cacert, HTTP/1.1 and HTTP/2, with an upload', async () => {
    const url = `https://localhost:${testbed.tls.port}/curl?x=1`;
    for (const version of ['--http1.1', '--http2']) {
      const { stdout } = await run('curl', [
        '-sS',
        version,
        '-x',
        proxyUrl,
        '--cacert',
        proxyCaFile,
        '--data-binary',
        'curl-body',
        '-w',
        '\n%{http_code} %{http_version}',
        url,
      ]);
      const [body, status] = stdout.split('\n') as [string, string];
      const echo = JSON.parse(body) as Echo;
      expect(echo).toMatchObject({ method: 'POST', url: '/curl?x=1', bodyBytes: 9 });
      expect(echo.headers['host']).toBe(`localhost:${testbed.tls.port}`);
      expect(status).toBe(version === '--http2' ? '200 2' : '200 1.1');
    }
  });

  test('verbose handshake shows the proxy CA for intercepted and the upstream CA for passthrough hosts', async () => {
    const intercepted = await run('curl', [
      '-sSv',
      '-x',
      proxyUrl,
      '--cacert',
      proxyCaFile,
      `https://localhost:${testbed.tls.port}/`,
    ]);
    expect(intercepted.stderr).toMatch(/issuer: CN=httpmesh test proxy CA/);
    const passthrough = await run('curl', [
      '-sSv',
      '-x',
      proxyUrl,
      '--cacert',
      upstreamCaFile,
      `https://127.0.0.1:${testbed.tls.port}/`,
    ]);
    expect(passthrough.stderr).toMatch(/issuer: CN=httpmesh test upstream CA/);
    expect((JSON.parse(passthrough.stdout) as Echo).url).toBe('/');
  });

  test('a pinning client (trusts only the real CA) fails once, then passes through', async () => {
    const { proxy: pinProxy, port: pinPort } = await startTestProxy();
    const pinUrl = `http://127.0.0.1:${pinPort}`;
    const args = [
      '-sS',
      '-x',
      pinUrl,
      '--cacert',
      upstreamCaFile,
      `https://localhost:${testbed.tls.port}/pinned`,
    ];
    await expect(run('curl', args)).rejects.toMatchObject({ code: 60 });
    const { stdout } = await run('curl', args);
    expect((JSON.parse(stdout) as Echo).url).toBe('/pinned');
    expect(pinProxy.stats.pinnedHosts).toBe(1);
    await pinProxy.close();
  });

  test('unreachable upstream: curl sees 502 and the error header', async () => {
    const { stdout } = await run('curl', [
      '-sS',
      '--http1.1',
      '-D',
      '-',
      '-x',
      proxyUrl,
      '--cacert',
      proxyCaFile,
      'https://localhost:1/',
    ]);
    // The first head is the proxy's CONNECT answer, the second the tunnelled response.
    expect(stdout).toMatch(/^HTTP\/1.1 200 Connection Established\r\n\r\nHTTP\/1.1 502/);
    expect(stdout.toLowerCase()).toContain('x-httpmesh-error: httpmesh_upstream_unreachable');
  });
});

describe.skipIf(!hasPython && !inCi)('python urllib (reason: python3 missing)', () => {
  test('urllib with ProxyHandler and a cafile gets the upstream response', async () => {
    const script = [
      'import json, ssl, sys, urllib.request',
      'ctx = ssl.create_default_context(cafile=sys.argv[2])',
      "opener = urllib.request.build_opener(urllib.request.ProxyHandler({'https': sys.argv[1]}), urllib.request.HTTPSHandler(context=ctx))",
      "req = urllib.request.Request(sys.argv[3], data=b'x' * 1000, method='PUT', headers={'X-Py': '1'})",
      'with opener.open(req, timeout=10) as r:',
      "    print(r.status, r.headers.get('x-upstream'))",
      '    print(r.read().decode())',
    ].join('\n');
    const { stdout } = await run('python3', [
      '-c',
      script,
      proxyUrl,
      proxyCaFile,
      `https://localhost:${testbed.tls.port}/py`,
    ]);
    const [statusLine, body] = stdout.split('\n') as [string, string];
    expect(statusLine).toBe('200 yes');
    const echo = JSON.parse(body) as Echo;
    expect(echo).toMatchObject({ method: 'PUT', url: '/py', bodyBytes: 1000 });
    expect(echo.headers['x-py']).toBe('1');
  });

  test('urllib without our CA refuses the intercepted certificate', async () => {
    const script = [
      'import ssl, sys, urllib.request',
      'ctx = ssl.create_default_context(cafile=sys.argv[2])',
      "opener = urllib.request.build_opener(urllib.request.ProxyHandler({'https': sys.argv[1]}), urllib.request.HTTPSHandler(context=ctx))",
      'try:',
      '    opener.open(sys.argv[3], timeout=10)',
      "    print('accepted')",
      'except Exception as e:',
      "    print('refused', type(e).__name__)",
    ].join('\n');
    const { proxy: strict, port: strictPort } = await startTestProxy({ pinning: { enabled: false } });
    const url = `http://127.0.0.1:${strictPort}`;
    const { stdout } = await run('python3', [
      '-c',
      script,
      url,
      upstreamCaFile,
      `https://localhost:${testbed.tls.port}/`,
    ]);
    expect(stdout.trim()).toMatch(/^refused/);
    await strict.close();
  });
});

describe('Node clients', () => {
  test('undici ProxyAgent (CONNECT) with the proxy CA', async () => {
    const agent = new ProxyAgent({ uri: proxyUrl, requestTls: { ca: testbed.pki.proxyCaPem } });
    const response = await request(`https://localhost:${testbed.tls.port}/node`, {
      dispatcher: agent,
      method: 'POST',
      body: 'node-body',
      headers: { 'x-node': 'yes' },
    });
    expect(response.statusCode).toBe(200);
    const echo = (await response.body.json()) as Echo;
    expect(echo).toMatchObject({ method: 'POST', url: '/node', bodyBytes: 9 });
    expect(echo.headers['x-node']).toBe('yes');
    await agent.close();
  });

  test('NODE_EXTRA_CA_CERTS child process using https through a CONNECT tunnel', async () => {
    const script = `
      const http = require('node:http'); const https = require('node:https');
      const [proxyPort, port] = process.argv.slice(1).map(Number);
      const req = http.request({ host: '127.0.0.1', port: proxyPort, method: 'CONNECT', path: 'localhost:' + port });
      req.on('connect', (_res, socket) => {
        https.get({ host: 'localhost', port, path: '/extra-ca', socket, agent: false }, (res) => {
          let body = ''; res.on('data', (c) => (body += c)); res.on('end', () => { process.stdout.write(res.statusCode + ' ' + body); socket.destroy(); });
        }).on('error', (e) => { console.log('error', e.code); process.exit(1); });
      });
      req.end();`;
    const { stdout } = await run(
      process.execPath,
      ['-e', script, new URL(proxyUrl).port, String(testbed.tls.port)],
      {
        env: { ...process.env, NODE_EXTRA_CA_CERTS: proxyCaFile },
      },
    );
    const space = stdout.indexOf(' ');
    expect(stdout.slice(0, space)).toBe('200');
    expect((JSON.parse(stdout.slice(space + 1)) as Echo).url).toBe('/extra-ca');
  });
});
