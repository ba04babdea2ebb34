import { describe, expect, test } from 'vitest';
import { createMatcher } from '../src/index.js';
import type { RouteSpec } from '../src/index.js';
import { seededRandom, shuffled } from './helpers.js';

/** Pattern that `path` resolves to, or null. */
function patternOf<T>(routes: RouteSpec<T>[], path: string, method?: string, host?: string): string | null {
  return createMatcher(routes).match(path, method, host)?.pattern ?? null;
}

describe('pattern syntax', () => {
  const matcher = createMatcher([
    { pattern: '/', data: 'root' },
    { pattern: '/users', data: 'list' },
    { pattern: '/users/:id', data: 'user' },
    { pattern: '/users/:id/posts/:postId', data: 'post' },
    { pattern: '/files/*path', data: 'files' },
    { pattern: '/docs{/:lang}/intro', data: 'intro' },
  ]);

  test('static segments match exactly, not by prefix', () => {
    expect(matcher.match('/')).toEqual({ pattern: '/', params: {}, data: 'root' });
    expect(matcher.match('/users')).toEqual({ pattern: '/users', params: {}, data: 'list' });
    expect(matcher.match('/usersx')).toBeNull();
    expect(matcher.match('/user')).toBeNull();
    expect(matcher.match('/nope')).toBeNull();
  });

  test('a static label must be the whole segment, whether it is the only static child or one of several', () => {
    const m = createMatcher([
      { pattern: '/a/alpha' },
      { pattern: '/a/beta' },
      { pattern: '/a/gamma/:g' },
      { pattern: '/a/:p' },
      { pattern: '/s/only' },
      { pattern: '/s/:p' },
      { pattern: '/e/' },
    ]);
    const cases: Array<[string, string | null, Record<string, string>?]> = [
      ['/a/alpha', '/a/alpha'],
      ['/a/alpha?x=/a/beta', '/a/alpha'],
      ['/a/alpha#/beta', '/a/alpha'],
      ['/a/alphax', '/a/:p', { p: 'alphax' }],
      ['/a/alph', '/a/:p', { p: 'alph' }],
      ['/a/alpha/', null],
      ['/a/beta/more', null],
      ['/a/gamma/1', '/a/gamma/:g', { g: '1' }],
      ['/a/gamma', '/a/:p', { p: 'gamma' }],
      [`/a/${'alpha'.repeat(20)}`, '/a/:p', { p: 'alpha'.repeat(20) }],
      ['/a/%61lpha', '/a/alpha'],
      ['/a/alpha%20', '/a/:p', { p: 'alpha ' }],
      ['/s/only', '/s/only'],
      ['/s/only?x', '/s/only'],
      ['/s/onlyx', '/s/:p', { p: 'onlyx' }],
      ['/s/onl', '/s/:p', { p: 'onl' }],
      ['/s/only/', null],
      ['/e/', '/e/'],
      ['/e/?q', '/e/'],
      ['/e/x', null],
    ];
    for (const [path, pattern, params] of cases) {
      const found = m.match(path);
      expect(found?.pattern ?? null, path).toBe(pattern);
      if (params !== undefined) expect(found?.params, path).toEqual(params);
    }
  });

  test('parameters capture one non-empty segment each', () => {
    expect(matcher.match('/users/42')).toEqual({ pattern: '/users/:id', params: { id: '42' }, data: 'user' });
    expect(matcher.match('/users/42/posts/7')?.params).toEqual({ id: '42', postId: '7' });
    expect(matcher.match('/users/')).toBeNull();
    expect(matcher.match('/users//posts/7')).toBeNull();
    expect(matcher.match('/users/42/posts')).toBeNull();
  });

  test('a wildcard takes one or more segments to the end', () => {
    expect(matcher.match('/files/a')?.params).toEqual({ path: 'a' });
    expect(matcher.match('/files/a/b/c.txt')?.params).toEqual({ path: 'a/b/c.txt' });
    expect(matcher.match('/files/')).toBeNull();
    expect(matcher.match('/files')).toBeNull();
  });

  test('an optional group matches with and without its content', () => {
    expect(matcher.match('/docs/intro')).toEqual({
      pattern: '/docs{/:lang}/intro',
      params: {},
      data: 'intro',
    });
    expect(matcher.match('/docs/fr/intro')?.params).toEqual({ lang: 'fr' });
    expect(matcher.match('/docs/fr/de/intro')).toBeNull();
  });

  test('nested and trailing optional groups', () => {
    const nested = createMatcher([{ pattern: '/a{/b{/c}}' }, { pattern: '/list{/}' }]);
    for (const path of ['/a', '/a/b', '/a/b/c']) expect(nested.match(path)?.pattern).toBe('/a{/b{/c}}');
    expect(nested.match('/a/c')).toBeNull();
    expect(nested.match('/list')?.pattern).toBe('/list{/}');
    expect(nested.match('/list/')?.pattern).toBe('/list{/}');
  });

  test('a group whose absent side is empty matches the root', () => {
    const lang = createMatcher([{ pattern: '{/:lang}' }]);
    expect(lang.match('/')).toEqual({ pattern: '{/:lang}', params: {}, data: undefined });
    expect(lang.match('/en')?.params).toEqual({ lang: 'en' });
  });

  test('the first alternative of a group wins when two alternatives have the same shape', () => {
    // `/a{/:b}{/:c}` expands to /a/:b/:c, /a/:b, /a/:c, /a; path-to-regexp fills `b` for `/a/x`.
    const m = createMatcher([{ pattern: '/a{/:b}{/:c}' }]);
    expect(m.match('/a/x')?.params).toEqual({ b: 'x' });
    expect(m.match('/a/x/y')?.params).toEqual({ b: 'x', c: 'y' });
    expect(m.match('/a')?.params).toEqual({});
  });

  test('parameters mixed with text inside one segment', () => {
    const m = createMatcher([
      { pattern: '/files/:name.json' },
      { pattern: '/files/:name' },
      { pattern: '/v:major.:minor/docs' },
      { pattern: '/range/:from-:to' },
    ]);
    expect(m.match('/files/report.json')).toEqual({
      pattern: '/files/:name.json',
      params: { name: 'report' },
      data: undefined,
    });
    expect(m.match('/files/a.b.json')?.params).toEqual({ name: 'a.b' });
    expect(m.match('/files/.json')?.pattern).toBe('/files/:name');
    expect(m.match('/files/report.xml')?.pattern).toBe('/files/:name');
    expect(m.match('/v2.11/docs')?.params).toEqual({ major: '2', minor: '11' });
    expect(m.match('/v2/docs')).toBeNull();
    expect(m.match('/range/1-10')?.params).toEqual({ from: '1', to: '10' });
    // As in path-to-regexp, later parameters stop at the last occurrence of the text before them.
    expect(m.match('/range/1-2-3')?.params).toEqual({ from: '1-2', to: '3' });
    expect(m.match('/v2.11.3/docs')?.params).toEqual({ major: '2.11', minor: '3' });
    expect(m.match('/range/-5')).toBeNull();
  });

  test('escaped special characters and quoted parameter names', () => {
    const m = createMatcher([{ pattern: '/time/12\\:00' }, { pattern: '/q/:"user id"' }]);
    expect(m.match('/time/12:00')?.pattern).toBe('/time/12\\:00');
    expect(m.match('/q/ann')?.params).toEqual({ 'user id': 'ann' });
  });

  test('query string and fragment are ignored', () => {
    expect(matcher.match('/users/42?expand=1&next=/a/b')?.params).toEqual({ id: '42' });
    expect(matcher.match('/users?x')?.pattern).toBe('/users');
    expect(matcher.match('/users/42#top')?.params).toEqual({ id: '42' });
    expect(matcher.match('/?a=b')?.pattern).toBe('/');
    expect(matcher.match('/files/a/b?c=/d')?.params).toEqual({ path: 'a/b' });
  });

  test('data is returned by reference, undefined when absent', () => {
    const payload = { owner: 'team-a' };
    const m = createMatcher([{ pattern: '/a', data: payload }, { pattern: '/b' }]);
    expect(m.match('/a')?.data).toBe(payload);
    expect(m.match('/b')?.data).toBeUndefined();
  });

  test('size counts routes, not expanded alternatives', () => {
    expect(matcher.size).toBe(6);
    expect(createMatcher([]).size).toBe(0);
    expect(createMatcher([]).match('/')).toBeNull();
  });
});

