/**
 * Code generated from the compiled trie, so the hot path runs as straight-line JavaScript that V8 can
 * optimise per route shape instead of as a loop interpreting typed arrays.
 *
 * Safety: nothing from a pattern is ever spliced into source text except through `JSON.stringify` of a
 * string, which always yields one complete, valid JavaScript string literal (quotes, backslashes, newlines,
 * U+2028/U+2029, `${`, `*\/` all escaped or inert inside it); every other interpolated value is an integer
 * computed here. Parameter names become keys of object literals, where the only key with a side effect is
 * `__proto__` (it would set the prototype): the pattern compiler rejects that name, and this module checks
 * again and refuses to generate code for it.
 */

export type ParamsFactory = (values: readonly string[]) => Record<string, string>;
/** Builds params straight from raw ranges of the path, for matches where no value needs decoding. */
export type RangeParamsFactory = (
  path: string,
  starts: Int32Array,
  ends: Int32Array,
) => Record<string, string>;

/** Thrown only if a caller bypassed the pattern compiler's name check; never reached through createMatcher. */
function assertSafeName(name: string): void {
  if (typeof name !== 'string' || name === '__proto__') {
    throw new TypeError(`refusing to generate code for parameter name ${JSON.stringify(name)}`);
  }
}

/**
 * One factory per distinct list of parameter names (in order), each `(${args}) => ({ name: value, ... })`
 * with `value(i)` giving the source of the i-th value: every route shape gets its own hidden class, built with
 * fast in-object stores instead of keyed stores into a fresh dictionary. All factories are compiled by one
 * `new Function`, so building many routes costs one compilation, not one per route.
 */
function compileFactories<F>(
  nameLists: readonly (readonly string[])[],
  args: string,
  value: (i: number) => string,
): F[] {
  const keyOf = (names: readonly string[]): string => JSON.stringify(names);
  const distinct = new Map<string, number>();
  const bodies: string[] = [];
  for (const names of nameLists) {
    const key = keyOf(names);
    if (distinct.has(key)) continue;
    for (const name of names) assertSafeName(name);
    distinct.set(key, bodies.length);
    const fields = names.map((name, i) => `${JSON.stringify(name)}: ${value(i)}`).join(', ');
    bodies.push(`(${args}) => ({ ${fields} })`);
  }
  const all = new Function(`'use strict'; return [${bodies.join(',\n')}];`)() as F[];
  return nameLists.map((names) => all[distinct.get(keyOf(names)) as number] as F);
}

/** Factories taking the (already decoded) values in name order. */
export function compileParamsFactories(nameLists: readonly (readonly string[])[]): ParamsFactory[] {
  return compileFactories<ParamsFactory>(nameLists, 'v', (i) => `v[${i}]`);
}

/** Factories taking each value as `path.slice(starts[i], ends[i])`, as-is. */
export function compileRangeParamsFactories(nameLists: readonly (readonly string[])[]): RangeParamsFactory[] {
  return compileFactories<RangeParamsFactory>(nameLists, 'p, s, e', (i) => `p.slice(s[${i}], e[${i}])`);
}
