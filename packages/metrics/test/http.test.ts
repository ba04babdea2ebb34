import { once } from 'node:events';
import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { expect, test } from 'vitest';
import { MeshAggregator, MeshMetrics, createPrometheusEndpoint } from '../src/index.js';
import type { RouteSetSpec } from '../src/index.js';

const ROUTES: RouteSetSpec[] = [
  {
    host: '127.0.0.1',
    routes: [
      { pattern: '/orders/:id', methods: ['GET'] },
      { pattern: '/orders', methods: ['POST'] },
    ],
  },
];

async function until(condition: () => boolean, deadlineMs = 5000): Promise<void> {
  const end = Date.now() + deadlineMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met before deadline');
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
}

test('per-pattern aggregation of real requests through a node:http server', async () => {
  const metrics = new MeshMetrics({ routeSets: ROUTES, service: 'orders' });
  let finished = 0;

  // The application, instrumented the way the sidecar instruments a proxied exchange.
  const app = (req: IncomingMessage, res: ServerResponse): void => {
    const started = process.hrtime.bigint();
    const active = metrics.startRequest({
      direction: 'inbound',
      method: req.method ?? 'GET',
      host: req.headers.host ?? '',
      path: req.url ?? '/',
      sourceService: String(req.headers['x-mesh-source'] ?? 'unknown'),
    });
    let requestBytes = 0;
    req.on('data', (chunk: Buffer) => {
      requestBytes += chunk.length;
    });
    req.on('end', () => {
      const url = req.url ?? '/';
      let status = 404;
      let body = 'not found';
      if (req.method === 'GET' && /^\/orders\/[^/?]+/.test(url)) {
        status = 200;
        body = JSON.stringify({ id: url.split('/')[2], items: 'x'.repeat(100) });
      } else if (req.method === 'POST' && url.startsWith('/orders')) {
        status = 201;
        body = `created ${requestBytes}`;
      }
      const payload = Buffer.from(body);
      res.on('finish', () => {
        metrics.endRequest(active);
        metrics.record({
          direction: 'inbound',
          method: req.method ?? 'GET',
          host: req.headers.host ?? '',
          path: url,
          statusCode: res.statusCode,
          durationMs: Number(process.hrtime.bigint() - started) / 1e6,
          requestBytes,
          responseBytes: payload.length,
          sourceService: String(req.headers['x-mesh-source'] ?? 'unknown'),
        });
        finished++;
      });
      res.writeHead(status, { 'content-length': payload.length }).end(payload);
    });
  };
  const server = createServer(app);
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const endpoint = createPrometheusEndpoint(metrics);
  const admin = createServer((req, res) => endpoint.handler(req, res));
  admin.listen(0, '127.0.0.1');
  await once(admin, 'listening');

  try {
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const gets = 60;
    const posts = 15;
    const misses = 10;
    const sent: Promise<Response>[] = [];
    for (let i = 0; i < gets; i++) {
      sent.push(
        fetch(`${base}/orders/${1000 + i}?trace=${i}`, {
          headers: { 'x-mesh-source': i % 2 ? 'web' : 'mobile' },
        }),
      );
    }
    for (let i = 0; i < posts; i++) {
      sent.push(
        fetch(`${base}/orders`, {
          method: 'POST',
          body: 'y'.repeat(50 + i),
          headers: { 'x-mesh-source': 'web' },
        }),
      );
    }
    for (let i = 0; i < misses; i++) sent.push(fetch(`${base}/unknown/${i}/${Math.random()}`));
    const responses = await Promise.all(sent);
    const bodies = await Promise.all(responses.map((r) => r.arrayBuffer()));
    await until(() => finished === gets + posts + misses);

    const aggregator = new MeshAggregator();
    aggregator.ingest(JSON.parse(JSON.stringify(metrics.snapshot())));
    const rows = aggregator.byPattern();
    const row = (method: string, route: string) =>
      rows.find((r) => r.key.method === method && r.key.route === route);

    expect(rows).toHaveLength(3);
    expect(row('GET', '/orders/:id')?.requests).toBe(gets);
    expect(row('GET', '/orders/:id')?.key.host).toBe('127.0.0.1');
    expect(row('POST', '/orders')?.requests).toBe(posts);
    expect(row('GET', 'UNMATCHED')?.requests).toBe(misses);
    expect(row('GET', 'UNMATCHED')?.key.host).toBe('127.0.0.1'); // Host header had a port
    expect(row('GET', 'UNMATCHED')?.errors).toBe(0); // 404 is not a server error
    // Body sizes: what the clients sent and what they received.
    let postBytes = 0;
    for (let i = 0; i < posts; i++) postBytes += 50 + i;
    expect(row('POST', '/orders')?.requestBodySize.sum).toBe(postBytes);
    const received = bodies.reduce((n, b) => n + b.byteLength, 0);
    expect(rows.reduce((n, r) => n + r.responseBodySize.sum, 0)).toBe(received);
    const latency = row('GET', '/orders/:id')?.duration;
    expect(latency?.p50).not.toBeNull();
    expect(latency?.p99 ?? 0).toBeGreaterThanOrEqual(latency?.p50 ?? 0);
    expect(
      aggregator.view(['route', 'sourceService'], { route: '/orders/:id', sourceService: 'web' })[0]
        ?.requests,
    ).toBe(gets / 2);

    // The same numbers on the admin port in Prometheus format; no active requests left.
    const text = await (
      await fetch(`http://127.0.0.1:${(admin.address() as AddressInfo).port}/metrics`)
    ).text();
    const counts = text
      .split('\n')
      .filter(
        (l) => l.startsWith('http_server_request_duration_count{') && l.includes('http_route="/orders/:id"'),
      )
      .map((l) => Number(l.slice(l.lastIndexOf(' ') + 1)));
    expect(counts.reduce((a, b) => a + b, 0)).toBe(gets);
    const activeLines = text.split('\n').filter((l) => l.startsWith('http_server_active_requests{'));
    expect(activeLines.length).toBeGreaterThan(0);
    for (const l of activeLines) expect(l.endsWith(' 0')).toBe(true);
    expect(text).not.toMatch(/\/orders\/10\d\d|\/unknown\//);
  } finally {
    server.close();
    admin.close();
    await endpoint.shutdown();
  }
});
