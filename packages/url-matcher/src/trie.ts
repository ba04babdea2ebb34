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

/** A segment of literal text mixed with parameters, e.g. `:name.json`, pointing at its child node. */
export interface CompositeEdge {
  readonly texts: readonly string[];
  readonly literalLength: number;
  readonly key: string;
}

export const ANY_METHOD = -1;
export const LIST_ONLY = -2;

/** The trie does not care what `data` is; createMatcher restores `T` at the API edge. */
export type AnyEntry = Entry<unknown>;

/** Build-time node. A node is reached after a fixed number of segments and a fixed number of captures. */
class TrieNode {
  /** Number of capture slots filled on the way to this node; the next capture goes in slot `caps`. */
  readonly caps: number;
  readonly statics = new Map<string, TrieNode>();
  readonly composites = new Map<string, { edge: CompositeEdge; node: TrieNode }>();
  /** `:name` filling the whole segment. */
  param: TrieNode | null = null;
  /** Routes whose last segment is `*name`, consuming this segment and all after it. */
  wildcard: AnyEntry[] = [];
  /** Routes that end exactly here. */
  entries: AnyEntry[] = [];
  /** "host method" -> entry, for O(1) conflict checks (one Map per list, only when used). */
  entryScopes: Map<string, AnyEntry> | null = null;
  wildcardScopes: Map<string, AnyEntry> | null = null;

  constructor(caps: number) {
    this.caps = caps;
  }
}

/*
 * The compiled trie lives in typed arrays so a lookup touches a few contiguous cache lines instead of
 * chasing objects scattered over the heap (which dominated the cost at 10,000 routes).
 *
 * nodes: NODE_STRIDE int32 per node, node 0 is the root.
 * edges: open-addressing hash table of static children of nodes that have two or more, keyed by
 *        (parent node, label hash), EDGE_STRIDE int32 per slot, empty slots have parent -1.
 * labels: every static label, concatenated; nodes and edges point into it by offset and length.
 */
export const N_PARAM = 0;
export const N_ENTRY_START = 1;
export const N_ENTRY_COUNT = 2;
export const N_WILD_START = 3;
export const N_WILD_COUNT = 4;
export const N_COMP_START = 5;
export const N_COMP_COUNT = 6;
export const N_CAPS = 7;
/** 0: no static child; 1: the only one is inline below; more: look it up in `edges`. */
export const N_STATIC_COUNT = 8;
export const N_LABEL_OFFSET = 9;
export const N_LABEL_LENGTH = 10;
export const N_STATIC_CHILD = 11;
/** Index into `hostIndexes` for the node's entries / wildcard entries when some are host-scoped, else -1. */
export const N_ENTRY_HOSTS = 12;
export const N_WILD_HOSTS = 13;
export const NODE_STRIDE = 14;

export const E_PARENT = 0;
export const E_HASH = 1;
export const E_CHILD = 2;
export const E_OFFSET = 3;
export const E_LENGTH = 4;
export const EDGE_STRIDE = 5;

/**
 * Host-scoped entries of one list, grouped so a lookup costs the same with 10,000 hosts as with one.
 * Each array holds entry ids in precedence order (listed methods first).
 */
export interface HostIndex {
  /** Lower-case host -> entries for exactly that host. */
  readonly exact: ReadonlyMap<string, readonly number[]>;
  /** `.example.com` -> entries for `*.example.com`. */
  readonly wildcard: ReadonlyMap<string, readonly number[]>;
  /** Entries for any host. */
  readonly anyHost: readonly number[];
}

export interface CompiledTrie {
  readonly nodes: Int32Array;
  readonly edges: Int32Array;
  /** Slot count of `edges` minus one (a power of two minus one). */
  readonly edgeMask: number;
  readonly labels: string;
  /** Longest static label: a longer segment cannot match any static child, whatever its escapes. */
  readonly maxLabelLength: number;
  /** Entry ids, each node's (sorted) run contiguous. */
  readonly entryList: Int32Array;
  readonly entries: readonly AnyEntry[];
  readonly entryMethodMask: Int32Array;
  readonly composites: readonly CompositeEdge[];
  readonly compositeChild: Int32Array;
  readonly hostIndexes: readonly HostIndex[];
  /** Deepest alternative, in segments. */
  readonly maxDepth: number;
  /** Most capture slots any route needs. */
  readonly maxCaptures: number;
}

