/**
 * The dashboard of the running demo in a real headless Chromium: the real `httpmesh-control-plane` and
 * `httpmesh-sidecar` bins started by `startDemo`, demo traffic through the sidecar, and the page showing the
 * sidecar's per-pattern metrics (uploaded by the sidecar itself on the rule-sync stream). Screenshot in
 * .test-results/demo-dashboard.png.
 */
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BrowserContext, chromium } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { type RunningDemo, startDemo } from '../dist/index.js';

const CHROMIUM = '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
const resultsDir = join(dirname(fileURLToPath(import.meta.url)), '..', '.test-results');

describe.skipIf(!haveChromium && process.env['CI'] !== 'true')('demo dashboard in headless Chromium', () => {
  const tmp = mkdtempSync(join(tmpdir(), 'httpmesh-demo-dash-'));
  let demo: RunningDemo;
  let context: BrowserContext;

  beforeAll(async () => {
    demo = await startDemo({ dataDir: join(tmp, 'demo'), httpPort: 0, ratePerSecond: 30 });
    context = await chromium.launchPersistentContext(join(tmp, 'chromium-profile'), {
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
    await demo?.stop();
    rmSync(tmp, { recursive: true, force: true });
  });

  test('shows the real sidecar, its per-pattern metrics for both demo services and the rules', async () => {
    const page = await context.newPage();
    const failures: string[] = [];
    page.on('pageerror', (e) => failures.push(e.message));
    await page.goto(`${demo.dashboardUrl}#token=${demo.adminToken}`);

    await page.locator('[data-testid=service][data-service=storefront]').waitFor({ timeout: 15_000 });
    const requestsOf = async (host: string, pattern: string): Promise<number> => {
      const row = page.locator(`[data-testid=pattern-row][data-pattern="${pattern}"][data-host="${host}"]`);
      if ((await row.count()) === 0) return 0;
      return Number((await row.locator('[data-field=requests]').textContent()) ?? '0');
    };
    for (const [host, pattern] of [
      ['shop.demo.test', 'GET /orders/:id'],
      ['shop.demo.test', 'GET /users/:id/cart'],
      ['payments.demo.test', 'GET /payments/:id'],
      ['payments.demo.test', 'POST /payments'],
    ] as const) {
      await expect.poll(() => requestsOf(host, pattern), { timeout: 20_000 }).toBeGreaterThan(0);
    }
    // Raw ids never become patterns.
    for (const p of await page
      .locator('[data-testid=pattern-row]')
      .evaluateAll((rows) => rows.map((r) => r.getAttribute('data-pattern') ?? ''))) {
      expect(p).not.toMatch(/\/\d/);
    }
    const sidecar = page.locator('[data-testid=sidecar-row][data-sidecar=storefront-demo-1]');
    await sidecar.waitFor({ timeout: 10_000 });
    expect(await sidecar.locator('[data-type=RouteSet] .ok').textContent()).toMatch(/^ACK \S+/);
    expect(await sidecar.locator('[data-type=InterceptRule] .ok').textContent()).toMatch(/^ACK \S+/);
    expect(await page.locator('[data-testid=rule][data-rule="RouteSet/shop"]').count()).toBe(1);
    expect(await page.locator('[data-testid=error]').count()).toBe(0);
    expect(failures).toEqual([]);

    mkdirSync(resultsDir, { recursive: true });
    const file = join(resultsDir, 'demo-dashboard.png');
    await page.screenshot({ path: file, fullPage: true });
    const png = readFileSync(file);
    expect(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(
      true,
    );
  });
});
