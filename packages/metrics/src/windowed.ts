import { MeshAggregator, validateSnapshot } from './aggregator.js';
import type { MeshAggregatorOptions, ViewDimension, ViewKey, ViewRow } from './aggregator.js';
import { MetricsOptionsError, WindowParameterError } from './errors.js';

export interface WindowedAggregatorOptions extends MeshAggregatorOptions {
  /** Width of one time slot. Default 10 000 ms (the sidecars' reporting period). */
  slotMs?: number;
  /** Longest window a query may ask for; older slots are dropped. Default 1 hour. */
  maxWindowMs?: number;
  /** Epoch milliseconds. Default Date.now. */
  clock?: () => number;
}

/** One grouped row of a window query. */
export interface WindowRow {
  key: ViewKey;
  requests: number;
  errors: number;
  /** Requests per second over the window. */
  rate: number;
  /** errors / requests (0 without requests). */
  errorRatio: number;
  /** Latency percentiles in seconds (null without requests). */
  p50: number | null;
  p95: number | null;
  p99: number | null;
  /** Latency histogram (seconds), for charts. */
  durationBounds: readonly number[];
  durationBuckets: number[];
}

/** One time slot of a window, for charts. */
export interface SeriesPoint {
  /** Slot start (ms since epoch). */
  start: number;
  requests: number;
  errors: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
}

interface Slot {
  readonly start: number;
  readonly aggregator: MeshAggregator;
}

const MAX_CACHED_WINDOWS = 16;

/**
 * Mesh-wide metrics from sidecar delta snapshots: cumulative totals (for Prometheus, whose counters must
 * never go down) plus fixed time slots, so "the last N minutes" can be asked per service, host or pattern.
 *
 * A window query reads the closed slots through one cached merge (built once per window length while no
 * slot opens) plus the open slot, so repeated queries (dashboard polls, alert evaluation) do not re-merge
 * every slot each time.
 */
export class WindowedAggregator {
  readonly slotMs: number;
  readonly maxWindowMs: number;
  /** Cumulative since start. */
  readonly total: MeshAggregator;
  readonly #options: MeshAggregatorOptions;
  readonly #clock: () => number;
  readonly #startedAt: number;
  readonly #slots: Slot[] = [];
  /** Merged closed slots per "first slot start:last closed slot start"; cleared whenever a slot opens. */
  readonly #closedMerges = new Map<string, MeshAggregator>();
  /** Start of the open slot when #closedMerges was last filled: a write before it would make them stale. */
  #mergesOpenStart = Number.NEGATIVE_INFINITY;
  #rejected = 0;

  /** @throws MetricsOptionsError for a bad slot/window length or aggregator option */
  constructor(options: WindowedAggregatorOptions = {}) {
    const slotMs = options.slotMs ?? 10_000;
    if (!Number.isInteger(slotMs) || slotMs < 1)
      throw new MetricsOptionsError('slotMs must be an integer >= 1');
    const maxWindowMs = options.maxWindowMs ?? 3_600_000;
    if (!Number.isInteger(maxWindowMs) || maxWindowMs < slotMs) {
      throw new MetricsOptionsError('maxWindowMs must be an integer >= slotMs');
    }
    if (options.clock !== undefined && typeof options.clock !== 'function') {
      throw new MetricsOptionsError('clock must be a function');
    }
    this.slotMs = slotMs;
    this.maxWindowMs = maxWindowMs;
    this.#clock = options.clock ?? Date.now;
    this.#options = {
      ...(options.durationBounds !== undefined ? { durationBounds: options.durationBounds } : {}),
      ...(options.bodySizeBounds !== undefined ? { bodySizeBounds: options.bodySizeBounds } : {}),
      ...(options.maxSeries !== undefined ? { maxSeries: options.maxSeries } : {}),
    };
    this.total = new MeshAggregator(this.#options);
    this.#startedAt = this.#clock();
  }

  /** Snapshots refused by `ingest` so far. */
  get snapshotsRejected(): number {
    return this.#rejected;
  }

  /** Slots currently held (at most maxWindowMs / slotMs + 1). */
  get slotCount(): number {
    return this.#slots.length;
  }

  /**
   * Validates one snapshot (untrusted JSON from a sidecar) once and merges it into the current slot and the
   * totals. @throws SnapshotError, SnapshotBoundsError; nothing is merged then.
   */
  ingest(input: unknown): void {
    let snapshot: ReturnType<typeof validateSnapshot>;
    try {
      snapshot = validateSnapshot(input);
      // Bounds are checked before either aggregator changes, so a mismatch cannot leave them apart.
      this.total.ingestValidated(snapshot);
    } catch (err) {
      this.#rejected++;
      throw err;
    }
    this.#currentSlot().aggregator.ingestValidated(snapshot);
  }

