import { afterEach, describe, expect, test } from 'vitest';
import { compileParamsFactories, compileRangeParamsFactories } from '../src/codegen.js';
import { createMatcher } from '../src/index.js';

/** `${code}` spelled without a template-looking string literal in this file. */
const interpolation = (code: string): string => ['$', '{', code, '}'].join('');

// Parameter names end up as keys of generated object literals; these must stay data, never code.
const hostileNames = [
  'a"b',
  "a'b",
  'x\\y',
  `tick\`${interpolation('globalThis.__httpmeshPwned = 1')}\``,
  interpolation('globalThis.__httpmeshPwned = 1'),
  '*/ }); globalThis.__httpmeshPwned = 1; //',
  '}) ; globalThis.__httpmeshPwned = 1; ({',
  'u\u2028v\u2029w',
  'constructor',
  'toString',
  'hasOwnProperty',
  '__defineGetter__',
  'prototype',
  '0',
  '',
];

afterEach(() => {
  delete (globalThis as Record<string, unknown>)['__httpmeshPwned'];
});

describe('generated params factories', () => {
  test('hostile quoted parameter names come back as plain own keys, and no code runs', () => {
    const nameable = hostileNames.filter((name) => name !== '');
    const routes = nameable.map((name, i) => ({ pattern: `/p${i}/:${JSON.stringify(name)}`, data: name }));
    const matcher = createMatcher(routes);
    nameable.forEach((name, i) => {
      const found = matcher.match(`/p${i}/value${i}`);
      expect(found?.data).toBe(name);
      const params = found?.params as Record<string, string>;
      expect(Object.getPrototypeOf(params)).toBe(Object.prototype);
      expect(Object.keys(params)).toEqual([name]);
      expect(Object.getOwnPropertyDescriptor(params, name)).toEqual({
        value: `value${i}`,
        writable: true,
        enumerable: true,
        configurable: true,
      });
    });
    expect((globalThis as Record<string, unknown>)['__httpmeshPwned']).toBeUndefined();
    expect(Object.getOwnPropertyNames(Object.prototype)).not.toContain('value0');
    expect(({} as Record<string, unknown>)['constructor']).toBe(Object);
  });

  test('several hostile names in one route keep their order and values', () => {
    const names = ['a"b', interpolation('x'), 'constructor'];
    const pattern = `/${names.map((name) => `:${JSON.stringify(name)}`).join('/')}`;
    const found = createMatcher([{ pattern }]).match('/1/2/3');
    expect(Object.entries(found?.params ?? {})).toEqual([
      ['a"b', '1'],
      [interpolation('x'), '2'],
      ['constructor', '3'],
    ]);
  });

  test('every factory returns a fresh object', () => {
    const matcher = createMatcher([{ pattern: '/users/:id' }, { pattern: '/' }]);
    const first = matcher.match('/users/1')?.params as Record<string, string>;
    const second = matcher.match('/users/2')?.params as Record<string, string>;
    expect(first).not.toBe(second);
    expect(first).toEqual({ id: '1' });
    first['id'] = 'changed';
    expect(matcher.match('/users/1')?.params).toEqual({ id: '1' });
    const empty = matcher.match('/')?.params as Record<string, string>;
    expect(empty).toEqual({});
    expect(empty).not.toBe(matcher.match('/')?.params);
  });

  test('compiled directly, every hostile name (even the empty one) is a key, never code', () => {
    const factories = compileParamsFactories([hostileNames, ['id'], hostileNames]);
    const values = hostileNames.map((_, i) => `v${i}`);
    const params = (factories[0] as (v: readonly string[]) => Record<string, string>)(values);
    expect(Object.keys(params).sort()).toEqual([...hostileNames].sort());
    hostileNames.forEach((name, i) => {
      expect(params[name]).toBe(`v${i}`);
    });
    expect(factories[2]).toBe(factories[0]);
    expect((globalThis as Record<string, unknown>)['__httpmeshPwned']).toBeUndefined();
  });

  test('the raw-range factories take hostile names as keys too', () => {
    const factories = compileRangeParamsFactories([hostileNames]);
    const path = hostileNames.map((_, i) => `v${i}`).join('/');
    const starts = new Int32Array(hostileNames.length);
    const ends = new Int32Array(hostileNames.length);
    let at = 0;
    hostileNames.forEach((_, i) => {
      starts[i] = at;
      ends[i] = at + `v${i}`.length;
      at = (ends[i] as number) + 1;
    });
    const params = (factories[0] as (p: string, s: Int32Array, e: Int32Array) => Record<string, string>)(
      path,
      starts,
      ends,
    );
    expect(Object.getPrototypeOf(params)).toBe(Object.prototype);
    hostileNames.forEach((name, i) => {
      expect(params[name]).toBe(`v${i}`);
    });
    expect((globalThis as Record<string, unknown>)['__httpmeshPwned']).toBeUndefined();
  });

  test('escaped values and wildcards under hostile names are decoded (the value-list factories)', () => {
    const matcher = createMatcher([
      { pattern: `/a/:${JSON.stringify('a"b')}/:constructor` },
      { pattern: `/w/:${JSON.stringify(interpolation('x'))}/*${JSON.stringify('*/')}` },
    ]);
    expect(matcher.match('/a/x%20y/plain')?.params).toEqual({ 'a"b': 'x y', constructor: 'plain' });
    expect(matcher.match('/w/1/a%2Fb/c')?.params).toEqual({ [interpolation('x')]: '1', '*/': 'a/b/c' });
  });

  test('refuses __proto__, which an object literal would turn into a prototype assignment', () => {
    expect(() => compileParamsFactories([['id', '__proto__']])).toThrow(TypeError);
    expect(() => compileRangeParamsFactories([['__proto__']])).toThrow(TypeError);
    // createMatcher rejects the name earlier, with its own error.
    expect(() => createMatcher([{ pattern: '/:__proto__' }])).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PATTERN_UNSUPPORTED' }),
    );
  });
});
