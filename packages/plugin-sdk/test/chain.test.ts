import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import {
  definePlugin,
  parsePluginConfig,
  PluginChain,
  PluginClient,
  type PluginConfig,
  type ServingPlugin,
} from '../src/index.js';
import { tempDir } from './helpers.js';

const tmp = tempDir('httpmesh-chain-');
const servers: ServingPlugin[] = [];
const clients = new Map<string, PluginClient>();

beforeAll(async () => {
  // "tagger" appends its name to x-chain; "guard" answers 401 without x-key; "shouter" uppercases bodies.
  const tagger = definePlugin({
    name: 'tagger',
    onRequestHeaders: (ctx) => ({ set: { 'x-chain': `${ctx.header('x-chain') ?? ''}tagger;` } }),
    onResponseHeaders: () => ({ set: { 'x-tagged': 'yes' } }),
  });
  const guard = definePlugin({
    name: 'guard',
    onRequestHeaders: (ctx) =>
      ctx.header('x-key') === 'secret'
        ? { set: { 'x-chain': `${ctx.header('x-chain') ?? ''}guard;` }, remove: ['x-key'] }
        : { respond: { status: 401, headers: { 'www-authenticate': 'ApiKey' }, body: 'no key' } },
  });
  const shouter = definePlugin({
    name: 'shouter',
    onRequestBody: (ctx) => ({ body: ctx.body.toString().toUpperCase() }),
  });
  for (const p of [tagger, guard, shouter]) {
    const s = await p.serve({ socket: join(tmp.dir, `${p.definition.name}.sock`), handleSignals: false });
    servers.push(s);
    clients.set(p.definition.name, await PluginClient.connect(s.address));
  }
});

afterAll(async () => {
  for (const c of clients.values()) c.close();
  await Promise.all(servers.map((s) => s.close()));
  tmp.remove();
});

const configs: PluginConfig[] = [
  {
    name: 'guard',
    order: 20,
    hosts: ['api.example.com', '*.internal.test'],
    patterns: ['/v1/*rest'],
    failureMode: 'closed',
  },
  { name: 'tagger', order: 10, failureMode: 'open' },
  { name: 'shouter', order: 30, patterns: ['/v1/:area/upload'], failureMode: 'open' },
];

function head(path: string, headers: ReadonlyArray<readonly [string, string]>) {
  return { method: 'POST', scheme: 'https', authority: 'api.example.com', path, headers };
}

