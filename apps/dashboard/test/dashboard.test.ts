import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { dashboardAssetsDir } from '../src/index.js';
import { tokenFromFragment } from '../web/api.js';
import { formatLatency, formatPercent, formatRate, formatTime, shortVersion } from '../web/view.js';

describe('dashboardAssetsDir', () => {
  test('points at the Vite build: index.html referencing hashed assets that exist', () => {
    const dir = dashboardAssetsDir();
    const html = readFileSync(join(dir, 'index.html'), 'utf8');
    expect(html).toContain('<title>httpmesh dashboard</title>');
    const assets = [...html.matchAll(/(?:src|href)="\.\/(assets\/[^"]+)"/g)].map((m) => m[1] ?? '');
    expect(assets.some((a) => a.endsWith('.js'))).toBe(true);
    expect(assets.some((a) => a.endsWith('.css'))).toBe(true);
    for (const asset of assets) expect(existsSync(join(dir, asset)), asset).toBe(true);
  });
});

describe('tokenFromFragment', () => {
  test.each([
    ['#token=abc', 'abc'],
    ['token=abc', 'abc'],
    ['#view=rules&token=a%2Bb', 'a+b'],
    ['', undefined],
    ['#', undefined],
    ['#token=', undefined],
    ['#tokens=abc', undefined],
    ['#%%%token=abc', undefined],
  ])('%s -> %s', (hash, token) => {
    expect(tokenFromFragment(hash)).toBe(token);
  });
});

describe('formatting', () => {
  test('latency in seconds is shown in ms or s; no data is a dash', () => {
    expect(formatLatency(null)).toBe('–');
    expect(formatLatency(0.0005)).toBe('0.50 ms');
    expect(formatLatency(0.0225)).toBe('22.5 ms');
    expect(formatLatency(0.175)).toBe('175 ms');
    expect(formatLatency(2.5)).toBe('2.50 s');
  });

  test('rates switch to per minute when slow', () => {
    expect(formatRate(0)).toBe('0/s');
    expect(formatRate(0.05)).toBe('3.0/min');
    expect(formatRate(4.416)).toBe('4.42/s');
    expect(formatRate(26.54)).toBe('26.5/s');
  });

  test('error ratios as percentages, tiny non-zero ratios stay visible', () => {
    expect(formatPercent(0)).toBe('0.0%');
    expect(formatPercent(4 / 60)).toBe('6.7%');
    expect(formatPercent(0.00001)).toBe('0.001%');
  });

  test('versions are shortened, missing ones and bad dates shown as such', () => {
    expect(shortVersion(null)).toBe('–');
    expect(shortVersion('')).toBe('–');
    expect(shortVersion('abc')).toBe('abc');
    expect(shortVersion('Z2aCSKFgYoH0xyz')).toBe('Z2aCSKFgYoH0…');
    expect(formatTime(undefined)).toBe('–');
    expect(formatTime('not a date')).toBe('not a date');
  });
});
