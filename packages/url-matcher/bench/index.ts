/**
 * Lookup throughput of @httpmesh/url-matcher vs find-my-way `find()` vs a linear scan of path-to-regexp
 * `match()` functions, on the GitHub REST route set and synthetic sets of 100 and 10,000 routes,
 * plus build time for 10,000 routes. Run: `npm run bench -w @httpmesh/url-matcher`.
 * BENCH_MS=<ms per measurement> shortens or lengthens every measurement (default 700).
 */
import FindMyWay from 'find-my-way';
import type { HTTPMethod } from 'find-my-way';
import { match as ptrMatch } from 'path-to-regexp';
import { createMatcher } from '../src/index.js';
import type { RouteSpec } from '../src/index.js';
import { githubRoutes } from '../test/fixtures/github-routes.js';
import { samplePaths, syntheticRoutes } from '../test/fixtures/synthetic-routes.js';

const MEASURE_MS = Number(process.env['BENCH_MS'] ?? 700);

type Lookup = (method: string, path: string) => string | null;

function toSpecs(lines: readonly string[]): RouteSpec<string>[] {
  return lines.map((line) => {
    const [method, pattern] = line.split(' ') as [string, string];
    return { pattern, methods: [method], data: pattern };
  });
}

function buildOurs(lines: readonly string[]): Lookup {
  const matcher = createMatcher(toSpecs(lines));
  return (method, path) => matcher.match(path, method)?.pattern ?? null;
}

function buildFindMyWay(lines: readonly string[]): Lookup {
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

function buildLinear(lines: readonly string[]): Lookup {
  const table = lines.map((line) => {
    const [method, pattern] = line.split(' ') as [string, string];
    return { method, pattern, fn: ptrMatch(pattern, { sensitive: true, trailing: false }) };
  });
  return (method, path) => {
    for (const route of table) if (route.method === method && route.fn(path) !== false) return route.pattern;
    return null;
  };
}

/** Well-warmed loop: ops/s over requests cycled in order, checked so the JIT cannot drop the work. */
function measure(lookup: Lookup, requests: ReadonlyArray<[string, string]>): number {
  let sink = 0;
  const methods = requests.map((r) => r[0]);
  const paths = requests.map((r) => r[1]);
  const n = requests.length;
  let next = 0;
  const run = (count: number) => {
    for (let i = 0; i < count; i++) {
      if (lookup(methods[next] as string, paths[next] as string) !== null) sink++;
      next = next + 1 === n ? 0 : next + 1;
    }
  };
  const warmUntil = performance.now() + MEASURE_MS / 3;
  while (performance.now() < warmUntil) run(200);
  let ops = 0;
  let batch = 256;
  const start = performance.now();
  let elapsed = 0;
  while (elapsed < MEASURE_MS) {
    run(batch);
    ops += batch;
    elapsed = performance.now() - start;
    if (elapsed < MEASURE_MS / 10) batch *= 2;
  }
  if (sink === 0) throw new Error('benchmark matched nothing');
  return (ops / elapsed) * 1000;
}

function agree(a: Lookup, b: Lookup, requests: ReadonlyArray<[string, string]>, names: string): void {
  for (const [method, path] of requests) {
    if (a(method, path) !== b(method, path)) throw new Error(`${names} disagree on ${method} ${path}`);
  }
}

function fmt(opsPerSecond: number): string {
  return `${Math.round(opsPerSecond).toLocaleString('en-US')}`.padStart(12);
}

const sets: Array<[string, string[]]> = [
  ['github', [...githubRoutes]],
  ['synthetic-100', syntheticRoutes(100)],
  ['synthetic-10000', syntheticRoutes(10_000)],
];

console.log(`node ${process.version}, ${MEASURE_MS} ms per measurement, ops/s (higher is better)\n`);
console.log(
  `${'set'.padEnd(16)}${'routes'.padStart(7)}${'url-matcher'.padStart(13)}${'find-my-way'.padStart(13)}` +
    `${'linear p2r'.padStart(13)}${'vs fmw'.padStart(9)}${'vs linear'.padStart(11)}`,
);
const nsPerOp = new Map<string, number>();
for (const [name, lines] of sets) {
  const requests = samplePaths(lines);
  const ours = buildOurs(lines);
  const fmw = buildFindMyWay(lines);
  const linear = buildLinear(lines);
  agree(ours, fmw, requests, 'url-matcher and find-my-way');
  agree(ours, linear, requests.slice(0, 300), 'url-matcher and the linear scan');
  const oursOps = measure(ours, requests);
  const fmwOps = measure(fmw, requests);
  const linearOps = measure(linear, requests);
  nsPerOp.set(name, 1e9 / oursOps);
  console.log(
    `${name.padEnd(16)}${String(lines.length).padStart(7)}${fmt(oursOps).padStart(13)}${fmt(fmwOps).padStart(13)}` +
      `${fmt(linearOps).padStart(13)}${`${(oursOps / fmwOps).toFixed(2)}x`.padStart(9)}` +
      `${`${(oursOps / linearOps).toFixed(0)}x`.padStart(11)}`,
  );
}
const small = nsPerOp.get('synthetic-100') as number;
const large = nsPerOp.get('synthetic-10000') as number;
console.log(
  `\nurl-matcher lookup cost: ${small.toFixed(0)} ns at 100 routes, ${large.toFixed(0)} ns at 10,000 routes ` +
    `(${(large / small).toFixed(2)}x)`,
);

const big = syntheticRoutes(10_000);
const timeBuild = (build: () => unknown): number => {
  let best = Number.POSITIVE_INFINITY;
  for (let i = 0; i < 5; i++) {
    const start = performance.now();
    build();
    best = Math.min(best, performance.now() - start);
  }
  return best;
};
const specs = toSpecs(big);
console.log(
  `build 10,000 routes (best of 5): url-matcher ${timeBuild(() => createMatcher(specs)).toFixed(1)} ms, ` +
    `find-my-way ${timeBuild(() => buildFindMyWay(big)).toFixed(1)} ms`,
);
