import { MatcherOptionsError, PatternError } from './errors.js';
import { compilePattern } from './pattern.js';
import type { ShapeOptions } from './pattern.js';
import { asciiLower, hashString, regionEqualsFolded, safeDecode } from './text.js';
import { TrieBuilder } from './trie.js';
import { ANY_METHOD, LIST_ONLY } from './trie.js';
import type { AnyEntry, CompositeEdge, StaticEdge, TrieNode } from './trie.js';

export interface RouteSpec<T> {
  /** path-to-regexp v8 syntax: `/users/:id`, `/files/*path`, `/docs{/:lang}`. */
  pattern: string;
  /** Restricts the route to these methods (case-insensitive here, upper-cased); omitted means any method. */
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
const QUESTION = 63;
const HASH = 35;
const PERCENT = 37;

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
  const trie = builder.seal();
  const lookup = createLookup(trie.root, trie.maxDepth, trie.maxCaptures, methodBits, {
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
 * Builds the lookup function. It scans the path once by index (recording at most maxDepth + 1 segment
 * boundaries and hashes in preallocated arrays), then walks the trie depth-first: static, composite, param,
 * wildcard. Every trie node sits at a fixed depth, so each is visited at most once per lookup and the walk is
 * linear in the size of the trie, whatever the input. Strings and objects are allocated only for a match.
 */
function createLookup(
  root: TrieNode,
  maxDepth: number,
  maxCaptures: number,
  methodBits: ReadonlyMap<string, number>,
  options: LookupOptions,
): (path: string, method?: string, host?: string) => RouteMatch<unknown> | null {
  const { caseSensitive, ignoreTrailingSlash, ignoreDuplicateSlashes, maxParamLength } = options;
  const cap = maxDepth + 1;
  const segStart = new Int32Array(cap);
  const segEnd = new Int32Array(cap);
  const segHash = new Int32Array(cap);
  const segEscaped = new Uint8Array(cap);
  const capStart = new Int32Array(maxCaptures + 1);
  const capEnd = new Int32Array(maxCaptures + 1);
  // A short array beats a Map for the handful of methods a route table uses.
  const methodNames = [...methodBits.keys()];
  const methodMasks = [...methodBits.values()];
  // Per-lookup state; lookups are synchronous and never call out, so sharing it is safe.
  let path = '';
  let segCount = 0;
  /** Some recorded segment holds a `%`; when 0, no capture needs decoding. */
  let anyEscaped = 0;
  let restEnd = 0;
  let reqMethod: string | undefined;
  let reqMethodBit = 0;
  let reqHost: string | undefined;

  function scan(input: string): void {
    const length = input.length;
    let recorded = 0;
    let total = 0;
    let start = 1;
    let hash = 0;
    let escaped = 0;
    let end = length;
    anyEscaped = 0;
    for (let i = 1; ; i++) {
      const c = i < length ? input.charCodeAt(i) : QUESTION;
      if (c === SLASH || c === QUESTION || c === HASH) {
        if (c === SLASH && ignoreDuplicateSlashes && i === start) {
          start = i + 1;
          continue;
        }
        if (recorded < cap) {
          segStart[recorded] = start;
          segEnd[recorded] = i;
          segHash[recorded] = hash;
          segEscaped[recorded] = escaped;
          anyEscaped |= escaped;
          recorded++;
        }
        total++;
        if (c !== SLASH) {
          end = i;
          break;
        }
        start = i + 1;
        hash = 0;
        escaped = 0;
      } else {
        hash = (Math.imul(hash, 31) + c) | 0;
        if (c === PERCENT) escaped = 1;
      }
    }
    restEnd = end;
    // `start === end` here means the last segment is empty, i.e. the path ends in `/`.
    if (ignoreTrailingSlash && total > 1 && start === end) {
      total--;
      restEnd = end - 1;
      while (ignoreDuplicateSlashes && restEnd > 1 && input.charCodeAt(restEnd - 1) === SLASH) restEnd--;
    }
    segCount = Math.min(total, recorded);
  }

  function findOnlyStatic(label: string, d: number, start: number, end: number): boolean {
    if (caseSensitive && segEscaped[d] === 0)
      return label.length === end - start && path.startsWith(label, start);
    let key = path.slice(start, end);
    if (segEscaped[d] === 1) key = safeDecode(key);
    return (caseSensitive ? key : asciiLower(key)) === label;
  }

  function findStatic(
    table: Map<number, StaticEdge>,
    d: number,
    start: number,
    end: number,
  ): TrieNode | null {
    if (caseSensitive && segEscaped[d] === 0) {
      const length = end - start;
      for (let edge = table.get(segHash[d] as number); edge !== undefined; edge = edge.next) {
        if (edge.label.length === length && path.startsWith(edge.label, start)) return edge.node;
      }
      return null;
    }
    let key = path.slice(start, end);
    if (segEscaped[d] === 1) key = safeDecode(key);
    if (!caseSensitive) key = asciiLower(key);
    for (let edge = table.get(hashString(key)); edge !== undefined; edge = edge.next) {
      if (edge.label === key) return edge.node;
    }
    return null;
  }

  function textAt(offset: number, text: string): boolean {
    return caseSensitive ? path.startsWith(text, offset) : regionEqualsFolded(path, offset, text);
  }

  /** First offset >= from where `text` starts and ends by `limit`, or -1. */
  function findText(text: string, from: number, limit: number): number {
    if (caseSensitive) {
      const at = path.indexOf(text, from);
      return at !== -1 && at + text.length <= limit ? at : -1;
    }
    for (let at = from; at + text.length <= limit; at++) if (regionEqualsFolded(path, at, text)) return at;
    return -1;
  }

  /** Matches `prefix :a sep :b ... suffix` in [start, end); each param takes text up to the next separator. */
  function matchComposite(edge: CompositeEdge, slot: number, start: number, end: number): boolean {
    const texts = edge.texts;
    const last = texts.length - 1;
    const prefix = texts[0] as string;
    const suffix = texts[last] as string;
    if (!textAt(start, prefix)) return false;
    const limit = end - suffix.length;
    if (limit < start + prefix.length || !textAt(limit, suffix)) return false;
    let at = start + prefix.length;
    for (let i = 1; i < last; i++) {
      const separator = texts[i] as string;
      const found = findText(separator, at + 1, limit);
      if (found === -1 || found - at > maxParamLength) return false;
      capStart[slot] = at;
      capEnd[slot] = found;
      slot++;
      at = found + separator.length;
    }
    if (limit - at < 1 || limit - at > maxParamLength) return false;
    capStart[slot] = at;
    capEnd[slot] = limit;
    return true;
  }

  function hostMatches(entry: AnyEntry, host: string): boolean {
    let end = host.length;
    if (host.charCodeAt(0) === 91) {
      const bracket = host.indexOf(']');
      if (bracket !== -1) end = bracket + 1;
    } else {
      const colon = host.indexOf(':');
      if (colon !== -1) end = colon;
    }
    if (end > 0 && host.charCodeAt(end - 1) === 46) end--;
    const label = entry.hostLabel as string;
    if (entry.hostWildcard) return end > label.length && regionEqualsFolded(host, end - label.length, label);
    return end === label.length && regionEqualsFolded(host, 0, label);
  }

  function pick(entries: AnyEntry[]): AnyEntry | null {
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as AnyEntry;
      const mask = entry.methodMask;
      if (mask !== ANY_METHOD && reqMethod !== undefined) {
        if (
          mask === LIST_ONLY ? !(entry.methods as string[]).includes(reqMethod) : (mask & reqMethodBit) === 0
        ) {
          continue;
        }
      }
      if (entry.hostLabel !== null && reqHost !== undefined && !hostMatches(entry, reqHost)) continue;
      return entry;
    }
    return null;
  }

  function walk(node: TrieNode, d: number): AnyEntry | null {
    if (d >= segCount) return node.entries === null ? null : pick(node.entries);
    const start = segStart[d] as number;
    const end = segEnd[d] as number;
    if (node.staticChild !== null && findOnlyStatic(node.staticLabel, d, start, end)) {
      const found = walk(node.staticChild, d + 1);
      if (found !== null) return found;
    } else if (node.statics !== null) {
      const child = findStatic(node.statics, d, start, end);
      if (child !== null) {
        const found = walk(child, d + 1);
        if (found !== null) return found;
      }
    }
    if (node.composites !== null) {
      for (const edge of node.composites) {
        if (matchComposite(edge, node.caps, start, end)) {
          const found = walk(edge.node, d + 1);
          if (found !== null) return found;
        }
      }
    }
    if (node.param !== null) {
      const length = end - start;
      if (length > 0 && length <= maxParamLength) {
        capStart[node.caps] = start;
        capEnd[node.caps] = end;
        const found = walk(node.param, d + 1);
        if (found !== null) return found;
      }
    }
    if (node.wildcard !== null && restEnd > start) {
      const found = pick(node.wildcard);
      if (found !== null) {
        capStart[node.caps] = start;
        capEnd[node.caps] = restEnd;
        return found;
      }
    }
    return null;
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
    scan(input);
    const entry = walk(root, 0);
    let result: RouteMatch<unknown> | null = null;
    if (entry !== null) {
      const names = entry.names;
      const params: Record<string, string> = {};
      const wildcardSlot = entry.endsWithWildcard ? names.length - 1 : -1;
      for (let i = 0; i < names.length; i++) {
        const raw = input.slice(capStart[i], capEnd[i]);
        params[names[i] as string] =
          i === wildcardSlot
            ? wildcardValue(raw)
            : anyEscaped === 1 && raw.includes('%')
              ? safeDecode(raw)
              : raw;
      }
      result = { pattern: entry.pattern, params, data: entry.data };
    }
    path = '';
    reqMethod = undefined;
    reqHost = undefined;
    return result;
  };
}
