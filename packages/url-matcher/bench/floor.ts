/**
 * How fast could any matcher answer a GitHub-set lookup on this machine? Times, on the same requests and
 * with the same harness as bench/index.ts, the work every answer needs even when an oracle has already
 * picked the route, and compares it with this matcher and the linear scan.
 * Run: `npm run bench:floor -w @httpmesh/url-matcher` (BENCH_MS as in bench/index.ts).
 *
 * - scan: the three native `indexOf` calls that find the query, the fragment and any `%` (the API ignores
 *   the first two and decodes escapes, so something must look for them).
 * - answer: scan, then the result object with `params` sliced from the path (capture ranges given by the
 *   oracle: no routing at all).
 * - oracle-walk: scan, then code generated for that one route (its static segments compared as unrolled
 *   character-code constants, its parameter segments found with `indexOf`), then the answer: a router whose
 *   dispatch costs nothing. Timed one route at a time, each in its own process, so V8 optimises that route's
 *   code for exactly its traffic (with all routes mixed, V8 leaves most of such small functions slow), on a
 *   sample of routes; the walk's cost is oracle-walk minus answer on the same single request.
 */
import { fileURLToPath } from 'node:url';
import { compilePattern } from '../src/pattern.js';
import { githubRoutes } from '../test/fixtures/github-routes.js';
import { samplePaths } from '../test/fixtures/synthetic-routes.js';
import { createMatcher } from '../src/index.js';
import { buildLinear, buildOurs, toSpecs } from './contenders.js';
import type { Lookup } from './harness.js';
import { measure, measureInChild, runner } from './harness.js';

const MEASURE_MS = Number(process.env['BENCH_MS'] ?? 1500);
const SLASH = 47;

interface Answer {
  pattern: string;
  params: Record<string, string>;
  data: string;
}

/** Checks one route's shape for one path and records its capture ranges; false if the path is not the route's. */
type RouteWalk = (path: string, stop: number, starts: Int32Array, ends: Int32Array) => boolean;
type ParamsBuilder = (path: string, starts: Int32Array, ends: Int32Array) => Record<string, string>;

interface Route {
  readonly method: string;
  readonly pattern: string;
  readonly names: readonly string[];
  readonly walk: RouteWalk;
  readonly params: ParamsBuilder;
}

/** Straight-line code for one route (bench-only; the patterns are the fixture's, names go in as JSON). */
function compileRoute(method: string, pattern: string): Route {
  const alternatives = compilePattern(pattern, {
    caseSensitive: true,
    ignoreTrailingSlash: false,
    ignoreDuplicateSlashes: false,
  });
  if (alternatives.length !== 1) throw new Error(`${pattern}: optional groups are not needed here`);
  const names: string[] = [];
  const lines = ['let e = 0;'];
  for (const segment of alternatives[0] ?? []) {
    if (segment.kind === 'static') {
      const codes = [...segment.label].map((c) => c.charCodeAt(0));
      const tests = codes.map((code, i) => `p.charCodeAt(s + ${i}) === ${code}`);
      tests.unshift(`s + ${codes.length} <= t`);
      tests.push(`(s + ${codes.length} === t || p.charCodeAt(s + ${codes.length}) === ${SLASH})`);
      lines.push(`if (!(${tests.join(' && ')})) return false;`, `s += ${codes.length + 1};`);
    } else if (segment.kind === 'param') {
      lines.push(
        `e = p.indexOf('/', s); if (e === -1 || e > t) e = t;`,
        'if (e === s || e - s > 100) return false;',
        `cs[${names.length}] = s; ce[${names.length}] = e; s = e + 1;`,
      );
      names.push(segment.name);
    } else if (segment.kind === 'wildcard') {
      lines.push(
        `if (s >= t) return false;`,
        `cs[${names.length}] = s; ce[${names.length}] = t; return true;`,
      );
      names.push(segment.name);
    } else {
      throw new Error(`${pattern}: mixed segments are not needed here`);
    }
  }
  lines.push('return s > t;');
  const walk = new Function(
    'p',
    't',
    'cs',
    'ce',
    `'use strict'; let s = 1;\n${lines.join('\n')}`,
  ) as RouteWalk;
  const fields = names.map((name, i) => `${JSON.stringify(name)}: p.slice(s[${i}], e[${i}])`).join(', ');
  const params = new Function('p', 's', 'e', `'use strict'; return { ${fields} };`) as ParamsBuilder;
  return { method, pattern, names, walk, params };
}

const routes = githubRoutes.map((line) => {
  const [method, pattern] = line.split(' ') as [string, string];
  return compileRoute(method, pattern);
});
const allRequests = samplePaths(githubRoutes);
/** `measure <contender> <i>` times request i alone (the per-route rows); without i, all requests in turn. */
const only = process.argv[2] === 'measure' && process.argv[4] !== undefined ? Number(process.argv[4]) : -1;
const requests = only === -1 ? allRequests : [allRequests[only] as [string, string]];
/** Routes timed one at a time: every 15th, about 24 of the 358. */
const SAMPLE_EVERY = 15;
const starts = new Int32Array(8);
const ends = new Int32Array(8);