/** Slot of (parent, hash) in the edge table; both sides use this. */
export function edgeSlot(parent: number, hash: number, mask: number): number {
  let h = Math.imul(parent, 0x85ebca6b) ^ hash;
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return (h ^ (h >>> 16)) & mask;
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
          let child = node.statics.get(shape.label);
          if (child === undefined) {
            child = new TrieNode(node.caps);
            node.statics.set(shape.label, child);
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
          let found = node.composites.get(key);
          if (found === undefined) {
            const edge = {
              texts: shape.texts,
              literalLength: shape.texts.reduce((sum, t) => sum + t.length, 0),
              key,
            };
            found = { edge, node: new TrieNode(node.caps + shape.names.length) };
            node.composites.set(key, found);
          }
          node = found.node;
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
      node.wildcardScopes ??= new Map();
      addEntry(node.wildcard, node.wildcardScopes, entry);
    } else {
      node.entryScopes ??= new Map();
      addEntry(node.entries, node.entryScopes, entry);
    }
  }

  /** Orders everything so nothing depends on insertion order, and lays the trie out in typed arrays. */
  compile(): CompiledTrie {
    return compileTrie(this.root, this.maxDepth, this.maxCaptures);
  }
}

function addEntry(list: AnyEntry[], scopes: Map<string, AnyEntry>, entry: AnyEntry): void {
  const host = entry.hostLabel === null ? '' : `${entry.hostWildcard ? '*' : '='}${entry.hostLabel}`;
  const keys = (entry.methods ?? ['*']).map((method) => `${host} ${method}`);
  for (const key of keys) {
    const existing = scopes.get(key);
    if (existing === undefined) continue;
    if (existing.routeIndex === entry.routeIndex) return; // two optional-group alternatives of one route
    throw new PatternError(
      'HTTPMESH_PATTERN_CONFLICT',
      `Pattern ${JSON.stringify(entry.pattern)} conflicts with ${JSON.stringify(existing.pattern)}: ` +
        `for ${describeScope(entry, existing)} both match exactly the same requests`,
      { pattern: entry.pattern, conflictsWith: existing.pattern },
    );
  }
  for (const key of keys) scopes.set(key, entry);
  list.push(entry);
}

function describeScope(a: AnyEntry, b: AnyEntry): string {
  const methods =
    a.methods === null ? 'any method' : a.methods.filter((m) => b.methods?.includes(m) ?? true).join(', ');
  const host = a.hostLabel === null ? 'any host' : `host ${a.hostWildcard ? '*' : ''}${a.hostLabel}`;
  return `${methods} on ${host}`;
}

function compileTrie(root: TrieNode, maxDepth: number, maxCaptures: number): CompiledTrie {
  // Number nodes in depth-first order (children sorted), so related nodes sit next to each other.
  const order: TrieNode[] = [];
  const ids = new Map<TrieNode, number>();
  const sortedStatics = new Map<TrieNode, Array<[string, TrieNode]>>();
  const sortedComposites = new Map<TrieNode, Array<{ edge: CompositeEdge; node: TrieNode }>>();
  const visit = (node: TrieNode): void => {
    ids.set(node, order.length);
    order.push(node);
    const statics = [...node.statics].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    sortedStatics.set(node, statics);
    for (const [, child] of statics) visit(child);
    const composites = [...node.composites.values()].sort((a, b) => compareComposites(a.edge, b.edge));
    sortedComposites.set(node, composites);
    for (const { node: child } of composites) visit(child);
    if (node.param !== null) visit(node.param);
  };
  visit(root);

  const nodes = new Int32Array(order.length * NODE_STRIDE);
  const labelParts: string[] = [];
  let labelLength = 0;
  let maxLabelLength = 0;
  const addLabel = (label: string): number => {
    maxLabelLength = Math.max(maxLabelLength, label.length);
    labelParts.push(label);
    labelLength += label.length;
    return labelLength - label.length;
  };
  const entryIds = new Map<AnyEntry, number>();
  const entries: AnyEntry[] = [];
  const entryList: number[] = [];
  const hostIndexes: HostIndex[] = [];
  /** Builds the host index for a sorted list that has host-scoped entries; returns its id or -1. */
  const indexHosts = (sorted: readonly AnyEntry[]): number => {
    if (!sorted.some((entry) => entry.hostLabel !== null)) return -1;
    const exact = new Map<string, number[]>();
    const wildcard = new Map<string, number[]>();
    const anyHost: number[] = [];
    for (const entry of sorted) {
      const id = entryIds.get(entry) as number;
      if (entry.hostLabel === null) {
        anyHost.push(id);
        continue;
      }
      const group = entry.hostWildcard ? wildcard : exact;
      const ids = group.get(entry.hostLabel) ?? [];
      ids.push(id);
      group.set(entry.hostLabel, ids);
    }
    hostIndexes.push({ exact, wildcard, anyHost });
    return hostIndexes.length - 1;
  };
  let lastSorted: AnyEntry[] = [];
  const addEntries = (list: AnyEntry[]): number => {
    const start = entryList.length;
    lastSorted = sortEntries(list);
    for (const entry of lastSorted) {
      let id = entryIds.get(entry);
      if (id === undefined) {
        id = entries.length;
        entryIds.set(entry, id);
        entries.push(compactEntry(entry));
      }
      entryList.push(id);
    }
    return start;
  };
  const composites: CompositeEdge[] = [];
  const compositeChild: number[] = [];
  let edgeCount = 0;
  for (const node of order) if (node.statics.size > 1) edgeCount += node.statics.size;
  let slots = 2;
  while (slots < edgeCount * 2) slots *= 2;
  const edgeMask = slots - 1;
  const edges = new Int32Array(slots * EDGE_STRIDE).fill(-1);

  order.forEach((node, id) => {
    const base = id * NODE_STRIDE;
    nodes[base + N_PARAM] = node.param === null ? -1 : (ids.get(node.param) as number);
    nodes[base + N_ENTRY_START] = addEntries(node.entries);
    nodes[base + N_ENTRY_COUNT] = node.entries.length;
    nodes[base + N_ENTRY_HOSTS] = indexHosts(lastSorted);
    nodes[base + N_WILD_START] = addEntries(node.wildcard);
    nodes[base + N_WILD_COUNT] = node.wildcard.length;
    nodes[base + N_WILD_HOSTS] = indexHosts(lastSorted);
    const nodeComposites = sortedComposites.get(node) ?? [];
    nodes[base + N_COMP_START] = composites.length;
    nodes[base + N_COMP_COUNT] = nodeComposites.length;
    for (const { edge, node: child } of nodeComposites) {
      composites.push(edge);
      compositeChild.push(ids.get(child) as number);
    }
    nodes[base + N_CAPS] = node.caps;
    const statics = sortedStatics.get(node) ?? [];
    nodes[base + N_STATIC_COUNT] = statics.length;
    if (statics.length === 1) {
      const [label, child] = statics[0] as [string, TrieNode];
      nodes[base + N_LABEL_OFFSET] = addLabel(label);
      nodes[base + N_LABEL_LENGTH] = label.length;
      nodes[base + N_STATIC_CHILD] = ids.get(child) as number;
    }
    if (statics.length > 1) {
      for (const [label, child] of statics) {
        const hash = hashString(label);
        let slot = edgeSlot(id, hash, edgeMask);
        while (edges[slot * EDGE_STRIDE + E_PARENT] !== -1) slot = (slot + 1) & edgeMask;
        const at = slot * EDGE_STRIDE;
        edges[at + E_PARENT] = id;
        edges[at + E_HASH] = hash;
        edges[at + E_CHILD] = ids.get(child) as number;
        edges[at + E_OFFSET] = addLabel(label);
        edges[at + E_LENGTH] = label.length;
      }
    }
  });

  const entryMethodMask = new Int32Array(entries.length);
  entries.forEach((entry, id) => {
    entryMethodMask[id] = entry.methodMask;
  });
  return {
    nodes,
    edges,
    edgeMask,
    labels: labelParts.join(''),
    maxLabelLength,
    entryList: Int32Array.from(entryList),
    entries,
    entryMethodMask,
    composites,
    compositeChild: Int32Array.from(compositeChild),
    hostIndexes,
    maxDepth,
    maxCaptures,
  };
}

