import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, test } from 'vitest';
import { WindowedAggregator } from '@httpmesh/metrics';
import { AlertEngine, compileRule } from '../src/index.js';
import type { AlertNotification, AlertRuleSpec } from '../src/index.js';
import { ordersSnapshot } from './harness.js';

function alertSpec(spec: object): AlertRuleSpec {
  const compiled = compileRule('AlertRule', 'a', spec);
  if (compiled.alert === undefined) throw new Error('not an alert');
  return compiled.alert;
}

// Window queries themselves are tested in @httpmesh/metrics (test/windowed.test.ts); here only the alerts.
describe('AlertEngine', () => {
  test('pending until the condition held forSeconds, then firing; p99 threshold; resolve', () => {
    let now = 5_000_000;
    const clock = (): number => now;
    const metrics = new WindowedAggregator({ slotMs: 10_000, clock });
    const engine = new AlertEngine({ metrics, clock });
    const events: AlertNotification[] = [];
    engine.on('firing', (n) => events.push(n));
    engine.on('resolved', (n) => events.push(n));
    engine.setRule(
      'errors',
      alertSpec({
        metric: 'errorRatio',
        service: 'payments',
        route: '/orders/:id',
        above: 0.05,
        forSeconds: 60,
        windowSeconds: 60,
      }),
    );
    engine.setRule(
      'slow',
      alertSpec({ metric: 'p99', service: 'payments', above: 0.5, forSeconds: 0, windowSeconds: 60 }),
    );
    engine.setRule('other-service', alertSpec({ metric: 'errorRatio', service: 'orders', above: 0.01 }));
    metrics.ingest(ordersSnapshot('payments', 90, 10));
    engine.evaluate();
    const state = (): Record<string, string> =>
      Object.fromEntries(engine.list().map((a) => [a.name, a.state]));
    expect(state()).toEqual({ errors: 'pending', slow: 'firing', 'other-service': 'inactive' });
    now += 59_000;
    engine.evaluate();
    expect(state()['errors']).toBe('pending');
    now += 1_000;
    engine.evaluate();
    expect(state()['errors']).toBe('firing');
    expect(events.map((e) => `${e.status}:${e.alert}`)).toEqual(['firing:slow', 'firing:errors']);
    // Only fast, successful traffic in the next window.
    now += 70_000;
    metrics.ingest(ordersSnapshot('payments', 100, 0));
    engine.evaluate();
    expect(state()).toEqual({ errors: 'inactive', slow: 'inactive', 'other-service': 'inactive' });
    expect(
      events
        .slice(2)
        .map((e) => `${e.status}:${e.alert}`)
        .sort(),
    ).toEqual(['resolved:errors', 'resolved:slow']);
    expect(engine.list().find((a) => a.name === 'errors')?.resolvedAt).toBe(new Date(now).toISOString());
  });

  test('a webhook that never succeeds is retried the configured number of times, then reported undelivered', async () => {
    let calls = 0;
    const hook = createServer((_req, res) => {
      calls++;
      res.writeHead(500).end();
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    const metrics = new WindowedAggregator();
    const engine = new AlertEngine({
      metrics,
      webhook: {
        url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/`,
        attempts: 3,
        backoffMs: 5,
      },
    });
    try {
      const undelivered = new Promise<Error>((resolve) =>
        engine.once('undelivered', (_n, err) => resolve(err)),
      );
      engine.setRule('busy', alertSpec({ metric: 'rate', above: 0 }));
      metrics.ingest(ordersSnapshot('payments', 1, 0));
      engine.evaluate();
      expect((await undelivered).message).toBe('webhook answered 500');
      expect(calls).toBe(3);
    } finally {
      await engine.close();
      hook.close();
    }
  });
});
