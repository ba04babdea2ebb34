import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import {
  loadRulesFile,
  parseRules,
  type RulesDocument,
  RulesFileError,
  RulesFileWatcher,
} from '../src/index.js';

const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-rules-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const GOOD = `
intercept:
  - domain: '*.partner.com'
  - domain: bank.example
    action: passthrough
    upstreamTlsVerify: false
routes:
  - host: shop.test
    patterns:
      - /items/:id
      - { pattern: /orders/:id, methods: [get, POST] }
`;

describe('parseRules', () => {
  test('parses the minimal shape with defaults filled in', () => {
    const rules = parseRules(GOOD, 'r.yaml');
    expect(rules.intercept).toEqual([
      { name: 'intercept-0', domain: '*.partner.com', action: 'intercept', upstreamTlsVerify: true },
      { name: 'intercept-1', domain: 'bank.example', action: 'passthrough', upstreamTlsVerify: false },
    ]);
    expect(rules.routes).toEqual([
      {
        name: 'shop.test',
        host: 'shop.test',
        routes: [
          { pattern: '/items/:id', methods: [] },
          { pattern: '/orders/:id', methods: ['GET', 'POST'] },
        ],
      },
    ]);
    expect(rules.hash).toMatch(/^[0-9a-f]{64}$/);
  });

  test('an empty file is an empty rule set', () => {
    expect(parseRules('', 'r.yaml')).toMatchObject({ intercept: [], routes: [] });
  });

  test.each([
    ['intercept: [unclosed', ''],
    ['- a\n', ''],
    ['extra: 1\n', '.extra'],
    ['intercept: {domain: a.com}\n', 'intercept'],
    ['intercept: [a.com]\n', 'intercept[0]'],
    ['intercept: [{domain: "a.com/x"}]\n', 'intercept[0].domain'],
    ['intercept: [{domain: "*.com"}]\n', 'intercept[0].domain'],
    ['intercept: [{domain: 42}]\n', 'intercept[0].domain'],
    ['intercept: [{domain: a.com, action: drop}]\n', 'intercept[0].action'],
    ['intercept: [{domain: a.com, upstreamTlsVerify: "no"}]\n', 'intercept[0].upstreamTlsVerify'],
    ['intercept: [{domain: a.com, tls: 1}]\n', 'intercept[0].tls'],
    ['routes: [{host: shop.test}]\n', 'routes[0].patterns'],
    ['routes: [{patterns: [/a]}]\n', 'routes[0].host'],
    ['routes: [{host: "shop.test:8080", patterns: [/a]}]\n', 'routes[0].host'],
    ['routes: [{host: shop.test, patterns: []}]\n', 'routes[0].patterns'],
    ['routes: [{host: "shop test", patterns: [/a]}]\n', 'routes[0].host'],
    ['routes: [{host: shop.test, patterns: [/a, items]}]\n', 'routes[0].patterns[1]'],
    [
      'routes: [{host: shop.test, patterns: [{pattern: /a, methods: [G E T]}]}]\n',
      'routes[0].patterns[0].methods',
    ],
    ['routes: [{host: shop.test, patterns: [{pattern: /a, verbs: [GET]}]}]\n', 'routes[0].patterns[0].verbs'],
    ['routes: [{host: shop.test, patterns: ["/items/:"]}]\n', 'routes[0].patterns[0]'],
  ])('%j is rejected at field %j', (text, field) => {
    let error: unknown;
    try {
      parseRules(text, 'r.yaml');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(RulesFileError);
    expect(error).toMatchObject({ code: 'HTTPMESH_SIDECAR_RULES_INVALID', field, path: 'r.yaml' });
  });

  test('a missing file is rejected with the code', async () => {
    await expect(loadRulesFile(join(dir, 'absent.yaml'))).rejects.toMatchObject({
      code: 'HTTPMESH_SIDECAR_RULES_INVALID',
    });
  });
});

/** Resolves with the next value pushed to the returned callback, or rejects after a bounded wait. */
function nextEvent<T>(ms = 5000): { callback: (v: T) => void; next: () => Promise<T> } {
  let waiting: ((v: T) => void) | null = null;
  const queue: T[] = [];
  return {
    callback: (v) => {
      if (waiting) {
        const w = waiting;
        waiting = null;
        w(v);
      } else queue.push(v);
    },
    next: () => {
      const queued = queue.shift();
      if (queued !== undefined) return Promise.resolve(queued);
      return new Promise<T>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no event within deadline')), ms);
        waiting = (v) => {
          clearTimeout(timer);
          resolve(v);
        };
      });
    },
  };
}

describe('RulesFileWatcher', () => {
  test('picks up a change, keeps the last good rules on a malformed edit, recovers after a fix', async () => {
    const path = join(dir, 'watched.yaml');
    writeFileSync(path, GOOD);
    const rules = nextEvent<RulesDocument>();
    const errors = nextEvent<RulesFileError>();
    const watcher = new RulesFileWatcher(path, {
      onRules: rules.callback,
      onError: errors.callback,
      debounceMs: 20,
    });
    try {
      const first = await watcher.start();
      expect(first.intercept.map((r) => r.domain)).toEqual(['*.partner.com', 'bank.example']);

      writeFileSync(path, "intercept:\n  - domain: '*.other.com'\n");
      const second = await rules.next();
      expect(second.intercept.map((r) => r.domain)).toEqual(['*.other.com']);
      expect(watcher.current).toBe(second);

      writeFileSync(path, 'intercept:\n  - domain: "bad domain"\n');
      const error = await errors.next();
      expect(error.field).toBe('intercept[0].domain');
      expect(watcher.current).toBe(second);

      // Editors and config maps replace the file by rename; the directory watch still sees it.
      const tmp = join(dir, '.watched.yaml.tmp');
      writeFileSync(tmp, "intercept:\n  - domain: '*.third.com'\n");
      renameSync(tmp, path);
      const third = await rules.next();
      expect(third.intercept.map((r) => r.domain)).toEqual(['*.third.com']);
    } finally {
      watcher.close();
    }
  });

  test('start() rejects an invalid file', async () => {
    const path = join(dir, 'invalid.yaml');
    writeFileSync(path, 'routes: 3\n');
    const watcher = new RulesFileWatcher(path, { onRules: () => {}, onError: () => {} });
    await expect(watcher.start()).rejects.toMatchObject({
      code: 'HTTPMESH_SIDECAR_RULES_INVALID',
      field: 'routes',
    });
    watcher.close();
  });
});
