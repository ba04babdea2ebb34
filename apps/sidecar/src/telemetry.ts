import type { MeshMetrics } from '@httpmesh/metrics';
import type { RuleSyncClient } from '@httpmesh/rule-sync';
import type { Logger } from 'pino';
import { UsageError } from './errors.js';

/** Shortest accepted `--metrics-interval`: below it the control plane would mostly ingest empty deltas. */
export const MIN_METRICS_INTERVAL_MS = 100;

/** Counters of the uploader, served on the admin endpoint's `/connections` as `telemetry`. */
export interface MetricsUploadStats {
  /** Snapshots handed to the stream. */
  sent: number;
  /** Snapshots that held no series (nothing recorded since the previous one); not sent. */
  empty: number;
  /** Intervals that passed while disconnected (their traffic went out in the next snapshot). */
  deferred: number;
  lastSentAt: string | null;
}

/**
 * Uploads the sidecar's per-pattern metrics to the control plane on the rule-sync stream: every
 * `intervalMs` one delta `MeshMetrics.snapshot()` (content type application/vnd.httpmesh.metrics-snapshot+json),
 * one right after each (re)connection, and a final one on shutdown.
 *
 * While disconnected no snapshot is taken at all: MeshMetrics keeps counting, so the next snapshot after
 * the reconnection is the delta over the whole outage. Memory stays bounded by the series table (bounded
 * by configuration, not by traffic or outage length), and nothing is dropped — the control plane files
 * that snapshot under the slot in which it arrives.
 */
export class MetricsUploader {
  readonly stats: MetricsUploadStats = { sent: 0, empty: 0, deferred: 0, lastSentAt: null };
  #timer: NodeJS.Timeout | undefined;
  #closed = false;
  #client: RuleSyncClient | undefined;
  readonly #onConnected = (): void => {
    this.flush('reconnect');
  };

  constructor(
    private readonly metrics: MeshMetrics,
    private readonly intervalMs: number,
    private readonly log: Logger,
  ) {
    if (!Number.isInteger(intervalMs) || intervalMs < MIN_METRICS_INTERVAL_MS) {
      throw new UsageError(`--metrics-interval must be at least ${MIN_METRICS_INTERVAL_MS} ms`);
    }
  }

  /** Starts uploading on `client`'s stream. */
  start(client: RuleSyncClient): void {
    this.#client = client;
    client.on('connected', this.#onConnected);
    this.#timer = setInterval(() => this.flush('interval'), this.intervalMs);
    // The interval alone must not keep a draining process alive.
    this.#timer.unref();
  }

  /**
   * Takes and sends one delta snapshot when connected. Returns whether one was sent. When disconnected it
   * takes none, so the delta keeps growing inside MeshMetrics until the stream is back.
   */
  flush(reason: 'interval' | 'reconnect' | 'final'): boolean {
    const client = this.#client;
    if (client === undefined || !client.connected) {
      if (reason === 'interval') {
        if (this.stats.deferred === 0 || this.stats.deferred % 60 === 0) {
          this.log.warn(
            { event: 'metrics.upload_deferred', deferred: this.stats.deferred + 1 },
            'control plane not connected; metrics are kept and sent after the reconnection',
          );
        }
        this.stats.deferred++;
      }
      return false;
    }
    const snapshot = this.metrics.snapshot();
    if (snapshot.series.length === 0) {
      this.stats.empty++;
      return false;
    }
    // `connected` was checked in this same tick, so the stream takes it.
    if (!client.sendMetricSnapshot(snapshot)) return false;
    this.stats.sent++;
    this.stats.lastSentAt = new Date().toISOString();
    this.log.debug(
      { event: 'metrics.uploaded', reason, series: snapshot.series.length },
      'metric snapshot uploaded',
    );
    return true;
  }

  /**
   * Stops the timer and queues the final snapshot (call after the proxies closed, before the stream closes:
   * the control-plane client's close drains it onto the wire).
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearInterval(this.#timer);
    this.#client?.off('connected', this.#onConnected);
    if (!this.flush('final') && this.#client?.connected !== true) {
      this.log.warn(
        { event: 'metrics.final_flush_skipped' },
        'control plane not connected at shutdown; the last metrics were not uploaded',
      );
    }
  }
}
