import { describe, expect, test } from 'vitest';
import { createMatcher, MatcherOptionsError, PatternError } from '../src/index.js';
import type { MatcherOptions, RouteSpec } from '../src/index.js';

function buildError(routes: RouteSpec<unknown>[], options?: MatcherOptions): PatternError {
  try {
    createMatcher(routes, options);
  } catch (error) {
    if (error instanceof PatternError) return error;
    throw error;
  }
  throw new Error('expected createMatcher to throw a PatternError');
}

describe('invalid patterns report the position of the problem', () => {
  const cases: Array<[pattern: string, position: number]> = [
    ['/users/:', 8],
    ['/users/:id(\\d+)', 10],
    ['/a/{b', 5],
    ['/a/b}', 4],
    ['/a?', 2],
    ['/users/:id+', 10],
    ['/x/\\', 4],
    ['/:"unterminated', 2],
  ];
  for (const [pattern, position] of cases) {
    test(pattern, () => {
      const error = buildError([{ pattern: '/fine' }, { pattern }]);
      expect(error).toBeInstanceOf(PatternError);
      expect(error.name).toBe('PatternError');
      expect(error.code).toBe('HTTPMESH_PATTERN_INVALID');
      expect(error.pattern).toBe(pattern);
      expect(error.position).toBe(position);
      expect(error.message).toContain(`position ${position}`);
    });
  }

  test('positions are UTF-16 offsets even after astral characters', () => {
    const pattern = '/😀é/(';
    const error = buildError([{ pattern }]);
    expect(error.position).toBe(pattern.indexOf('('));
  });

  test('two parameters with no text between them', () => {
    const error = buildError([{ pattern: '/:a:b' }]);
    expect(error.code).toBe('HTTPMESH_PATTERN_INVALID');
    expect(error.position).toBe(3);
  });

  test('the same parameter name twice', () => {
    const error = buildError([{ pattern: '/x/:id/y/:id' }]);
    expect(error.code).toBe('HTTPMESH_PATTERN_INVALID');
    expect(error.position).toBe(9);
    expect(error.message).toContain('"id"');
  });
});

describe('valid path-to-regexp syntax the trie does not support', () => {
  const cases: Array<[pattern: string, position: number]> = [
    ['users/:id', 0],
    [':id', 0],
    ['/files/*path/edit', 7],
    ['/files/x*path', 8],
    ['/:__proto__', 1],
  ];
  for (const [pattern, position] of cases) {
    test(pattern, () => {
      const error = buildError([{ pattern }]);
      expect(error.code).toBe('HTTPMESH_PATTERN_UNSUPPORTED');
      expect(error.position).toBe(position);
    });
  }

  test('more than 256 optional-group alternatives', () => {
    const pattern = `/a${'{/x}'.repeat(9)}`;
    expect(buildError([{ pattern }]).code).toBe('HTTPMESH_PATTERN_UNSUPPORTED');
    expect(() => createMatcher([{ pattern: `/a${'{/x}'.repeat(8)}` }])).not.toThrow();
  });

  test('more than 1000 segments', () => {
    expect(buildError([{ pattern: '/a'.repeat(1001) }]).code).toBe('HTTPMESH_PATTERN_UNSUPPORTED');
    expect(createMatcher([{ pattern: '/a'.repeat(1000) }]).match('/a'.repeat(1000))).not.toBeNull();
  });
});

