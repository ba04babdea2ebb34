import { parse } from 'path-to-regexp';
import type { Token } from 'path-to-regexp';
import { PatternError } from './errors.js';
import { asciiLower, safeDecode } from './text.js';

/** One path segment of a compiled pattern alternative. */
export type SegmentShape =
  /** Literal segment; `label` is percent-decoded and, when case-insensitive, ASCII-lower-cased. */
  | { readonly kind: 'static'; readonly label: string }
  /** A whole segment captured by one `:name`. */
  | { readonly kind: 'param'; readonly name: string }
  /**
   * Literal text mixed with parameters inside one segment, e.g. `:file.json` or `v:major.:minor`.
   * `texts[i]` precedes `names[i]`; `texts[names.length]` is the suffix. Inner separators are non-empty.
   */
  | { readonly kind: 'composite'; readonly texts: readonly string[]; readonly names: readonly string[] }
  /** `*name`: one or more whole segments to the end of the path. Only allowed as the last segment. */
  | { readonly kind: 'wildcard'; readonly name: string };

export interface ShapeOptions {
  readonly caseSensitive: boolean;
  readonly ignoreTrailingSlash: boolean;
  readonly ignoreDuplicateSlashes: boolean;
}

type FlatToken = Exclude<Token, { type: 'group' }>;
type Part = { type: 'text'; value: string } | { type: 'param' | 'wildcard'; name: string };

/** path-to-regexp's own ceiling on optional-group expansion; we keep it so both agree on what is valid. */
const MAX_ALTERNATIVES = 256;
/** Keeps the trie (and the recursion that walks it) shallow enough for any stack. */
const MAX_SEGMENTS = 1000;

/**
 * Parses `pattern` with path-to-regexp's parser and expands optional groups into alternatives,
 * each a list of segment shapes, in path-to-regexp's expansion order (group present before absent).
 */
export function compilePattern(pattern: string, options: ShapeOptions): SegmentShape[][] {
  let tokens: Token[];
  try {
    tokens = parse(pattern).tokens;
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    const position = codePointIndexToOffset(pattern, parseIndex(message));
    throw new PatternError(
      'HTTPMESH_PATTERN_INVALID',
      `Invalid pattern ${JSON.stringify(pattern)} at position ${position}: ${stripSuffix(message)}`,
      { pattern, position },
    );
  }
  const alternatives = expandGroups(tokens, pattern);
  return alternatives.map((flat) => toSegments(flat, pattern, options));
}

function expandGroups(tokens: readonly Token[], pattern: string): FlatToken[][] {
  let out: FlatToken[][] = [[]];
  for (const token of tokens) {
    if (token.type !== 'group') {
      for (const alt of out) alt.push(token);
      continue;
    }
    const inner = expandGroups(token.tokens, pattern);
    const next: FlatToken[][] = [];
    for (const prefix of out) {
      for (const alt of inner) next.push([...prefix, ...alt]);
      next.push(prefix);
      if (next.length > MAX_ALTERNATIVES) {
        throw new PatternError(
          'HTTPMESH_PATTERN_UNSUPPORTED',
          `Pattern ${JSON.stringify(pattern)} expands to more than ${MAX_ALTERNATIVES} alternatives`,
          { pattern, position: Math.max(0, pattern.indexOf('{')) },
        );
      }
    }
    out = next;
  }
  return out;
}

function toSegments(flat: readonly FlatToken[], pattern: string, options: ShapeOptions): SegmentShape[] {
  const raw: Part[][] = [];
  let current: Part[] | null = null;
  for (const token of flat) {
    if (token.type === 'text') {
      const pieces = token.value.split('/');
      for (let i = 0; i < pieces.length; i++) {
        if (i > 0) {
          current = [];
          raw.push(current);
        }
        const piece = pieces[i] ?? '';
        if (piece === '') continue;
        if (current === null) throw mustStartWithSlash(pattern);
        const last = current[current.length - 1];
        if (last?.type === 'text') last.value += piece;
        else current.push({ type: 'text', value: piece });
      }
      continue;
    }
    if (current === null) throw mustStartWithSlash(pattern);
    current.push({ type: token.type, name: token.name });
  }
  // An alternative with no tokens at all (e.g. the "absent" side of `{/:lang}`) means the root path.
  if (raw.length === 0) raw.push([]);
  if (raw.length > MAX_SEGMENTS) {
    throw new PatternError(
      'HTTPMESH_PATTERN_UNSUPPORTED',
      `Pattern ${JSON.stringify(pattern)} has more than ${MAX_SEGMENTS} segments`,
      { pattern, position: 0 },
    );
  }

  const seen = new Set<string>();
  const segments: SegmentShape[] = [];
  for (let i = 0; i < raw.length; i++) {
    const parts = raw[i] ?? [];
    const isLast = i === raw.length - 1;
    const shape = classify(parts, isLast, pattern, options);
    for (const name of shapeNames(shape)) {
      if (name === '__proto__') {
        throw new PatternError(
          'HTTPMESH_PATTERN_UNSUPPORTED',
          `Pattern ${JSON.stringify(pattern)}: parameter name "__proto__" is not allowed`,
          { pattern, position: locateName(pattern, name) },
        );
      }
      if (seen.has(name)) {
        throw new PatternError(
          'HTTPMESH_PATTERN_INVALID',
          `Pattern ${JSON.stringify(pattern)} uses parameter name "${name}" twice`,
          { pattern, position: locateName(pattern, name, true) },
        );
      }
      seen.add(name);
    }
    segments.push(shape);
  }
  return normaliseSlashes(segments, options);
}

