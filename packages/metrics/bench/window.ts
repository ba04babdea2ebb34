/**
 * node --import tsx bench/window.ts
 *
 * Window queries over an hour of 10 s slots (360 slots, ~60 series each): WindowedAggregator.query with
 * its cached closed-slot merge (warm, and right after a slot opened) against merging every slot for each
 * query (what a window query costs without the cache).
 */
import { MeshAggregator, MeshMetrics, WindowedAggregator } from '../src/index.js';
import type { MetricsSnapshot, ViewDimension } from '../src/index.js';

const HOST = 'payments.partner.com';
const ROUTES = [
  { host: HOST, routes: Array.from({ length: 10 }, (_, i) => ({ pattern: `/api/v1/resource${i}/:id` })) },
];
const PATTERNS: readonly ViewDimension[] = ['service', 'host', 'method', 'route', 'direction'];

function slotSnapshots(seed: number): MetricsSnapshot[] {
  return ['orders', 'payments', 'web'].map((service) => {
    const metrics = new MeshMetrics({ service, producer: `${service}-1`, routeSets: ROUTES });
    for (let i = 0; i < 200; i++) {
      metrics.record({
        direction: i % 4 === 0 ? 'outbound' : 'inbound',
        method: i % 3 === 0 ? 'POST' : 'GET',
        host: HOST,
        path: `/api/v1/resource${(i + seed) % 10}/${i}`,
        statusCode: i % 17 === 0 ? 503 : 200,
        durationMs: ((i * 37 + seed) % 500) + 1,
      });
    }
    return metrics.snapshot();
  });
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

function time(fn: () => void, rounds: number): number {
  const samples: number[] = [];
  for (let r = 0; r < rounds; r++) {
    const start = process.hrtime.bigint();
    fn();
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return median(samples);
}

let now = 1_000_000_000;
const windowed = new WindowedAggregator({ clock: () => now });
const slots: MeshAggregator[] = [];
for (let s = 0; s < 360; s++) {
  const slot = new MeshAggregator();
  for (const snapshot of slotSnapshots(s)) {
    windowed.ingest(snapshot);
    slot.ingest(snapshot);
  }
  slots.push(slot);
  now += 10_000;
}
now -= 5_000; // inside the newest slot, which is then the open one
const HOUR = 3_600_000;
windowed.query(PATTERNS, HOUR);
const rows = windowed.query(PATTERNS, HOUR).length;

const warm = time(() => windowed.query(PATTERNS, HOUR), 50);
const afterIngest = time(() => {
  for (const snapshot of slotSnapshots(1)) windowed.ingest(snapshot);
  windowed.query(PATTERNS, HOUR);
}, 20);
const coldSamples: number[] = [];
for (let r = 0; r < 10; r++) {
  now += 10_000; // a new slot opens: the closed-slot merge is rebuilt once
  for (const snapshot of slotSnapshots(r)) windowed.ingest(snapshot);
  const start = process.hrtime.bigint();
  windowed.query(PATTERNS, HOUR);
  coldSamples.push(Number(process.hrtime.bigint() - start) / 1e6);
}
const naive = time(() => {
  const merged = new MeshAggregator();
  for (const slot of slots) merged.merge(slot);
  merged.view(PATTERNS);
}, 10);

console.log(`1 h window over 360 slots, ${rows} rows (ms, median):`);
console.log(`  query, cache warm                     ${warm.toFixed(3)}`);
console.log(`  ingest 3 snapshots + query (open slot) ${afterIngest.toFixed(3)}`);
console.log(`  first query after a slot opened       ${median(coldSamples).toFixed(3)}`);
console.log(`  merge all 360 slots + view, per query ${naive.toFixed(3)}`);
