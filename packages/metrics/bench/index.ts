/**
 * npm run bench -w @httpmesh/metrics
 *
 * 1. ns per exchange: MeshMetrics.record (match + record) against a bare OpenTelemetry
 *    Histogram.record with a cached attribute object (the SDK floor), and against what recording
 *    the same exchange through SDK instruments would cost.
 * 2. Heap after GC at 100k and 1M requests to 1M distinct raw URLs (must stay flat).
 * 3. Window queries over an hour of 10 s slots (bench/window.ts).
 */
import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import { createMatcher } from '@httpmesh/url-matcher';
import { DURATION_BUCKETS_SECONDS, MeshMetrics } from '../src/index.js';
import type { ExchangeRecord, RouteSetSpec } from '../src/index.js';

class PullReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

const gc = (globalThis as { gc?: () => void }).gc;
if (gc === undefined) throw new Error('run with node --expose-gc (npm run bench does)');

const ROUTES: RouteSetSpec[] = [
  {
    host: 'payments.partner.com',
    routes: [
      { pattern: '/orders/:id', methods: ['GET'] },
      { pattern: '/orders', methods: ['POST', 'GET'] },
      { pattern: '/orders/:id/items/:itemId' },
      { pattern: '/customers/:customerId/orders' },
      { pattern: '/health' },
      ...Array.from({ length: 40 }, (_, i) => ({ pattern: `/api/v1/resource${i}/:id` })),
    ],
  },
  { host: '*.shop.example', routes: [{ pattern: '/cart/:cartId' }, { pattern: '/static/*path' }] },
];

/** A fixed pool of realistic exchanges (distinct raw URLs, a few statuses/callers) cycled through. */
function makePool(size: number): ExchangeRecord[] {
  const pool: ExchangeRecord[] = [];
  const statuses = [200, 200, 200, 200, 201, 204, 404, 500];
  for (let i = 0; i < size; i++) {
    const kind = i % 6;
    const path =
      kind === 0
        ? `/orders/${100000 + i}`
        : kind === 1
          ? `/orders/${i}/items/${i * 7}?expand=true`
          : kind === 2
            ? `/api/v1/resource${i % 40}/${i}`
            : kind === 3
              ? `/customers/c${i}/orders`
              : kind === 4
                ? '/health'
                : `/nope/${i}`;
    pool.push({
      direction: i % 5 === 0 ? 'outbound' : 'inbound',
      method: kind === 3 ? 'POST' : 'GET',
      host: i % 9 === 0 ? 'eu.shop.example' : 'payments.partner.com',
      path: i % 9 === 0 ? `/cart/${i}` : path,
      statusCode: statuses[i % statuses.length]!,
      durationMs: (i % 1000) * 0.37,
      requestBytes: i % 3 === 0 ? 512 : 0,
      responseBytes: 200 + (i % 5000),
      sourceService: i % 4 === 0 ? 'web' : 'mobile-bff',
    });
  }
  return pool;
}

function bench(name: string, iterations: number, fn: (i: number) => void): number {
  for (let i = 0; i < Math.min(iterations, 200_000); i++) fn(i); // warm up
  const runs: number[] = [];
  for (let r = 0; r < 5; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn(i);
    runs.push(Number(process.hrtime.bigint() - t0) / iterations);
  }
  runs.sort((a, b) => a - b);
  const median = runs[2]!;
  console.log(`${name.padEnd(58)} ${median.toFixed(0).padStart(6)} ns/op  (min ${runs[0]!.toFixed(0)})`);
  return median;
}

const N = 1_000_000;
const N_SDK = 200_000; // the SDK paths are slow; fewer iterations keep the run short
const POOL = makePool(4096);
const MASK = POOL.length - 1;

console.log(`node ${process.version}, ${N.toLocaleString('en')} ops x 5 runs, median\n`);

