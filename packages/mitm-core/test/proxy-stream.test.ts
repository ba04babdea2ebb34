import { Readable } from 'node:stream';
import { ProxyAgent, request } from 'undici';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { MitmProxy } from '../src/proxy/proxy.js';
import { startTestProxy, useTlsUpstream, writeRepeated } from './fixtures/proxy-harness.js';

const MB = 1024 * 1024;
const UPLOAD_BYTES = 200 * MB;
const DOWNLOAD_BYTES = 200 * MB;
const CHUNK = Buffer.alloc(256 * 1024, 0x61);

let proxy: MitmProxy;
let agent: ProxyAgent;
let received = 0;

const testbed = useTlsUpstream((req, res) => {
  if (req.url === '/download') {
    res.writeHead(200, { 'content-length': String(DOWNLOAD_BYTES) });
    writeRepeated(res, CHUNK, DOWNLOAD_BYTES / CHUNK.length);
    return;
  }
  req.on('data', (chunk: Buffer) => {
    received += chunk.length;
  });
  req.on('end', () => res.end(String(received)));
});

beforeAll(async () => {
  const started = await startTestProxy();
  proxy = started.proxy;
  agent = new ProxyAgent({
    uri: `http://127.0.0.1:${started.port}`,
    requestTls: { ca: testbed.pki.proxyCaPem },
  });
});

afterAll(async () => {
  await agent.close();
  await proxy.close();
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
    const response = await request(`https://localhost:${testbed.tls.port}/upload`, {
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
    const response = await request(`https://localhost:${testbed.tls.port}/download`, { dispatcher: agent });
    expect(response.statusCode).toBe(200);
    let bytes = 0;
    for await (const chunk of response.body) bytes += (chunk as Buffer).length;
    expect(bytes).toBe(DOWNLOAD_BYTES);
  });
  expect(growth).toBeLessThan(80 * MB);
}, 120_000);