describe('conflicts: patterns that match exactly the same requests', () => {
  const conflicting: Array<[string, RouteSpec<unknown>, RouteSpec<unknown>]> = [
    ['same shape, other parameter names', { pattern: '/users/:id' }, { pattern: '/users/:name' }],
    ['identical patterns', { pattern: '/a/b' }, { pattern: '/a/b' }],
    ['wildcards', { pattern: '/f/*path' }, { pattern: '/f/*rest' }],
    ['mixed segments', { pattern: '/f/:a.json' }, { pattern: '/f/:b.json' }],
    [
      'overlapping methods',
      { pattern: '/a/:x', methods: ['GET', 'PUT'] },
      { pattern: '/a/:y', methods: ['put'] },
    ],
    ['same host', { pattern: '/a/:x', host: 'h.test' }, { pattern: '/a/:y', host: 'H.test' }],
    ['same wildcard host', { pattern: '/a', host: '*.h.test' }, { pattern: '/a', host: '*.h.test' }],
    ['an optional-group alternative', { pattern: '/a{/:b}' }, { pattern: '/a/:c' }],
    ['static text that decodes the same', { pattern: '/caf%C3%A9' }, { pattern: '/café' }],
  ];
  for (const [name, first, second] of conflicting) {
    test(`${name}, in either order`, () => {
      for (const [a, b] of [
        [first, second],
        [second, first],
      ] as const) {
        const error = buildError([{ pattern: '/unrelated' }, a, b]);
        expect(error.code).toBe('HTTPMESH_PATTERN_CONFLICT');
        expect(error.pattern).toBe(b.pattern);
        expect(error.conflictsWith).toBe(a.pattern);
        expect(error.message).toContain(JSON.stringify(a.pattern));
        expect(error.message).toContain(JSON.stringify(b.pattern));
      }
    });
  }

  test('options that make two patterns equivalent make them conflict', () => {
    expect(buildError([{ pattern: '/A' }, { pattern: '/a' }], { caseSensitive: false }).code).toBe(
      'HTTPMESH_PATTERN_CONFLICT',
    );
    expect(buildError([{ pattern: '/a' }, { pattern: '/a/' }], { ignoreTrailingSlash: true }).code).toBe(
      'HTTPMESH_PATTERN_CONFLICT',
    );
    expect(
      buildError([{ pattern: '/a//b' }, { pattern: '/a/b' }], { ignoreDuplicateSlashes: true }).code,
    ).toBe('HTTPMESH_PATTERN_CONFLICT');
    expect(() => createMatcher([{ pattern: '/A' }, { pattern: '/a' }, { pattern: '/a/' }])).not.toThrow();
  });

  test('routes that only overlap in part are allowed', () => {
    expect(() =>
      createMatcher([
        { pattern: '/a/:x' },
        { pattern: '/a/:y', methods: ['GET'] },
        { pattern: '/a/:z', methods: ['POST'] },
        { pattern: '/a/:w', host: 'h.test' },
        { pattern: '/a/:v', host: '*.h.test' },
        { pattern: '/a/:u', host: 'h.test', methods: ['GET'] },
        { pattern: '/a/b' },
        { pattern: '/a/*rest' },
        { pattern: '/a/:n.json' },
      ]),
    ).not.toThrow();
  });
});

describe('invalid routes and options', () => {
  const badRoutes: Array<[string, RouteSpec<unknown>]> = [
    ['empty methods', { pattern: '/a', methods: [] }],
    ['a method with a space', { pattern: '/a', methods: ['GE T'] }],
    ['a host with a port', { pattern: '/a', host: 'h.test:8080' }],
    ['a host with a path', { pattern: '/a', host: 'h.test/x' }],
    ['a host with an inner wildcard', { pattern: '/a', host: 'a.*.test' }],
    ['an empty host', { pattern: '/a', host: '' }],
  ];
  for (const [name, route] of badRoutes) {
    test(name, () => {
      const error = buildError([route]);
      expect(error.code).toBe('HTTPMESH_ROUTE_INVALID');
      expect(error.pattern).toBe('/a');
    });
  }

  test('a pattern that is not a string', () => {
    const error = buildError([{ pattern: 42 as unknown as string }]);
    expect(error.code).toBe('HTTPMESH_ROUTE_INVALID');
  });

  for (const maxParamLength of [0, -1, 1.5, Number.NaN]) {
    test(`maxParamLength ${maxParamLength}`, () => {
      expect(() => createMatcher([{ pattern: '/a' }], { maxParamLength })).toThrow(MatcherOptionsError);
      try {
        createMatcher([], { maxParamLength });
      } catch (error) {
        expect((error as MatcherOptionsError).code).toBe('HTTPMESH_MATCHER_OPTIONS_INVALID');
        expect((error as MatcherOptionsError).name).toBe('MatcherOptionsError');
      }
    });
  }

  test('routes that are not an array', () => {
    expect(() => createMatcher('nope' as unknown as RouteSpec<unknown>[])).toThrow(MatcherOptionsError);
  });
});
