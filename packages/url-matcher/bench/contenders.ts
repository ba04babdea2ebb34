/**
 * The contenders of bench/index.ts, shared with bench/floor.ts: each builds a lookup from `METHOD /pattern`
 * lines that answers with the matched pattern (or null), so answers can be compared.
 */
import FindMyWay from 'find-my-way';
import type { HTTPMethod } from 'find-my-way';
import { match as ptrMatch } from 'path-to-regexp';
import { createMatcher } from '../src/index.js';
import type { RouteSpec } from '../src/index.js';

export type Lookup = (method: string, path: string) => string | null;

export function toSpecs(lines: readonly string[]): RouteSpec<string>[] {
  return lines.map((line) => {
    const [method, pattern] = line.split(' ') as [string, string];
    return { pattern, methods: [method], data: pattern };
  });
}

export function buildOurs(lines: readonly string[]): Lookup {
  const matcher = createMatcher(toSpecs(lines));
  return (method, path) => matcher.match(path, method)?.pattern ?? null;
}

export function buildFindMyWay(lines: readonly string[]): Lookup {
  const router = FindMyWay();
  for (const line of lines) {
    const [method, pattern] = line.split(' ') as [string, string];
    // find-my-way spells a named wildcard as a bare `*` and calls its param `*`.
    router.on(method as HTTPMethod, pattern.replace(/\*[A-Za-z_]\w*$/, '*'), () => undefined, pattern);
  }
  return (method, path) => {
    const found = router.find(method as HTTPMethod, path);
    return found === null ? null : (found.store as string);
  };
}

export function buildLinear(lines: readonly string[]): Lookup {
  const table = lines.map((line) => {
    const [method, pattern] = line.split(' ') as [string, string];
    return { method, pattern, fn: ptrMatch(pattern, { sensitive: true, trailing: false }) };
  });
  return (method, path) => {
    for (const route of table) if (route.method === method && route.fn(path) !== false) return route.pattern;
    return null;
  };
}
