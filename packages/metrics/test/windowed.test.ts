import { spawnSync } from 'node:child_process';
import { describe, expect, test } from 'vitest';
import {
  MeshAggregator,
  MeshMetrics,
  MetricsOptionsError,
  WindowParameterError,
  WindowedAggregator,
  meshPrometheusText,
  parseWindowDuration,
} from '../src/index.js';
import type { MetricsSnapshot, ViewRow } from '../src/index.js';
import { mulberry32 } from './helpers.js';

const HOST = 'payments.example.com';
const ROUTE_SETS = [{ host: HOST, routes: [{ pattern: '/orders/:id', methods: ['GET'] }] }];

/** A snapshot of `ok` 200s at 20 ms and `failed` 503s at 900 ms for GET /orders/:id of `service`. */
function ordersSnapshot(service: string, ok: number, failed: number, host = HOST): MetricsSnapshot {
  const metrics = new MeshMetrics({
    service,
    producer: `${service}-1`,
    routeSets: [{ host, routes: [{ pattern: '/orders/:id', methods: ['GET'] }] }],
  });
  for (let i = 0; i < ok + failed; i++) {
    metrics.record({
      direction: 'inbound',
      method: 'GET',
      host,
      path: `/orders/${i}`,
      statusCode: i < ok ? 200 : 503,
      durationMs: i < ok ? 20 : 900,
    });
  }
  return metrics.snapshot();
}

function comparable(rows: readonly ViewRow[]): unknown[] {
  return rows
    .map((r) => ({
      key: r.key,
      requests: r.requests,
      errors: r.errors,
      overflow: r.overflow,
      buckets: [r.duration.buckets, r.requestBodySize.buckets, r.responseBodySize.buckets],
      p: [r.duration.p50, r.duration.p95, r.duration.p99],
    }))
    .sort((a, b) => JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)));
}

const PATTERN_VIEW = ['service', 'host', 'method', 'route', 'direction', 'statusCode'] as const;