describe('methods', () => {
  const routes: RouteSpec<string>[] = [
    { pattern: '/users/:id', data: 'any' },
    { pattern: '/users/me', methods: ['GET', 'head'], data: 'me' },
    { pattern: '/users/:id', methods: ['DELETE'], data: 'delete' },
  ];
  const m = createMatcher(routes);

  test('a method-scoped route only matches its methods; route methods are upper-cased', () => {
    expect(m.match('/users/me', 'GET')?.data).toBe('me');
    expect(m.match('/users/me', 'HEAD')?.data).toBe('me');
    expect(m.match('/users/me', 'POST')?.data).toBe('any');
  });

  test('listed methods beat "any method" for the same pattern shape', () => {
    expect(m.match('/users/7', 'DELETE')?.data).toBe('delete');
    expect(m.match('/users/7', 'PUT')?.data).toBe('any');
  });

  test('request methods are compared as given (HTTP methods are case-sensitive)', () => {
    expect(m.match('/users/me', 'get')?.data).toBe('any');
  });

  test('omitting the method skips the check and picks the most specific route', () => {
    expect(m.match('/users/me')?.data).toBe('me');
    expect(m.match('/users/7')?.data).toBe('delete');
  });

  test('no route for the method means no match', () => {
    const only = createMatcher([{ pattern: '/a', methods: ['GET'] }]);
    expect(only.match('/a', 'POST')).toBeNull();
  });

  test('more than 30 distinct methods still match correctly', () => {
    const names = Array.from({ length: 40 }, (_, i) => `M${i}`);
    const many = createMatcher(names.map((name) => ({ pattern: `/m/${name}`, methods: [name], data: name })));
    for (const name of names) {
      expect(many.match(`/m/${name}`, name)?.data).toBe(name);
      expect(many.match(`/m/${name}`, 'OTHER')).toBeNull();
    }
  });
});

