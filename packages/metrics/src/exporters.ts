import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Attributes } from '@opentelemetry/api';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-http';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { MeterProvider, PeriodicExportingMetricReader } from '@opentelemetry/sdk-metrics';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { MetricsOptionsError } from './errors.js';
import type { MeshMetrics } from './mesh-metrics.js';

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
  const reader = new PrometheusExporter({
    preventServerStart: true,
    metricProducers: [metrics.metricProducer],
    withoutTargetInfo,
    ...(options.prefix !== undefined ? { prefix: options.prefix } : {}),
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': metrics.service, ...options.resourceAttributes }),
    readers: [reader],
  });
  const serializer = new PrometheusSerializer(options.prefix, false, undefined, withoutTargetInfo);
  const text = async (): Promise<string> => {
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
    shutdown: () => provider.shutdown(),
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

/** Periodically pushes a MeshMetrics to an OTLP collector through OpenTelemetry's periodic reader. */
export function createOtlpExport(metrics: MeshMetrics, options: OtlpExportOptions): OtlpExport {
  if (options.exporter === undefined && (typeof options.url !== 'string' || options.url.length === 0)) {
    throw new MetricsOptionsError('createOtlpExport needs a url or an exporter');
  }
  const intervalMs = options.intervalMs ?? 60_000;
  const timeoutMs = Math.min(options.timeoutMs ?? 30_000, intervalMs);
  const exporter =
    options.exporter ??
    new OTLPMetricExporter({
      url: options.url as string,
      ...(options.headers !== undefined ? { headers: options.headers } : {}),
    });
  const reader = new PeriodicExportingMetricReader({
    exporter,
    exportIntervalMillis: intervalMs,
    exportTimeoutMillis: timeoutMs,
    metricProducers: [metrics.metricProducer],
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': metrics.service, ...options.resourceAttributes }),
    readers: [reader],
  });
  return {
    forceFlush: () => provider.forceFlush(),
    shutdown: () => provider.shutdown(),
  };
}