describe('WindowedAggregator', () => {
  test('a window covers only the slots inside it; totals keep everything; one point per slot', () => {
    let now = 1_000_000;
    const metrics = new WindowedAggregator({ slotMs: 10_000, clock: () => now });
    metrics.ingest(ordersSnapshot('payments', 10, 0));
    now += 30_000;
    metrics.ingest(ordersSnapshot('payments', 5, 5));
    const last20s = metrics.query(['service'], 20_000);
    expect(last20s).toHaveLength(1);
    expect(last20s[0]).toMatchObject({
      key: { service: 'payments' },
      requests: 10,
      errors: 5,
      errorRatio: 0.5,
    });
    expect(last20s[0]?.rate).toBeCloseTo(10 / 20);
    expect(last20s[0]?.p99).toBeGreaterThan(0.5);
    expect(metrics.query(['service'], 60_000)[0]).toMatchObject({ requests: 20, errors: 5 });
    expect(metrics.total.view(['service'])[0]?.requests).toBe(20);
    const points = metrics.timeseries(60_000);
    expect(points.map((p) => [p.start, p.requests, p.errors])).toEqual([
      [1_000_000, 10, 0],
      [1_030_000, 10, 5],
    ]);
    expect(points[0]?.p50).toBeLessThan(0.05);
  });

  test('rate is over the time seen before a whole window has passed', () => {
    let now = 50_000;
    const metrics = new WindowedAggregator({ clock: () => now });
    now += 4_000;
    metrics.ingest(ordersSnapshot('payments', 8, 0));
    expect(metrics.query(['service'], 60_000)[0]?.rate).toBeCloseTo(8 / 4);
    // Within the first second, the rate is over one second, not over the few ms seen.
    const fresh = new WindowedAggregator({ clock: () => now });
    fresh.ingest(ordersSnapshot('payments', 3, 0));
    now += 5;
    expect(fresh.query(['service'], 60_000)[0]?.rate).toBe(3);
    expect(fresh.query(['service'], 500)[0]?.rate).toBe(6);
  });

  test('window queries equal a fresh aggregator fed only the snapshots inside the window', () => {
    const rand = mulberry32(7);
    let now = 10_000_000;
    const metrics = new WindowedAggregator({ slotMs: 1_000, maxWindowMs: 60_000, clock: () => now });
    const fed: { at: number; snapshot: MetricsSnapshot }[] = [];
    let queries = 0;
    for (let step = 0; step < 200; step++) {
      now += Math.floor(rand() * 900);
      const service = rand() < 0.5 ? 'orders' : 'payments';
      const host = rand() < 0.5 ? HOST : 'api.example.com';
      const snapshot = ordersSnapshot(service, Math.floor(rand() * 5), Math.floor(rand() * 3), host);
      metrics.ingest(snapshot);
      fed.push({ at: now, snapshot });
      // Query every few steps with several windows, so cached merges are reused and must stay right.
      if (step % 7 === 0) {
        for (const windowMs of [1, 3_500, 20_000, 60_000]) {
          const from = now - windowMs;
          const reference = new MeshAggregator();
          for (const item of fed) {
            const slotStart = item.at - (item.at % 1_000);
            if (slotStart + 1_000 > from && slotStart >= now - (now % 1_000) - 60_000) {
              reference.ingest(item.snapshot);
            }
          }
          const expected = reference.view(PATTERN_VIEW).map((r) => ({
            key: r.key,
            requests: r.requests,
            errors: r.errors,
            buckets: r.duration.buckets,
            p: [r.duration.p50, r.duration.p95, r.duration.p99],
          }));
          const actual = metrics.query(PATTERN_VIEW, windowMs).map((r) => ({
            key: r.key,
            requests: r.requests,
            errors: r.errors,
            buckets: r.durationBuckets,
            p: [r.p50, r.p95, r.p99],
          }));
          const byKey = (x: { key: object }, y: { key: object }) =>
            JSON.stringify(x.key).localeCompare(JSON.stringify(y.key));
          expect(actual.sort(byKey)).toEqual(expected.sort(byKey));
          queries++;
        }
      }
    }
    expect(queries).toBeGreaterThan(100);
    expect(metrics.slotCount).toBeLessThanOrEqual(61);
  });

  test('a filter narrows window rows and points', () => {
    let now = 0;
    const metrics = new WindowedAggregator({ clock: () => now });
    metrics.ingest(ordersSnapshot('payments', 3, 1));
    metrics.ingest(ordersSnapshot('orders', 7, 0));
    now += 10_000;
    metrics.ingest(ordersSnapshot('orders', 1, 0));
    expect(metrics.query(['service'], 60_000, { service: 'payments' })).toMatchObject([
      { key: { service: 'payments' }, requests: 4, errors: 1 },
    ]);
    expect(metrics.timeseries(60_000, { service: 'orders' }).map((p) => p.requests)).toEqual([7, 1]);
    expect(metrics.query(['service'], 60_000, { service: 'nobody' })).toEqual([]);
  });

  test('slots older than maxWindowMs are dropped', () => {
    let now = 0;
    const metrics = new WindowedAggregator({ slotMs: 1_000, maxWindowMs: 5_000, clock: () => now });
    for (let i = 0; i < 50; i++) {
      metrics.ingest(ordersSnapshot('payments', 1, 0));
      now += 1_000;
    }
    expect(metrics.slotCount).toBeLessThanOrEqual(6);
    expect(metrics.query(['service'], 5_000)[0]?.requests).toBe(5);
    expect(metrics.total.view(['service'])[0]?.requests).toBe(50);
  });

  test('a clock that steps back keeps feeding the newest slot and cached merges stay correct', () => {
    let now = 100_000;
    const metrics = new WindowedAggregator({ slotMs: 1_000, maxWindowMs: 60_000, clock: () => now });
    metrics.ingest(ordersSnapshot('payments', 1, 0));
    now = 101_000;
    metrics.ingest(ordersSnapshot('payments', 2, 0));
    now = 105_500;
    expect(metrics.query(['service'], 10_000)[0]?.requests).toBe(3); // both slots closed: cached merge
    now = 101_200; // steps back into the newest slot
    metrics.ingest(ordersSnapshot('payments', 4, 0));
    now = 105_500;
    expect(metrics.query(['service'], 10_000)[0]?.requests).toBe(7);
    expect(metrics.timeseries(10_000).map((p) => p.requests)).toEqual([1, 6]);
  });

  test('a malformed or mismatched snapshot is rejected whole, counted, and changes nothing', () => {
    let now = 0;
    const metrics = new WindowedAggregator({ clock: () => now });
    metrics.ingest(ordersSnapshot('payments', 2, 0));
    const good = ordersSnapshot('payments', 1, 0);
    const inputs: unknown[] = [
      { version: 2 },
      'not an object',
      null,
      { ...good, series: [{ ...good.series[0], duration: { count: 1, sum: 0, buckets: [1] } }] },
      { ...good, durationBounds: [1, 2, 3], series: [] },
    ];
    for (const input of inputs) {
      expect(() => metrics.ingest(input)).toThrow(
        expect.objectContaining({ code: expect.stringMatching(/^HTTPMESH_METRICS_SNAPSHOT_/) }),
      );
    }
    now += 1;
    expect(metrics.snapshotsRejected).toBe(inputs.length);
    expect(metrics.total.snapshotCount).toBe(1);
    expect(metrics.query(['service'], 60_000)[0]?.requests).toBe(2);
  });

  test.each<[string, number]>([
    ['zero', 0],
    ['negative', -1_000],
    ['fractional', 1.5],
    ['NaN', Number.NaN],
    ['infinite', Number.POSITIVE_INFINITY],
    ['over maxWindowMs', 3_600_001],
    ['a string', '60000' as unknown as number],
  ])('query and timeseries reject a %s window with HTTPMESH_METRICS_WINDOW_INVALID', (_label, windowMs) => {
    const metrics = new WindowedAggregator();
    for (const call of [() => metrics.query(['service'], windowMs), () => metrics.timeseries(windowMs)]) {
      expect(call).toThrow(WindowParameterError);
      expect(call).toThrow(
        expect.objectContaining({ code: 'HTTPMESH_METRICS_WINDOW_INVALID', parameter: 'windowMs' }),
      );
    }
  });

  test('an unknown dimension is refused', () => {
    const metrics = new WindowedAggregator();
    expect(() => metrics.query(['colour' as 'service'], 1_000)).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_METRICS_OPTIONS_INVALID' }),
    );
  });

  test.each<[string, object]>([
    ['zero slotMs', { slotMs: 0 }],
    ['fractional slotMs', { slotMs: 2.5 }],
    ['maxWindowMs below slotMs', { slotMs: 10_000, maxWindowMs: 5_000 }],
    ['NaN maxWindowMs', { maxWindowMs: Number.NaN }],
    ['non-function clock', { clock: 5 }],
    ['bad duration bounds', { durationBounds: [2, 1] }],
  ])('the constructor rejects %s with HTTPMESH_METRICS_OPTIONS_INVALID', (_label, options) => {
    expect(() => new WindowedAggregator(options)).toThrow(MetricsOptionsError);
  });
});

