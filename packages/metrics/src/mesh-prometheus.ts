import { ALL_DIMENSIONS } from './aggregator.js';
import type { MeshAggregator, ViewKey } from './aggregator.js';

type LabelPairs = readonly (readonly [string, string | number | null | undefined])[];

function escapeLabel(value: string): string {
  return value.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

/** `{a="x",b="y"}`; null labels (e.g. no error) are left out, as Prometheus treats empty and absent alike. */
function labels(pairs: LabelPairs): string {
  const parts: string[] = [];
  for (const [name, value] of pairs) {
    if (value !== null && value !== undefined) parts.push(`${name}="${escapeLabel(String(value))}"`);
  }
  return `{${parts.join(',')}}`;
}

function patternLabels(k: ViewKey): [string, string | number | null | undefined][] {
  return [
    ['service', k.service],
    ['direction', k.direction],
    ['host', k.host],
    ['route', k.route],
    ['method', k.method],
  ];
}

/**
 * Prometheus text exposition (format 0.0.4, serve it as `PROMETHEUS_CONTENT_TYPE`) of a mesh-wide
 * aggregate: `httpmesh_mesh_requests_total` per service/direction/host/route/method/status/error and the
 * `httpmesh_mesh_request_duration_seconds` histogram per service/direction/host/route/method. Feed it a
 * cumulative aggregator (e.g. `WindowedAggregator.total`): Prometheus counters must never go down.
 */
export function meshPrometheusText(aggregator: MeshAggregator): string {
  const out: string[] = [];
  out.push('# HELP httpmesh_mesh_requests_total Requests seen by all sidecars, per pattern and outcome.');
  out.push('# TYPE httpmesh_mesh_requests_total counter');
  // Per-caller series would multiply the exported series; callers stay in the JSON views.
  const outcomeDimensions = ALL_DIMENSIONS.filter((d) => d !== 'sourceService');
  for (const row of aggregator.view(outcomeDimensions)) {
    const k = row.key;
    const l = labels([...patternLabels(k), ['status_code', k.statusCode], ['error_type', k.errorType]]);
    out.push(`httpmesh_mesh_requests_total${l} ${row.requests}`);
  }
  out.push(
    '# HELP httpmesh_mesh_request_duration_seconds Request latency seen by all sidecars, per pattern.',
  );
  out.push('# TYPE httpmesh_mesh_request_duration_seconds histogram');
  const bounds = aggregator.durationBounds;
  for (const row of aggregator.view(['service', 'direction', 'host', 'route', 'method'])) {
    const base = patternLabels(row.key);
    let cumulative = 0;
    for (let i = 0; i < row.duration.buckets.length; i++) {
      cumulative += row.duration.buckets[i] ?? 0;
      const le = i < bounds.length ? String(bounds[i]) : '+Inf';
      out.push(`httpmesh_mesh_request_duration_seconds_bucket${labels([...base, ['le', le]])} ${cumulative}`);
    }
    out.push(`httpmesh_mesh_request_duration_seconds_sum${labels(base)} ${row.duration.sum}`);
    out.push(`httpmesh_mesh_request_duration_seconds_count${labels(base)} ${row.duration.count}`);
  }
  return `${out.join('\n')}\n`;
}