/**
 * A fresh copy with every field in-object, allocated in trie order next to its neighbours, and with
 * parameter names internalized so building `params` stores by known keys instead of re-hashing them.
 */
function compactEntry(entry: AnyEntry): AnyEntry {
  return {
    routeIndex: entry.routeIndex,
    pattern: entry.pattern,
    data: entry.data,
    names: entry.names.map(internalize),
    endsWithWildcard: entry.endsWithWildcard,
    methods: entry.methods,
    methodMask: entry.methodMask,
    hostLabel: entry.hostLabel,
    hostWildcard: entry.hostWildcard,
  };
}

/** The engine's canonical copy of `name`: property keys come back internalized. */
function internalize(name: string): string {
  return Object.keys({ [name]: 0 })[0] as string;
}

/** More literal text is more specific; then fewer captures; then a fixed textual order. */
function compareComposites(a: CompositeEdge, b: CompositeEdge): number {
  if (a.literalLength !== b.literalLength) return b.literalLength - a.literalLength;
  if (a.texts.length !== b.texts.length) return a.texts.length - b.texts.length;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/**
 * Precedence order of routes sharing one pattern shape: exact host > longer wildcard host > shorter wildcard
 * host > any host; then listed methods > any method; then a fixed textual order (never insertion order).
 */
function sortEntries(list: readonly AnyEntry[]): AnyEntry[] {
  const keyed = list.map((entry) => {
    const hostRank = entry.hostLabel === null ? 2 : entry.hostWildcard ? 1 : 0;
    const hostLength = entry.hostLabel?.length ?? 0;
    const methodRank = entry.methods === null ? 1 : 0;
    const text = `${entry.hostLabel ?? ''} ${entry.methods?.join(',') ?? ''} ${entry.pattern}`;
    return { entry, hostRank, hostLength, methodRank, text };
  });
  keyed.sort(
    (a, b) =>
      a.hostRank - b.hostRank ||
      b.hostLength - a.hostLength ||
      a.methodRank - b.methodRank ||
      (a.text < b.text ? -1 : a.text > b.text ? 1 : 0) ||
      a.entry.routeIndex - b.entry.routeIndex,
  );
  return keyed.map((k) => k.entry);
}