describe('parseWindowDuration', () => {
  test.each<[string, number]>([
    ['30s', 30_000],
    ['5m', 300_000],
    ['1h', 3_600_000],
    ['90', 90_000],
    ['1s', 1_000],
  ])('%s is %d ms', (text, ms) => {
    expect(parseWindowDuration(text)).toBe(ms);
  });

  test.each<unknown>([
    '',
    '0s',
    '2d',
    '61m',
    '2h',
    ' 5m',
    '5M',
    '1e3',
    '-5',
    '5.5m',
    '99999999',
    '5m ',
    null,
    60,
  ])('rejects %j with HTTPMESH_METRICS_WINDOW_INVALID', (text) => {
    expect(() => parseWindowDuration(text as string)).toThrow(
      expect.objectContaining({
        name: 'WindowParameterError',
        code: 'HTTPMESH_METRICS_WINDOW_INVALID',
        parameter: 'window',
      }),
    );
  });

  test('honours a larger maximum', () => {
    expect(parseWindowDuration('2h', 7_200_000)).toBe(7_200_000);
  });
});

describe('MeshAggregator merge and combinedView', () => {
  test('merge equals ingesting every snapshot into one aggregator and leaves the source unchanged', () => {
    const snapshots = [
      ordersSnapshot('payments', 3, 1),
      ordersSnapshot('orders', 2, 2, 'api.example.com'),
      ordersSnapshot('payments', 5, 0),
    ];
    const a = new MeshAggregator();
    const b = new MeshAggregator();
    const all = new MeshAggregator();
    a.ingest(snapshots[0]);
    b.ingest(snapshots[1]);
    b.ingest(snapshots[2]);
    for (const s of snapshots) all.ingest(s);
    const before = comparable(b.view(PATTERN_VIEW));
    a.merge(b);
    expect(comparable(a.view(PATTERN_VIEW))).toEqual(comparable(all.view(PATTERN_VIEW)));
    expect(a.snapshotCount).toBe(3);
    expect(comparable(b.view(PATTERN_VIEW))).toEqual(before);
    // Merged series are copies: adding more to `a` must not change `b`.
    a.merge(b);
    expect(comparable(b.view(PATTERN_VIEW))).toEqual(before);
    expect(comparable(MeshAggregator.combinedView([all, b], PATTERN_VIEW))).toEqual(
      comparable(a.view(PATTERN_VIEW)),
    );
  });

  test('merge honours maxSeries with the overflow series', () => {
    const target = new MeshAggregator({ maxSeries: 1 });
    const source = new MeshAggregator();
    source.ingest(ordersSnapshot('payments', 2, 1));
    target.merge(source);
    const rows = target.view(['service']);
    expect(rows[0]).toMatchObject({ requests: 3, overflow: 1 });
    expect(target.seriesCount).toBe(2);
  });

  test('merge and combinedView refuse different bucket bounds', () => {
    const a = new MeshAggregator();
    const b = new MeshAggregator({ durationBounds: [0.1, 1] });
    expect(() => a.merge(b)).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_METRICS_SNAPSHOT_BOUNDS_MISMATCH' }),
    );
    expect(() => MeshAggregator.combinedView([a, b], ['service'])).toThrow(MetricsOptionsError);
    expect(() => MeshAggregator.combinedView([], ['service'])).toThrow(MetricsOptionsError);
  });
});

