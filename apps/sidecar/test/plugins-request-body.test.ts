/**
 * The plugin request-body phase (BUFFERED) through a REAL sidecar process with a REAL TypeScript plugin
 * in TypeScript and in Python (fixtures/redact-request-plugin.ts, redact_request_plugin.py): card numbers are redacted before the request reaches the upstream,
 * with a content-length that matches the new body; a plugin's immediate response short-circuits; a body over
 * the plugin's cap gets 413; bodiless and clean requests pass untouched.
 */
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { APP_DIR, pluginLanguages, onePluginRules, sidecarPerSuite } from './plugins-harness.js';

const LANGS = pluginLanguages(
  join(APP_DIR, 'test', 'fixtures', 'redact-request-plugin.ts'),
  join(APP_DIR, 'test', 'fixtures', 'redact_request_plugin.py'),
);

interface Seen {
  body: string;
  contentLength: string | null;
  transferEncoding: string | null;
}

let upstream: Server;
let upstreamPort = 0;
let hits = 0;

/** POST through the explicit proxy; `chunked` sends no content-length. */
function post(
  proxyPort: number,
  path: string,
  body: string,
  chunked = false,
): Promise<{ status: number; body: string; error: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        method: 'POST',
        path: `http://127.0.0.1:${upstreamPort}${path}`,
        headers: {
          host: `127.0.0.1:${upstreamPort}`,
          'content-type': 'text/plain',
          ...(chunked ? {} : { 'content-length': String(Buffer.byteLength(body)) }),
        },
        agent: false,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          text += c;
        });
        res.on('end', () =>
          resolve({
            status: res.statusCode ?? 0,
            body: text,
            error: res.headers['x-httpmesh-error'] as string | undefined,
          }),
        );
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`no response within 15 s for ${path}`)));
    if (chunked) {
      // Two writes without a length: chunked on the wire.
      req.write(body.slice(0, 5));
      req.end(body.slice(5));
    } else req.end(body);
  });
}

beforeAll(async () => {
  upstream = createServer((req, res) => {
    hits++;
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const seen: Seen = {
        body: Buffer.concat(chunks).toString(),
        contentLength: req.headers['content-length'] ?? null,
        transferEncoding: req.headers['transfer-encoding'] ?? null,
      };
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify(seen));
    });
  });
  upstreamPort = await new Promise<number>((resolve) =>
    upstream.listen(0, '127.0.0.1', () => resolve((upstream.address() as AddressInfo).port)),
  );
});

afterAll(async () => {
  upstream.closeAllConnections();
  await new Promise<void>((resolve) => upstream.close(() => resolve()));
});

for (const lang of LANGS) {
  describe.skipIf(lang.skip !== undefined)(
    `plugin request-body phase (BUFFERED), ${lang.lang} plugin, real sidecar`,
    () => {
      const sidecar = sidecarPerSuite(
        'httpmesh-sidecar-plugin-body-',
        onePluginRules('redact-request', lang, { timeoutMs: 2000, failureMode: 'closed' }),
      );

      test('card numbers are redacted before the upstream; content-length follows the new body', async () => {
        const original = 'order=7;card=4111 1111 1111 1111;note=ok';
        const reply = await post(sidecar.current.proxyPort, '/pay', original);
        expect(reply.status).toBe(200);
        const seen = JSON.parse(reply.body) as Seen;
        expect(seen.body).toBe('order=7;card=[REDACTED];note=ok');
        expect(seen.contentLength).toBe(String(Buffer.byteLength(seen.body)));
        expect(seen.transferEncoding).toBeNull();
      });

      test('a chunked client body is redacted and sent length-framed', async () => {
        const reply = await post(sidecar.current.proxyPort, '/pay', 'card=5500000000000004', true);
        const seen = JSON.parse(reply.body) as Seen;
        expect(seen).toEqual({ body: 'card=[REDACTED]', contentLength: '15', transferEncoding: null });
      });

      test('clean bodies pass untouched', async () => {
        const reply = await post(sidecar.current.proxyPort, '/note', 'nothing secret here');
        expect(JSON.parse(reply.body)).toEqual({
          body: 'nothing secret here',
          contentLength: '19',
          transferEncoding: null,
        });
      });

      test("the plugin's immediate response short-circuits: the upstream is not called", async () => {
        const before = hits;
        const reply = await post(sidecar.current.proxyPort, '/x', 'this is forbidden');
        expect(reply).toMatchObject({ status: 403, body: 'body refused by plugin' });
        expect(hits).toBe(before);
      });

      test("a body over the plugin's cap (1 KiB) gets 413 and never reaches the upstream", async () => {
        const before = hits;
        const reply = await post(sidecar.current.proxyPort, '/big', 'x'.repeat(4096));
        expect(reply.status).toBe(413);
        expect(reply.error).toBe('HTTPMESH_BODY_TOO_LARGE');
        expect(hits).toBe(before);
      });
    },
  );
}
