import { compileParamsFactories, compileRangeParamsFactories } from './codegen.js';
import type { ParamsFactory, RangeParamsFactory } from './codegen.js';
import { MatcherOptionsError, PatternError } from './errors.js';
import { compilePattern } from './pattern.js';
import type { ShapeOptions } from './pattern.js';
import { asciiLower, hashRange, hashString, regionEqualsFolded, safeDecode } from './text.js';
import {
  ANY_METHOD,
  TrieBuilder,
  E_CHILD,
  E_HASH,
  E_LENGTH,
  E_OFFSET,
  E_PARENT,
  EDGE_STRIDE,
  edgeSlot,
  LIST_ONLY,
  N_CAPS,
  N_COMP_COUNT,
  N_COMP_START,
  N_ENTRY_COUNT,
  N_ENTRY_HOSTS,
  N_ENTRY_START,
  N_LABEL_LENGTH,
  N_LABEL_OFFSET,
  N_PARAM,
  N_STATIC_CHILD,
  N_STATIC_COUNT,
  N_WILD_COUNT,
  N_WILD_HOSTS,
  N_WILD_START,
  NODE_STRIDE,
} from './trie.js';
import type { AnyEntry, CompiledTrie, CompositeEdge, HostIndex } from './trie.js';

export interface RouteSpec<T> {
  /** path-to-regexp v8 syntax: `/users/:id`, `/files/*path`, `/docs{/:lang}`. */
  pattern: string;
  /** Restricts the route to these methods (upper-cased when compiled); omitted means any method. */
  methods?: string[];
  /** Restricts the route to an exact host (`api.example.com`) or a wildcard (`*.example.com`). */
  host?: string;
  /** Returned as-is in {@link RouteMatch.data}. */
  data?: T;
}

export interface MatcherOptions {
  /** Static text compares case-sensitively (default `true`). When false, A-Z fold to a-z. */
  caseSensitive?: boolean;
  /** `/users/` matches `/users` and vice versa (default `false`). */
  ignoreTrailingSlash?: boolean;
  /** Runs of `/` count as one (default `false`). */
  ignoreDuplicateSlashes?: boolean;
  /** A `:param` longer than this many raw (still encoded) characters does not match (default 100). */
  maxParamLength?: number;
}

export interface RouteMatch<T> {
  /** The route's pattern exactly as given in its RouteSpec. */
  pattern: string;
  /** Percent-decoded parameter values by name (a wildcard's value is its segments joined by `/`). */
  params: Record<string, string>;
  data: T | undefined;
}

export interface Matcher<T> {
  /**
   * The most specific route for `path` (query string and fragment ignored), or null.
   * Omitting `method` or `host` skips that check. Never throws for any string input.
   */
  match(path: string, method?: string, host?: string): RouteMatch<T> | null;
  /** Number of routes the matcher was built from. */
  readonly size: number;
}

