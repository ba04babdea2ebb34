/**
 * The dashboard in a real headless Chromium (Debian `chromium`, driven by playwright-core) against a real
 * control plane on port 0, fed by a real rule-sync client that uploads snapshots of real @httpmesh/metrics
 * recordings. Lives in apps/demo because it needs both the control plane and the dashboard build, and the
 * control plane already depends on the dashboard (a test dependency the other way would be a cycle).
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ControlPlane, SqliteStore } from '@httpmesh/control-plane';
import { MeshMetrics } from '@httpmesh/metrics';
import { createRuleSyncClient, ResourceType, type RuleSyncClient } from '@httpmesh/rule-sync';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const TOKEN = 'dashboard-test-token-0123456789';
const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '.test-results');
const quiet = { info: () => undefined, warn: () => undefined, error: () => undefined };

async function until<T>(
  what: string,
  deadlineMs: number,
  check: () => T | undefined | Promise<T | undefined>,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function api(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<Record<string, unknown>> {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${TOKEN}`,
      'content-type': 'application/json',
      'x-httpmesh-author': 'alice',
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json()) as Record<string, unknown>;
  if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
  return json;
}

describe.skipIf(!haveChromium && process.env['CI'] !== 'true')('dashboard in headless Chromium', () => {
  let cp: ControlPlane;
  let base: string;
  let client: RuleSyncClient;
  let context: BrowserContext;
  const tmp = mkdtempSync(join(tmpdir(), 'httpmesh-dash-'));

  beforeAll(async () => {
    // Reads need the token too, so the page must take it from its URL fragment.
    cp = await ControlPlane.create({
      store: SqliteStore.open(join(tmp, 'rules.db')),
      http: '127.0.0.1:0',
      grpc: '127.0.0.1:0',
      adminToken: TOKEN,
      protectReads: true,
      metricsSlotMs: 400,
      alertIntervalMs: 100,
      ruleSyncDebounce: { quietMs: 5, maxDelayMs: 20 },
      logger: quiet,
    });
    const addresses = await cp.start();
    base = addresses.httpUrl;

    const routes = [
      { pattern: '/orders/:id', methods: ['GET'] },
      { pattern: '/users/:id/cart', methods: ['GET'] },
    ];
    await api(base, 'POST', '/api/rules/RouteSet', {
      name: 'orders',
      spec: { host: 'api.shop.test', routes: routes.slice(0, 1) },
    });
    await api(base, 'PUT', '/api/rules/RouteSet/orders', {
      revision: 1,
      spec: { host: 'api.shop.test', routes },
    });
    await api(base, 'POST', '/api/rules/InterceptRule', {
      name: 'shop-tls',
      spec: { domain: 'api.shop.test', action: 'INTERCEPT' },
    });
    // Fires on the traffic below (4 errors in 60 requests = 6.7 %); the cart pattern's rule stays quiet.
    await api(base, 'POST', '/api/rules/AlertRule', {
      name: 'orders-errors',
      spec: {
        metric: 'errorRatio',
        service: 'checkout',
        method: 'GET',
        route: '/orders/:id',
        above: 0.05,
        forSeconds: 0,
      },
    });
    await api(base, 'POST', '/api/rules/AlertRule', {
      name: 'cart-errors',
      spec: {
        metric: 'errorRatio',
        service: 'checkout',
        method: 'GET',
        route: '/users/:id/cart',
        above: 0.05,
      },
    });

    client = createRuleSyncClient({
      addresses: [addresses.grpcAddress],
      node: { id: 'checkout-1', service: 'checkout', labels: { zone: 'a' }, version: 'test' },
      subscriptions: [ResourceType.RESOURCE_TYPE_INTERCEPT_RULE, ResourceType.RESOURCE_TYPE_ROUTE_SET],
      insecure: true,
      logger: quiet,
      backoff: { initialMs: 20, maxMs: 200 },
    });
    await client.start();
    await until('sidecar ACKs both rule types', 10_000, () => {
      const types = cp.ruleSync.sidecar('checkout-1')?.types ?? [];
      return types.length === 2 && types.every((t) => t.ackedVersion !== '') ? true : undefined;
    });

    // Known traffic, recorded by the real metrics package and uploaded as two snapshots in two time slots.
    const metrics = new MeshMetrics({
      service: 'checkout',
      producer: 'checkout-1',
      routeSets: [{ host: 'api.shop.test', routes }],
    });
    const record = (path: string, statusCode: number, durationMs: number) =>
      metrics.record({
        direction: 'outbound',
        method: 'GET',
        host: 'api.shop.test:443',
        path,
        statusCode,
        durationMs,
      });
    for (let i = 0; i < 36; i++) record(`/orders/${1000 + i}`, 200, 20);
    for (let i = 0; i < 4; i++) record(`/orders/${2000 + i}`, 503, 30);
    for (let i = 0; i < 10; i++) record(`/users/${i}/cart`, 200, 200);
    expect(client.sendMetricSnapshot(metrics.snapshot())).toBe(true);
    await until('first snapshot ingested', 5_000, () =>
      cp.metrics.total.snapshotCount === 1 ? true : undefined,
    );
    const slot = Math.floor(Date.now() / 400);
    await until('next metrics slot', 2_000, () => (Math.floor(Date.now() / 400) > slot ? true : undefined));
    for (let i = 0; i < 20; i++) record(`/orders/${3000 + i}`, 200, 60);
    expect(client.sendMetricSnapshot(metrics.snapshot())).toBe(true);
    await until('second snapshot ingested', 5_000, () =>
      cp.metrics.total.snapshotCount === 2 ? true : undefined,
    );

    const profile = join(tmp, 'chromium-profile');
    context = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
      viewport: { width: 1400, height: 1100 },
    });
  });

  afterAll(async () => {
    await context?.close();
    await client?.close();
    await cp?.close();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('shows patterns with their numbers, latency charts, the sidecar, rules with history; screenshot', async () => {
    const page = await context.newPage();
    const failures: string[] = [];
    page.on('pageerror', (e) => failures.push(e.message));
    await page.goto(`${base}/#token=${TOKEN}`);

    const orders = page.locator('[data-testid=pattern-row][data-pattern="GET /orders/:id"]');
    await orders.waitFor({ timeout: 15_000 });
    await expect
      .poll(() => orders.locator('[data-field=requests]').textContent(), { timeout: 10_000 })
      .toBe('60');
    expect(await orders.locator('[data-field=errors]').textContent()).toBe('6.7%');
    expect(await orders.getAttribute('data-host')).toBe('api.shop.test');
    // 56 of 60 requests took 20-60 ms, so the median is inside the 25-50 ms bucket range.
    const p50 = await orders.locator('[data-field=p50]').textContent();
    expect(p50).toMatch(/^\d+(\.\d+)? ms$/);
    expect(Number.parseFloat(p50 ?? '')).toBeGreaterThan(10);
    expect(Number.parseFloat(p50 ?? '')).toBeLessThan(75);
    expect(await orders.locator('[data-field=rate]').textContent()).toMatch(/\/(s|min)$/);

    const cart = page.locator('[data-testid=pattern-row][data-pattern="GET /users/:id/cart"]');
    expect(await cart.locator('[data-field=requests]').textContent()).toBe('10');
    expect(await cart.locator('[data-field=errors]').textContent()).toBe('0.0%');
    // Raw paths never appear as patterns.
    expect(await page.locator('[data-testid=pattern-row]').count()).toBe(2);
    expect(await page.locator('[data-testid=service][data-service=checkout]').count()).toBe(1);

    // The latency chart of /orders/:id has one point per slot (two slots) for each percentile line.
    await expect
      .poll(() => orders.locator('svg.chart polyline[data-line=p50]').count(), { timeout: 10_000 })
      .toBe(1);
    expect(await orders.locator('svg.chart circle').count()).toBe(6);

    const sidecar = page.locator('[data-testid=sidecar-row][data-sidecar=checkout-1]');
    await sidecar.waitFor();
    expect(await sidecar.textContent()).toContain('checkout');
    expect(await sidecar.locator('[data-type=RouteSet] .ok').textContent()).toMatch(/^ACK \S+/);
    expect(await sidecar.locator('[data-type=InterceptRule] .ok').textContent()).toMatch(/^ACK \S+/);
    expect(await sidecar.locator('.bad').count()).toBe(0);

    const rule = page.locator('[data-testid=rule][data-rule="RouteSet/orders"]');
    await rule.waitFor();
    expect(await rule.locator('summary').textContent()).toContain('rev 2 · alice');
    await expect
      .poll(() => rule.locator('[data-testid=rule-history] li').count(), { timeout: 10_000 })
      .toBe(2);
    expect(await rule.locator('[data-testid=rule-history] li').allTextContents()).toEqual([
      expect.stringMatching(/^rev 2 update by alice/),
      expect.stringMatching(/^rev 1 create by alice/),
    ]);
    expect(await page.locator('[data-testid=rule][data-rule="InterceptRule/shop-tls"]').count()).toBe(1);
    const alert = page.locator('[data-testid=alert]');
    await alert.first().waitFor({ timeout: 10_000 });
    expect(await alert.allTextContents()).toEqual([
      expect.stringMatching(/^orders-errors: firing \(value 0\.0667\)/),
    ]);
    expect(await page.locator('[data-testid=error]').count()).toBe(0);
    expect(failures).toEqual([]);

    await rule.locator('summary').click();
    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, 'dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(
      true,
    );
    expect(statSync(file).size).toBeGreaterThan(10_000);
  });

  test('without the token in the fragment the page reports the refused reads instead of data', async () => {
    const page = await context.newPage();
    await page.goto(`${base}/`);
    const error = page.locator('[data-testid=error]').first();
    await error.waitFor({ timeout: 10_000 });
    expect(await error.textContent()).toContain('admin bearer token');
    expect(await page.locator('[data-testid=pattern-row]').count()).toBe(0);
  });
});