describe('PluginChain', () => {
  const chain = new PluginChain(configs, (name) => clients.get(name));

  test('selects plugins by host and path pattern, in order', () => {
    expect(chain.select('api.example.com', '/v1/users?x=1').map((c) => c.name)).toEqual(['tagger', 'guard']);
    expect(chain.select('API.example.com', '/v1/a/upload').map((c) => c.name)).toEqual([
      'tagger',
      'guard',
      'shouter',
    ]);
    expect(chain.select('db.internal.test', '/v1/x').map((c) => c.name)).toEqual(['tagger', 'guard']);
    expect(chain.select('internal.test', '/v1/x').map((c) => c.name)).toEqual(['tagger']);
    expect(chain.select('api.example.com', '/v2/users').map((c) => c.name)).toEqual(['tagger']);
    expect(chain.select('other.test', '/v1/a/upload').map((c) => c.name)).toEqual(['tagger', 'shouter']);
  });

  test('patterns use the mesh pattern language (url-matcher, path-to-regexp v8)', () => {
    const scoped = new PluginChain(
      [
        { name: 'orders', order: 1, patterns: ['/orders/:id'], failureMode: 'open' },
        { name: 'docs', order: 2, patterns: ['/docs{/:lang}/intro'], failureMode: 'open' },
        { name: 'files', order: 3, hosts: ['files.test'], patterns: ['/files/*path'], failureMode: 'open' },
        { name: 'internal', order: 4, hosts: ['*.internal.test', 'API.Example.com'], failureMode: 'open' },
        { name: 'nowhere', order: 5, hosts: [], failureMode: 'open' },
      ],
      () => undefined,
    );
    const names = (host: string, path: string) => scoped.select(host, path).map((c) => c.name);
    expect(names('a.test', '/orders/7?expand=1')).toEqual(['orders']);
    expect(names('a.test', '/orders/7/items')).toEqual([]);
    expect(names('a.test', '/orders/')).toEqual([]);
    expect(names('a.test', '/orders/a%2Fb')).toEqual(['orders']);
    expect(names('a.test', '/docs/intro')).toEqual(['docs']);
    expect(names('a.test', '/docs/fr/intro')).toEqual(['docs']);
    expect(names('a.test', '/docs/fr/de/intro')).toEqual([]);
    expect(names('files.test:8443', '/files/a/b/c.pdf')).toEqual(['files']);
    expect(names('other.test', '/files/a')).toEqual([]);
    expect(names('FILES.TEST', '/files')).toEqual([]);
    // Host-only scope: every path, including "/" and deep ones; `*.` means subdomains only.
    expect(names('db.internal.test', '/')).toEqual(['internal']);
    expect(names('a.b.internal.test', '/x/y/z')).toEqual(['internal']);
    expect(names('internal.test', '/x')).toEqual([]);
    expect(names('api.example.com:443', '/anything')).toEqual(['internal']);
    // Hostile input never throws and matches nothing it should not.
    expect(names('a.test', '*')).toEqual([]);
    expect(names('a.test', `/orders/${'x'.repeat(200_000)}`)).toEqual([]);
    expect(names('a.test', '/orders/%zz')).toEqual(['orders']);
  });

  test('each plugin sees the previous one’s mutations; the result is the final header list', async () => {
    const ex = chain.startExchange({ host: 'api.example.com', path: '/v1/users' });
    expect(ex.plugins).toEqual(['tagger', 'guard']);
    const d = await ex.onRequestHeaders(head('/v1/users', [['x-key', 'secret']]));
    expect(d).toEqual({ kind: 'mutate', headers: [['x-chain', 'tagger;guard;']], failures: [] });
    expect(await ex.onResponseHeaders({ status: 200, headers: [['a', 'b']] })).toEqual({
      kind: 'mutate',
      headers: [
        ['a', 'b'],
        ['x-tagged', 'yes'],
      ],
      failures: [],
    });
    ex.complete({ status: 200, totalMs: 2 });
  });

  test('an immediate response stops the chain (API key missing -> 401)', async () => {
    const ex = chain.startExchange({ host: 'api.example.com', path: '/v1/a/upload' });
    const d = await ex.onRequestHeaders(head('/v1/a/upload', []));
    expect(d).toMatchObject({ kind: 'respond', status: 401, headers: [['www-authenticate', 'ApiKey']] });
    ex.close();
  });

  test('whole bodies go through the plugins that want them', async () => {
    const ex = chain.startExchange({ host: 'api.example.com', path: '/v1/a/upload' });
    const d = await ex.onRequestBody(Buffer.from('quiet please'));
    expect(d.kind === 'mutate' && d.body.toString()).toBe('QUIET PLEASE');
    ex.close();
  });

  test('a plugin that is not running gets its failure mode', async () => {
    const down = new PluginChain(configs, (name) => (name === 'guard' ? undefined : clients.get(name)));
    const ex = down.startExchange({ host: 'api.example.com', path: '/v1/users' });
    const d = await ex.onRequestHeaders(head('/v1/users', [['x-key', 'secret']]));
    expect(d).toMatchObject({
      kind: 'respond',
      status: 503,
      headers: [
        ['x-httpmesh-error', 'HTTPMESH_PLUGIN_UNAVAILABLE'],
        ['content-type', 'text/plain; charset=utf-8'],
      ],
    });
    ex.close();
    const openDown = new PluginChain(configs, (name) => (name === 'tagger' ? undefined : clients.get(name)));
    const ex2 = openDown.startExchange({ host: 'other.test', path: '/' });
    const d2 = await ex2.onRequestHeaders(head('/', []));
    expect(d2).toMatchObject({
      kind: 'continue',
      failures: [{ code: 'HTTPMESH_PLUGIN_UNAVAILABLE', plugin: 'tagger' }],
    });
    ex2.close();
  });

  test('in-flight exchanges are counted until completed or closed', async () => {
    const before = clients.get('tagger')?.inFlight;
    const ex = chain.startExchange({ host: 'other.test', path: '/' });
    expect(clients.get('tagger')?.inFlight).toBe((before ?? 0) + 1);
    ex.close();
    expect(clients.get('tagger')?.inFlight).toBe(before);
  });
});

