import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createDashboardHandler } from '../src/dashboard-assets.js';

/** Sends one raw HTTP/1.1 request (fetch would normalise the path) and returns status line, headers and body. */
function raw(
  port: number,
  method: string,
  target: string,
): Promise<{ status: number; head: string; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.once('error', reject);
    socket.once('end', () => {
      const text = Buffer.concat(chunks).toString('utf8');
      const split = text.indexOf('\r\n\r\n');
      const head = text.slice(0, split);
      resolve({ status: Number(head.split(' ')[1]), head: head.toLowerCase(), body: text.slice(split + 4) });
    });
    socket.write(`${method} ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`);
  });
}

describe('dashboard static handler', () => {
  let top: string;
  let server: Server;
  let port: number;

  beforeAll(async () => {
    top = mkdtempSync(join(tmpdir(), 'cp-dash-'));
    const root = join(top, 'dist');
    mkdirSync(join(root, 'assets'), { recursive: true });
    writeFileSync(join(root, 'index.html'), '<!doctype html><title>mesh</title>');
    writeFileSync(join(root, 'assets', 'app-1a2b.js'), 'console.log(1)');
    writeFileSync(join(root, 'assets', 'app-1a2b.css'), 'body{}');
    writeFileSync(join(root, 'assets', 'blob.bin'), 'xx');
    writeFileSync(join(top, 'secret.txt'), 'TOP SECRET');
    const handler = createDashboardHandler(root);
    server = createServer((req, res) => {
      const pathname = (req.url ?? '/').split('?')[0] ?? '/';
      handler(req, res, pathname).then(
        (handled) => {
          if (!handled) {
            res.writeHead(418);
            res.end('not handled');
          }
        },
        () => res.destroy(),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });

  afterAll(async () => {
    await new Promise((r) => server.close(r));
    rmSync(top, { recursive: true, force: true });
  });

  test('serves index.html at / with an HTML content type and no-cache', async () => {
    const res = await raw(port, 'GET', '/');
    expect(res.status).toBe(200);
    expect(res.head).toContain('content-type: text/html; charset=utf-8');
    expect(res.head).toContain('cache-control: no-cache');
    expect(res.body).toBe('<!doctype html><title>mesh</title>');
  });

  test.each([
    ['/assets/app-1a2b.js', 'text/javascript; charset=utf-8', 'console.log(1)'],
    ['/assets/app-1a2b.css', 'text/css; charset=utf-8', 'body{}'],
    ['/assets/blob.bin', 'application/octet-stream', 'xx'],
  ])('serves %s as %s, immutable', async (path, type, body) => {
    const res = await raw(port, 'GET', path);
    expect(res.status).toBe(200);
    expect(res.head).toContain(`content-type: ${type}`);
    expect(res.head).toContain('immutable');
    expect(res.head).toContain('x-content-type-options: nosniff');
    expect(res.body).toBe(body);
  });

  test('HEAD gives headers and length without a body', async () => {
    const res = await raw(port, 'HEAD', '/assets/app-1a2b.js');
    expect(res.status).toBe(200);
    expect(res.head).toContain('content-length: 14');
    expect(res.body).toBe('');
  });

  test.each([
    '/../secret.txt',
    '/assets/../../secret.txt',
    '/%2e%2e/secret.txt',
    '/assets/..%2f..%2fsecret.txt',
    '/assets/%2e%2e%2f%2e%2e%2fsecret.txt',
    '/..%5csecret.txt',
    '/assets/app-1a2b.js%00.html',
    '/%E0%A4%A',
    '/./index.html',
  ])('refuses traversal and malformed path %s with 404', async (target) => {
    const res = await raw(port, 'GET', target);
    expect(res.status).toBe(404);
    expect(res.body).not.toContain('TOP SECRET');
    expect(res.body).toContain('HTTPMESH_CP_NOT_FOUND');
  });

  test('leaves other methods, unknown files and folders to the caller', async () => {
    expect((await raw(port, 'POST', '/')).status).toBe(418);
    expect((await raw(port, 'GET', '/api-does-not-exist')).status).toBe(418);
    expect((await raw(port, 'GET', '/assets')).status).toBe(418);
  });

  test('answers 503 for / when the dashboard is not built', async () => {
    const handler = createDashboardHandler(join(top, 'missing'));
    const other = createServer((req, res) => {
      void handler(req, res, req.url ?? '/').then((handled) => {
        if (!handled) res.writeHead(418).end();
      });
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      const res = await raw((other.address() as AddressInfo).port, 'GET', '/');
      expect(res.status).toBe(503);
      expect(res.body).toContain('dashboard not built');
    } finally {
      await new Promise((r) => other.close(r));
    }
  });

  test('the default root is the built @httpmesh/dashboard with its index.html', async () => {
    const handler = createDashboardHandler();
    const other = createServer((req, res) => {
      void handler(req, res, req.url ?? '/').then((handled) => {
        if (!handled) res.writeHead(418).end();
      });
    });
    await new Promise<void>((r) => other.listen(0, '127.0.0.1', r));
    try {
      const res = await raw((other.address() as AddressInfo).port, 'GET', '/');
      expect(res.status).toBe(200);
      expect(res.body).toContain('httpmesh dashboard');
      const script = /src="\.\/(assets\/[^"]+\.js)"/.exec(res.body)?.[1];
      expect(script).toBeDefined();
      const js = await raw((other.address() as AddressInfo).port, 'GET', `/${script}`);
      expect(js.status).toBe(200);
      expect(js.head).toContain('text/javascript');
    } finally {
      await new Promise((r) => other.close(r));
    }
  });
});
