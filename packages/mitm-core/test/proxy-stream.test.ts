import { Readable } from 'node:stream';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { createMitmProxy, type MitmProxy } from '../src/proxy/proxy.js';
import { startHttpsUpstream, type TestPki, testPki, type Upstream } from './fixtures/proxy-harness.js';

const MB = 1024 * 1024;
const UPLOAD_BYTES = 200 * MB;
const DOWNLOAD_BYTES = 200 * MB;
const CHUNK = Buffer.alloc(256 * 1024, 0x61);

let pki: TestPki;
let upstream: Upstream;
let proxy: MitmProxy;
let agent: ProxyAgent;
let received = 0;

beforeAll(async () => {
  pki = await testPki();
  upstream = await startHttpsUpstream(
    (req, res) => {
      if (req.url === '/download') {
        let sent = 0;
        res.writeHead(200, { 'content-length': String(DOWNLOAD_BYTES) });
        const pump = (): void => {
          while (sent < DOWNLOAD_BYTES) {
            sent += CHUNK.length;
            if (!res.write(CHUNK)) {
              res.once('drain', pump);
              return;
            }
          }
          res.end();
        };
        pump();
        return;
      }
      req.on('data', (chunk: Buffer) => {
        received += chunk.length;
      });
      req.on('end', () => res.end(String(received)));
    },
    { key: pki.upstreamKeyPem, cert: pki.upstreamCertPem },
  );
  proxy = createMitmProxy({ ca: pki.proxyCa, upstreamCa: [pki.upstreamCaPem] });
  const { port } = await proxy.listen(0);
  agent = new ProxyAgent({ uri: `http://127.0.0.1:${port}`, requestTls: { ca: pki.proxyCaPem } });
});

afterAll(async () => {
  await agent.close();
  await proxy.close();
  await upstream.close();
});

/** Samples RSS while `work` runs; returns the peak growth over the starting RSS. */
async function peakRssGrowth(work: () => Promise<void>): Promise<number> {
  const base = process.memoryUsage.rss();
  let peak = base;
  const timer = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 20);
  try {
    await work();
  } finally {
    clearInterval(timer);
  }
  return Math.max(peak, process.memoryUsage.rss()) - base;
}

test('a 200 MB upload streams through interception with bounded memory', async () => {
  received = 0;
  const growth = await peakRssGrowth(async () => {
    let produced = 0;
    const body = new Readable({
      read() {
        if (produced >= UPLOAD_BYTES) {
          this.push(null);
          return;
        }
        produced += CHUNK.length;
        this.push(CHUNK);
      },
    });
    const response = await request(`https://localhost:${upstream.port}/upload`, {
      dispatcher: agent,
      method: 'POST',
      body,
      headers: { 'content-length': String(UPLOAD_BYTES) },
    });
    expect(response.statusCode).toBe(200);
    expect(await response.body.text()).toBe(String(UPLOAD_BYTES));
  });
  expect(received).toBe(UPLOAD_BYTES);
  // Buffering the body anywhere would cost >= 200 MB; streaming stays far below.
  expect(growth).toBeLessThan(80 * MB);
}, 120_000);

test('a 200 MB download streams back with bounded memory', async () => {
  const growth = await peakRssGrowth(async () => {
    const response = await request(`https://localhost:${upstream.port}/download`, { dispatcher: agent });
    expect(response.statusCode).toBe(200);
    let bytes = 0;
    for await (const chunk of response.body) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(DOWNLOAD_BYTES);
  });
  expect(growth).toBeLessThan(80 * MB);
}, 120_000);
