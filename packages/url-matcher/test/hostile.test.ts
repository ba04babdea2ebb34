import { describe, expect, test } from 'vitest';
import { createMatcher } from '../src/index.js';
import type { Matcher } from '../src/index.js';
import { githubRoutes } from './fixtures/github-routes.js';
import { seededRandom } from './helpers.js';

// Hostile request paths: every case asserts "does not throw" and the exact result. Speed is a bench/ concern.
const routes = [
  { pattern: '/users/:id' },
  { pattern: '/users/:id/posts/:postId' },
  { pattern: '/files/*path' },
  { pattern: '/a/b/c' },
  { pattern: '/' },
];

function forEachOptionSet(run: (matcher: Matcher<unknown>, label: string) => void): void {
  const optionSets = [
    {},
    { ignoreTrailingSlash: true },
    { ignoreDuplicateSlashes: true },
    { caseSensitive: false, ignoreTrailingSlash: true, ignoreDuplicateSlashes: true },
  ];
  for (const options of optionSets) run(createMatcher(routes, options), JSON.stringify(options));
}

describe('hostile paths', () => {
  test('a 200 KB segment exceeds maxParamLength and does not match a parameter', () => {
    const huge = 'x'.repeat(200 * 1024);
    forEachOptionSet((m, label) => {
      expect(m.match(`/users/${huge}`), label).toBeNull();
      expect(m.match(`/users/${huge}/posts/1`), label).toBeNull();
      expect(m.match(`/${huge}`), label).toBeNull();
    });
  });

  test('a 200 KB path is taken whole by a wildcard', () => {
    const huge = 'y'.repeat(200 * 1024);
    forEachOptionSet((m, label) => {
      const found = m.match(`/files/${huge}`);
      expect(found?.pattern, label).toBe('/files/*path');
      expect(found?.params['path'], label).toHaveLength(huge.length);
    });
  });

  test('20,000 segments', () => {
    const deep = '/a'.repeat(20_000);
    forEachOptionSet((m, label) => {
      expect(m.match(deep), label).toBeNull();
      expect(m.match(`/users/1${deep}`), label).toBeNull();
      const found = m.match(`/files${deep}`);
      expect(found?.params['path']?.split('/'), label).toHaveLength(20_000);
    });
  });

  test('200 KB of slashes', () => {
    const slashes = '/'.repeat(200 * 1024);
    expect(createMatcher(routes).match(slashes)).toBeNull();
    expect(createMatcher(routes, { ignoreDuplicateSlashes: true }).match(slashes)?.pattern).toBe('/');
    expect(
      createMatcher(routes, { ignoreDuplicateSlashes: true }).match(`${slashes}a${slashes}b${slashes}c`)
        ?.pattern,
    ).toBe('/a/b/c');
  });

  test('NUL bytes and control characters are ordinary characters', () => {
    forEachOptionSet((m, label) => {
      expect(m.match('/users/\u0000')?.params, label).toEqual({ id: '\u0000' });
      expect(m.match('/users/%00')?.params, label).toEqual({ id: '\u0000' });
      expect(m.match('/a/b\u0000/c'), label).toBeNull();
      expect(m.match('/\u0000'), label).toBeNull();
      expect(m.match('/users/\r\n\t/posts/\u0001')?.params, label).toEqual({
        id: '\r\n\t',
        postId: '\u0001',
      });
    });
  });

  test('200 KB of malformed escapes', () => {
    const bad = '%'.repeat(100 * 1024) + '%zz'.repeat(30 * 1024);
    forEachOptionSet((m, label) => {
      expect(m.match(`/users/${bad}`), label).toBeNull();
      expect(m.match(`/files/${bad}/${bad}`)?.params['path'], label).toBe(`${bad}/${bad}`);
    });
    const loose = createMatcher(routes, { maxParamLength: Number.POSITIVE_INFINITY });
    expect(loose.match(`/users/${bad}`)?.params).toEqual({ id: bad });
  });

  test('lone surrogates and invalid UTF-8 escapes', () => {
    forEachOptionSet((m, label) => {
      expect(m.match('/users/\ud800')?.params, label).toEqual({ id: '\ud800' });
      expect(m.match('/users/%ED%A0%80')?.params, label).toEqual({ id: '%ED%A0%80' });
      expect(m.match('/users/%C0%AF')?.params, label).toEqual({ id: '%C0%AF' });
    });
  });

  test('inputs that are not origin-form paths return null', () => {
    forEachOptionSet((m, label) => {
      for (const input of ['', 'users/1', '*', 'http://h/users/1', '?/users/1', '#/']) {
        expect(m.match(input), `${label} ${input}`).toBeNull();
      }
      for (const input of [undefined, null, 42, {}, ['/users/1']]) {
        expect(m.match(input as unknown as string), label).toBeNull();
      }
    });
  });

  test('odd method and host arguments never throw', () => {
    const m = createMatcher([{ pattern: '/h', host: '*.x.test', methods: ['GET'] }]);
    for (const host of [
      '',
      ':',
      '[',
      ']',
      '[::1',
      '.',
      '..x.test',
      'a.x.test:99999:1',
      'ä.x.test',
      '\u0000',
    ]) {
      expect(() => m.match('/h', 'GET', host)).not.toThrow();
    }
    expect(m.match('/h', 'GET', '..x.test')?.pattern).toBe('/h');
    expect(m.match('/h', 'GET', '')).toBeNull();
    expect(m.match('/h', '', 'a.x.test')).toBeNull();
    expect(m.match('/h', 42 as unknown as string, 'a.x.test')?.pattern).toBe('/h');
  });

  test('random bytes against the GitHub route set never throw', () => {
    const m = createMatcher(
      githubRoutes.map((line) => {
        const [method, pattern] = line.split(' ') as [string, string];
        return { pattern, methods: [method] };
      }),
    );
    const random = seededRandom(99);
    const alphabet = '/%?#:*.{}()\\\u0000\uffffaZ09-_~ \ud800';
    let matched = 0;
    for (let i = 0; i < 3000; i++) {
      let path = '/';
      const length = Math.floor(random() * 60);
      for (let j = 0; j < length; j++) path += alphabet[Math.floor(random() * alphabet.length)];
      const found = m.match(path, 'GET');
      if (found !== null) {
        matched++;
        expect(typeof found.pattern).toBe('string');
      }
    }
    // `/:...` is not a GitHub route, but `/` is: a few random paths (like `/?...` or `/#...`) do match.
    expect(matched).toBeGreaterThan(0);
  });
});
