import { EventEmitter } from 'node:events';
import type { ViewKey, WindowedAggregator } from '@httpmesh/metrics';
import type { AlertRuleSpec } from './rules.js';

export type AlertState = 'inactive' | 'pending' | 'firing';

export interface AlertStatus {
  name: string;
  rule: AlertRuleSpec;
  state: AlertState;
  /** Last evaluated value (ratio, requests/s, or seconds). */
  value: number | null;
  /** When the condition started to hold (pending or firing). */
  activeSince: string | undefined;
  firedAt: string | undefined;
  resolvedAt: string | undefined;
}

export interface AlertNotification {
  status: 'firing' | 'resolved';
  alert: string;
  rule: AlertRuleSpec;
  value: number | null;
  at: string;
  firedAt: string | undefined;
}

export interface WebhookOptions {
  url: string;
  /** Attempts per notification. Default 5. */
  attempts?: number;
  /** First retry delay; doubles each retry. Default 500 ms. */
  backoffMs?: number;
  maxBackoffMs?: number;
  /** Per-attempt timeout. Default 5 000 ms. */
  timeoutMs?: number;
}

export interface AlertEngineOptions {
  metrics: WindowedAggregator;
  webhook?: WebhookOptions;
  /** Evaluation period of the built-in timer. Default 5 000 ms. */
  intervalMs?: number;
  clock?: () => number;
  onWebhookFailure?: (notification: AlertNotification, error: Error) => void;
}

export interface AlertEngineEvents {
  firing: [AlertNotification];
  resolved: [AlertNotification];
  delivered: [AlertNotification, number];
  undelivered: [AlertNotification, Error];
}

interface AlertEntry {
  rule: AlertRuleSpec;
  state: AlertState;
  value: number | null;
  activeSince: number | undefined;
  firedAt: number | undefined;
  resolvedAt: number | undefined;
}

const iso = (ms: number | undefined): string | undefined =>
  ms === undefined ? undefined : new Date(ms).toISOString();

/**
 * Evaluates alert rules against windowed mesh metrics. A rule goes pending when its condition holds,
 * firing once it held `forSeconds`, and back to inactive (resolved) when it stops holding. Firing and
 * resolving are posted to the webhook as JSON, retried with exponential backoff.
 */
export class AlertEngine extends EventEmitter<AlertEngineEvents> {
  private readonly entries = new Map<string, AlertEntry>();
  private readonly options: AlertEngineOptions;
  private readonly clock: () => number;
  private timer: NodeJS.Timeout | undefined;
  private readonly inflight = new Set<Promise<void>>();
  private closed = false;

  constructor(options: AlertEngineOptions) {
    super();
    this.options = options;
    this.clock = options.clock ?? Date.now;
  }

  start(): void {
    this.timer = setInterval(() => this.evaluate(), this.options.intervalMs ?? 5_000);
    this.timer.unref();
  }

  /** Sets (or replaces) a rule; a changed rule restarts from inactive. */
  setRule(name: string, rule: AlertRuleSpec): void {
    const existing = this.entries.get(name);
    if (existing !== undefined && JSON.stringify(existing.rule) === JSON.stringify(rule)) return;
    this.entries.set(name, {
      rule,
      state: 'inactive',
      value: null,
      activeSince: undefined,
      firedAt: undefined,
      resolvedAt: undefined,
    });
  }

  removeRule(name: string): void {
    this.entries.delete(name);
  }

  list(): AlertStatus[] {
    return [...this.entries].map(([name, e]) => ({
      name,
      rule: e.rule,
      state: e.state,
      value: e.value,
      activeSince: iso(e.activeSince),
      firedAt: iso(e.firedAt),
      resolvedAt: iso(e.resolvedAt),
    }));
  }

  /** Value of a rule's metric now; null when there is no traffic to judge. */
  measure(rule: AlertRuleSpec): number | null {
    const filter: ViewKey = {};
    if (rule.service !== undefined) filter.service = rule.service;
    if (rule.host !== undefined) filter.host = rule.host;
    if (rule.method !== undefined) filter.method = rule.method;
    if (rule.route !== undefined) filter.route = rule.route;
    const row = this.options.metrics.query([], rule.windowSeconds * 1000, filter)[0];
    if (row === undefined || row.requests === 0) return rule.metric === 'rate' ? 0 : null;
    switch (rule.metric) {
      case 'errorRatio':
        return row.errorRatio;
      case 'rate':
        return row.rate;
      case 'p50':
        return row.p50;
      case 'p95':
        return row.p95;
      case 'p99':
        return row.p99;
    }
  }

  /** One evaluation round (the timer calls this; tests call it directly). */
  evaluate(): void {
    const now = this.clock();
    for (const [name, entry] of this.entries) {
      const value = this.measure(entry.rule);
      entry.value = value;
      const holds = value !== null && value > entry.rule.above;
      if (holds) {
        entry.activeSince ??= now;
        if (entry.state === 'inactive') entry.state = 'pending';
        if (entry.state === 'pending' && now - entry.activeSince >= entry.rule.forSeconds * 1000) {
          entry.state = 'firing';
          entry.firedAt = now;
          entry.resolvedAt = undefined;
          this.notify('firing', name, entry, now);
        }
      } else {
        const wasFiring = entry.state === 'firing';
        entry.state = 'inactive';
        entry.activeSince = undefined;
        if (wasFiring) {
          entry.resolvedAt = now;
          this.notify('resolved', name, entry, now);
        }
      }
    }
  }

  /** Stops the timer and waits for webhook deliveries in progress (they give up retrying). */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await Promise.allSettled([...this.inflight]);
  }

  private notify(status: 'firing' | 'resolved', name: string, entry: AlertEntry, now: number): void {
    const notification: AlertNotification = {
      status,
      alert: name,
      rule: entry.rule,
      value: entry.value,
      at: new Date(now).toISOString(),
      firedAt: iso(entry.firedAt),
    };
    this.emit(status, notification);
    const webhook = this.options.webhook;
    if (webhook === undefined) return;
    const delivery = this.deliver(webhook, notification).finally(() => this.inflight.delete(delivery));
    this.inflight.add(delivery);
  }

  private async deliver(webhook: WebhookOptions, notification: AlertNotification): Promise<void> {
    const attempts = webhook.attempts ?? 5;
    let delay = webhook.backoffMs ?? 500;
    let lastError: Error = new Error('no attempt made');
    for (let attempt = 1; attempt <= attempts; attempt++) {
      try {
        const response = await fetch(webhook.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(notification),
          signal: AbortSignal.timeout(webhook.timeoutMs ?? 5_000),
        });
        await response.arrayBuffer();
        if (response.ok) {
          this.emit('delivered', notification, attempt);
          return;
        }
        lastError = new Error(`webhook answered ${response.status}`);
      } catch (err) {
        lastError = err as Error;
      }
      if (attempt === attempts || this.closed) break;
      // Full jitter would spread retries of many alerts; with few alerts plain doubling is enough.
      await new Promise((resolve) => setTimeout(resolve, delay).unref());
      delay = Math.min(delay * 2, webhook.maxBackoffMs ?? 30_000);
    }
    this.emit('undelivered', notification, lastError);
    this.options.onWebhookFailure?.(notification, lastError);
  }
}