function pathStop(path: string): number {
  let stop = path.indexOf('?', 1);
  if (stop === -1) stop = path.length;
  const fragment = path.indexOf('#', 1);
  if (fragment !== -1 && fragment < stop) stop = fragment;
  return path.indexOf('%', 1) === -1 ? stop : -1;
}

/** The route each request belongs to (request i is route i's sample), looked up by path in the closures below. */
function oracle(): Map<string, Route> {
  const byPath = new Map<string, Route>();
  allRequests.forEach(([, path], i) => {
    byPath.set(path, routes[i] as Route);
  });
  return byPath;
}

const oracleCost = (): Lookup => {
  const byPath = oracle();
  return (_method, path) => byPath.get(path) ?? null;
};

const contenders: Record<string, () => Lookup> = {
  baseline: () => (_method, path) => path,
  // The oracle's own Map lookup is subtracted from the oracle contenders below.
  oracle: oracleCost,
  scan: () => {
    const byPath = oracle();
    return (_method, path) => (pathStop(path) === -1 ? null : (byPath.get(path) ?? null));
  },
  answer: () => {
    const byPath = oracle();
    // The ranges the oracle knows: recorded once by each route's own walk.
    const ranges = new Map<string, [Int32Array, Int32Array]>();
    for (const [, path] of requests) {
      const route = byPath.get(path) as Route;
      if (!route.walk(path, path.length, starts, ends)) throw new Error(`${path}: not its route's`);
      ranges.set(path, [starts.slice(), ends.slice()]);
    }
    return (_method, path): Answer | null => {
      const stop = pathStop(path);
      const route = byPath.get(path);
      const range = ranges.get(path);
      if (stop === -1 || route === undefined || range === undefined) return null;
      return { pattern: route.pattern, params: route.params(path, range[0], range[1]), data: route.pattern };
    };
  },
  'oracle-walk': () => {
    const byPath = oracle();
    return (_method, path): Answer | null => {
      const stop = pathStop(path);
      const route = byPath.get(path);
      if (stop === -1 || route === undefined || !route.walk(path, stop, starts, ends)) return null;
      return { pattern: route.pattern, params: route.params(path, starts, ends), data: route.pattern };
    };
  },
  // The same lookups as in bench/index.ts (answering with the pattern), so the rows compare with its table.
  'url-matcher': () => buildOurs(githubRoutes),
  linear: () => buildLinear(githubRoutes),
};

if (process.argv[2] === 'measure') {
  const name = process.argv[3] as string;
  console.log(measure(runner(name, (contenders[name] as () => Lookup)(), requests), MEASURE_MS));
  process.exit(0);
}

// The oracle contenders must give the matcher's whole answer, params included, or they would do less work.
const reference = createMatcher(toSpecs(githubRoutes));
for (const name of ['answer', 'oracle-walk']) {
  const lookup = (contenders[name] as () => Lookup)();
  for (const [method, path] of requests) {
    const expected = JSON.stringify(reference.match(path, method));
    if (JSON.stringify(lookup(method, path)) !== expected) throw new Error(`${name} differs on ${path}`);
  }
}

const script = fileURLToPath(import.meta.url);
const ns: Record<string, number> = {};
for (const name of ['baseline', 'oracle', 'scan', 'answer', 'url-matcher', 'linear']) {
  ns[name] = 1e9 / measureInChild(script, [name]);
}
// Per route, alone: the walk is what oracle-walk costs over answer on the same request.
const walks: number[] = [];
for (let i = 0; i < allRequests.length; i += SAMPLE_EVERY) {
  const walk = 1e9 / measureInChild(script, ['oracle-walk', String(i)]);
  const answer = 1e9 / measureInChild(script, ['answer', String(i)]);
  walks.push(walk - answer);
}
const harness = ns['baseline'] as number;
const oracleNs = (ns['oracle'] as number) - harness;
const net = (name: string): number =>
  (ns[name] as number) - harness - (['scan', 'answer'].includes(name) ? oracleNs : 0);
const walkNs = walks.reduce((sum, w) => sum + w, 0) / walks.length;
const linear = net('linear');
const rows: Array<[string, number]> = [
  ['scan', net('scan')],
  ['answer', net('answer')],
  [`walk (${walks.length} routes, alone)`, walkNs],
  ['answer + walk', net('answer') + walkNs],
  ['url-matcher', net('url-matcher')],
  ['linear scan', linear],
];
console.log(
  `node ${process.version}; GitHub set (${routes.length} routes), net CPU ns per lookup (harness ` +
    `${harness.toFixed(1)} ns and, for scan and answer, the oracle's Map lookup ${oracleNs.toFixed(1)} ns ` +
    'subtracted); the last column is the linear scan divided by the row\n',
);
for (const [name, value] of rows) {
  console.log(
    `${name.padEnd(26)}${value.toFixed(0).padStart(7)} ns${`${(linear / value).toFixed(0)}x`.padStart(8)}`,
  );
}
console.log(
  `\nwalk per route, alone: ${Math.min(...walks).toFixed(0)} to ${Math.max(...walks).toFixed(0)} ns; ` +
    `50x the linear scan means at most ${(linear / 50).toFixed(0)} ns per lookup`,
);
