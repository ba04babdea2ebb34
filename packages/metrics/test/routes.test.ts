import { describe, expect, test } from 'vitest';
import { MeshMetrics, RouteSetError, validateRouteSets } from '../src/index.js';

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
});
