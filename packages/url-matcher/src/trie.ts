import { PatternError } from './errors.js';
import type { SegmentShape } from './pattern.js';
import { shapeNames } from './pattern.js';
import { hashString } from './text.js';

/** One route reachable at a trie leaf, with the constraints checked after the path has matched. */
export interface Entry<T> {
  readonly routeIndex: number;
  readonly pattern: string;
  readonly data: T | undefined;
  /** Upper-case method names, or null for any method. */
  readonly methods: readonly string[] | null;
  /**
   * The same methods as bits of the matcher's method table, so the per-request check is one AND:
   * ANY_METHOD for any method, LIST_ONLY when some method got no bit (more than 30 distinct methods).
   */
  readonly methodMask: number;
  /** Exact host, or `.example.com` for `*.example.com`; null for any host. Lower-case. */
  readonly hostLabel: string | null;
  readonly hostWildcard: boolean;
  /** Capture slot i holds the value of names[i]. */
  readonly names: readonly string[];
  /** The last capture is a `*wildcard` (decoded per segment, may contain `/`). */
  readonly endsWithWildcard: boolean;
}

export interface StaticEdge {
  readonly label: string;
  readonly node: TrieNode;
  /** Next edge whose label has the same hash. */
  next: StaticEdge | undefined;
}

export interface CompositeEdge {
  readonly texts: readonly string[];
  readonly node: TrieNode;
  readonly literalLength: number;
  readonly key: string;
}

export const ANY_METHOD = -1;
export const LIST_ONLY = -2;

// biome-ignore lint/suspicious/noExplicitAny: the trie is data-agnostic; Entry<T> is restored at the API edge.
export type AnyEntry = Entry<any>;

/** A node is reached after consuming a fixed number of segments and a fixed number of captures. */
export class TrieNode {
  /** Number of capture slots filled on the way to this node; the next capture goes in slot `caps`. */
  readonly caps: number;
  /** Static children by label hash (built by `seal`) when there are two or more. */
  statics: Map<number, StaticEdge> | null = null;
  /** The only static child, kept out of a Map because most nodes have exactly one. */
  staticLabel = '';
  staticChild: TrieNode | null = null;
  /** Parameters mixed with text in one segment, most specific first. */
  composites: CompositeEdge[] | null = null;
  /** `:name` filling the whole segment. */
  param: TrieNode | null = null;
  /** Routes whose last segment is `*name`, consuming this segment and all after it. */
  wildcard: AnyEntry[] | null = null;
  /** Routes that end exactly here. */
  entries: AnyEntry[] | null = null;

  readonly staticLabels = new Map<string, TrieNode>();
  readonly compositeKeys = new Map<string, CompositeEdge>();

  constructor(caps: number) {
    this.caps = caps;
  }
}

export interface BuiltTrie {
  readonly root: TrieNode;
  /** Deepest alternative, in segments. */
  readonly maxDepth: number;
  /** Most capture slots any route needs. */
  readonly maxCaptures: number;
}

export class TrieBuilder {
  readonly root = new TrieNode(0);
  maxDepth = 1;
  maxCaptures = 0;

  /** Adds one alternative of a route; `template` supplies everything but `names`/`endsWithWildcard`. */
  insert(segments: readonly SegmentShape[], template: Omit<AnyEntry, 'names' | 'endsWithWildcard'>): void {
    let node = this.root;
    const names: string[] = [];
    let endsWithWildcard = false;
    this.maxDepth = Math.max(this.maxDepth, segments.length);
    for (const shape of segments) {
      names.push(...shapeNames(shape));
      switch (shape.kind) {
        case 'static': {
          let child = node.staticLabels.get(shape.label);
          if (child === undefined) {
            child = new TrieNode(node.caps);
            node.staticLabels.set(shape.label, child);
          }
          node = child;
          break;
        }
        case 'param': {
          node.param ??= new TrieNode(node.caps + 1);
          node = node.param;
          break;
        }
        case 'composite': {
          const key = JSON.stringify(shape.texts);
          let edge = node.compositeKeys.get(key);
          if (edge === undefined) {
            edge = {
              texts: shape.texts,
              node: new TrieNode(node.caps + shape.names.length),
              literalLength: shape.texts.reduce((sum, t) => sum + t.length, 0),
              key,
            };
            node.compositeKeys.set(key, edge);
          }
          node = edge.node;
          break;
        }
        case 'wildcard':
          endsWithWildcard = true;
          break;
      }
    }
    this.maxCaptures = Math.max(this.maxCaptures, names.length);
    const entry: AnyEntry = { ...template, names, endsWithWildcard };
    if (endsWithWildcard) {
      node.wildcard ??= [];
      addEntry(node.wildcard, entry);
    } else {
      node.entries ??= [];
      addEntry(node.entries, entry);
    }
  }

