import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { ValueType } from '@opentelemetry/api';
import { AggregationTemporality, DataPointType } from '@opentelemetry/sdk-metrics';
import { describe, expect, test } from 'vitest';
import { MeshMetrics } from '../src/index.js';

const probe = fileURLToPath(new URL('./fixtures/load-probe.ts', import.meta.url));

describe('OpenTelemetry is loaded only by an exporter', () => {
  test('recording, snapshots and collect() load no @opentelemetry package; the first scrape does', () => {
    const child = spawnSync(process.execPath, ['--import', 'tsx', probe], {
      encoding: 'utf8',
      timeout: 20_000,
    });
    expect(child.stderr).toBe('');
    expect(child.status).toBe(0);
    const result = JSON.parse(child.stdout) as {
      beforeScrape: string[];
      afterScrape: string[];
      snapshotSeries: number;
      collectedMetrics: number;
      scrapedRoute: boolean;
    };
    expect(result.snapshotSeries).toBe(1);
    expect(result.collectedMetrics).toBeGreaterThan(0);
    expect(result.beforeScrape).toEqual([]);
    // The probe really sees loaded packages: the scrape brought the SDK and the Prometheus exporter.
    expect(result.afterScrape).toEqual(
      expect.arrayContaining(['@opentelemetry/exporter-prometheus', '@opentelemetry/sdk-metrics']),
    );
    expect(result.afterScrape).not.toContain('@opentelemetry/exporter-metrics-otlp-http');
    expect(result.scrapedRoute).toBe(true);
  });

  test("collect() uses the SDK's own enum values, written out in mesh-metrics.ts", () => {
    const metrics = new MeshMetrics({ routeSets: [{ host: 'shop.test', routes: [{ pattern: '/a' }] }] });
    metrics.record({ direction: 'inbound', method: 'GET', host: 'shop.test', path: '/a', durationMs: 1 });
    metrics.startRequest({ direction: 'inbound', method: 'GET', host: 'shop.test', path: '/a' });
    const { resourceMetrics } = metrics.collect();
    const all = resourceMetrics.scopeMetrics.flatMap((s) => s.metrics);
    const histogram = all.find((m) => m.descriptor.name === 'http.server.request.duration');
    const active = all.find((m) => m.descriptor.name === 'http.server.active_requests');
    expect(histogram?.dataPointType).toBe(DataPointType.HISTOGRAM);
    expect(histogram?.aggregationTemporality).toBe(AggregationTemporality.CUMULATIVE);
    expect(histogram?.descriptor.valueType).toBe(ValueType.DOUBLE);
    expect(active?.dataPointType).toBe(DataPointType.SUM);
    expect(active?.aggregationTemporality).toBe(AggregationTemporality.CUMULATIVE);
    expect(active?.descriptor.valueType).toBe(ValueType.INT);
    expect(resourceMetrics.resource.attributes).toEqual({});
    expect(resourceMetrics.resource.getRawAttributes()).toEqual([]);
  });
});
