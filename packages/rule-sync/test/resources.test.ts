import { describe, expect, test } from 'vitest';
import {
  checkResource,
  contentVersion,
  groupKey,
  InterceptRule_Action,
  PluginConfig_FailureMode,
  PluginConfig_Phase,
  type Resource,
  Resource as ResourceCodec,
  ResourceType,
  systemVersionOf,
} from '../src/index.js';
import { INTERCEPT, interceptRule, ROUTES, routeSet, waitFor } from './helpers.js';
import { GROUP, makeClient, startServer } from './setup.js';

const POLICY = ResourceType.RESOURCE_TYPE_POLICY;
const PLUGIN = ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG;

const policy: Resource = {
  name: 'orders-limits',
  version: '',
  body: {
    $case: 'policy',
    value: {
      name: 'orders-limits',
      host: 'api.partner.com',
      routePattern: '/orders/:id',
      timeoutMs: 2_000,
      retries: { maxAttempts: 3, perTryTimeoutMs: 500, retryOn: ['5xx', 'reset'] },
      rateLimit: { requestsPerSecond: 50, burst: 100 },
    },
  },
};

const plugin: Resource = {
  name: 'auth',
  version: '',
  body: {
    $case: 'pluginConfig',
    value: {
      name: 'auth',
      address: 'unix:/run/httpmesh/auth.sock',
      phases: [PluginConfig_Phase.PHASE_REQUEST_HEADERS],
      hosts: ['*.partner.com'],
      patterns: ['/orders/:id'],
      order: 10,
      timeoutMs: 50,
      failureMode: PluginConfig_FailureMode.FAILURE_MODE_FAIL_CLOSED,
    },
  },
};

