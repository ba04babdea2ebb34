import { describe, expect, test } from 'vitest';
import { MeterProvider } from '@opentelemetry/sdk-metrics';
import type { DataPoint, Histogram } from '@opentelemetry/sdk-metrics';
import { DURATION_BUCKETS_SECONDS, MeshAggregator, MeshMetrics, MetricsOptionsError } from '../src/index.js';
import type { ExchangeRecord, RouteSetSpec } from '../src/index.js';
import { TestReader, collectMetrics, histogramPoints, readerFor } from './helpers.js';

const ROUTES: RouteSetSpec[] = [
  {
    host: 'payments.partner.com',
    routes: [{ pattern: '/orders/:id', methods: ['GET'] }, { pattern: '/orders' }, { pattern: '/health' }],
  },
  { host: '*.shop.example', routes: [{ pattern: '/cart/:cartId/items/:itemId' }] },
];

function exchange(overrides: Partial<ExchangeRecord>): ExchangeRecord {
  return {
    direction: 'inbound',
    method: 'GET',
    host: 'payments.partner.com',
    path: '/orders/1',
    statusCode: 200,
    durationMs: 12,
    requestBytes: 0,
    responseBytes: 300,
    ...overrides,
  };
}

function findPoint(
  points: DataPoint<Histogram>[],
  attrs: Record<string, unknown>,
): DataPoint<Histogram> | undefined {
  return points.find((p) => Object.entries(attrs).every(([k, v]) => p.attributes[k] === v));
}