describe('hosts', () => {
  const m = createMatcher([
    { pattern: '/status', data: 'any host' },
    { pattern: '/status', host: '*.example.com', data: 'wildcard' },
    { pattern: '/status', host: '*.eu.example.com', data: 'longer wildcard' },
    { pattern: '/status', host: 'API.example.com', data: 'exact' },
    { pattern: '/v6', host: '[::1]', data: 'ipv6' },
  ]);

  test('exact host beats a longer wildcard, which beats a shorter one, which beats any host', () => {
    expect(m.match('/status', 'GET', 'api.example.com')?.data).toBe('exact');
    expect(m.match('/status', 'GET', 'x.eu.example.com')?.data).toBe('longer wildcard');
    expect(m.match('/status', 'GET', 'www.example.com')?.data).toBe('wildcard');
    expect(m.match('/status', 'GET', 'a.b.example.com')?.data).toBe('wildcard');
    expect(m.match('/status', 'GET', 'example.org')?.data).toBe('any host');
  });

  test('a wildcard host does not match the bare domain', () => {
    expect(m.match('/status', 'GET', 'example.com')?.data).toBe('any host');
    expect(m.match('/status', 'GET', '.example.com')?.data).toBe('any host');
  });

  test('port, letter case and a trailing dot of the request host are ignored', () => {
    expect(m.match('/status', 'GET', 'API.Example.COM:8443')?.data).toBe('exact');
    expect(m.match('/status', 'GET', 'api.example.com.')?.data).toBe('exact');
    expect(m.match('/v6', 'GET', '[::1]:8080')?.data).toBe('ipv6');
    expect(m.match('/v6', 'GET', '[::2]:8080')).toBeNull();
  });

  test('a host-scoped route does not match other hosts', () => {
    const scoped = createMatcher([{ pattern: '/a', host: 'a.test' }]);
    expect(scoped.match('/a', 'GET', 'b.test')).toBeNull();
    expect(scoped.match('/a', 'GET', 'a.test')?.pattern).toBe('/a');
    expect(scoped.match('/a', 'GET', 'xa.test')).toBeNull();
  });

  test('10,000 host-scoped routes of one shape: every host gets its own route', () => {
    const routes: RouteSpec<number | string>[] = [];
    for (let i = 0; i < 5000; i++) {
      routes.push({ pattern: '/api/:x', host: `t${i}.example.com`, data: i });
      routes.push({ pattern: '/api/:y', host: `*.t${i}.example.net`, methods: ['GET'], data: -i });
    }
    routes.push({ pattern: '/api/:z', data: 'fallback' });
    const many = createMatcher(routes);
    for (const i of [0, 1, 2500, 4999]) {
      expect(many.match('/api/1', 'GET', `T${i}.Example.com:443`)?.data).toBe(i);
      expect(many.match('/api/1', 'GET', `a.b.t${i}.example.net`)?.data).toBe(-i);
      expect(many.match('/api/1', 'POST', `a.t${i}.example.net`)?.data).toBe('fallback');
    }
    expect(many.match('/api/1', 'GET', 't5000.example.com')?.data).toBe('fallback');
    expect(() => createMatcher([...routes, { pattern: '/api/:w', host: 't77.example.com' }])).toThrow(
      /conflicts with "\/api\/:x"/,
    );
  });

  test('omitting the host skips the check', () => {
    expect(m.match('/v6')?.data).toBe('ipv6');
    expect(m.match('/status')?.data).toBe('exact');
  });
});

