import { describe, expect, test } from 'vitest';
import { createMatcher, PatternError } from '../src/index.js';

describe('createMatcher basics', () => {
  const matcher = createMatcher([
    { pattern: '/', data: 'root' },
    { pattern: '/users', data: 'list' },
    { pattern: '/users/:id', data: 'user' },
    { pattern: '/users/me', methods: ['GET'], data: 'me' },
    { pattern: '/files/*path', data: 'files' },
    { pattern: '/docs{/:lang}/intro', data: 'intro' },
  ]);

  test('static, param and root paths', () => {
    expect(matcher.match('/')).toEqual({ pattern: '/', params: {}, data: 'root' });
    expect(matcher.match('/users')).toEqual({ pattern: '/users', params: {}, data: 'list' });
    expect(matcher.match('/users/42')).toEqual({ pattern: '/users/:id', params: { id: '42' }, data: 'user' });
    expect(matcher.match('/nope')).toBeNull();
  });

  test('query string is ignored', () => {
    expect(matcher.match('/users/42?expand=1&x=/y')?.params).toEqual({ id: '42' });
  });

  test('methods scope a route; other methods fall back to the parameter route', () => {
    expect(matcher.match('/users/me', 'GET')?.data).toBe('me');
    expect(matcher.match('/users/me', 'DELETE')).toEqual({
      pattern: '/users/:id',
      params: { id: 'me' },
      data: 'user',
    });
  });

  test('wildcard takes the rest of the path', () => {
    expect(matcher.match('/files/a/b/c.txt')?.params).toEqual({ path: 'a/b/c.txt' });
  });

  test('optional group matches with and without its content', () => {
    expect(matcher.match('/docs/intro')).toEqual({
      pattern: '/docs{/:lang}/intro',
      params: {},
      data: 'intro',
    });
    expect(matcher.match('/docs/fr/intro')?.params).toEqual({ lang: 'fr' });
  });

  test('size counts routes', () => {
    expect(matcher.size).toBe(6);
  });

  test('conflicting patterns are rejected naming both', () => {
    const build = () => createMatcher([{ pattern: '/users/:id' }, { pattern: '/users/:name' }]);
    expect(build).toThrow(PatternError);
    expect(build).toThrow(/"\/users\/:name".*"\/users\/:id"/);
  });
});