describe('MeshMetrics recording', () => {
  test('maps raw URLs to their pattern and host, with semconv attributes', async () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES });
    const reader = readerFor(metrics);
    for (let i = 0; i < 50; i++)
      metrics.record(exchange({ path: `/orders/${i}?expand=items&n=${i}`, durationMs: i }));
    metrics.record(exchange({ host: 'Payments.Partner.com:8443', path: '/orders/99' }));
    metrics.record(
      exchange({ host: 'eu.shop.example', path: '/cart/c1/items/i9', method: 'DELETE', statusCode: 204 }),
    );

    const collected = await collectMetrics(reader);
    const points = histogramPoints(collected, 'http.server.request.duration');
    const orders = findPoint(points, { 'http.route': '/orders/:id' });
    expect(orders?.attributes).toEqual({
      'http.request.method': 'GET',
      'http.route': '/orders/:id',
      'server.address': 'payments.partner.com',
      'http.response.status_code': 200,
      'httpmesh.direction': 'inbound',
    });
    expect(orders?.value.count).toBe(51);
    // 0..49 ms plus 12 ms, in seconds.
    expect(orders?.value.sum).toBeCloseTo((49 * 50) / 2 / 1000 + 0.012, 9);
    expect(orders?.value.buckets.boundaries).toEqual([...DURATION_BUCKETS_SECONDS]);
    // 0..5 ms -> first bucket (upper bound inclusive), 6..10 -> second, 11..25 (+12) -> third.
    expect(orders?.value.buckets.counts.slice(0, 4)).toEqual([6, 5, 16, 24]);
    const cart = findPoint(points, { 'http.route': '/cart/:cartId/items/:itemId' });
    expect(cart?.attributes['server.address']).toBe('*.shop.example');
    expect(cart?.attributes['http.request.method']).toBe('DELETE');
    expect(cart?.value.count).toBe(1);
    // Raw paths and query strings never become attribute values.
    for (const p of points) expect(String(p.attributes['http.route'])).not.toMatch(/\?|\/orders\/\d/);
    const responseSizes = histogramPoints(collected, 'http.server.response.body.size');
    expect(findPoint(responseSizes, { 'http.route': '/orders/:id' })?.value.sum).toBe(51 * 300);
  });

  test('unmatched requests share one fixed route value per host; unknown hosts one host value', async () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES, unmatchedRoute: 'NO_ROUTE' });
    const reader = readerFor(metrics);
    for (let i = 0; i < 100; i++) metrics.record(exchange({ path: `/random/${i}/${i * 7}` }));
    // Method restriction: POST /orders/1 does not match GET-only /orders/:id.
    metrics.record(exchange({ method: 'POST', path: '/orders/1' }));
    for (let i = 0; i < 30; i++) metrics.record(exchange({ host: `h${i}.elsewhere.test`, path: `/x/${i}` }));
    const points = histogramPoints(await collectMetrics(reader), 'http.server.request.duration');
    expect(points).toHaveLength(3);
    const getUnmatched = findPoint(points, {
      'http.route': 'NO_ROUTE',
      'server.address': 'payments.partner.com',
      'http.request.method': 'GET',
    });
    expect(getUnmatched?.value.count).toBe(100);
    expect(findPoint(points, { 'http.route': 'NO_ROUTE', 'http.request.method': 'POST' })?.value.count).toBe(
      1,
    );
    const other = findPoint(points, { 'server.address': '_OTHER' });
    expect(other?.attributes['http.route']).toBe('NO_ROUTE');
    expect(other?.value.count).toBe(30);
  });

  test('unknown methods become _OTHER; error.type follows semconv', async () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES });
    const reader = readerFor(metrics);
    metrics.record(exchange({ method: 'PURGE', path: '/health' }));
    metrics.record(exchange({ method: 'get', path: '/health' }));
    metrics.record(exchange({ path: '/health', statusCode: 503 }));
    metrics.record(exchange({ path: '/health', statusCode: 404 }));
    metrics.record(exchange({ direction: 'outbound', path: '/health', statusCode: 404 }));
    metrics.record(exchange({ path: '/health', statusCode: undefined, errorType: 'ECONNRESET' }));
    metrics.record(exchange({ path: '/health', statusCode: undefined }));
    const collected = await collectMetrics(reader);
    const server = histogramPoints(collected, 'http.server.request.duration');
    expect(findPoint(server, { 'http.request.method': '_OTHER' })?.value.count).toBe(2);
    expect(findPoint(server, { 'http.response.status_code': 503 })?.attributes['error.type']).toBe('503');
    expect(findPoint(server, { 'http.response.status_code': 404 })?.attributes).not.toHaveProperty(
      'error.type',
    );
    const reset = findPoint(server, { 'error.type': 'ECONNRESET' });
    expect(reset?.attributes).not.toHaveProperty('http.response.status_code');
    expect(findPoint(server, { 'error.type': '_OTHER' })?.value.count).toBe(1);
    const client = histogramPoints(collected, 'http.client.request.duration');
    expect(client).toHaveLength(1);
    expect(client[0]?.attributes['error.type']).toBe('404');
    expect(client[0]?.attributes['httpmesh.direction']).toBe('outbound');
  });

  test('invalid durations and directions are dropped and counted', async () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES });
    const reader = readerFor(metrics);
    metrics.record(exchange({ durationMs: -1 }));
    metrics.record(exchange({ durationMs: Number.NaN }));
    metrics.record(exchange({ durationMs: Number.POSITIVE_INFINITY }));
    metrics.record(exchange({ direction: 'sideways' as 'inbound' }));
    metrics.record(exchange({ requestBytes: -5, responseBytes: undefined }));
    metrics.record(exchange({ requestBytes: Number.NaN, responseBytes: Number.POSITIVE_INFINITY }));
    expect(metrics.droppedRecords).toBe(4);
    const collected = await collectMetrics(reader);
    expect(histogramPoints(collected, 'http.server.request.duration')[0]?.value.count).toBe(2);
    expect(histogramPoints(collected, 'http.server.request.body.size')).toHaveLength(0);
    expect(histogramPoints(collected, 'http.server.response.body.size')).toHaveLength(0);
    // The snapshot stays valid for the aggregator (finite sums).
    const aggregator = new MeshAggregator();
    aggregator.ingest(metrics.snapshot());
    expect(aggregator.view([])[0]?.requests).toBe(2);
  });

  test('setRoutes swaps patterns at run time without losing counts', async () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES });
    const reader = readerFor(metrics);
    for (let i = 0; i < 10; i++) metrics.record(exchange({ path: `/orders/${i}` }));
    for (let i = 0; i < 4; i++) metrics.record(exchange({ path: `/invoices/${i}` }));
    const [payments, shop] = ROUTES as [RouteSetSpec, RouteSetSpec];
    metrics.setRoutes([{ ...payments, routes: [...payments.routes, { pattern: '/invoices/:id' }] }, shop]);
    for (let i = 0; i < 5; i++) metrics.record(exchange({ path: `/orders/${i}` }));
    for (let i = 0; i < 3; i++) metrics.record(exchange({ path: `/invoices/${i}` }));
    const points = histogramPoints(await collectMetrics(reader), 'http.server.request.duration');
    expect(findPoint(points, { 'http.route': '/orders/:id' })?.value.count).toBe(15);
    expect(findPoint(points, { 'http.route': 'UNMATCHED' })?.value.count).toBe(4);
    expect(findPoint(points, { 'http.route': '/invoices/:id' })?.value.count).toBe(3);
    // A rejected configuration keeps the previous one active.
    expect(() => metrics.setRoutes([{ host: 'a b', routes: [] }])).toThrow(/host/);
    metrics.record(exchange({ path: '/invoices/77' }));
    const after = histogramPoints(await collectMetrics(reader), 'http.server.request.duration');
    expect(findPoint(after, { 'http.route': '/invoices/:id' })?.value.count).toBe(4);
  });

  test('active requests go up on start and down on end', async () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES });
    const reader = readerFor(metrics);
    const a = metrics.startRequest({
      direction: 'inbound',
      method: 'GET',
      host: 'payments.partner.com',
      path: '/orders/1',
    });
    const b = metrics.startRequest({
      direction: 'inbound',
      method: 'GET',
      host: 'payments.partner.com',
      path: '/orders/2?x',
    });
    metrics.startRequest({
      direction: 'outbound',
      method: 'POST',
      host: 'payments.partner.com',
      path: '/orders',
      sourceService: 'web',
    });
    let active = (await collectMetrics(reader)).get('http.server.active_requests');
    expect(active?.dataPoints).toHaveLength(1);
    expect(active?.dataPoints[0]?.value).toBe(2);
    expect(active?.dataPoints[0]?.attributes['http.route']).toBe('/orders/:id');
    metrics.endRequest(a);
    metrics.endRequest(b);
    const collected = await collectMetrics(reader);
    active = collected.get('http.server.active_requests');
    expect(active?.dataPoints[0]?.value).toBe(0);
    const client = collected.get('http.client.active_requests');
    expect(client?.dataPoints[0]?.value).toBe(1);
    expect(client?.dataPoints[0]?.attributes['httpmesh.source.service']).toBe('web');
  });

  test('rejects invalid options with a code', () => {
    const bad: unknown[] = [
      { cardinalityLimit: 1 },
      { cardinalityLimit: 2.5 },
      { unmatchedRoute: '' },
      { durationBuckets: [1, 0.5] },
      { bodySizeBuckets: [] },
      { durationBuckets: [0.1, Number.NaN] },
    ];
    for (const options of bad) {
      let caught: unknown;
      try {
        new MeshMetrics(options as ConstructorParameters<typeof MeshMetrics>[0]);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(MetricsOptionsError);
      expect((caught as MetricsOptionsError).code).toBe('HTTPMESH_METRICS_OPTIONS_INVALID');
    }
  });
});

