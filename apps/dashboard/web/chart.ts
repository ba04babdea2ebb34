import type { SeriesPoint } from './api.js';
import { formatLatency, s } from './view.js';

const WIDTH = 320;
const HEIGHT = 90;
const PAD = { left: 52, right: 8, top: 8, bottom: 16 };
const LINES = [
  { key: 'p50', color: '#2b8a3e' },
  { key: 'p95', color: '#e67700' },
  { key: 'p99', color: '#c92a2a' },
] as const;

/**
 * Latency chart (p50/p95/p99 per time slot) as inline SVG: a handful of points per pattern does
 * not need a charting library.
 */
export function latencyChart(points: readonly SeriesPoint[], label: string): SVGElement {
  const svg = s('svg', {
    viewBox: `0 0 ${WIDTH} ${HEIGHT}`,
    width: WIDTH,
    height: HEIGHT,
    role: 'img',
    'aria-label': `latency of ${label}`,
    class: 'chart',
  });
  const values = points.flatMap((p) => LINES.map((l) => p[l.key])).filter((v): v is number => v !== null);
  const plotW = WIDTH - PAD.left - PAD.right;
  const plotH = HEIGHT - PAD.top - PAD.bottom;
  svg.append(
    s('rect', { x: PAD.left, y: PAD.top, width: plotW, height: plotH, fill: '#fafafa', stroke: '#ddd' }),
  );
  if (values.length === 0) {
    svg.append(
      s('text', { x: PAD.left + 8, y: PAD.top + plotH / 2, class: 'chart-empty' }, 'no requests yet'),
    );
    return svg;
  }
  const max = Math.max(...values) * 1.1 || 0.001;
  const first = points[0]?.start ?? 0;
  const last = points[points.length - 1]?.start ?? first;
  const span = Math.max(1, last - first);
  const x = (t: number) => PAD.left + (points.length === 1 ? plotW / 2 : ((t - first) / span) * plotW);
  const y = (v: number) => PAD.top + plotH - (v / max) * plotH;
  svg.append(
    s('text', { x: PAD.left - 4, y: PAD.top + 8, 'text-anchor': 'end', class: 'axis' }, formatLatency(max)),
    s('text', { x: PAD.left - 4, y: PAD.top + plotH, 'text-anchor': 'end', class: 'axis' }, '0'),
  );
  for (const line of LINES) {
    const coords = points
      .filter((p) => p[line.key] !== null)
      .map((p) => `${x(p.start).toFixed(1)},${y(p[line.key] ?? 0).toFixed(1)}`);
    if (coords.length === 0) continue;
    if (coords.length > 1) {
      svg.append(
        s('polyline', {
          points: coords.join(' '),
          fill: 'none',
          stroke: line.color,
          'stroke-width': 1.5,
          'data-line': line.key,
        }),
      );
    }
    for (const c of coords) {
      const [cx, cy] = c.split(',');
      svg.append(s('circle', { cx: cx ?? 0, cy: cy ?? 0, r: 2, fill: line.color }));
    }
  }
  LINES.forEach((line, i) => {
    svg.append(
      s('text', { x: PAD.left + 6 + i * 34, y: HEIGHT - 3, fill: line.color, class: 'legend' }, line.key),
    );
  });
  return svg;
}
