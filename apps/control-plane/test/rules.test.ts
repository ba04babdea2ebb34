import { describe, expect, test } from 'vitest';
import { compileRule, RuleValidationError } from '../src/index.js';
import type { ValidationIssue } from '../src/index.js';

function issuesOf(kind: string, name: unknown, spec: unknown): ValidationIssue[] {
  try {
    compileRule(kind, name, spec);
  } catch (err) {
    if (err instanceof RuleValidationError) return [...err.issues];
    throw err;
  }
  return [];
}

describe('compileRule', () => {
  test('valid documents of every kind compile to rule-sync resources', () => {
    const intercept = compileRule('InterceptRule', 'partner', {
      domain: '*.partner.com',
      action: 'PASSTHROUGH',
    });
    expect(intercept.resource?.body).toMatchObject({
      $case: 'interceptRule',
      value: { domain: '*.partner.com', action: 2 },
    });
    const routes = compileRule('RouteSet', 'payments', {
      services: ['checkout'],
      host: 'payments.example.com',
      routes: [{ pattern: '/orders/:id', methods: ['GET'] }, { pattern: '/files/*path' }],
    });
    expect(routes.services).toEqual(['checkout']);
    expect(routes.resource?.body).toMatchObject({
      $case: 'routeSet',
      value: {
        routes: [
          { pattern: '/orders/:id', methods: ['GET'] },
          { pattern: '/files/*path', methods: [] },
        ],
      },
    });
    const policy = compileRule('Policy', 'timeouts', {
      host: 'a.example.com',
      routePattern: '/orders/:id',
      timeoutMs: 500,
      retries: { maxAttempts: 3, retryOn: ['5xx'] },
      rateLimit: { requestsPerSecond: 10, burst: 20 },
    });
    expect(policy.resource?.body).toMatchObject({
      $case: 'policy',
      value: { timeoutMs: 500, retries: { maxAttempts: 3 } },
    });
    const plugin = compileRule('PluginConfig', 'authz', {
      address: 'unix:/run/authz.sock',
      phases: ['REQUEST_HEADERS'],
      failureMode: 'FAIL_CLOSED',
    });
    expect(plugin.resource?.body).toMatchObject({
      $case: 'pluginConfig',
      value: { phases: [1], failureMode: 2 },
    });
    const alert = compileRule('AlertRule', 'orders-errors', {
      metric: 'errorRatio',
      service: 'payments',
      route: '/orders/:id',
      above: 0.05,
      forSeconds: 60,
    });
    expect(alert.resource).toBeUndefined();
    expect(alert.alert).toMatchObject({
      metric: 'errorRatio',
      above: 0.05,
      forSeconds: 60,
      windowSeconds: 60,
    });
  });

  test('answers with the exact field and reason', () => {
    expect(
      issuesOf('RouteSet', 'r', {
        host: 'a.example.com',
        routes: [{ pattern: '/ok' }, { pattern: '/bad/:' }],
      }),
    ).toEqual([{ field: 'spec.routes[1].pattern', reason: expect.stringMatching(/^HTTPMESH_PATTERN_/) }]);
    expect(issuesOf('RouteSet', 'r', { routes: [{ pattern: 'no-slash' }] })).toEqual([
      { field: 'spec.routes[0].pattern', reason: 'must start with "/"' },
    ]);
    expect(issuesOf('RouteSet', 'r', { routes: [{ pattern: '/x', methods: ['get'] }] })).toEqual([
      { field: 'spec.routes[0].methods[0]', reason: '"get" is not an upper-case HTTP method' },
    ]);
    expect(
      issuesOf('InterceptRule', 'i', { domain: 'Bad Host', action: 'MAYBE' }).map((i) => i.field),
    ).toEqual(['spec.domain', 'spec.action']);
    expect(issuesOf('Policy', 'p', { rateLimit: { requestsPerSecond: 0 } })).toEqual([
      { field: 'spec.rateLimit.requestsPerSecond', reason: 'must be > 0' },
    ]);
    expect(issuesOf('Policy', 'p', { timeoutMs: -1 })[0]?.field).toBe('spec.timeoutMs');
    expect(
      issuesOf('PluginConfig', 'x', { address: 'nowhere', phases: ['SOMETIMES'] }).map((i) => i.field),
    ).toEqual(['spec.address', 'spec.phases[0]']);
    expect(issuesOf('AlertRule', 'a', { metric: 'errorRatio', above: 5 })).toEqual([
      { field: 'spec.above', reason: 'an error ratio threshold must be within 0..1' },
    ]);
    expect(issuesOf('RouteSet', 'r', { routes: [{ pattern: '/x' }], colour: 'red' })).toEqual([
      { field: 'spec.colour', reason: expect.stringContaining('unknown field') },
    ]);
  });

  test('conflicting patterns in one RouteSet are reported on the pattern', () => {
    const issues = issuesOf('RouteSet', 'r', { routes: [{ pattern: '/a/:x' }, { pattern: '/a/:y' }] });
    expect(issues).toHaveLength(1);
    expect(issues[0]?.field).toMatch(/^spec\.routes\[[01]\]\.pattern$/);
    expect(issues[0]?.reason).toMatch(/^HTTPMESH_PATTERN_/);
  });

  test('malformed documents: unknown kind, bad name, non-object spec, wrong types', () => {
    expect(issuesOf('Gateway', 'x', {})).toEqual([
      { field: 'kind', reason: expect.stringContaining('InterceptRule') },
    ]);
    expect(issuesOf('RouteSet', 'Bad Name!', { routes: [{ pattern: '/x' }] })[0]?.field).toBe('name');
    expect(issuesOf('RouteSet', 42, { routes: [{ pattern: '/x' }] })[0]?.field).toBe('name');
    expect(issuesOf('RouteSet', 'r', 'not an object')).toEqual([
      { field: 'spec', reason: 'must be an object' },
    ]);
    expect(issuesOf('RouteSet', 'r', [1, 2])).toEqual([{ field: 'spec', reason: 'must be an object' }]);
    expect(issuesOf('RouteSet', 'r', { routes: 'x' })).toEqual([
      { field: 'spec.routes', reason: 'must be a non-empty array' },
    ]);
    expect(issuesOf('RouteSet', 'r', { routes: [null] })).toEqual([
      { field: 'spec.routes[0]', reason: 'must be an object' },
    ]);
    expect(issuesOf('RouteSet', 'r', { routes: [{ pattern: '/x' }], services: [1] })).toEqual([
      { field: 'spec.services[0]', reason: 'must be a non-empty string' },
    ]);
  });
});