const DEFAULT_MAX_PARAM_LENGTH = 100;
const METHOD_TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const HOST_NAME = /^(\*\.)?[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?(\.[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?)*$/;
const HOST_IPV6 = /^\[[0-9a-f:.]+\]$/;

const SLASH = 47;

/** Compiles `routes` into an immutable matcher. Throws {@link PatternError} for any bad or conflicting route. */
export function createMatcher<T = unknown>(routes: RouteSpec<T>[], options: MatcherOptions = {}): Matcher<T> {
  const caseSensitive = options.caseSensitive ?? true;
  const ignoreTrailingSlash = options.ignoreTrailingSlash ?? false;
  const ignoreDuplicateSlashes = options.ignoreDuplicateSlashes ?? false;
  const maxParamLength = options.maxParamLength ?? DEFAULT_MAX_PARAM_LENGTH;
  if (!(maxParamLength >= 1) || (!Number.isInteger(maxParamLength) && maxParamLength !== Infinity)) {
    throw new MatcherOptionsError(
      `maxParamLength must be a positive integer or Infinity, got ${maxParamLength}`,
    );
  }
  if (!Array.isArray(routes)) throw new MatcherOptionsError('routes must be an array of RouteSpec');
  const shapeOptions: ShapeOptions = { caseSensitive, ignoreTrailingSlash, ignoreDuplicateSlashes };

  const builder = new TrieBuilder();
  // Method name -> bit, shared by all routes of this matcher (at most 30 bits keep masks small integers).
  const methodBits = new Map<string, number>();
  const maskOf = (methods: readonly string[] | null): number => {
    if (methods === null) return ANY_METHOD;
    let mask = 0;
    for (const method of methods) {
      let bit = methodBits.get(method);
      if (bit === undefined) {
        bit = methodBits.size < 30 ? 1 << methodBits.size : 0;
        methodBits.set(method, bit);
      }
      if (bit === 0) return LIST_ONLY;
      mask |= bit;
    }
    return mask;
  };
  routes.forEach((route, routeIndex) => {
    const pattern: unknown = route?.pattern;
    if (typeof pattern !== 'string') {
      throw new PatternError('HTTPMESH_ROUTE_INVALID', `Route ${routeIndex}: pattern must be a string`, {
        pattern: String(pattern),
      });
    }
    const methods = normaliseMethods(route.methods, pattern);
    const host = normaliseHost(route.host, pattern);
    const template = {
      routeIndex,
      pattern,
      data: route.data,
      methods,
      methodMask: maskOf(methods),
      hostLabel: host === null ? null : host.label,
      hostWildcard: host?.wildcard ?? false,
    };
    for (const segments of compilePattern(pattern, shapeOptions)) builder.insert(segments, template);
  });
  const lookup = createLookup(builder.compile(), methodBits, {
    caseSensitive,
    ignoreTrailingSlash,
    ignoreDuplicateSlashes,
    maxParamLength,
  });
  return Object.freeze({
    match: lookup as (path: string, method?: string, host?: string) => RouteMatch<T> | null,
    size: routes.length,
  });
}

function normaliseMethods(methods: unknown, pattern: string): string[] | null {
  if (methods === undefined) return null;
  if (!Array.isArray(methods) || methods.length === 0) {
    throw new PatternError(
      'HTTPMESH_ROUTE_INVALID',
      `Route ${JSON.stringify(pattern)}: methods must be a non-empty array`,
      {
        pattern,
      },
    );
  }
  const out = new Set<string>();
  for (const method of methods) {
    if (typeof method !== 'string' || !METHOD_TOKEN.test(method)) {
      throw new PatternError(
        'HTTPMESH_ROUTE_INVALID',
        `Route ${JSON.stringify(pattern)}: ${JSON.stringify(method)} is not an HTTP method token`,
        { pattern },
      );
    }
    out.add(method.toUpperCase());
  }
  return [...out].sort();
}

function normaliseHost(host: unknown, pattern: string): { label: string; wildcard: boolean } | null {
  if (host === undefined) return null;
  let value = typeof host === 'string' ? asciiLower(host) : '';
  if (value.endsWith('.')) value = value.slice(0, -1);
  if (!HOST_NAME.test(value) && !HOST_IPV6.test(value)) {
    throw new PatternError(
      'HTTPMESH_ROUTE_INVALID',
      `Route ${JSON.stringify(pattern)}: host ${JSON.stringify(host)} must be a host name (no port), ` +
        'an IPv6 literal in brackets, or *.domain',
      { pattern },
    );
  }
  return value.startsWith('*.')
    ? { label: value.slice(1), wildcard: true }
    : { label: value, wildcard: false };
}

interface LookupOptions {
  readonly caseSensitive: boolean;
  readonly ignoreTrailingSlash: boolean;
  readonly ignoreDuplicateSlashes: boolean;
  readonly maxParamLength: number;
}

/**
 * Builds the lookup function. It scans the path once with native indexOf (recording at most maxDepth + 1
 * segment boundaries in preallocated arrays), then walks the compiled trie depth-first: static, composite,
 * param, wildcard. Every trie node sits at a fixed depth, so each is visited at most once per lookup and the
 * walk is linear in the size of the trie, whatever the input. Strings and objects are allocated only for a
 * match (and for segments that need percent-decoding or case folding).
 */
function createLookup(
  trie: CompiledTrie,
  methodBits: ReadonlyMap<string, number>,
  options: LookupOptions,
): (path: string, method?: string, host?: string) => RouteMatch<unknown> | null {
  const { caseSensitive, ignoreTrailingSlash, ignoreDuplicateSlashes, maxParamLength } = options;
  const plainSlashes = !ignoreTrailingSlash && !ignoreDuplicateSlashes;
  /** Static labels compare with the raw text of an unescaped segment (no case folding). */
  const rawStatics = caseSensitive;
  const { nodes, edges, edgeMask, labels, entryList, entries, entryMethodMask } = trie;
  const { composites, compositeChild, hostIndexes } = trie;
  // Percent-decoding shrinks a segment at most 9-fold (a 3-byte UTF-8 character written as %XX%XX%XX).
  const maxRawLabelLength = trie.maxLabelLength;
  // The labels' character codes in a typed array: reading one is a plain load, where charCodeAt on a string
  // first dispatches on how the string is stored, for every character.
  const labelCodes = new Uint16Array(labels.length);
  for (let i = 0; i < labels.length; i++) labelCodes[i] = labels.charCodeAt(i);
  const maxEscapedLabelLength = trie.maxLabelLength * 9;
  const cap = trie.maxDepth + 1;
  const segStart = new Int32Array(cap);
  const segEnd = new Int32Array(cap);
  const segEscaped = new Uint8Array(cap);
  const capStart = new Int32Array(trie.maxCaptures + 1);
  const capEnd = new Int32Array(trie.maxCaptures + 1);
  // A short array beats a Map for the handful of methods a route table uses.
  const methodNames = [...methodBits.keys()];
  const methodMasks = [...methodBits.values()];
  const paramsFactories = compileParamsFactories(entries.map((entry) => entry.names));
  const rangeParamsFactories = compileRangeParamsFactories(entries.map((entry) => entry.names));
  /** Decoded capture values of the current match, handed to the route's params factory. */
  const values: string[] = new Array<string>(trie.maxCaptures).fill('');
  // Per-lookup state; lookups are synchronous and never call out, so sharing it is safe.
  let path = '';
  let segCount = 0;
  /** Some recorded segment holds a `%`; when 0, no capture needs decoding. */
  let anyEscaped = 0;
  /** The path (before `?`/`#`) holds a `%` somewhere, so a wildcard's value may need decoding. */
  let pathEscaped = false;
  let restEnd = 0;
  let reqMethod: string | undefined;
  let reqMethodBit = 0;
  let reqHost: string | undefined;
  /** reqHost without port and trailing dot, lower-case; computed when a host index first needs it. */
  let reqHostKey: string | null = null;

  function scan(input: string): void {
    // Native indexOf scans faster than a charCodeAt loop; the path ends at `?` or `#`, whichever is first.
    let stop = input.indexOf('?', 1);
    if (stop === -1) stop = input.length;
    const fragment = input.indexOf('#', 1);
    if (fragment !== -1 && fragment < stop) stop = fragment;
    const percent = input.indexOf('%', 1);
    const mayEscape = percent !== -1 && percent < stop;
    pathEscaped = mayEscape;
    let recorded = 0;
    let start = 1;
    anyEscaped = 0;
    for (;;) {
      if (ignoreDuplicateSlashes) while (start < stop && input.charCodeAt(start) === SLASH) start++;
      let end = input.indexOf('/', start);
      if (end === -1 || end > stop) end = stop;
      segStart[recorded] = start;
      segEnd[recorded] = end;
      let escaped = 0;
      if (mayEscape) {
        const at = input.indexOf('%', start);
        if (at !== -1 && at < end) escaped = 1;
      }
      segEscaped[recorded] = escaped;
      anyEscaped |= escaped;
      recorded++;
      if (end === stop) {
        restEnd = pathEndTrimmed(end, recorded > 1 && start === end);
        segCount = ignoreTrailingSlash && recorded > 1 && start === end ? recorded - 1 : recorded;
        return;
      }
      if (recorded === cap) {
        // More segments than any pattern has: only a wildcard can use them, and it finds the end itself.
        restEnd = -1;
        segCount = cap;
        return;
      }
      start = end + 1;
    }
  }

  /** End of what a wildcard takes: the query/fragment cut off and, when ignored, the trailing slash. */
  function pathEndTrimmed(end: number, endsWithEmptySegment: boolean): number {
    if (!ignoreTrailingSlash || !endsWithEmptySegment) return end;
    let trimmed = end - 1;
    while (ignoreDuplicateSlashes && trimmed > 1 && path.charCodeAt(trimmed - 1) === SLASH) trimmed--;
    return trimmed;
  }

  /** restEnd for a path whose scan stopped early at `cap` segments. */
  function findRestEnd(from: number): number {
    let end = path.indexOf('?', from);
    if (end === -1) end = path.length;
    const fragment = path.indexOf('#', from);
    if (fragment !== -1 && fragment < end) end = fragment;
    // The scan stopped after at least two segments, so a final `/` here always ends an empty last segment.
    return pathEndTrimmed(end, path.charCodeAt(end - 1) === SLASH);
  }

  /** The segment as static labels are stored: percent-decoded and, if case-insensitive, folded. */
  function segmentKey(d: number, start: number, end: number): string {
    let key = path.slice(start, end);
    if (segEscaped[d] === 1) key = safeDecode(key);
    return caseSensitive ? key : asciiLower(key);
  }

  /** Raw segment [start, end) equals labels[offset, offset + length). */
  function rawEquals(start: number, end: number, offset: number, length: number): boolean {
    if (end - start !== length) return false;
    for (let i = 0; i < length; i++) {
      if (path.charCodeAt(start + i) !== labelCodes[offset + i]) return false;
    }
    return true;
  }

  function onlyStaticMatches(base: number, d: number, start: number, end: number): boolean {
    const offset = nodes[base + N_LABEL_OFFSET] as number;
    const length = nodes[base + N_LABEL_LENGTH] as number;
    if (caseSensitive && segEscaped[d] === 0) return rawEquals(start, end, offset, length);
    const key = segmentKey(d, start, end);
    return key.length === length && labels.startsWith(key, offset);
  }

  function findStatic(node: number, d: number, start: number, end: number): number {
    const raw = caseSensitive && segEscaped[d] === 0;
    const key = raw ? '' : segmentKey(d, start, end);
    const hash = raw ? hashRange(path, start, end) : hashString(key);
    return probeStatic(node, hash, raw, key, start, end);
  }

  /** The child under `node` whose label has `hash` and equals the raw segment (or `key`), or -1. */
  function probeStatic(
    node: number,
    hash: number,
    raw: boolean,
    key: string,
    start: number,
    end: number,
  ): number {
    for (let slot = edgeSlot(node, hash, edgeMask); ; slot = (slot + 1) & edgeMask) {
      const at = slot * EDGE_STRIDE;
      const parent = edges[at + E_PARENT] as number;
      if (parent === -1) return -1;
      if (parent !== node || edges[at + E_HASH] !== hash) continue;
      const offset = edges[at + E_OFFSET] as number;
      const length = edges[at + E_LENGTH] as number;
      if (
        raw ? rawEquals(start, end, offset, length) : key.length === length && labels.startsWith(key, offset)
      ) {
        return edges[at + E_CHILD] as number;
      }
    }
  }

  function textAt(offset: number, text: string): boolean {
    return caseSensitive ? path.startsWith(text, offset) : regionEqualsFolded(path, offset, text);
  }

  /** Last offset in [low, high] where `text` starts, or -1. */
  function findTextBackward(text: string, low: number, high: number): number {
    if (high < low) return -1;
    if (caseSensitive) {
      const at = path.lastIndexOf(text, high);
      return at >= low ? at : -1;
    }
    for (let at = high; at >= low; at--) if (regionEqualsFolded(path, at, text)) return at;
    return -1;
  }

  /**
   * Matches `prefix :a sep :b ... suffix` in [start, end). Like path-to-regexp, every parameter after the
   * first stops at the last occurrence of the text before it, so `:from-:to` on `1-2-3` gives `1-2` and `3`.
   */
  function matchComposite(edge: CompositeEdge, slot: number, start: number, end: number): boolean {
    const texts = edge.texts;
    const last = texts.length - 1;
    const prefix = texts[0] as string;
    const suffix = texts[last] as string;
    if (!textAt(start, prefix)) return false;
    const low = start + prefix.length;
    let limit = end - suffix.length;
    if (limit <= low || !textAt(limit, suffix)) return false;
    for (let i = last - 1; i >= 1; i--) {
      const separator = texts[i] as string;
      // Leave at least one character for this parameter and for the first one.
      const found = findTextBackward(separator, low + 1, limit - 1 - separator.length);
      if (found === -1 || limit - found - separator.length > maxParamLength) return false;
      capStart[slot + i] = found + separator.length;
      capEnd[slot + i] = limit;
      limit = found;
    }
    if (limit - low > maxParamLength) return false;
    capStart[slot] = low;
    capEnd[slot] = limit;
    return true;
  }

  /**
   * First entry in [start, start + count) of entryList whose methods fit the request, or -1. Lists with
   * host-scoped entries go through pickByHost instead, unless the request has no host to check.
   */
  function pick(start: number, count: number): number {
    for (let i = start; i < start + count; i++) {
      const id = entryList[i] as number;
      const mask = entryMethodMask[id] as number;
      if (mask !== ANY_METHOD && reqMethod !== undefined) {
        if (mask === LIST_ONLY) {
          if (!(entries[id] as AnyEntry).methods?.includes(reqMethod)) continue;
        } else if ((mask & reqMethodBit) === 0) {
          continue;
        }
      }
      return id;
    }
    return -1;
  }

  function hostKey(host: string): string {
    let end = host.length;
    if (host.charCodeAt(0) === 91) {
      const bracket = host.indexOf(']');
      if (bracket !== -1) end = bracket + 1;
    } else {
      const colon = host.indexOf(':');
      if (colon !== -1) end = colon;
    }
    if (end > 0 && host.charCodeAt(end - 1) === 46) end--;
    return asciiLower(host.slice(0, end));
  }

  /** First of `ids` (all of the right host) whose methods fit, or -1. */
  function pickMethod(ids: readonly number[] | undefined): number {
    if (ids === undefined) return -1;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i] as number;
      const mask = entryMethodMask[id] as number;
      if (mask === ANY_METHOD || reqMethod === undefined) return id;
      if (
        mask === LIST_ONLY
          ? (entries[id] as AnyEntry).methods?.includes(reqMethod)
          : (mask & reqMethodBit) !== 0
      ) {
        return id;
      }
    }
    return -1;
  }

  /** pick() for a list with host-scoped routes: exact host, then wildcard hosts longest first, then any host. */
  function pickByHost(start: number, count: number, index: number): number {
    if (reqHost === undefined) return pick(start, count);
    reqHostKey ??= hostKey(reqHost);
    const hosts = hostIndexes[index] as HostIndex;
    let id = pickMethod(hosts.exact.get(reqHostKey));
    if (id !== -1) return id;
    if (hosts.wildcard.size > 0) {
      // `*.example.com` needs at least one label before `.example.com`, so the search starts at offset 1.
      for (let dot = reqHostKey.indexOf('.', 1); dot !== -1; dot = reqHostKey.indexOf('.', dot + 1)) {
        id = pickMethod(hosts.wildcard.get(reqHostKey.slice(dot)));
        if (id !== -1) return id;
      }
    }
    return pickMethod(hosts.anyHost);
  }

  function pickAt(start: number, count: number, index: number): number {
    return index === -1 ? pick(start, count) : pickByHost(start, count, index);
  }

  /** The route a path ending at this node gets, or -1. */
  function routeAtEnd(base: number): number {
    const count = nodes[base + N_ENTRY_COUNT] as number;
    return count === 0
      ? -1
      : pickAt(nodes[base + N_ENTRY_START] as number, count, nodes[base + N_ENTRY_HOSTS] as number);
  }

  /** The static child whose label is segment d, or -1. */
  function staticChild(node: number, base: number, d: number, start: number, end: number): number {
    const statics = nodes[base + N_STATIC_COUNT] as number;
    if (statics === 0 || end - start > (segEscaped[d] === 0 ? maxRawLabelLength : maxEscapedLabelLength)) {
      return -1;
    }
    if (statics !== 1) return findStatic(node, d, start, end);
    return onlyStaticMatches(base, d, start, end) ? (nodes[base + N_STATIC_CHILD] as number) : -1;
  }

  /** The node's `:param` child taking segment [start, end) (captured), or -1 when it has none or the length does not fit. */
  function paramChild(base: number, start: number, end: number): number {
    const param = nodes[base + N_PARAM] as number;
    const length = end - start;
    if (param === -1 || length === 0 || length > maxParamLength) return -1;
    const slot = nodes[base + N_CAPS] as number;
    capStart[slot] = start;
    capEnd[slot] = end;
    return param;
  }

  /** The wildcard route of this node taking the rest of the path from `start` (captured), or -1. */
  function wildcardRoute(base: number, start: number): number {
    const wildcards = nodes[base + N_WILD_COUNT] as number;
    if (wildcards === 0) return -1;
    if (restEnd === -1) restEnd = findRestEnd(start);
    if (restEnd <= start) return -1;
    const found = pickAt(
      nodes[base + N_WILD_START] as number,
      wildcards,
      nodes[base + N_WILD_HOSTS] as number,
    );
    if (found !== -1) {
      const slot = nodes[base + N_CAPS] as number;
      capStart[slot] = start;
      capEnd[slot] = restEnd;
    }
    return found;
  }

  function walk(node: number, d: number): number {
    const base = node * NODE_STRIDE;
    if (d >= segCount) return routeAtEnd(base);
    const start = segStart[d] as number;
    const end = segEnd[d] as number;
    const child = staticChild(node, base, d, start, end);
    if (child !== -1) {
      const found = walk(child, d + 1);
      if (found !== -1) return found;
    }
    const compositeCount = nodes[base + N_COMP_COUNT] as number;
    if (compositeCount !== 0) {
      const first = nodes[base + N_COMP_START] as number;
      for (let i = first; i < first + compositeCount; i++) {
        if (matchComposite(composites[i] as CompositeEdge, nodes[base + N_CAPS] as number, start, end)) {
          const found = walk(compositeChild[i] as number, d + 1);
          if (found !== -1) return found;
        }
      }
    }
    const param = paramChild(base, start, end);
    if (param !== -1) {
      const found = walk(param, d + 1);
      if (found !== -1) return found;
    }
    return wildcardRoute(base, start);
  }

  /**
   * The walk's first descent, as a loop: at each segment it takes the first alternative the walk would try
   * (static, then param, then wildcard) and never backs up. When that descent ends in a match it is the
   * walk's answer (depth-first, the walk returns its first success); otherwise -1, and the caller runs the
   * full walk. Most lookups never back up, and a loop keeps them free of one call per segment.
   */
  function descend(): number {
    let node = 0;
    for (let d = 0; ; d++) {
      const base = node * NODE_STRIDE;
      if (d >= segCount) return routeAtEnd(base);
      const start = segStart[d] as number;
      const end = segEnd[d] as number;
      const child = staticChild(node, base, d, start, end);
      if (child !== -1) {
        node = child;
        continue;
      }
      // Mixed segments are rare: leave them to the full walk.
      if (nodes[base + N_COMP_COUNT] !== 0) return -1;
      const param = paramChild(base, start, end);
      if (param !== -1) {
        node = param;
        continue;
      }
      return wildcardRoute(base, start);
    }
  }

  /** End of the segment the last onlyStaticAt / hashedStaticAt matched. */
  let staticEnd = 0;

  /** The node's only static child if the unescaped segment at `start` is its label, else -1. */
  function onlyStaticAt(base: number, start: number, stop: number): number {
    const length = nodes[base + N_LABEL_LENGTH] as number;
    const end = start + length;
    if (end > stop || (end < stop && path.charCodeAt(end) !== SLASH)) return -1;
    if (!rawEquals(start, end, nodes[base + N_LABEL_OFFSET] as number, length)) return -1;
    staticEnd = end;
    return nodes[base + N_STATIC_CHILD] as number;
  }

  /**
   * The static child for the unescaped segment at `start`, hashing it while looking for its end (one pass
   * instead of indexOf and then a hash); gives up once the segment is longer than any label.
   */
  function hashedStaticAt(node: number, start: number, stop: number): number {
    const limit = Math.min(stop, start + maxRawLabelLength + 1);
    let hash = 0;
    let end = start;
    for (; end < limit; end++) {
      const c = path.charCodeAt(end);
      if (c === SLASH) break;
      hash = (Math.imul(hash, 31) + c) | 0;
    }
    if (end === limit && end !== stop) return -1;
    staticEnd = end;
    return probeStatic(node, hash, true, '', start, end);
  }

  /**
   * descend() for matchers with the default slash options, finding each segment as it goes instead of after
   * a separate scan: the same segments (split on raw `/` up to the first `?` or `#`), the same order of
   * alternatives, the same answer; a failure falls back to scan() and the full walk.
   */
  function descendFromPath(input: string): number {
    let stop = input.indexOf('?', 1);
    if (stop === -1) stop = input.length;
    const fragment = input.indexOf('#', 1);
    if (fragment !== -1 && fragment < stop) stop = fragment;
    const percent = input.indexOf('%', 1);
    const mayEscape = percent !== -1 && percent < stop;
    pathEscaped = mayEscape;
    anyEscaped = 0;
    restEnd = stop;
    let node = 0;
    let start = 1;
    for (let d = 0; ; d++) {
      const base = node * NODE_STRIDE;
      if (start > stop) return routeAtEnd(base);
      const statics = nodes[base + N_STATIC_COUNT] as number;
      if (statics !== 0 && rawStatics && !mayEscape) {
        // No `%` anywhere: compare raw text, and let the comparison (or the hash) find the segment's end.
        const child = statics === 1 ? onlyStaticAt(base, start, stop) : hashedStaticAt(node, start, stop);
        if (child !== -1) {
          node = child;
          start = staticEnd + 1;
          continue;
        }
      }
      let end = input.indexOf('/', start);
      if (end === -1 || end > stop) end = stop;
      let escaped = 0;
      if (mayEscape) {
        const at = input.indexOf('%', start);
        if (at !== -1 && at < end) escaped = 1;
      }
      segEscaped[d] = escaped;
      anyEscaped |= escaped;
      // Raw statics of an unescaped path were compared above already.
      const child = rawStatics && !mayEscape ? -1 : staticChild(node, base, d, start, end);
      if (child !== -1) {
        node = child;
        start = end + 1;
        continue;
      }
      if (nodes[base + N_COMP_COUNT] !== 0) return -1;
      const param = paramChild(base, start, end);
      if (param !== -1) {
        node = param;
        start = end + 1;
        continue;
      }
      // restEnd is `stop` here (set above).
      return wildcardRoute(base, start);
    }
  }

  function wildcardValue(raw: string): string {
    let value = raw;
    if (ignoreDuplicateSlashes && value.includes('//')) value = value.split('/').filter(Boolean).join('/');
    if (!value.includes('%')) return value;
    return value.split('/').map(safeDecode).join('/');
  }

  return function match(input: string, method?: string, host?: string): RouteMatch<unknown> | null {
    if (typeof input !== 'string' || input.charCodeAt(0) !== SLASH) return null;
    path = input;
    reqMethod = typeof method === 'string' ? method : undefined;
    reqMethodBit = 0;
    if (reqMethod !== undefined) {
      for (let i = 0; i < methodNames.length; i++) {
        if (methodNames[i] === reqMethod) {
          reqMethodBit = methodMasks[i] as number;
          break;
        }
      }
    }
    reqHost = typeof host === 'string' ? host : undefined;
    reqHostKey = null;
    let id = -1;
    if (plainSlashes) id = descendFromPath(input);
    if (id === -1) {
      scan(input);
      if (!plainSlashes) id = descend();
      if (id === -1) id = walk(0, 0);
    }
    let result: RouteMatch<unknown> | null = null;
    if (id !== -1) {
      const entry = entries[id] as AnyEntry;
      let params: Record<string, string>;
      if (!pathEscaped && !(ignoreDuplicateSlashes && entry.endsWithWildcard)) {
        // Nothing to decode (and no `//` runs to fold in a wildcard): the values are the raw ranges.
        params = (rangeParamsFactories[id] as RangeParamsFactory)(input, capStart, capEnd);
      } else {
        const count = entry.names.length;
        const wildcardSlot = entry.endsWithWildcard ? count - 1 : -1;
        for (let i = 0; i < count; i++) {
          const raw = input.slice(capStart[i], capEnd[i]);
          values[i] =
            i === wildcardSlot
              ? wildcardValue(raw)
              : anyEscaped === 1 && raw.includes('%')
                ? safeDecode(raw)
                : raw;
        }
        params = (paramsFactories[id] as ParamsFactory)(values);
      }
      result = { pattern: entry.pattern, params, data: entry.data };
    }
    path = '';
    reqMethod = undefined;
    reqHost = undefined;
    return result;
  };
}
