// Runnable: npx tsx examples/quickstart.ts (after `npx nx run @httpmesh/metrics:build`)
import {
  MeshAggregator,
  MeshMetrics,
  WindowedAggregator,
  createPrometheusEndpoint,
  meshPrometheusText,
  parseWindowDuration,
} from '@httpmesh/metrics';

const metrics = new MeshMetrics({
  service: 'payments',
  producer: 'payments-7f9c',
  routeSets: [
    {
      host: 'payments.partner.com',
      routes: [{ pattern: '/orders/:id', methods: ['GET'] }, { pattern: '/orders' }],
    },
  ],
});

// The sidecar calls this once per completed exchange.
metrics.record({
  direction: 'inbound',
  method: 'GET',
  host: 'payments.partner.com:443',
  path: '/orders/8812?expand=items',
  statusCode: 200,
  durationMs: 18.4,
  requestBytes: 0,
  responseBytes: 2048,
  sourceService: 'checkout',
});

// Admin port: Prometheus text (or mount endpoint.handler on a node:http server).
const endpoint = createPrometheusEndpoint(metrics);
const text = await endpoint.text();
console.log(text.split('\n').find((l) => l.startsWith('http_server_request_duration_count')));

// Control plane: merge delta snapshots from every sidecar, read per-pattern percentiles.
const aggregator = new MeshAggregator();
aggregator.ingest(JSON.parse(JSON.stringify(metrics.snapshot())));
for (const row of aggregator.byPattern()) {
  console.log(row.key, row.requests, 'p95 =', row.duration.p95, 's');
}
await endpoint.shutdown();

// Control plane over time: 10 s slots plus a cumulative total; window queries and mesh-wide Prometheus.
const mesh = new WindowedAggregator(); // slotMs 10_000, maxWindowMs 1 h
metrics.record({
  direction: 'inbound',
  method: 'GET',
  host: 'payments.partner.com',
  path: '/orders/9',
  statusCode: 503,
  durationMs: 950,
});
mesh.ingest(JSON.parse(JSON.stringify(metrics.snapshot()))); // the next delta: untrusted JSON from a sidecar
const windowMs = parseWindowDuration('5m'); // WindowParameterError for "2d", "5M", ...
for (const row of mesh.query(['service', 'host', 'method', 'route'], windowMs)) {
  console.log(row.key, row.rate.toFixed(2), 'req/s', 'errors', row.errorRatio, 'p99', row.p99);
}
console.log(mesh.timeseries(windowMs).length, 'points'); // one per slot, for charts
console.log(meshPrometheusText(mesh.total).split('\n')[0]); // serve as PROMETHEUS_CONTENT_TYPE
