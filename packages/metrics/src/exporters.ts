import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Attributes } from '@opentelemetry/api';
import type { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { MeterProvider, PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { MetricsOptionsError } from './errors.js';
import type { MeshMetrics } from './mesh-metrics.js';

/*
 * The OpenTelemetry SDK and exporters are imported when an exporter first needs them, not with the
 * package: MeshMetrics records without them, and together they cost ~20 MB resident (OTLP ~6, SDK and
 * resources ~10, Prometheus ~3), which a sidecar that is never scraped or has no collector would carry
 * for nothing. Each import runs once per process (the module cache), so later endpoints pay nothing.
 */
async function loadSdk(): Promise<{
  MeterProvider: typeof import('@opentelemetry/sdk-metrics').MeterProvider;
  PeriodicExportingMetricReader: typeof import('@opentelemetry/sdk-metrics').PeriodicExportingMetricReader;
  resourceFromAttributes: typeof import('@opentelemetry/resources').resourceFromAttributes;
}> {
  const [sdk, resources] = await Promise.all([
    import('@opentelemetry/sdk-metrics'),
    import('@opentelemetry/resources'),
  ]);
  return {
    MeterProvider: sdk.MeterProvider,
    PeriodicExportingMetricReader: sdk.PeriodicExportingMetricReader,
    resourceFromAttributes: resources.resourceFromAttributes,
  };
}

export interface PrometheusEndpointOptions {
  /** Extra resource attributes; `service.name` defaults to the MeshMetrics service. */
  resourceAttributes?: Attributes;
  /** Metric-name prefix. Default none. */
  prefix?: string;
  /** Omit the `target_info` metric. Default false. */
  withoutTargetInfo?: boolean;
}

export interface PrometheusEndpoint {
  /** Current metrics in the Prometheus text exposition format (0.0.4). */
  text(): Promise<string>;
  /** node:http handler for the sidecar's admin port (answers GET/HEAD on any path it is mounted at). */
  handler(request: IncomingMessage, response: ServerResponse): void;
  shutdown(): Promise<void>;
}

export const PROMETHEUS_CONTENT_TYPE = 'text/plain; version=0.0.4; charset=utf-8';

/** Prometheus exposition of a MeshMetrics through OpenTelemetry's Prometheus exporter (pull, no server of its own). */
export function createPrometheusEndpoint(
  metrics: MeshMetrics,
  options: PrometheusEndpointOptions = {},
): PrometheusEndpoint {
  const withoutTargetInfo = options.withoutTargetInfo ?? false;
  interface Pipeline {
    reader: PrometheusExporter;
    provider: MeterProvider;
    serializer: PrometheusSerializer;
  }
  // Built on the first scrape (see loadSdk).
  let pipeline: Promise<Pipeline> | undefined;
  const load = (): Promise<Pipeline> => {
    pipeline ??= Promise.all([loadSdk(), import('@opentelemetry/exporter-prometheus')]).then(
      ([sdk, prometheus]) => {
        const reader = new prometheus.PrometheusExporter({
          preventServerStart: true,
          metricProducers: [metrics.metricProducer],
          withoutTargetInfo,
          ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
        });
        const provider = new sdk.MeterProvider({
          resource: sdk.resourceFromAttributes({
            'service.name': metrics.service,
            ...options.resourceAttributes,
          }),
          readers: [reader],
        });
        const serializer = new prometheus.PrometheusSerializer(
          options.prefix,
          false,
          undefined,
          withoutTargetInfo,
        );
        return { reader, provider, serializer };
      },
    );
    return pipeline;
  };
  let shutDown = false;
  const text = async (): Promise<string> => {
    if (shutDown) throw new Error('MetricReader is shutdown');
    const { reader, serializer } = await load();
    const { resourceMetrics } = await reader.collect();
    return serializer.serialize(resourceMetrics);
  };
  return {
    text,
    handler(request, response) {
      if (request.method !== 'GET' && request.method !== 'HEAD') {
        response
          .writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' })
          .end('method not allowed\n');
        return;
      }
      text().then(
        (body) => {
          response.writeHead(200, {
            'content-type': PROMETHEUS_CONTENT_TYPE,
            'content-length': Buffer.byteLength(body),
          });
          response.end(request.method === 'HEAD' ? undefined : body);
        },
        (err: unknown) => {
          response
            .writeHead(500, { 'content-type': 'text/plain' })
            .end(`# metrics collection failed: ${String(err)}\n`);
        },
      );
    },
    async shutdown() {
      shutDown = true;
      // Never scraped: nothing was built, nothing to shut down.
      if (pipeline !== undefined) await (await pipeline).provider.shutdown();
    },
  };
}

export interface OtlpExportOptions {
  /** OTLP/HTTP metrics endpoint, e.g. `http://collector:4318/v1/metrics` (ignored when `exporter` is given). */
  url?: string;
  headers?: Record<string, string>;
  /** Push interval. Default 60 000 ms. */
  intervalMs?: number;
  /** Per-export timeout. Default 30 000 ms (must not exceed intervalMs). */
  timeoutMs?: number;
  resourceAttributes?: Attributes;
  /** Any OpenTelemetry push exporter (e.g. OTLP/protobuf or gRPC); default OTLP/HTTP JSON. */
  exporter?: PushMetricExporter;
}

export interface OtlpExport {
  /** Pushes the current data now. */
  forceFlush(): Promise<void>;
  shutdown(): Promise<void>;
}

/**
 * Periodically pushes a MeshMetrics to an OTLP collector through OpenTelemetry's periodic reader. The
 * SDK (and the OTLP/HTTP exporter, unless `exporter` is given) is imported in the background; the first
 * interval starts once it is loaded, and `forceFlush`/`shutdown` wait for it.
 */
export function createOtlpExport(metrics: MeshMetrics, options: OtlpExportOptions): OtlpExport {
  if (options.exporter === undefined && (typeof options.url !== 'string' || options.url.length === 0)) {
    throw new MetricsOptionsError('createOtlpExport needs a url or an exporter');
  }
  const intervalMs = options.intervalMs ?? 60_000;
  const timeoutMs = Math.min(options.timeoutMs ?? 30_000, intervalMs);
  const provider: Promise<MeterProvider> = Promise.all([
    loadSdk(),
    options.exporter ??
      import('@opentelemetry/exporter-metrics-otlp-http').then(
        ({ OTLPMetricExporter }) =>
          new OTLPMetricExporter({
            url: options.url as string,
            ...(options.headers !== undefined ? { headers: options.headers } : {}),
          }),
      ),
  ]).then(([sdk, exporter]) => {
    const reader = new sdk.PeriodicExportingMetricReader({
      exporter,
      exportIntervalMillis: intervalMs,
      exportTimeoutMillis: timeoutMs,
      metricProducers: [metrics.metricProducer],
    });
    return new sdk.MeterProvider({
      resource: sdk.resourceFromAttributes({
        'service.name': metrics.service,
        ...options.resourceAttributes,
      }),
      readers: [reader],
    });
  });
  // A failure to build the pipeline surfaces on forceFlush/shutdown, not as an unhandled rejection.
  provider.catch(() => {});
  return {
    forceFlush: async () => (await provider).forceFlush(),
    shutdown: async () => (await provider).shutdown(),
  };
}
