import { match, parse } from 'path-to-regexp';
import type { Token } from 'path-to-regexp';
import { describe, expect, test } from 'vitest';
import { createMatcher } from '../src/index.js';
import { githubRoutes } from './fixtures/github-routes.js';
import { seededRandom } from './helpers.js';

/*
 * Each pattern on its own must match exactly the paths path-to-regexp's own `match()` matches (strict
 * trailing slash, case-sensitive), with the same parameters. Two documented differences are kept out of the
 * generated paths: malformed escapes (path-to-regexp throws) and query strings (it does not strip them).
 * For patterns with optional groups only match/no-match is compared: path-to-regexp takes the first
 * alternative in expansion order, this matcher the most specific one.
 */

const extraPatterns = [
  '/',
  '/range/:from-:to',
  '/v:major.:minor/docs',
  '/files/:name.json',
  '/files/:name.tar.gz',
  '/a/:b-:c-:d',
  '/img/:w{x:h}.png',
  '/docs{/:lang}/intro',
  '/a{/b{/c}}',
  '/x{/:p}/y',
  '/users/:id{/posts/:postId}',
  '/list{/}',
  '/opt{/:a}{/:b}',
  '/f/*path',
  '/q/:"user id"',
  '/time/12\\:00',
  '/dots/./x',
];

const patterns = [...new Set(githubRoutes.map((line) => line.split(' ')[1] ?? '/')), ...extraPatterns];

function hasGroup(tokens: readonly Token[]): boolean {
  return tokens.some((t) => t.type === 'group');
}

function render(tokens: readonly Token[], random: () => number): string {
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const value = () =>
    pick(['v1', 'a-b', '1.2', 'x.json', 'a%20b', 'a%2Fb', 'caf%C3%A9', 'repos', '-', '.', 'x-y-z']);
  let out = '';
  for (const token of tokens) {
    if (token.type === 'text') out += token.value;
    else if (token.type === 'param') out += value();
    else if (token.type === 'wildcard')
      out += Array.from({ length: 1 + Math.floor(random() * 3) }, value).join('/');
    else if (random() < 0.5) out += render(token.tokens, random);
  }
  return out;
}

function mutate(path: string, random: () => number): string {
  const roll = random();
  if (roll < 0.1) return `${path}/`;
  if (roll < 0.2) return `${path}/extra`;
  if (roll < 0.3) return path.slice(0, Math.max(1, path.lastIndexOf('/')));
  if (roll < 0.35) return path.toUpperCase();
  return path;
}

describe('single patterns agree with path-to-regexp match()', () => {
  test(`${patterns.length} patterns, GitHub's and a syntax zoo`, () => {
    const random = seededRandom(21);
    let compared = 0;
    let matched = 0;
    const mismatches: string[] = [];
    for (const pattern of patterns) {
      const tokens = parse(pattern).tokens;
      const reference = match(pattern, { sensitive: true, trailing: false });
      const ours = createMatcher([{ pattern }]);
      for (let i = 0; i < 30; i++) {
        const path = mutate(render(tokens, random), random);
        const expected = reference(path);
        const actual = ours.match(path);
        compared++;
        if (expected !== false) matched++;
        if (hasGroup(tokens)) {
          if ((expected === false) !== (actual === null)) {
            mismatches.push(
              `${pattern} ${path}: path-to-regexp ${expected !== false}, ours ${actual !== null}`,
            );
          }
          continue;
        }
        const expectedParams =
          expected === false
            ? null
            : Object.fromEntries(
                Object.entries(expected.params).map(([k, v]) => [k, Array.isArray(v) ? v.join('/') : v]),
              );
        if (JSON.stringify(actual?.params ?? null) !== JSON.stringify(expectedParams)) {
          mismatches.push(
            `${pattern} ${path}: path-to-regexp ${JSON.stringify(expectedParams)}, ours ${JSON.stringify(actual?.params ?? null)}`,
          );
        }
      }
    }
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(compared).toBeGreaterThan(7000);
    expect(matched).toBeGreaterThan(compared / 3);
  });
});