describe('resource model', () => {
  test('upstream_tls_verify is absent unless the rule says so, and false survives the wire', () => {
    const absent = ResourceCodec.decode(ResourceCodec.encode(interceptRule('a', 'a.com')).finish());
    expect(absent.body?.$case === 'interceptRule' && absent.body.value.upstreamTlsVerify).toBeUndefined();
    const off: Resource = {
      name: 'b',
      version: '',
      body: {
        $case: 'interceptRule',
        value: {
          name: 'b',
          domain: 'b.com',
          action: InterceptRule_Action.ACTION_PASSTHROUGH,
          upstreamTlsVerify: false,
        },
      },
    };
    const decoded = ResourceCodec.decode(ResourceCodec.encode(off).finish());
    expect(decoded.body?.$case === 'interceptRule' && decoded.body.value.upstreamTlsVerify).toBe(false);
  });

  const invalid: [string, ResourceType, Resource, RegExp][] = [
    [
      'an unspecified action',
      INTERCEPT,
      {
        ...interceptRule('a', 'a.com'),
        body: {
          $case: 'interceptRule',
          value: {
            name: 'a',
            domain: 'a.com',
            action: InterceptRule_Action.ACTION_UNSPECIFIED,
            upstreamTlsVerify: undefined,
          },
        },
      },
      /INTERCEPT or PASSTHROUGH/,
    ],
    ['a double wildcard', INTERCEPT, interceptRule('a', '*.*.com'), /invalid domain/],
    ['an upper-case host', INTERCEPT, interceptRule('a', 'API.com'), /invalid domain/],
    [
      'a lower-case method',
      ROUTES,
      {
        ...routeSet('r', '', ['/x']),
        body: {
          $case: 'routeSet',
          value: { name: 'r', host: '', routes: [{ pattern: '/x', methods: ['get'] }] },
        },
      },
      /invalid method "get"/,
    ],
    ['a relative pattern', ROUTES, routeSet('r', 'a.com', ['orders']), /must start with "\//],
    [
      'a zero rate limit',
      POLICY,
      {
        ...policy,
        body: {
          $case: 'policy',
          value: {
            ...(policy.body?.$case === 'policy' ? policy.body.value : ({} as never)),
            rateLimit: { requestsPerSecond: 0, burst: 1 },
          },
        },
      },
      /rate limit/,
    ],
    [
      'a bad plugin address',
      PLUGIN,
      {
        ...plugin,
        body: {
          $case: 'pluginConfig',
          value: {
            ...(plugin.body?.$case === 'pluginConfig' ? plugin.body.value : ({} as never)),
            address: 'auth.sock',
          },
        },
      },
      /unix:\/path or host:port/,
    ],
    [
      'no failure mode',
      PLUGIN,
      {
        ...plugin,
        body: {
          $case: 'pluginConfig',
          value: {
            ...(plugin.body?.$case === 'pluginConfig' ? plugin.body.value : ({} as never)),
            failureMode: PluginConfig_FailureMode.FAILURE_MODE_UNSPECIFIED,
          },
        },
      },
      /FAIL_OPEN or FAIL_CLOSED/,
    ],
    ['a body of another type', POLICY, plugin, /has a pluginConfig body but was sent as Policy/],
    ['an empty name', POLICY, { ...policy, name: '' }, /name is empty/],
  ];
  test.each(invalid)('checkResource rejects %s', (_label, type, resource, reason) => {
    expect(checkResource(type, resource)).toMatch(reason);
  });

  test('checkResource accepts well-formed resources of every type', () => {
    expect(checkResource(INTERCEPT, interceptRule('a', '*.partner.com'))).toBeUndefined();
    expect(checkResource(ROUTES, routeSet('r', '', ['/orders/:id']))).toBeUndefined();
    expect(checkResource(POLICY, policy)).toBeUndefined();
    expect(checkResource(PLUGIN, plugin)).toBeUndefined();
    expect(
      checkResource(PLUGIN, {
        ...plugin,
        body: {
          $case: 'pluginConfig',
          value: {
            ...(plugin.body?.$case === 'pluginConfig' ? plugin.body.value : ({} as never)),
            address: '127.0.0.1:9000',
          },
        },
      }),
    ).toBeUndefined();
  });

  test('versions are content hashes; the system version ignores order', () => {
    expect(contentVersion(interceptRule('a', 'a.com'))).toBe(contentVersion(interceptRule('a', 'a.com')));
    expect(contentVersion(interceptRule('a', 'a.com'))).not.toBe(contentVersion(interceptRule('a', 'b.com')));
    expect(contentVersion(interceptRule('a', 'a.com', 'v9'))).toBe(
      contentVersion(interceptRule('a', 'a.com')),
    );
    expect(
      systemVersionOf([
        ['a', '1'],
        ['b', '2'],
      ]),
    ).toBe(
      systemVersionOf([
        ['b', '2'],
        ['a', '1'],
      ]),
    );
    expect(
      systemVersionOf([
        ['a', '1'],
        ['b', '2'],
      ]),
    ).not.toBe(
      systemVersionOf([
        ['a', '1'],
        ['b', '3'],
      ]),
    );
  });

  test('group keys sort labels', () => {
    expect(groupKey('orders', { zone: 'a', env: 'prod' })).toBe('orders{env=prod,zone=a}');
    expect(groupKey('orders')).toBe('orders{}');
  });
});

describe('groups', () => {
  test('each sidecar group gets its own snapshot; Policy and PluginConfig travel typed', async () => {
    const { server, address } = await startServer();
    server.setResources(GROUP, [policy, plugin]);
    server.setResources({ service: 'orders', labels: { env: 'prod' } }, [
      interceptRule('p', 'prod.partner.com'),
    ]);
    server.flush();
    const test = makeClient(address, { subscriptions: [POLICY, PLUGIN, INTERCEPT] });
    const prod = makeClient(address, {
      node: { id: 'node-prod', service: 'orders', labels: { env: 'prod' } },
      subscriptions: [POLICY, PLUGIN, INTERCEPT],
    });
    await test.start();
    await prod.start();
    await waitFor(() => test.version(PLUGIN) !== undefined && prod.version(INTERCEPT) !== undefined);
    await waitFor(() => test.version(INTERCEPT) !== undefined && prod.version(PLUGIN) !== undefined);
    expect(test.resources(POLICY)).toEqual([{ ...policy, version: contentVersion(policy) }]);
    expect(test.resources(PLUGIN)).toEqual([{ ...plugin, version: contentVersion(plugin) }]);
    expect(test.resources(INTERCEPT)).toEqual([]);
    expect(prod.resources(INTERCEPT).map((r) => r.name)).toEqual(['p']);
    expect(prod.resources(POLICY)).toEqual([]);
    expect(server.sidecar('node-prod')?.group).toBe('orders{env=prod}');
  });
});