describe('precedence', () => {
  const routes: RouteSpec<string>[] = [
    { pattern: '/users/me' },
    { pattern: '/users/:id' },
    { pattern: '/users/*rest' },
    { pattern: '/users/:id/posts' },
    { pattern: '/users/me/posts/:postId' },
    { pattern: '/:section/settings' },
    { pattern: '/admin/:page' },
    { pattern: '/files/:name.json' },
    { pattern: '/files/:name' },
    { pattern: '/files/v:version.json' },
    { pattern: '/files/*path' },
    { pattern: '/a/:x/c' },
    { pattern: '/a/b/:y' },
    { pattern: '/*all' },
  ];
  const expected: Array<[string, string]> = [
    ['/users/me', '/users/me'],
    ['/users/42', '/users/:id'],
    ['/users/42/x', '/users/*rest'],
    ['/users/me/posts', '/users/:id/posts'],
    ['/users/me/posts/9', '/users/me/posts/:postId'],
    ['/users/42/posts', '/users/:id/posts'],
    ['/users/42/posts/9', '/users/*rest'],
    ['/admin/settings', '/admin/:page'],
    ['/other/settings', '/:section/settings'],
    ['/files/a.json', '/files/:name.json'],
    ['/files/v2.json', '/files/v:version.json'],
    ['/files/a.txt', '/files/:name'],
    ['/files/a/b', '/files/*path'],
    ['/a/b/c', '/a/b/:y'],
    ['/a/z/c', '/a/:x/c'],
    ['/a/b', '/*all'],
    ['/anything/else/here', '/*all'],
  ];

  test('static beats parameter beats wildcard, per segment from the left', () => {
    const m = createMatcher(routes);
    for (const [path, pattern] of expected) expect(m.match(path)?.pattern, path).toBe(pattern);
  });

  test('the same answers under every slash option (each lookup strategy backs up the same way)', () => {
    const optionSets = [
      { ignoreTrailingSlash: true },
      { ignoreDuplicateSlashes: true },
      { caseSensitive: false },
      { ignoreTrailingSlash: true, ignoreDuplicateSlashes: true, caseSensitive: false },
    ];
    for (const options of optionSets) {
      const m = createMatcher(routes, options);
      for (const [path, pattern] of expected) {
        expect(m.match(path)?.pattern, `${JSON.stringify(options)} ${path}`).toBe(pattern);
        expect(m.match(`${path}?q=/x/y#/z`)?.pattern, `${JSON.stringify(options)} ${path}?`).toBe(pattern);
      }
    }
  });

  test('the answer does not depend on insertion order (40 shuffles)', () => {
    const random = seededRandom(7);
    for (let round = 0; round < 40; round++) {
      const m = createMatcher(shuffled(routes, random));
      for (const [path, pattern] of expected)
        expect(m.match(path)?.pattern, `${round} ${path}`).toBe(pattern);
    }
  });

  test('methods and hosts do not depend on insertion order either', () => {
    const scoped: RouteSpec<string>[] = [
      { pattern: '/r/:id', data: 'any' },
      { pattern: '/r/:id', methods: ['GET'], data: 'get' },
      { pattern: '/r/:id', methods: ['POST'], data: 'post' },
      { pattern: '/r/:id', host: '*.x.test', data: 'wild' },
      { pattern: '/r/:id', host: 'a.x.test', data: 'exact' },
      { pattern: '/r/:id', host: 'a.x.test', methods: ['GET'], data: 'exact get' },
    ];
    const cases: Array<[string | undefined, string | undefined, string]> = [
      ['GET', 'a.x.test', 'exact get'],
      ['POST', 'a.x.test', 'exact'],
      ['POST', 'b.x.test', 'wild'],
      ['GET', 'other.test', 'get'],
      ['PUT', 'other.test', 'any'],
      [undefined, undefined, 'exact get'],
    ];
    const random = seededRandom(11);
    for (let round = 0; round < 30; round++) {
      const m = createMatcher(shuffled(scoped, random));
      for (const [method, host, data] of cases) expect(m.match('/r/1', method, host)?.data).toBe(data);
    }
  });

  test('a failing static branch falls back to the parameter branch', () => {
    expect(patternOf([{ pattern: '/a/b/c' }, { pattern: '/a/:x/d' }], '/a/b/d')).toBe('/a/:x/d');
    expect(
      patternOf([{ pattern: '/a/b/c', methods: ['GET'] }, { pattern: '/a/:x/c' }], '/a/b/c', 'POST'),
    ).toBe('/a/:x/c');
    expect(
      patternOf([{ pattern: '/a/b', host: 'h.test' }, { pattern: '/a/*rest' }], '/a/b', 'GET', 'other.test'),
    ).toBe('/a/*rest');
  });
});

