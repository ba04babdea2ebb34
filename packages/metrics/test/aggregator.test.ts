import { describe, expect, test } from 'vitest';
import {
  MeshAggregator,
  MeshMetrics,
  SnapshotBoundsError,
  SnapshotError,
  estimateQuantile,
  validateSnapshot,
} from '../src/index.js';
import type { ExchangeRecord, MetricsSnapshot, RouteSetSpec, ViewRow } from '../src/index.js';
import { mulberry32 } from './helpers.js';

const ROUTES: RouteSetSpec[] = [
  { host: 'orders.internal', routes: [{ pattern: '/orders/:id' }, { pattern: '/orders' }] },
  { host: 'payments.partner.com', routes: [{ pattern: '/charges/:chargeId', methods: ['GET', 'POST'] }] },
];

interface Generated {
  service: string;
  pattern: string;
  exchange: ExchangeRecord;
}

/** Traffic whose expected pattern is known at generation time (not derived from the code under test). */
function generateTraffic(count: number, seed: number): Generated[] {
  const rand = mulberry32(seed);
  const templates: { service: string; host: string; pattern: string; path: () => string; method: string }[] =
    [
      {
        service: 'orders',
        host: 'orders.internal',
        pattern: '/orders/:id',
        path: () => `/orders/${Math.floor(rand() * 1e6)}`,
        method: 'GET',
      },
      {
        service: 'orders',
        host: 'orders.internal',
        pattern: '/orders',
        path: () => `/orders?page=${Math.floor(rand() * 50)}`,
        method: 'POST',
      },
      {
        service: 'orders',
        host: 'orders.internal',
        pattern: 'UNMATCHED',
        path: () => `/junk/${rand()}`,
        method: 'GET',
      },
      {
        service: 'payments',
        host: 'payments.partner.com',
        pattern: '/charges/:chargeId',
        path: () => `/charges/ch_${Math.floor(rand() * 1e9)}`,
        method: 'POST',
      },
      {
        service: 'payments',
        host: 'payments.partner.com',
        pattern: 'UNMATCHED',
        path: () => `/charges/x/${rand()}`,
        method: 'DELETE',
      },
    ];
  const statuses = [200, 200, 200, 201, 404, 500, 503];
  const out: Generated[] = [];
  for (let i = 0; i < count; i++) {
    const t = templates[Math.floor(rand() * templates.length)]!;
    out.push({
      service: t.service,
      pattern: t.pattern,
      exchange: {
        direction: rand() < 0.8 ? 'inbound' : 'outbound',
        method: t.method,
        host: t.host,
        path: t.path(),
        statusCode: statuses[Math.floor(rand() * statuses.length)]!,
        durationMs: rand() ** 3 * 3000,
        requestBytes: Math.floor(rand() * 5000),
        responseBytes: Math.floor(rand() * 200_000),
        sourceService: rand() < 0.5 ? 'web' : 'mobile-bff',
      },
    });
  }
  return out;
}

function comparable(rows: ViewRow[]): unknown[] {
  return rows
    .map((r) => ({
      key: r.key,
      requests: r.requests,
      errors: r.errors,
      buckets: [r.duration.buckets, r.requestBodySize.buckets, r.responseBodySize.buckets],
      p: [r.duration.p50, r.duration.p95, r.duration.p99].map((v) =>
        v === null ? null : Math.round(v * 1e9),
      ),
      sum: Math.round(r.duration.sum * 1e6),
      bytes: r.responseBodySize.sum,
    }))
    .sort((a, b) => JSON.stringify(a.key).localeCompare(JSON.stringify(b.key)));
}

