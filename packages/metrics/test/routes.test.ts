import { describe, expect, test } from 'vitest';
import { MeshMetrics, RoutePatternError, RouteSetError, validateRouteSets } from '../src/index.js';

function rejection(input: unknown): RouteSetError {
  try {
    validateRouteSets(input);
  } catch (err) {
    if (err instanceof RouteSetError) return err;
    throw err;
  }
  throw new Error('expected validateRouteSets to throw');
}

describe('validateRouteSets', () => {
  test('accepts control-plane RouteSet documents, normalises host case, ignores extra fields', () => {
    const input = [
      {
        host: 'Payments.Partner.com',
        routes: [
          { pattern: '/orders/:id', methods: ['GET', 'PUT'] },
          { pattern: '/health', note: 'x' },
        ],
        metadata: { name: 'payments', generation: 3 },
      },
      { host: '*.shop.example', routes: [] },
    ];
    expect(validateRouteSets(input)).toEqual([
      {
        host: 'payments.partner.com',
        routes: [{ pattern: '/orders/:id', methods: ['GET', 'PUT'] }, { pattern: '/health' }],
      },
      { host: '*.shop.example', routes: [] },
    ]);
    // A JSON round trip (as over the wire) is accepted the same way.
    expect(validateRouteSets(JSON.parse(JSON.stringify(input)))).toHaveLength(2);
  });

  const malformed: [string, unknown, string, RegExp][] = [
    ['not an array', { host: 'a.com', routes: [] }, '', /expected an array/],
    ['null document', [null], '[0]', /expected an object, got null/],
    ['missing host', [{ routes: [] }], '[0].host', /non-empty string/],
    ['host with port', [{ host: 'a.com:8080', routes: [] }], '[0].host', /not a host name/],
    ['host with scheme', [{ host: 'https://a.com', routes: [] }], '[0].host', /not a host name/],
    ['bare wildcard', [{ host: '*', routes: [] }], '[0].host', /not a host name/],
    ['inner wildcard', [{ host: 'a.*.com', routes: [] }], '[0].host', /not a host name/],
    [
      'duplicate host',
      [
        { host: 'a.com', routes: [] },
        { host: 'A.com', routes: [] },
      ],
      '[1].host',
      /duplicate/,
    ],
    ['routes not array', [{ host: 'a.com', routes: 'all' }], '[0].routes', /expected an array/],
    ['route not object', [{ host: 'a.com', routes: ['/x'] }], '[0].routes[0]', /expected an object/],
    ['pattern missing', [{ host: 'a.com', routes: [{}] }], '[0].routes[0].pattern', /starting with "\/"/],
    [
      'pattern relative',
      [{ host: 'a.com', routes: [{ pattern: 'x/y' }] }],
      '[0].routes[0].pattern',
      /starting/,
    ],
    [
      'methods empty',
      [{ host: 'a.com', routes: [{ pattern: '/', methods: [] }] }],
      '[0].routes[0].methods',
      /non-empty/,
    ],
    [
      'method not token',
      [{ host: 'a.com', routes: [{ pattern: '/', methods: ['GE T'] }] }],
      '[0].routes[0].methods[0]',
      /method token/,
    ],
    [
      'method not string',
      [{ host: 'a.com', routes: [{ pattern: '/', methods: [1] }] }],
      '[0].routes[0].methods[0]',
      /method token/,
    ],
  ];
  test.each(malformed)('rejects %s with code and path', (_name, input, path, message) => {
    const err = rejection(input);
    expect(err.code).toBe('HTTPMESH_METRICS_ROUTESET_INVALID');
    expect(err.name).toBe('RouteSetError');
    expect(err.path).toBe(path);
    expect(err.message).toMatch(message);
  });

  test('MeshMetrics validates its initial routes the same way', () => {
    expect(() => new MeshMetrics({ routeSets: [{ host: 'a.com' }] })).toThrow(RouteSetError);
  });

  test('patterns the url-matcher rejects surface as RoutePatternError with the matcher code', () => {
    const metrics = new MeshMetrics({ routeSets: [{ host: 'a.com', routes: [{ pattern: '/ok/:id' }] }] });
    const cases: [unknown, string][] = [
      [[{ host: 'a.com', routes: [{ pattern: '/orders/:' }] }], 'HTTPMESH_PATTERN_INVALID'],
      [[{ host: 'a.com', routes: [{ pattern: '/orders/(x' }] }], 'HTTPMESH_PATTERN_INVALID'],
      [
        [{ host: 'a.com', routes: [{ pattern: '/o/:id' }, { pattern: '/o/:other' }] }],
        'HTTPMESH_PATTERN_CONFLICT',
      ],
    ];
    for (const [routeSets, matcherCode] of cases) {
      let caught: unknown;
      try {
        metrics.setRoutes(routeSets);
      } catch (err) {
        caught = err;
      }
      expect(caught).toBeInstanceOf(RoutePatternError);
      expect((caught as RoutePatternError).code).toBe('HTTPMESH_METRICS_ROUTE_PATTERN_INVALID');
      expect((caught as RoutePatternError).matcherCode).toBe(matcherCode);
    }
    // The previous table is still in place.
    metrics.record({
      direction: 'inbound',
      method: 'GET',
      host: 'a.com',
      path: '/ok/1',
      statusCode: 200,
      durationMs: 1,
    });
    expect(metrics.snapshot().series[0]?.route).toBe('/ok/:id');
    // The same pattern on different hosts is not a conflict.
    expect(() =>
      metrics.setRoutes([
        { host: 'a.com', routes: [{ pattern: '/o/:id' }] },
        { host: 'b.com', routes: [{ pattern: '/o/:id' }] },
      ]),
    ).not.toThrow();
  });
});