describe('percent-decoding', () => {
  const m = createMatcher([
    { pattern: '/users/:id' },
    { pattern: '/café' },
    { pattern: '/a%20b/:x' },
    { pattern: '/files/*path' },
    { pattern: '/doc/:name.json' },
  ]);

  test('parameters are decoded per segment', () => {
    expect(m.match('/users/J%C3%BCrgen')?.params).toEqual({ id: 'Jürgen' });
    expect(m.match('/users/a%20b')?.params).toEqual({ id: 'a b' });
  });

  test('%2F stays inside its segment', () => {
    expect(m.match('/users/a%2Fb')).toEqual({
      pattern: '/users/:id',
      params: { id: 'a/b' },
      data: undefined,
    });
    expect(m.match('/users/a%2fb%2F')?.params).toEqual({ id: 'a/b/' });
  });

  test('static segments compare decoded, in patterns and in paths', () => {
    expect(m.match('/caf%C3%A9')?.pattern).toBe('/café');
    expect(m.match('/café')?.pattern).toBe('/café');
    expect(m.match('/a%20b/1')?.pattern).toBe('/a%20b/:x');
    expect(m.match('/a b/1')?.pattern).toBe('/a%20b/:x');
  });

  test('malformed escapes never throw: the value is kept raw', () => {
    expect(m.match('/users/%zz')?.params).toEqual({ id: '%zz' });
    expect(m.match('/users/%E0%A4%A')?.params).toEqual({ id: '%E0%A4%A' });
    expect(m.match('/users/100%')?.params).toEqual({ id: '100%' });
    expect(m.match('/caf%C3')).toBeNull();
    expect(m.match('/files/ok%20x/%zz')?.params).toEqual({ path: 'ok x/%zz' });
  });

  test('wildcard values are decoded segment by segment', () => {
    expect(m.match('/files/a%20b/c%2Fd')?.params).toEqual({ path: 'a b/c/d' });
  });

  test('pieces of a mixed segment are decoded separately', () => {
    expect(m.match('/doc/my%20file.json')?.params).toEqual({ name: 'my file' });
  });
});