  /** Freezes the lookup structures: hashes static labels, orders composites and entries. */
  seal(): BuiltTrie {
    sealNode(this.root);
    return { root: this.root, maxDepth: this.maxDepth, maxCaptures: this.maxCaptures };
  }
}

function addEntry(list: AnyEntry[], entry: AnyEntry): void {
  for (const existing of list) {
    if (existing.routeIndex === entry.routeIndex) return; // two optional-group alternatives of one route
    if (overlaps(existing, entry)) {
      throw new PatternError(
        'HTTPMESH_PATTERN_CONFLICT',
        `Pattern ${JSON.stringify(entry.pattern)} conflicts with ${JSON.stringify(existing.pattern)}: ` +
          `for ${describeScope(entry, existing)} both match exactly the same requests`,
        { pattern: entry.pattern, conflictsWith: existing.pattern },
      );
    }
  }
  list.push(entry);
}

function overlaps(a: AnyEntry, b: AnyEntry): boolean {
  if (a.hostLabel !== b.hostLabel || a.hostWildcard !== b.hostWildcard) return false;
  if (a.methods === null || b.methods === null) return a.methods === b.methods;
  const other = b.methods;
  return a.methods.some((m) => other.includes(m));
}

function describeScope(a: AnyEntry, b: AnyEntry): string {
  const methods =
    a.methods === null ? 'any method' : a.methods.filter((m) => b.methods?.includes(m) ?? true).join(', ');
  const host = a.hostLabel === null ? 'any host' : `host ${a.hostWildcard ? '*' : ''}${a.hostLabel}`;
  return `${methods} on ${host}`;
}

function sealNode(node: TrieNode): void {
  if (node.staticLabels.size === 1) {
    for (const [label, child] of node.staticLabels) {
      node.staticLabel = label;
      node.staticChild = child;
      sealNode(child);
    }
  } else if (node.staticLabels.size > 1) {
    const table = new Map<number, StaticEdge>();
    // Sorted so the hash chains, like everything else, do not depend on insertion order.
    for (const label of [...node.staticLabels.keys()].sort()) {
      const child = node.staticLabels.get(label) as TrieNode;
      const hash = hashString(label);
      table.set(hash, { label, node: child, next: table.get(hash) });
      sealNode(child);
    }
    node.statics = table;
  }
  if (node.compositeKeys.size > 0) {
    node.composites = [...node.compositeKeys.values()].sort(compareComposites);
    for (const edge of node.composites) sealNode(edge.node);
  }
  if (node.param !== null) sealNode(node.param);
  node.entries?.sort(compareEntries);
  node.wildcard?.sort(compareEntries);
  node.staticLabels.clear();
  node.compositeKeys.clear();
}

/** More literal text is more specific; then fewer captures; then a fixed textual order. */
function compareComposites(a: CompositeEdge, b: CompositeEdge): number {
  if (a.literalLength !== b.literalLength) return b.literalLength - a.literalLength;
  if (a.texts.length !== b.texts.length) return a.texts.length - b.texts.length;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

function hostRank(e: AnyEntry): number {
  return e.hostLabel === null ? 2 : e.hostWildcard ? 1 : 0;
}

/** Exact host > longer wildcard host > shorter wildcard host > any host; then listed methods > any method. */
export function compareEntries(a: AnyEntry, b: AnyEntry): number {
  const rank = hostRank(a) - hostRank(b);
  if (rank !== 0) return rank;
  const aLen = a.hostLabel?.length ?? 0;
  const bLen = b.hostLabel?.length ?? 0;
  if (aLen !== bLen) return bLen - aLen;
  const methodRank = (a.methods === null ? 1 : 0) - (b.methods === null ? 1 : 0);
  if (methodRank !== 0) return methodRank;
  const keyA = `${a.hostLabel ?? ''} ${a.methods?.join(',') ?? ''} ${a.pattern}`;
  const keyB = `${b.hostLabel ?? ''} ${b.methods?.join(',') ?? ''} ${b.pattern}`;
  if (keyA !== keyB) return keyA < keyB ? -1 : 1;
  return a.routeIndex - b.routeIndex;
}