// --- floor: the OpenTelemetry SDK itself ---------------------------------------------------------
const sdkReader = new PullReader({ cardinalitySelector: () => 2000 });
const meter = new MeterProvider({ readers: [sdkReader] }).getMeter('bench');
const advice = { advice: { explicitBucketBoundaries: [...DURATION_BUCKETS_SECONDS] } };
const sdkDuration = meter.createHistogram('http.server.request.duration', { unit: 's', ...advice });
const sdkReq = meter.createHistogram('http.server.request.body.size', { unit: 'By' });
const sdkResp = meter.createHistogram('http.server.response.body.size', { unit: 'By' });
const cachedAttributes = Array.from({ length: 64 }, (_, i) => ({
  'http.request.method': 'GET',
  'http.route': `/api/v1/resource${i % 40}/:id`,
  'server.address': 'payments.partner.com',
  'http.response.status_code': i % 8 === 7 ? 500 : 200,
  'httpmesh.direction': 'inbound',
  'httpmesh.source.service': i % 2 ? 'web' : 'mobile-bff',
}));
const floor = bench('OTel SDK Histogram.record, cached attributes (floor)', N_SDK, (i) => {
  sdkDuration.record((i % 1000) * 0.00037, cachedAttributes[i & 63]);
});
bench('OTel SDK, one exchange = 3 Histogram.record (cached attrs)', N_SDK, (i) => {
  const a = cachedAttributes[i & 63];
  sdkDuration.record((i % 1000) * 0.00037, a);
  sdkReq.record(512, a);
  sdkResp.record(200 + (i % 5000), a);
});

// --- this package -------------------------------------------------------------------------------
const matcher = createMatcher(
  ROUTES.flatMap((s) =>
    s.routes.map((r) => ({ pattern: r.pattern, host: s.host, ...(r.methods ? { methods: r.methods } : {}) })),
  ),
);
const matchOnly = bench('url-matcher match() alone', N, (i) => {
  const e = POOL[i & MASK]!;
  matcher.match(e.path, e.method, e.host);
});
const metrics = new MeshMetrics({ routeSets: ROUTES, service: 'payments' });
const full = bench('MeshMetrics.record (match + record), mixed traffic', N, (i) => {
  metrics.record(POOL[i & MASK]!);
});
const unmatched = POOL.filter((e) => e.path.startsWith('/nope/'));
bench('MeshMetrics.record, unmatched paths only', N, (i) => {
  metrics.record(unmatched[i % unmatched.length]!);
});
const active = metrics.startRequest(POOL[1]!);
metrics.endRequest(active);
bench('MeshMetrics.startRequest + endRequest', N, (i) => {
  metrics.endRequest(metrics.startRequest(POOL[i & MASK]!));
});
const reader = new PullReader({ metricProducers: [metrics.metricProducer] });
new MeterProvider({ readers: [reader] });
const t0 = process.hrtime.bigint();
const collected = await reader.collect();
const points = collected.resourceMetrics.scopeMetrics
  .flatMap((s) => s.metrics)
  .reduce((n, m) => n + m.dataPoints.length, 0);
console.log(
  `${'collect() of all series'.padEnd(58)} ${(Number(process.hrtime.bigint() - t0) / 1e6).toFixed(2).padStart(6)} ms    (${points} data points)`,
);
console.log(
  `\nrecord (match + record) = ${(full / floor).toFixed(2)}x one bare SDK Histogram.record; ` +
    `recording part alone ≈ ${(full - matchOnly).toFixed(0)} ns\n`,
);

// --- memory: 1M requests to 1M distinct raw URLs -------------------------------------------------
function heapAfterGc(): number {
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed;
}
const memMetrics = new MeshMetrics({ routeSets: ROUTES, service: 'payments' });
const template = makePool(64);
const exchange: ExchangeRecord = { ...template[0]! };
const base = heapAfterGc();
let at100k = 0;
for (let i = 1; i <= 1_000_000; i++) {
  const t = template[i & 63]!;
  exchange.direction = t.direction;
  exchange.method = t.method;
  exchange.host = t.host;
  exchange.statusCode = t.statusCode;
  exchange.sourceService = t.sourceService;
  // Every raw URL is distinct: ids, query strings and (for a third) unmatched paths.
  exchange.path =
    i % 3 === 0
      ? `/orders/${i}?session=${i * 31}`
      : i % 3 === 1
        ? `/random/${i}/x`
        : `/api/v1/resource${i % 40}/${i}`;
  exchange.durationMs = (i % 997) * 0.5;
  memMetrics.record(exchange);
  if (i === 100_000) at100k = heapAfterGc();
}
const at1m = heapAfterGc();
const mb = (b: number) => `${(b / 1048576).toFixed(2)} MiB`;
console.log('heap after GC, 1M requests to 1M distinct raw URLs:');
console.log(
  `  before ${mb(base)}  at 100k ${mb(at100k)}  at 1M ${mb(at1m)}  (1M - 100k: ${((at1m - at100k) / 1024).toFixed(0)} KiB)`,
);
console.log(
  `  series: inbound ${memMetrics.seriesCount('inbound')}, outbound ${memMetrics.seriesCount('outbound')}`,
);

// 3. Window queries over an hour of slots (WindowedAggregator).
await import('./window.js');