describe('maxParamLength', () => {
  test('defaults to 100 raw characters', () => {
    const m = createMatcher([{ pattern: '/u/:id' }]);
    expect(m.match(`/u/${'x'.repeat(100)}`)?.params['id']).toHaveLength(100);
    expect(m.match(`/u/${'x'.repeat(101)}`)).toBeNull();
  });

  test('an over-long parameter does not match; a wildcard may still take the path', () => {
    const m = createMatcher([{ pattern: '/u/:id' }, { pattern: '/u/*rest' }, { pattern: '/f/:n.json' }], {
      maxParamLength: 5,
    });
    expect(m.match('/u/12345')?.pattern).toBe('/u/:id');
    expect(m.match('/u/123456')).toEqual({
      pattern: '/u/*rest',
      params: { rest: '123456' },
      data: undefined,
    });
    expect(m.match('/f/12345.json')?.params).toEqual({ n: '12345' });
    expect(m.match('/f/123456.json')).toBeNull();
  });

  test('is measured on the raw, still-encoded value', () => {
    const m = createMatcher([{ pattern: '/u/:id' }], { maxParamLength: 3 });
    expect(m.match('/u/%20')?.params).toEqual({ id: ' ' });
    expect(m.match('/u/%20%20')).toBeNull();
  });

  test('Infinity removes the limit', () => {
    const m = createMatcher([{ pattern: '/u/:id' }], { maxParamLength: Number.POSITIVE_INFINITY });
    expect(m.match(`/u/${'x'.repeat(5000)}`)?.params['id']).toHaveLength(5000);
  });
});

describe('options', () => {
  test('case-sensitive by default', () => {
    const m = createMatcher([{ pattern: '/Users/:id' }]);
    expect(m.match('/Users/A')?.params).toEqual({ id: 'A' });
    expect(m.match('/users/A')).toBeNull();
  });

  test('caseSensitive: false folds static text but keeps parameter values', () => {
    const m = createMatcher(
      [{ pattern: '/Users/:id' }, { pattern: '/Files/:name.JSON' }, { pattern: '/a/b' }],
      {
        caseSensitive: false,
      },
    );
    expect(m.match('/USERS/MiXeD')).toEqual({
      pattern: '/Users/:id',
      params: { id: 'MiXeD' },
      data: undefined,
    });
    expect(m.match('/files/Report.json')?.params).toEqual({ name: 'Report' });
    expect(m.match('/A/B')?.pattern).toBe('/a/b');
    expect(m.match('/A/%42')?.pattern).toBe('/a/b');
  });

  test('strict about trailing slashes by default', () => {
    const m = createMatcher([{ pattern: '/a' }, { pattern: '/b/' }]);
    expect(m.match('/a/')).toBeNull();
    expect(m.match('/b')).toBeNull();
    expect(m.match('/b/')?.pattern).toBe('/b/');
  });

  test('ignoreTrailingSlash matches with and without the final slash', () => {
    const m = createMatcher([{ pattern: '/a' }, { pattern: '/b/' }, { pattern: '/' }, { pattern: '/f/*p' }], {
      ignoreTrailingSlash: true,
    });
    expect(m.match('/a/')?.pattern).toBe('/a');
    expect(m.match('/a')?.pattern).toBe('/a');
    expect(m.match('/b')?.pattern).toBe('/b/');
    expect(m.match('/')?.pattern).toBe('/');
    expect(m.match('/a//')).toBeNull();
    expect(m.match('/f/x/y/')?.params).toEqual({ p: 'x/y' });
    expect(m.match('/a/?q=1')?.pattern).toBe('/a');
  });

  test('ignoreDuplicateSlashes treats runs of slashes as one', () => {
    const m = createMatcher([{ pattern: '/a/:b/c' }, { pattern: '/f/*p' }, { pattern: '/x//y' }], {
      ignoreDuplicateSlashes: true,
    });
    expect(m.match('//a///1//c')?.params).toEqual({ b: '1' });
    expect(m.match('/f//x///y')?.params).toEqual({ p: 'x/y' });
    expect(m.match('/x/y')?.pattern).toBe('/x//y');
    expect(m.match('/a/1/c/')).toBeNull();
  });

  test('both slash options together', () => {
    const m = createMatcher([{ pattern: '/a/b' }, { pattern: '/' }, { pattern: '/f/*p' }], {
      ignoreDuplicateSlashes: true,
      ignoreTrailingSlash: true,
    });
    expect(m.match('//a//b//')?.pattern).toBe('/a/b');
    expect(m.match('///')?.pattern).toBe('/');
    expect(m.match('/f/x//')?.params).toEqual({ p: 'x' });
  });
});