const promtoolMissing = spawnSync('promtool', ['--version']).status !== 0 && process.env['CI'] !== 'true';

describe('meshPrometheusText', () => {
  test('exposes request counters and latency histograms of the mesh aggregate', () => {
    const aggregator = new MeshAggregator({ durationBounds: [0.05, 1] });
    const metrics = new MeshMetrics({
      service: 'pay"ments',
      producer: 'p-1',
      routeSets: ROUTE_SETS,
      durationBuckets: [0.05, 1],
    });
    for (const [statusCode, durationMs] of [
      [200, 20],
      [200, 30],
      [503, 900],
    ] as const) {
      metrics.record({
        direction: 'inbound',
        method: 'GET',
        host: HOST,
        path: '/orders/1',
        statusCode,
        durationMs,
      });
    }
    aggregator.ingest(metrics.snapshot());
    const text = meshPrometheusText(aggregator);
    const base = `service="pay\\"ments",direction="inbound",host="${HOST}",route="/orders/:id",method="GET"`;
    expect(text).toContain('# TYPE httpmesh_mesh_requests_total counter\n');
    expect(text).toContain(`httpmesh_mesh_requests_total{${base},status_code="200"} 2\n`);
    expect(text).toMatch(
      new RegExp(
        `httpmesh_mesh_requests_total\\{${base.replace(/[\\^$.*+?()[\]{}|]/g, '\\$&')},status_code="503",error_type="[^"]+"\\} 1\n`,
      ),
    );
    expect(text).toContain(`httpmesh_mesh_request_duration_seconds_bucket{${base},le="0.05"} 2\n`);
    expect(text).toContain(`httpmesh_mesh_request_duration_seconds_bucket{${base},le="1"} 3\n`);
    expect(text).toContain(`httpmesh_mesh_request_duration_seconds_bucket{${base},le="+Inf"} 3\n`);
    expect(text).toContain(`httpmesh_mesh_request_duration_seconds_count{${base}} 3\n`);
    expect(text.endsWith('\n')).toBe(true);
  });

  test.skipIf(promtoolMissing)('passes promtool check metrics (promtool missing: skipped outside CI)', () => {
    const aggregator = new MeshAggregator();
    aggregator.ingest(ordersSnapshot('payments', 4, 2));
    const result = spawnSync('promtool', ['check', 'metrics'], {
      input: meshPrometheusText(aggregator),
      encoding: 'utf8',
    });
    expect(result.status, `${result.stdout}${result.stderr}`).toBe(0);
  });
});