  /**
   * Grouped rows over the last `windowMs`, busiest first, with rate, error ratio and p50/p95/p99.
   * @throws WindowParameterError for a window that is not an integer in [1, maxWindowMs];
   *   MetricsOptionsError for an unknown dimension
   */
  query(dimensions: readonly ViewDimension[], windowMs: number, filter?: ViewKey): WindowRow[] {
    this.#checkWindow(windowMs);
    const now = this.#clock();
    const sources = this.#windowSources(now - windowMs, now);
    const rows =
      sources.length === 0
        ? new MeshAggregator(this.#options).view(dimensions, filter)
        : MeshAggregator.combinedView(sources, dimensions, filter);
    // Before this aggregator has run for a whole window, the rate is over the time it has seen (at least
    // one second, so a snapshot ingested right after start does not read as thousands of requests/s).
    const seconds = Math.max(Math.min(1_000, windowMs), Math.min(windowMs, now - this.#startedAt)) / 1000;
    const bounds = this.total.durationBounds;
    return rows.map((row) => toWindowRow(row, seconds, bounds));
  }

  /**
   * One point per slot inside the last `windowMs` (oldest first): requests, errors, latency percentiles.
   * @throws WindowParameterError as `query`
   */
  timeseries(windowMs: number, filter?: ViewKey): SeriesPoint[] {
    this.#checkWindow(windowMs);
    const from = this.#clock() - windowMs;
    const out: SeriesPoint[] = [];
    for (const slot of this.#slots) {
      if (slot.start + this.slotMs <= from) continue;
      const row = slot.aggregator.view([], filter)[0];
      out.push({
        start: slot.start,
        requests: row?.requests ?? 0,
        errors: row?.errors ?? 0,
        p50: row?.duration.p50 ?? null,
        p95: row?.duration.p95 ?? null,
        p99: row?.duration.p99 ?? null,
      });
    }
    return out;
  }

  #checkWindow(windowMs: number): void {
    if (
      typeof windowMs !== 'number' ||
      !Number.isInteger(windowMs) ||
      windowMs < 1 ||
      windowMs > this.maxWindowMs
    ) {
      throw new WindowParameterError('windowMs', `must be an integer from 1 to ${this.maxWindowMs}`);
    }
  }

  #currentSlot(): Slot {
    const now = this.#clock();
    const start = now - (now % this.slotMs);
    const last = this.#slots[this.#slots.length - 1];
    // A write into a slot that a cached merge already counted as closed (the clock stepped back).
    if (start < this.#mergesOpenStart) this.#closedMerges.clear();
    // A clock that stepped back keeps feeding the newest slot, so slots stay in time order.
    if (last !== undefined && last.start >= start) return last;
    const slot: Slot = { start, aggregator: new MeshAggregator(this.#options) };
    this.#slots.push(slot);
    const oldest = start - this.maxWindowMs;
    while ((this.#slots[0]?.start ?? start) < oldest) this.#slots.shift();
    this.#closedMerges.clear();
    return slot;
  }

  /** The aggregators covering [from, now]: one cached merge of the closed slots, plus the open slot. */
  #windowSources(from: number, now: number): MeshAggregator[] {
    const openStart = now - (now % this.slotMs);
    const inWindow = this.#slots.filter((slot) => slot.start + this.slotMs > from);
    const last = inWindow[inWindow.length - 1];
    const open = last !== undefined && last.start >= openStart ? last : undefined;
    const closed = open === undefined ? inWindow : inWindow.slice(0, -1);
    const sources: MeshAggregator[] = [];
    const firstClosed = closed[0];
    const lastClosed = closed[closed.length - 1];
    if (firstClosed !== undefined && lastClosed !== undefined) {
      if (closed.length === 1) {
        sources.push(firstClosed.aggregator);
      } else {
        const key = `${firstClosed.start}:${lastClosed.start}`;
        let merged = this.#closedMerges.get(key);
        if (merged === undefined) {
          merged = new MeshAggregator(this.#options);
          for (const slot of closed) merged.merge(slot.aggregator);
          if (this.#closedMerges.size >= MAX_CACHED_WINDOWS) this.#closedMerges.clear();
          this.#closedMerges.set(key, merged);
          this.#mergesOpenStart = openStart;
        }
        sources.push(merged);
      }
    }
    if (open !== undefined) sources.push(open.aggregator);
    return sources;
  }
}

function toWindowRow(row: ViewRow, seconds: number, bounds: readonly number[]): WindowRow {
  return {
    key: row.key,
    requests: row.requests,
    errors: row.errors,
    rate: row.requests / seconds,
    errorRatio: row.requests === 0 ? 0 : row.errors / row.requests,
    p50: row.duration.p50,
    p95: row.duration.p95,
    p99: row.duration.p99,
    durationBounds: bounds,
    durationBuckets: row.duration.buckets,
  };
}

const WINDOW_TEXT = /^(\d{1,7})(s|m|h)?$/;

/**
 * Parses a window length as people type it: `30s`, `5m`, `1h` or plain seconds (`90`).
 * @throws WindowParameterError (`HTTPMESH_METRICS_WINDOW_INVALID`) for anything else, or outside [1 s, maxMs]
 */
export function parseWindowDuration(text: string, maxMs = 3_600_000): number {
  const match = typeof text === 'string' ? WINDOW_TEXT.exec(text) : null;
  const unit = match?.[2] === 'h' ? 3_600_000 : match?.[2] === 'm' ? 60_000 : 1_000;
  const ms = match === null ? Number.NaN : Number(match[1]) * unit;
  if (!(ms >= 1_000 && ms <= maxMs)) {
    throw new WindowParameterError(
      'window',
      `must be 1s to ${maxMs / 1000}s, written like "30s", "5m", "1h" or plain seconds`,
    );
  }
  return ms;
}