describe('paths deeper than every pattern', () => {
  // The scan stops once a path has more segments than any pattern; only a wildcard looks further.
  test('a wildcard still gets the whole rest, cut at the query and fragment', () => {
    const m = createMatcher([{ pattern: '/f/*p' }, { pattern: '/a/b' }]);
    expect(m.match('/f/1/2/3/4/5')?.params).toEqual({ p: '1/2/3/4/5' });
    expect(m.match('/f/1/2/3/4/5/?q=/x/y')?.params).toEqual({ p: '1/2/3/4/5/' });
    expect(m.match('/f/1/2/3/4#frag/x')?.params).toEqual({ p: '1/2/3/4' });
    expect(m.match('/a/b/c/d/e')).toBeNull();
    expect(m.match('/a/b/c/d/e/')).toBeNull();
  });

  test('with the slash options', () => {
    const trailing = createMatcher([{ pattern: '/f/*p' }, { pattern: '/a/b' }], {
      ignoreTrailingSlash: true,
    });
    expect(trailing.match('/f/1/2/3/4/5/?q=1')?.params).toEqual({ p: '1/2/3/4/5' });
    expect(trailing.match('/a/b/c/')).toBeNull();
    const both = createMatcher([{ pattern: '/f/*p' }], {
      ignoreTrailingSlash: true,
      ignoreDuplicateSlashes: true,
    });
    expect(both.match('/f/1//2///3//4///?x')?.params).toEqual({ p: '1/2/3/4' });
    expect(both.match('//f//1//2//3//4')?.params).toEqual({ p: '1/2/3/4' });
  });
});

describe('immutability', () => {
  test('the matcher object is frozen', () => {
    const m = createMatcher([{ pattern: '/a' }]);
    expect(Object.isFrozen(m)).toBe(true);
    expect(() => {
      (m as { size: number }).size = 5;
    }).toThrow(TypeError);
    expect(m.size).toBe(1);
  });

  test('changing the input routes afterwards changes nothing', () => {
    const routes: RouteSpec<string>[] = [{ pattern: '/a', methods: ['GET'], data: 'a' }];
    const m = createMatcher(routes);
    (routes[0] as RouteSpec<string>).pattern = '/b';
    routes[0]?.methods?.push('POST');
    routes.push({ pattern: '/c' });
    expect(m.match('/a', 'GET')?.pattern).toBe('/a');
    expect(m.match('/a', 'POST')).toBeNull();
    expect(m.match('/c')).toBeNull();
    expect(m.size).toBe(1);
  });

  test('results are fresh objects; mutating one does not leak into the next', () => {
    const m = createMatcher([{ pattern: '/u/:id' }]);
    const first = m.match('/u/1');
    if (first === null) throw new Error('expected a match');
    first.params['id'] = 'changed';
    first.params['extra'] = 'x';
    expect(m.match('/u/1')?.params).toEqual({ id: '1' });
  });

  test('match works detached from its matcher', () => {
    const { match } = createMatcher([{ pattern: '/u/:id' }]);
    expect(match('/u/1')?.params).toEqual({ id: '1' });
  });
});
