import { MeterProvider, MetricReader } from '@opentelemetry/sdk-metrics';
import type { DataPoint, Histogram, MetricData } from '@opentelemetry/sdk-metrics';
import type { MeshMetrics } from '../src/index.js';

/** Minimal pull reader, so tests see exactly what any OpenTelemetry exporter would receive. */
export class TestReader extends MetricReader {
  protected override async onForceFlush(): Promise<void> {}
  protected override async onShutdown(): Promise<void> {}
}

export function readerFor(metrics: MeshMetrics): TestReader {
  const reader = new TestReader({ metricProducers: [metrics.metricProducer] });
  new MeterProvider({ readers: [reader] });
  return reader;
}

export async function collectMetrics(reader: MetricReader): Promise<Map<string, MetricData>> {
  const { resourceMetrics, errors } = await reader.collect();
  if (errors.length > 0) throw new Error(`collection errors: ${String(errors)}`);
  const out = new Map<string, MetricData>();
  for (const scope of resourceMetrics.scopeMetrics)
    for (const m of scope.metrics) out.set(m.descriptor.name, m);
  return out;
}

export function histogramPoints(metrics: Map<string, MetricData>, name: string): DataPoint<Histogram>[] {
  const m = metrics.get(name);
  if (m === undefined) return [];
  return m.dataPoints as DataPoint<Histogram>[];
}

/** Deterministic PRNG so generated traffic is reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