function classify(
  parts: readonly Part[],
  isLast: boolean,
  pattern: string,
  options: ShapeOptions,
): SegmentShape {
  if (parts.length === 0) return { kind: 'static', label: '' };
  const first = parts[0];
  if (parts.length === 1 && first !== undefined) {
    if (first.type === 'text') return { kind: 'static', label: normaliseLabel(first.value, options) };
    if (first.type === 'param') return { kind: 'param', name: first.name };
    if (!isLast) {
      throw new PatternError(
        'HTTPMESH_PATTERN_UNSUPPORTED',
        `Pattern ${JSON.stringify(pattern)}: wildcard "*${first.name}" must be the last segment`,
        { pattern, position: locateName(pattern, first.name) },
      );
    }
    return { kind: 'wildcard', name: first.name };
  }
  const texts: string[] = [];
  const names: string[] = [];
  let pendingText = '';
  let previousWasParam = false;
  for (const part of parts) {
    if (part.type === 'text') {
      pendingText += part.value;
      previousWasParam = false;
      continue;
    }
    if (part.type === 'wildcard') {
      throw new PatternError(
        'HTTPMESH_PATTERN_UNSUPPORTED',
        `Pattern ${JSON.stringify(pattern)}: wildcard "*${part.name}" must fill a whole segment`,
        { pattern, position: locateName(pattern, part.name) },
      );
    }
    if (previousWasParam) {
      // path-to-regexp itself rejects this when building a regexp: two captures need text between them.
      throw new PatternError(
        'HTTPMESH_PATTERN_INVALID',
        `Pattern ${JSON.stringify(pattern)}: parameter ":${part.name}" needs text between it and the previous one`,
        { pattern, position: locateName(pattern, part.name) },
      );
    }
    texts.push(options.caseSensitive ? pendingText : asciiLower(pendingText));
    names.push(part.name);
    pendingText = '';
    previousWasParam = true;
  }
  texts.push(options.caseSensitive ? pendingText : asciiLower(pendingText));
  return { kind: 'composite', texts, names };
}

/** Applies the same slash normalisation to patterns that lookups apply to request paths. */
function normaliseSlashes(segments: SegmentShape[], options: ShapeOptions): SegmentShape[] {
  let out = segments;
  if (options.ignoreDuplicateSlashes) {
    out = out.filter((s, i) => !(s.kind === 'static' && s.label === '' && i < out.length - 1));
    if (out.length === 0) out = [{ kind: 'static', label: '' }];
  }
  if (options.ignoreTrailingSlash && out.length > 1) {
    const last = out[out.length - 1];
    if (last?.kind === 'static' && last.label === '') out = out.slice(0, -1);
  }
  return out;
}

function normaliseLabel(text: string, options: ShapeOptions): string {
  const decoded = text.includes('%') ? safeDecode(text) : text;
  return options.caseSensitive ? decoded : asciiLower(decoded);
}

export function shapeNames(shape: SegmentShape): readonly string[] {
  switch (shape.kind) {
    case 'static':
      return [];
    case 'param':
    case 'wildcard':
      return [shape.name];
    case 'composite':
      return shape.names;
  }
}

function mustStartWithSlash(pattern: string): PatternError {
  return new PatternError(
    'HTTPMESH_PATTERN_UNSUPPORTED',
    `Pattern ${JSON.stringify(pattern)} must start with "/"`,
    {
      pattern,
      position: 0,
    },
  );
}

/** Best-effort offset of `:name` / `*name` in the source (tokens carry no positions). */
function locateName(pattern: string, name: string, lastOccurrence = false): number {
  const find = (needle: string): number =>
    lastOccurrence ? pattern.lastIndexOf(needle) : pattern.indexOf(needle);
  for (const needle of [`:${name}`, `*${name}`, `:"${name}"`, `*"${name}"`]) {
    const at = find(needle);
    if (at !== -1) return at;
  }
  return 0;
}

function parseIndex(message: string): number {
  const found = /at index (\d+)/.exec(message);
  return found?.[1] === undefined ? 0 : Number(found[1]);
}

/** path-to-regexp reports indexes into `[...str]` (code points); callers slice by UTF-16 offset. */
function codePointIndexToOffset(pattern: string, index: number): number {
  let offset = 0;
  let count = 0;
  for (const char of pattern) {
    if (count === index) break;
    offset += char.length;
    count++;
  }
  return offset;
}

function stripSuffix(message: string): string {
  const cut = message.indexOf(': ');
  const semicolon = message.indexOf('; visit');
  if (semicolon !== -1 && cut !== -1 && cut < semicolon) return message.slice(0, cut);
  return semicolon === -1 ? message : message.slice(0, semicolon);
}