describe('cardinality limit', () => {
  test('new series beyond the limit go to the otel.metric.overflow series; existing ones keep counting', async () => {
    const limit = 5;
    const sources = Array.from({ length: 12 }, (_, i) => `svc-${i}`);
    const metrics = new MeshMetrics({ routeSets: ROUTES, cardinalityLimit: limit });
    const reader = readerFor(metrics);
    for (const s of sources) metrics.record(exchange({ sourceService: s }));
    // The first series again: it existed before the limit was hit, so it is not overflow.
    metrics.record(exchange({ sourceService: 'svc-0' }));
    expect(metrics.seriesCount('inbound')).toBe(limit - 1);
    const points = histogramPoints(await collectMetrics(reader), 'http.server.request.duration');
    expect(points).toHaveLength(limit);
    const overflow = findPoint(points, { 'otel.metric.overflow': true });
    expect(overflow?.attributes).toEqual({ 'otel.metric.overflow': true });
    expect(overflow?.value.count).toBe(sources.length - (limit - 1));
    expect(findPoint(points, { 'httpmesh.source.service': 'svc-0' })?.value.count).toBe(2);
    // Another direction is another instrument with its own limit.
    metrics.record(exchange({ direction: 'outbound', sourceService: 'svc-11' }));
    expect(metrics.seriesCount('outbound')).toBe(1);
  });

  test('active requests have their own limit and overflow series', async () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES, cardinalityLimit: 3 });
    const reader = readerFor(metrics);
    const handles = Array.from({ length: 6 }, (_, i) =>
      metrics.startRequest({
        direction: 'inbound',
        method: 'GET',
        host: 'payments.partner.com',
        path: '/health',
        sourceService: `s${i}`,
      }),
    );
    let points = (await collectMetrics(reader)).get('http.server.active_requests')?.dataPoints ?? [];
    expect(points).toHaveLength(3);
    expect(points.find((p) => p.attributes['otel.metric.overflow'] === true)?.value).toBe(4);
    for (const h of handles) metrics.endRequest(h);
    points = (await collectMetrics(reader)).get('http.server.active_requests')?.dataPoints ?? [];
    expect(points.map((p) => p.value)).toEqual([0, 0, 0]);
  });

  test('matches the OpenTelemetry SDK overflow behaviour for the same measurements', async () => {
    const limit = 4;
    const metrics = new MeshMetrics({ routeSets: ROUTES, cardinalityLimit: limit });
    const ours = readerFor(metrics);
    const sdkReader = new TestReader({ cardinalitySelector: () => limit });
    const histogram = new MeterProvider({ readers: [sdkReader] })
      .getMeter('reference')
      .createHistogram('http.server.request.duration', {
        unit: 's',
        advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_SECONDS] },
      });
    for (let i = 0; i < 20; i++) {
      const e = exchange({ sourceService: `svc-${i % 9}`, durationMs: i * 3 });
      metrics.record(e);
      const cachedAttributes = {
        'http.request.method': 'GET',
        'http.route': '/orders/:id',
        'server.address': 'payments.partner.com',
        'http.response.status_code': 200,
        'httpmesh.direction': 'inbound',
        'httpmesh.source.service': e.sourceService as string,
      };
      histogram.record(e.durationMs / 1000, cachedAttributes);
    }
    const oursPoints = histogramPoints(await collectMetrics(ours), 'http.server.request.duration');
    const sdkPoints = histogramPoints(await collectMetrics(sdkReader), 'http.server.request.duration');
    const normalise = (points: DataPoint<Histogram>[]) =>
      points
        .map((p) => ({
          attributes: p.attributes,
          count: p.value.count,
          counts: p.value.buckets.counts,
          sum: Math.round((p.value.sum ?? 0) * 1e9),
        }))
        .sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes)));
    expect(sdkPoints.some((p) => p.attributes['otel.metric.overflow'] === true)).toBe(true);
    expect(normalise(oursPoints)).toEqual(normalise(sdkPoints));
  });
});
