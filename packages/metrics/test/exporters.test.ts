import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import {
  MeshMetrics,
  MetricsOptionsError,
  PROMETHEUS_CONTENT_TYPE,
  createOtlpExport,
  createPrometheusEndpoint,
} from '../src/index.js';
import type { RouteSetSpec } from '../src/index.js';

const ROUTES: RouteSetSpec[] = [
  { host: 'payments.partner.com', routes: [{ pattern: '/orders/:id' }, { pattern: '/orders' }] },
];

function hasPromtool(): boolean {
  return spawnSync('promtool', ['--version']).status === 0;
}
const promtoolMissing = !hasPromtool() && process.env['CI'] !== 'true';

function promtoolCheck(text: string): { status: number | null; output: string } {
  const r = spawnSync('promtool', ['check', 'metrics'], { input: text, encoding: 'utf8' });
  return { status: r.status, output: `${r.stdout}${r.stderr}` };
}

function populated(limit = 2000): MeshMetrics {
  const metrics = new MeshMetrics({ routeSets: ROUTES, service: 'orders', cardinalityLimit: limit });
  for (let i = 0; i < 40; i++) {
    metrics.record({
      direction: i % 4 === 0 ? 'outbound' : 'inbound',
      method: i % 3 === 0 ? 'POST' : 'GET',
      host: 'payments.partner.com',
      path: i % 3 === 0 ? '/orders' : `/orders/${i}?q="quoted"\\`,
      statusCode: i % 7 === 0 ? 503 : 200,
      durationMs: i * 7,
      requestBytes: i * 10,
      responseBytes: i * 1000,
      sourceService: `caller-${i % 5}`,
    });
  }
  metrics.record({
    direction: 'inbound',
    method: 'BREW',
    host: 'evil"host\n',
    path: '/x',
    errorType: 'timeout',
    durationMs: 1,
  });
  metrics.startRequest({
    direction: 'inbound',
    method: 'GET',
    host: 'payments.partner.com',
    path: '/orders/1',
  });
  return metrics;
}

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const fn of cleanup.splice(0)) await fn();
});

