import FindMyWay from 'find-my-way';
import type { HTTPMethod } from 'find-my-way';
import { describe, expect, test } from 'vitest';
import { createMatcher } from '../src/index.js';
import { githubRoutes } from './fixtures/github-routes.js';
import { syntheticRoutes } from './fixtures/synthetic-routes.js';
import { seededRandom, shuffled } from './helpers.js';

/*
 * Differential test against find-my-way over real route sets. Both routers use the same precedence
 * (static > parameter > wildcard per segment, with backtracking), so on every generated request they must
 * pick the same pattern and the same parameters. Generated requests avoid the places where the two are
 * documented to differ: find-my-way lets `:param` and `*` match an empty string, and returns null for a
 * malformed percent-escape where we keep the raw text.
 */

interface Outcome {
  pattern: string;
  params: Record<string, string>;
}

const METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;

function buildBoth(lines: readonly string[]) {
  const router = FindMyWay();
  const wildcardName = new Map<string, string>();
  for (const line of lines) {
    const [method, pattern] = line.split(' ') as [string, string];
    const named = /\*([A-Za-z_]\w*)$/.exec(pattern);
    if (named?.[1] !== undefined) wildcardName.set(pattern, named[1]);
    router.on(method as HTTPMethod, pattern.replace(/\*[A-Za-z_]\w*$/, '*'), () => undefined, pattern);
  }
  const ours = createMatcher(
    lines.map((line) => {
      const [method, pattern] = line.split(' ') as [string, string];
      return { pattern, methods: [method] };
    }),
  );
  const fmw = (method: string, path: string): Outcome | null => {
    const found = router.find(method as HTTPMethod, path);
    if (found === null) return null;
    const pattern = found.store as string;
    const params: Record<string, string> = {};
    for (const [key, value] of Object.entries(found.params)) {
      params[key === '*' ? (wildcardName.get(pattern) ?? key) : key] = value ?? '';
    }
    return { pattern, params };
  };
  const mine = (method: string, path: string): Outcome | null => {
    const found = ours.match(path, method);
    return found === null ? null : { pattern: found.pattern, params: found.params };
  };
  return { fmw, mine };
}

/** Requests derived from the route set: params filled with plain, encoded and "looks like a sibling" values. */
function generateRequests(lines: readonly string[], seed: number, perRoute: number): string[] {
  const random = seededRandom(seed);
  const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)] as T;
  const statics = [
    ...new Set(
      lines.flatMap((line) => (line.split(' ')[1] ?? '').split('/').filter((s) => /^[\w.-]+$/.test(s))),
    ),
  ];
  const values = () =>
    pick([
      () => `v${Math.floor(random() * 1000)}`,
      () => pick(statics),
      () => pick(statics),
      () => 'a%20b',
      () => 'caf%C3%A9',
      () => 'a%2Fb',
      () => 'x.y-z_~',
      () => `${pick(statics)}${pick(statics)}`,
    ])();
  const paths: string[] = [];
  for (const line of lines) {
    const pattern = line.split(' ')[1] ?? '/';
    for (let i = 0; i < perRoute; i++) {
      let path = pattern
        .replace(/:[A-Za-z_]\w*/g, () => values())
        .replace(/\*[A-Za-z_]\w*/g, () =>
          Array.from({ length: 1 + Math.floor(random() * 3) }, () => values()).join('/'),
        );
      const mutation = random();
      if (mutation < 0.15) path += `/${values()}`;
      else if (mutation < 0.25) path = path.slice(0, Math.max(1, path.lastIndexOf('/')));
      else if (mutation < 0.35) path += `?q=${values()}&next=/x/y`;
      paths.push(path);
    }
  }
  return paths;
}

function compare(lines: readonly string[], seed: number, perRoute: number) {
  const { fmw, mine } = buildBoth(lines);
  let compared = 0;
  let matched = 0;
  let excluded = 0;
  const mismatches: string[] = [];
  for (const path of generateRequests(lines, seed, perRoute)) {
    for (const method of METHODS) {
      const expected = fmw(method, path);
      const actual = mine(method, path);
      // find-my-way lets a parameter or wildcard be empty; path-to-regexp syntax (and this matcher) does not.
      if (expected !== null && Object.values(expected.params).includes('')) {
        excluded++;
        continue;
      }
      compared++;
      if (expected !== null) matched++;
      if (JSON.stringify(actual) !== JSON.stringify(expected)) {
        mismatches.push(
          `${method} ${path}: find-my-way ${JSON.stringify(expected)}, ours ${JSON.stringify(actual)}`,
        );
      }
    }
  }
  // The documented difference must stay rare, or the comparison would prove little.
  expect(excluded).toBeLessThan(compared / 50);
  return { compared, matched, mismatches };
}

describe('agrees with find-my-way', () => {
  test('GitHub REST API routes', () => {
    const { compared, matched, mismatches } = compare(githubRoutes, 1, 12);
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(compared).toBeGreaterThan(20_000);
    // Both matched a real share of the requests, so the agreement is not just "both said null".
    expect(matched).toBeGreaterThan(compared / 10);
  });

  test('a synthetic 1,000-route gateway table', () => {
    const { compared, matched, mismatches } = compare(syntheticRoutes(1000), 2, 2);
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(matched).toBeGreaterThan(compared / 10);
  });

  test('a set built to stress precedence and backtracking', () => {
    const lines = [
      'GET /users/me',
      'GET /users/:id',
      'GET /users/*rest',
      'GET /users/:id/posts',
      'GET /users/me/posts/:postId',
      'GET /:section/settings',
      'GET /admin/:page',
      'GET /a/:x/c',
      'GET /a/b/:y',
      'GET /a/b/c/d',
      'GET /*all',
      'POST /users/:id',
      'POST /users/me/avatar',
      'DELETE /:kind/:id',
      'DELETE /users/:id/sessions/*sid',
    ];
    const { compared, matched, mismatches } = compare(lines, 3, 60);
    expect(mismatches.slice(0, 10)).toEqual([]);
    expect(matched).toBeGreaterThan(compared / 10);
  });

  test('the GitHub answers do not depend on route order (5 shuffles)', () => {
    const requests = generateRequests(githubRoutes, 4, 3);
    const reference = buildBoth(githubRoutes).mine;
    const random = seededRandom(8);
    let matched = 0;
    for (let round = 0; round < 5; round++) {
      const { mine } = buildBoth(shuffled(githubRoutes, random));
      for (const path of requests) {
        for (const method of METHODS) {
          const expected = reference(method, path);
          if (expected !== null) matched++;
          expect(mine(method, path), `${method} ${path}`).toEqual(expected);
        }
      }
    }
    expect(matched).toBeGreaterThan(1000);
  });
});