describe('plugin configs are validated (HTTPMESH_PLUGIN_CONFIG_INVALID)', () => {
  const good = { name: 'p', order: 1, failureMode: 'open' };
  const BAD: ReadonlyArray<[string, unknown]> = [
    ['not an object', 'plugin'],
    ['null', null],
    ['an array', []],
    ['a missing name', { order: 1, failureMode: 'open' }],
    ['an invalid name', { ...good, name: 'Bad Name' }],
    ['a non-integer order', { ...good, order: 1.5 }],
    ['a missing failure mode', { name: 'p', order: 1 }],
    ['an unknown failure mode', { ...good, failureMode: 'maybe' }],
    ['a negative timeout', { ...good, timeoutMs: -1 }],
    ['a huge timeout', { ...good, timeoutMs: 1e9 }],
    ['hosts not an array', { ...good, hosts: 'a.test' }],
    ['an empty host', { ...good, hosts: [''] }],
    ['a pattern without a leading slash', { ...good, patterns: ['v1/:x'] }],
    ['an old-style glob (unnamed wildcard)', { ...good, patterns: ['/v1/*'] }],
    ['an unclosed optional group', { ...good, patterns: ['/a/{b'] }],
    ['a parameter without a name', { ...good, patterns: ['/users/:'] }],
    ['a regex group', { ...good, patterns: ['/users/:id(\\d+)'] }],
    ['two patterns matching the same paths', { ...good, patterns: ['/a/:x', '/a/:y'] }],
    ['a wildcard before the last segment', { ...good, patterns: ['/f/*p/edit'] }],
    ['patterns not an array', { ...good, patterns: '/a' }],
    ['an empty pattern', { ...good, patterns: [''] }],
    ['a host with a port', { ...good, hosts: ['a.test:8080'] }],
    ['a host with a space', { ...good, hosts: ['a test'] }],
    ['a host with a path', { ...good, hosts: ['a.test/x'] }],
    ['an empty address', { ...good, address: '' }],
  ];
  for (const [what, input] of BAD) {
    test(`rejects ${what}`, () => {
      expect(() => parsePluginConfig(input)).toThrow(
        expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
      );
    });
  }
  test('accepts a full config', () => {
    const full = {
      ...good,
      address: 'unix:/run/p.sock',
      hosts: ['*.a.test'],
      patterns: ['/x/*rest', '/docs{/:lang}/intro'],
      timeoutMs: 50,
    };
    expect(parsePluginConfig(full)).toEqual(full);
  });
  test('a pattern error names the plugin and carries the url-matcher error as its cause', () => {
    let error: unknown;
    try {
      parsePluginConfig({ ...good, patterns: ['/ok/:id', '/v1/*'] });
    } catch (err) {
      error = err;
    }
    expect(error).toMatchObject({
      name: 'PluginConfigError',
      code: 'HTTPMESH_PLUGIN_CONFIG_INVALID',
      plugin: 'p',
      cause: { name: 'PatternError', code: 'HTTPMESH_PATTERN_INVALID', pattern: '/v1/*' },
    });
    expect((error as Error).message).toContain('HTTPMESH_PATTERN_INVALID');
    expect(
      () => new PluginChain([{ ...good, patterns: ['/a/:x', '/a/:y'] } as PluginConfig], () => undefined),
    ).toThrow(
      expect.objectContaining({
        code: 'HTTPMESH_PLUGIN_CONFIG_INVALID',
        cause: expect.objectContaining({ code: 'HTTPMESH_PATTERN_CONFLICT' }),
      }),
    );
  });
  test('rejects a plugin configured twice', () => {
    expect(() => new PluginChain([good as PluginConfig, good as PluginConfig], () => undefined)).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
    );
  });
});