describe('MeshAggregator', () => {
  test('merging snapshots from several producers equals the metrics of the combined traffic', () => {
    const traffic = generateTraffic(6000, 42);
    const replicas: Record<string, MeshMetrics[]> = {
      orders: [0, 1, 2].map(
        (i) => new MeshMetrics({ routeSets: ROUTES, service: 'orders', producer: `orders-${i}` }),
      ),
      payments: [0, 1].map(
        (i) => new MeshMetrics({ routeSets: ROUTES, service: 'payments', producer: `payments-${i}` }),
      ),
    };
    const combined: Record<string, MeshMetrics> = {
      orders: new MeshMetrics({ routeSets: ROUTES, service: 'orders' }),
      payments: new MeshMetrics({ routeSets: ROUTES, service: 'payments' }),
    };
    const distributed = new MeshAggregator();
    const rand = mulberry32(7);
    traffic.forEach((g, i) => {
      const group = replicas[g.service]!;
      group[Math.floor(rand() * group.length)]!.record(g.exchange);
      combined[g.service]!.record(g.exchange);
      // Each replica also reports mid-way, so deltas (not cumulative totals) are exercised.
      if (i === 2500)
        for (const r of Object.values(replicas).flat())
          distributed.ingest(JSON.parse(JSON.stringify(r.snapshot())));
    });
    for (const r of Object.values(replicas).flat())
      distributed.ingest(JSON.parse(JSON.stringify(r.snapshot())));
    // Nothing new since the last snapshot: an empty delta.
    expect(replicas['orders']![0]!.snapshot().series).toEqual([]);

    const reference = new MeshAggregator();
    for (const m of Object.values(combined)) reference.ingest(m.snapshot());

    expect(comparable(distributed.byPattern())).toEqual(comparable(reference.byPattern()));
    expect(comparable(distributed.byService())).toEqual(comparable(reference.byService()));
    expect(comparable(distributed.byHost())).toEqual(comparable(reference.byHost()));
    expect(comparable(distributed.view(['service', 'route', 'statusCode', 'sourceService']))).toEqual(
      comparable(reference.view(['service', 'route', 'statusCode', 'sourceService'])),
    );

    // And both equal what the generator says the traffic was.
    for (const service of ['orders', 'payments']) {
      const expected = traffic.filter((g) => g.service === service).length;
      const rows = distributed.view(['service'], { service });
      expect(rows[0]?.requests).toBe(expected);
    }
    const patterns = new Map<string, number>();
    for (const g of traffic) {
      const key = `${g.exchange.host} ${g.pattern}`;
      patterns.set(key, (patterns.get(key) ?? 0) + 1);
    }
    const got = new Map(
      distributed.view(['host', 'route']).map((r) => [`${r.key.host} ${r.key.route}`, r.requests]),
    );
    expect(got).toEqual(patterns);
    const errors = traffic.filter(
      (g) =>
        (g.exchange.statusCode ?? 0) >= 500 ||
        (g.exchange.direction === 'outbound' && (g.exchange.statusCode ?? 0) >= 400),
    ).length;
    expect(distributed.view([]).at(0)?.errors).toBe(errors);
  });

  test('percentiles are interpolated within buckets and close to the true values', () => {
    expect(estimateQuantile([1, 2, 4], [0, 10, 0, 0], 0.5)).toBeCloseTo(1.5, 12);
    expect(estimateQuantile([1, 2, 4], [10, 0, 0, 0], 0.5)).toBeCloseTo(0.5, 12);
    expect(estimateQuantile([1, 2, 4], [0, 0, 0, 5], 0.99)).toBe(4);
    expect(estimateQuantile([1, 2, 4], [0, 0, 0, 0], 0.5)).toBeNull();
    expect(estimateQuantile([1, 2, 4], [5, 0, 5, 0], 0.75)).toBeCloseTo(3, 12);

    const metrics = new MeshMetrics({
      service: 's',
      durationBuckets: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1],
    });
    const rand = mulberry32(3);
    const values: number[] = [];
    for (let i = 0; i < 20000; i++) {
      const ms = rand() * 100;
      values.push(ms / 1000);
      metrics.record({
        direction: 'inbound',
        method: 'GET',
        host: 'x',
        path: '/',
        statusCode: 200,
        durationMs: ms,
      });
    }
    values.sort((a, b) => a - b);
    const agg = new MeshAggregator({
      durationBounds: [0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.09, 0.1],
    });
    agg.ingest(metrics.snapshot());
    const row = agg.view([])[0]!;
    expect(Math.abs((row.duration.p50 ?? 0) - values[10000]!)).toBeLessThan(0.002);
    expect(Math.abs((row.duration.p95 ?? 0) - values[19000]!)).toBeLessThan(0.002);
    expect(Math.abs((row.duration.p99 ?? 0) - values[19800]!)).toBeLessThan(0.002);
  });

  test('malformed snapshots are rejected with a clear error and nothing already merged is lost', () => {
    const metrics = new MeshMetrics({ routeSets: ROUTES, service: 'orders' });
    for (const g of generateTraffic(300, 9)) metrics.record(g.exchange);
    const good = metrics.snapshot();
    const aggregator = new MeshAggregator();
    aggregator.ingest(good);
    const before = JSON.stringify(aggregator.view(['service', 'host', 'route', 'method', 'statusCode']));

    const mutate = (fn: (s: Record<string, unknown> & MetricsSnapshot) => void): unknown => {
      const copy = JSON.parse(JSON.stringify(good));
      fn(copy);
      return copy;
    };
    const cases: [string, unknown, RegExp][] = [
      ['null', null, /expected an object/],
      ['string', '{"version":1}', /expected an object/],
      ['array', [], /expected an object/],
      [
        'wrong version',
        mutate((s) => {
          (s as { version: number }).version = 2;
        }),
        /\.version/,
      ],
      [
        'missing service',
        mutate((s) => {
          delete (s as Partial<MetricsSnapshot>).service;
        }),
        /\.service/,
      ],
      [
        'end before start',
        mutate((s) => {
          s.endTimeMs = s.startTimeMs - 1;
        }),
        /\.endTimeMs/,
      ],
      [
        'series not array',
        mutate((s) => {
          (s as Record<string, unknown>)['series'] = {};
        }),
        /\.series/,
      ],
      [
        'bad direction',
        mutate((s) => {
          (s.series[1] as { direction: string }).direction = 'up';
        }),
        /series\[1\]\.direction/,
      ],
      [
        'bucket count mismatch',
        mutate((s) => {
          s.series[2]!.duration.buckets[0]! += 1;
        }),
        /series\[2\]\.duration\.buckets: bucket counts add up/,
      ],
      [
        'negative bucket',
        mutate((s) => {
          s.series[0]!.duration.buckets[0] = -1;
        }),
        /series\[0\]\.duration\.buckets\[0\]/,
      ],
      [
        'short buckets',
        mutate((s) => {
          s.series[0]!.requestBodySize.buckets.pop();
        }),
        /requestBodySize\.buckets: expected an array of 12/,
      ],
      [
        'NaN sum',
        mutate((s) => {
          s.series[0]!.duration.sum = Number.NaN;
        }),
        /duration\.sum/,
      ],
      [
        'status out of range',
        mutate((s) => {
          s.series[0]!.statusCode = 99;
        }),
        /statusCode/,
      ],
      [
        'missing route',
        mutate((s) => {
          s.series[3]!.route = null;
        }),
        /required unless overflow/,
      ],
      [
        'empty method',
        mutate((s) => {
          s.series[0]!.method = '';
        }),
        /method/,
      ],
      [
        'unsorted bounds',
        mutate((s) => {
          s.durationBounds = [1, 0.5];
        }),
        /durationBounds\[1\]/,
      ],
    ];
    for (const [name, input, message] of cases) {
      let caught: unknown;
      try {
        aggregator.ingest(input);
      } catch (err) {
        caught = err;
      }
      expect(caught, name).toBeInstanceOf(SnapshotError);
      expect((caught as SnapshotError).code, name).toBe('HTTPMESH_METRICS_SNAPSHOT_INVALID');
      expect((caught as SnapshotError).message, name).toMatch(message);
    }
    // The last series is valid and would have been merged if ingest were not all-or-nothing.
    const lastBroken = mutate((s) => {
      s.series[s.series.length - 1]!.duration.count = -3;
    });
    expect(() => aggregator.ingest(lastBroken)).toThrow(SnapshotError);

    const otherBounds = new MeshMetrics({ service: 'x', durationBuckets: [0.1, 1] });
    otherBounds.record({
      direction: 'inbound',
      method: 'GET',
      host: 'x',
      path: '/',
      statusCode: 200,
      durationMs: 5,
    });
    let boundsError: unknown;
    try {
      aggregator.ingest(otherBounds.snapshot());
    } catch (err) {
      boundsError = err;
    }
    expect(boundsError).toBeInstanceOf(SnapshotBoundsError);
    expect((boundsError as SnapshotBoundsError).code).toBe('HTTPMESH_METRICS_SNAPSHOT_BOUNDS_MISMATCH');

    expect(JSON.stringify(aggregator.view(['service', 'host', 'route', 'method', 'statusCode']))).toBe(
      before,
    );
    expect(aggregator.snapshotCount).toBe(1);
    // The valid snapshot still merges afterwards.
    aggregator.ingest(good);
    expect(aggregator.view([])[0]?.requests).toBe(600);
  });

  test('maxSeries bounds the aggregate; excess label sets fold into an overflow row per service', () => {
    const aggregator = new MeshAggregator({ maxSeries: 5 });
    const metrics = new MeshMetrics({ service: 'noisy' });
    for (let i = 0; i < 20; i++) {
      metrics.record({
        direction: 'inbound',
        method: 'GET',
        host: 'x',
        path: '/',
        statusCode: 200,
        durationMs: 1,
        sourceService: `caller-${i}`,
      });
    }
    aggregator.ingest(metrics.snapshot());
    for (let i = 0; i < 20; i++) {
      metrics.record({
        direction: 'inbound',
        method: 'GET',
        host: 'x',
        path: '/',
        statusCode: 200,
        durationMs: 1,
        sourceService: `caller-${i}`,
      });
    }
    aggregator.ingest(metrics.snapshot());
    expect(aggregator.seriesCount).toBe(6);
    const rows = aggregator.view(['service']);
    expect(rows[0]?.requests).toBe(40);
    expect(rows[0]?.overflow).toBe(30);
    // Series that existed before the limit keep merging normally.
    expect(aggregator.view(['sourceService'], { sourceService: 'caller-0' })[0]?.requests).toBe(2);
  });

  test('validateSnapshot returns a copy the caller cannot mutate through', () => {
    const metrics = new MeshMetrics({ service: 's' });
    metrics.record({
      direction: 'inbound',
      method: 'GET',
      host: 'x',
      path: '/',
      statusCode: 200,
      durationMs: 5,
    });
    const snap = metrics.snapshot();
    const copy = validateSnapshot(snap);
    const aggregator = new MeshAggregator();
    aggregator.ingest(snap);
    snap.series[0]!.duration.buckets[1] = 1000;
    snap.series[0]!.duration.count = 1000;
    expect(copy.series[0]!.duration.count).toBe(1);
    expect(aggregator.view([])[0]?.requests).toBe(1);
  });
});
