/** Plugin configuration: rules-file `plugins` (field-precise errors) and rule-sync PluginConfig mapping. */
import { PluginConfig_FailureMode, type PluginConfig as RuleSyncPluginConfig } from '@httpmesh/rule-sync';
import { describe, expect, test } from 'vitest';
import { DEFAULT_PLUGIN_TIMEOUT_MS, pluginSpecFromResource, validatePlugins } from '../src/plugins.js';
import { parseRules } from '../src/rules.js';

const ok = { name: 'p1', command: 'node', order: 1, failureMode: 'open' };

describe('rules file plugins', () => {
  test('a valid list is typed, defaulted (timeout 200 ms) and relative paths resolve against the rules file', () => {
    const doc = parseRules(
      [
        'plugins:',
        '  - { name: auth, command: ./bin/auth, args: [--fast], env: { K: v }, cwd: plugins, order: 2, failureMode: closed, hosts: ["*.example.com"], patterns: ["/v1/*rest"] }',
        '  - { name: audit, address: unix:/run/audit.sock, order: 1, timeoutMs: 50, failureMode: open }',
        '',
      ].join('\n'),
      '/etc/httpmesh/rules.yaml',
    );
    expect(doc.plugins).toEqual([
      {
        name: 'auth',
        command: '/etc/httpmesh/bin/auth',
        args: ['--fast'],
        env: { K: 'v' },
        cwd: '/etc/httpmesh/plugins',
        hosts: ['*.example.com'],
        patterns: ['/v1/*rest'],
        order: 2,
        timeoutMs: DEFAULT_PLUGIN_TIMEOUT_MS,
        failureMode: 'closed',
      },
      { name: 'audit', address: 'unix:/run/audit.sock', order: 1, timeoutMs: 50, failureMode: 'open' },
    ]);
    expect(parseRules('routes: []\n').plugins).toEqual([]);
  });

  test.each([
    [{ plugins: {} }, 'plugins', 'expected a list'],
    [{ plugins: ['x'] }, 'plugins[0]', 'expected a mapping'],
    [{ plugins: [{ ...ok, name: 'Bad Name' }] }, 'plugins[0].name', 'matching'],
    [{ plugins: [ok, ok] }, 'plugins[1].name', 'configured twice'],
    [{ plugins: [{ ...ok, address: '/s' }] }, 'plugins[0]', 'exactly one of command'],
    [{ plugins: [{ name: 'p', order: 1, failureMode: 'open' }] }, 'plugins[0]', 'exactly one of command'],
    [{ plugins: [{ ...ok, command: '' }] }, 'plugins[0].command', 'non-empty'],
    [{ plugins: [{ ...ok, args: [1] }] }, 'plugins[0].args[0]', 'non-empty string'],
    [{ plugins: [{ ...ok, env: { A: 1 } }] }, 'plugins[0].env.A', 'expected a string'],
    [
      { plugins: [{ name: 'p', address: 'nohost', order: 1, failureMode: 'open' }] },
      'plugins[0].address',
      'unix:/path',
    ],
    [
      { plugins: [{ name: 'p', address: 'h:99999', order: 1, failureMode: 'open' }] },
      'plugins[0].address',
      'host:port',
    ],
    [
      { plugins: [{ name: 'p', address: '/s', args: [], order: 1, failureMode: 'open' }] },
      'plugins[0].args',
      'only with command',
    ],
    [{ plugins: [{ ...ok, order: 1.5 }] }, 'plugins[0].order', 'integer'],
    [{ plugins: [{ ...ok, timeoutMs: 0 }] }, 'plugins[0].timeoutMs', '(0, 60000]'],
    [{ plugins: [{ ...ok, timeoutMs: 'fast' }] }, 'plugins[0].timeoutMs', '(0, 60000]'],
    [{ plugins: [{ ...ok, failureMode: 'sometimes' }] }, 'plugins[0].failureMode', 'open or closed'],
    [{ plugins: [{ ...ok, patterns: ['v1/*'] }] }, 'plugins[0].patterns[0]', 'starting with /'],
    [{ plugins: [{ ...ok, patterns: ['/v1/*'] }] }, 'plugins[0].patterns', 'HTTPMESH_PATTERN_INVALID'],
    [{ plugins: [{ ...ok, hosts: ['a b'] }] }, 'plugins[0].hosts[0]', 'host name'],
    [{ plugins: [{ ...ok, phases: ['x'] }] }, 'plugins[0].phases', 'unknown field'],
  ])('%j is rejected at %s', (doc, field, message) => {
    const text = JSON.stringify(doc); // JSON is YAML
    expect(() => parseRules(text, '/r.yaml')).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_SIDECAR_RULES_INVALID', field }),
    );
    expect(() => parseRules(text, '/r.yaml')).toThrow(message);
  });

  test('validatePlugins treats a missing list as none', () => {
    expect(validatePlugins(undefined, 'x')).toEqual([]);
    expect(validatePlugins(null, 'x')).toEqual([]);
  });
});

describe('rule-sync PluginConfig', () => {
  const base: RuleSyncPluginConfig = {
    name: 'authz',
    address: 'unix:/run/authz.sock',
    phases: [],
    hosts: [],
    patterns: [],
    order: 5,
    timeoutMs: 0,
    failureMode: PluginConfig_FailureMode.FAILURE_MODE_FAIL_CLOSED,
  };

  test('enum and timeout_ms = 0 map to the sidecar defaults; empty lists mean all', () => {
    expect(pluginSpecFromResource(base)).toEqual({
      name: 'authz',
      address: 'unix:/run/authz.sock',
      order: 5,
      timeoutMs: 200,
      failureMode: 'closed',
    });
    expect(
      pluginSpecFromResource({
        ...base,
        failureMode: PluginConfig_FailureMode.FAILURE_MODE_FAIL_OPEN,
        timeoutMs: 75,
        hosts: ['api.test'],
        patterns: ['/v1/*rest'],
      }),
    ).toEqual({
      name: 'authz',
      address: 'unix:/run/authz.sock',
      order: 5,
      timeoutMs: 75,
      failureMode: 'open',
      hosts: ['api.test'],
      patterns: ['/v1/*rest'],
    });
  });

  test.each([
    [{ failureMode: PluginConfig_FailureMode.FAILURE_MODE_UNSPECIFIED }, 'plugins[0].failureMode'],
    [{ failureMode: PluginConfig_FailureMode.UNRECOGNIZED }, 'plugins[0].failureMode'],
    [{ address: '' }, 'plugins[0].address'],
    [{ name: 'UPPER' }, 'plugins[0].name'],
    [{ timeoutMs: 120_000 }, 'plugins[0].timeoutMs'],
  ])('malformed %j is rejected at %s', (change, field) => {
    expect(() => pluginSpecFromResource({ ...base, ...change })).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_SIDECAR_RULES_INVALID', field }),
    );
  });
});