describe('Prometheus exposition', () => {
  test.skipIf(promtoolMissing)(
    'text output passes promtool check metrics (promtool missing: skipped outside CI)',
    async () => {
      for (const limit of [2000, 3]) {
        const endpoint = createPrometheusEndpoint(populated(limit));
        cleanup.push(() => endpoint.shutdown());
        const text = await endpoint.text();
        const result = promtoolCheck(text);
        expect(result.output).toBe('');
        expect(result.status).toBe(0);
        // The checker really parses: a damaged copy is rejected.
        expect(promtoolCheck(text.replace('_bucket{', '_bucket{{')).status).not.toBe(0);
      }
    },
  );

  test('exposes per-pattern histograms with semconv labels and overflow', async () => {
    const endpoint = createPrometheusEndpoint(populated(3));
    cleanup.push(() => endpoint.shutdown());
    const text = await endpoint.text();
    expect(text).toMatch(/^# TYPE http_server_request_duration histogram$/m);
    expect(text).toMatch(/^# TYPE http_server_active_requests gauge$/m);
    expect(text).toMatch(
      /^http_server_request_duration_bucket\{[^}]*otel_metric_overflow="true"[^}]*le="\+Inf"\} \d+$/m,
    );
    expect(text).toMatch(/^target_info\{service_name="orders"\} 1$/m);
    expect(text).not.toContain('/orders/1');
    expect(text).not.toContain('evil');
  });

  test('http handler serves the text on a real admin server; other methods are refused', async () => {
    const metrics = populated();
    const endpoint = createPrometheusEndpoint(metrics);
    const server = createServer((req, res) => endpoint.handler(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanup.push(async () => {
      server.close();
      await endpoint.shutdown();
    });
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe(PROMETHEUS_CONTENT_TYPE);
    const body = await res.text();
    const line = body
      .split('\n')
      .find(
        (l) =>
          l.startsWith('http_server_request_duration_count{') &&
          l.includes('http_route="/orders/:id"') &&
          l.includes('caller-1"') &&
          l.includes('status_code="200"'),
      );
    expect(line).toBeDefined();
    // Same selection as populated(): caller-1, inbound, GET (so /orders/:id), status 200.
    let expected = 0;
    for (let i = 0; i < 40; i++) if (i % 5 === 1 && i % 4 !== 0 && i % 3 !== 0 && i % 7 !== 0) expected++;
    expect(expected).toBeGreaterThan(0);
    expect(line?.endsWith(` ${expected}`)).toBe(true);
    const head = await fetch(`${base}/metrics`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(await head.text()).toBe('');
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    await post.text();
  });
});

interface OtlpJson {
  resourceMetrics: {
    resource: { attributes: { key: string; value: { stringValue?: string } }[] };
    scopeMetrics: {
      scope: { name: string };
      metrics: {
        name: string;
        unit: string;
        histogram?: {
          aggregationTemporality: number;
          dataPoints: {
            attributes: {
              key: string;
              value: { stringValue?: string; intValue?: string | number; boolValue?: boolean };
            }[];
            count: string | number;
            sum: number;
            bucketCounts: (string | number)[];
            explicitBounds: number[];
          }[];
        };
      }[];
    }[];
  }[];
}

describe('OTLP export', () => {
  test('pushes OTLP/HTTP JSON with the per-pattern histograms to a real local receiver', async () => {
    const received: { path: string | undefined; type: string | undefined; body: string }[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        received.push({
          path: req.url,
          type: req.headers['content-type'],
          body: Buffer.concat(chunks).toString('utf8'),
        });
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    cleanup.push(async () => {
      server.close();
    });
    const metrics = populated();
    const otlp = createOtlpExport(metrics, {
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1/metrics`,
      intervalMs: 3_600_000,
      headers: { 'x-tenant': 'mesh' },
      resourceAttributes: { 'service.instance.id': 'pod-1' },
    });
    await otlp.forceFlush();
    await otlp.shutdown();
    expect(received.length).toBeGreaterThanOrEqual(1);
    const first = received[0]!;
    expect(first.path).toBe('/v1/metrics');
    expect(first.type).toContain('application/json');
    const payload = JSON.parse(first.body) as OtlpJson;
    const rm = payload.resourceMetrics[0]!;
    const resource = Object.fromEntries(rm.resource.attributes.map((a) => [a.key, a.value.stringValue]));
    expect(resource['service.name']).toBe('orders');
    expect(resource['service.instance.id']).toBe('pod-1');
    const ours = rm.scopeMetrics.find((s) => s.scope.name === '@httpmesh/metrics');
    const duration = ours?.metrics.find((m) => m.name === 'http.server.request.duration');
    expect(duration?.unit).toBe('s');
    expect(duration?.histogram?.aggregationTemporality).toBe(2); // CUMULATIVE
    const points = duration?.histogram?.dataPoints ?? [];
    const routeOf = (p: (typeof points)[number]) =>
      p.attributes.find((a) => a.key === 'http.route')?.value.stringValue;
    const total = points.filter((p) => routeOf(p) === '/orders/:id').reduce((n, p) => n + Number(p.count), 0);
    // inbound GET /orders/:id: i not divisible by 3 and not by 4, i < 40.
    let expected = 0;
    for (let i = 0; i < 40; i++) if (i % 3 !== 0 && i % 4 !== 0) expected++;
    expect(total).toBe(expected);
    expect(points[0]?.explicitBounds).toEqual([
      0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10,
    ]);
    expect(points[0]?.bucketCounts.map(Number).reduce((a, b) => a + b, 0)).toBe(Number(points[0]?.count));
    expect(points.some((p) => routeOf(p) === 'UNMATCHED')).toBe(true);
  });

  test('requires a url or an exporter', () => {
    expect(() => createOtlpExport(new MeshMetrics(), {})).toThrow(MetricsOptionsError);
  });
});
