import { createHash } from 'node:crypto';
import { type FSWatcher, watch } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, resolve as resolvePath } from 'node:path';
import { normalizeInterceptDomain } from '@httpmesh/traffic-capture';
import { createMatcher, PatternError, type RouteSpec } from '@httpmesh/url-matcher';
import { parseDocument } from 'yaml';
import { RulesFileError } from './errors.js';
import { type SidecarPluginSpec, validatePlugins } from './plugins.js';

/** One intercept rule, the same model rule-sync distributes (`InterceptRule`). */
export interface InterceptRuleSpec {
  readonly name: string;
  /** Exact host or `*.host`. */
  readonly domain: string;
  readonly action: 'intercept' | 'passthrough';
  /** Verify upstream certificates (default true). */
  readonly upstreamTlsVerify: boolean;
}

/** URL patterns of one host, the same model rule-sync distributes (`RouteSet`). */
export interface RouteSetSpec {
  readonly name: string;
  readonly host: string;
  readonly routes: readonly { readonly pattern: string; readonly methods: readonly string[] }[];
}

/** How strictly intercept domains are checked (the sidecar's mode decides). */
export interface RulesValidationOptions {
  /**
   * Explicit mode: also accept exact single-label names (`localhost`) and IP literals as intercept
   * domains. Transparent mode cannot (dnsmasq/ipset select HTTPS traffic by DNS name, and a single label
   * would capture a top-level domain), so the default is traffic-capture's DNS rules.
   */
  readonly localNames?: boolean;
}

const LABEL_RE = /^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

/** Explicit mode's extra domains: an IP literal (brackets allowed for IPv6) or one exact DNS label. */
function localInterceptDomain(domain: unknown): string | undefined {
  if (typeof domain !== 'string') return undefined;
  const name = domain.trim().toLowerCase();
  const unbracketed = name.startsWith('[') && name.endsWith(']') ? name.slice(1, -1) : name;
  if (isIP(unbracketed) !== 0) return unbracketed;
  // `*.x` with one label would still capture a whole top-level domain: only exact single labels.
  return LABEL_RE.test(name) ? name : undefined;
}

/** A loaded, validated rules document. */
export interface RulesDocument {
  readonly intercept: readonly InterceptRuleSpec[];
  readonly routes: readonly RouteSetSpec[];
  /** Out-of-process plugins (see plugins.ts); empty when none are configured. */
  readonly plugins: readonly SidecarPluginSpec[];
  /** sha256 of the file's bytes; a save that does not change them is not a reload. */
  readonly hash: string;
}

const METHOD_RE = /^[A-Za-z]{1,20}$/;
// Route hosts are what clients put in Host / SNI: names (also single-label, e.g. localhost) or IPv4.
const ROUTE_HOST_RE =
  /^(?:\*\.)?[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$/;

function isMapping(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function checkKeys(
  path: string,
  field: string,
  obj: Record<string, unknown>,
  allowed: readonly string[],
): void {
  for (const key of Object.keys(obj)) {
    if (!allowed.includes(key)) {
      throw new RulesFileError(path, `${field}.${key}`, `unknown field (allowed: ${allowed.join(', ')})`);
    }
  }
}

/** Parses and validates rules-file text; every error names the field (`routes[0].patterns[1]`). */
export function parseRules(
  text: string,
  path = '<rules>',
  validation: RulesValidationOptions = {},
): RulesDocument {
  const hash = createHash('sha256').update(text).digest('hex');
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new RulesFileError(path, '', `not valid YAML: ${doc.errors[0]?.message ?? 'parse error'}`);
  }
  return validateRules(doc.toJS() ?? {}, path, hash, validation);
}

/**
 * Validates a rules document already parsed (from YAML, or converted from rule-sync resources) and fills
 * in defaults. `hash` identifies the version. Throws {@link RulesFileError} naming the field.
 */
export function validateRules(
  root: unknown,
  path: string,
  hash: string,
  validation: RulesValidationOptions = {},
): RulesDocument {
  if (!isMapping(root)) throw new RulesFileError(path, '', 'expected a mapping with intercept and routes');
  checkKeys(path, '', root, ['intercept', 'routes', 'plugins']);

  const interceptRaw = root['intercept'] ?? [];
  if (!Array.isArray(interceptRaw)) throw new RulesFileError(path, 'intercept', 'expected a list');
  const intercept = interceptRaw.map((item: unknown, i): InterceptRuleSpec => {
    const field = `intercept[${i}]`;
    if (!isMapping(item)) throw new RulesFileError(path, field, 'expected a mapping with domain');
    checkKeys(path, field, item, ['name', 'domain', 'action', 'upstreamTlsVerify']);
    let domain = item['domain'];
    const local = validation.localNames === true ? localInterceptDomain(domain) : undefined;
    if (local !== undefined) domain = local;
    else {
      try {
        normalizeInterceptDomain(domain);
      } catch (e) {
        throw new RulesFileError(path, `${field}.domain`, (e as Error).message);
      }
    }
    const action = item['action'] ?? 'intercept';
    if (action !== 'intercept' && action !== 'passthrough') {
      throw new RulesFileError(
        path,
        `${field}.action`,
        `expected intercept or passthrough, got ${JSON.stringify(action)}`,
      );
    }
    const verify = item['upstreamTlsVerify'] ?? true;
    if (typeof verify !== 'boolean')
      throw new RulesFileError(path, `${field}.upstreamTlsVerify`, 'expected true or false');
    const name = item['name'] ?? `intercept-${i}`;
    if (typeof name !== 'string') throw new RulesFileError(path, `${field}.name`, 'expected a string');
    return { name, domain: String(domain).toLowerCase(), action, upstreamTlsVerify: verify };
  });

  const routesRaw = root['routes'] ?? [];
  if (!Array.isArray(routesRaw)) throw new RulesFileError(path, 'routes', 'expected a list');
  const specs: { spec: RouteSpec<null>; field: string }[] = [];
  const routes = routesRaw.map((item: unknown, i): RouteSetSpec => {
    const field = `routes[${i}]`;
    if (!isMapping(item)) throw new RulesFileError(path, field, 'expected a mapping with host and patterns');
    checkKeys(path, field, item, ['name', 'host', 'patterns']);
    const host = item['host'];
    if (typeof host !== 'string' || !ROUTE_HOST_RE.test(host)) {
      throw new RulesFileError(
        path,
        `${field}.host`,
        `expected a host name, IPv4 address or *.host (no port), got ${JSON.stringify(host)}`,
      );
    }
    const patterns = item['patterns'];
    if (!Array.isArray(patterns) || patterns.length === 0) {
      throw new RulesFileError(path, `${field}.patterns`, 'expected a non-empty list');
    }
    const name = item['name'] ?? host;
    if (typeof name !== 'string') throw new RulesFileError(path, `${field}.name`, 'expected a string');
    const list = patterns.map((p: unknown, j) => {
      const pfield = `${field}.patterns[${j}]`;
      let pattern: unknown = p;
      let methods: unknown = [];
      if (isMapping(p)) {
        checkKeys(path, pfield, p, ['pattern', 'methods']);
        pattern = p['pattern'];
        methods = p['methods'] ?? [];
      }
      if (typeof pattern !== 'string' || !pattern.startsWith('/')) {
        throw new RulesFileError(
          path,
          pfield,
          `expected a path pattern starting with /, got ${JSON.stringify(pattern)}`,
        );
      }
      if (!Array.isArray(methods) || methods.some((m) => typeof m !== 'string' || !METHOD_RE.test(m))) {
        throw new RulesFileError(path, `${pfield}.methods`, 'expected a list of HTTP method names');
      }
      const upper = (methods as string[]).map((m) => m.toUpperCase());
      const spec: RouteSpec<null> = { pattern, data: null };
      if (upper.length > 0) spec.methods = upper;
      spec.host = host;
      specs.push({ spec, field: pfield });
      return { pattern, methods: upper };
    });
    return { name, host, routes: list };
  });

  // Compile once so that a pattern url-matcher would reject is reported here, against its field.
  try {
    createMatcher(specs.map((s) => s.spec));
  } catch (e) {
    if (e instanceof PatternError) {
      const at = specs.find((s) => s.spec.pattern === e.pattern);
      throw new RulesFileError(path, at?.field ?? 'routes', `${e.code}: ${e.message}`);
    }
    throw e;
  }
  const plugins = validatePlugins(
    root['plugins'],
    path,
    path === 'control-plane' || path.startsWith('<') ? undefined : dirname(resolvePath(path)),
  );
  return { intercept, routes, plugins, hash };
}

/** Reads and validates a rules file. */
export async function loadRulesFile(
  path: string,
  validation: RulesValidationOptions = {},
): Promise<RulesDocument> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e) {
    throw new RulesFileError(path, '', `cannot read: ${(e as Error).message}`);
  }
  return parseRules(text, path, validation);
}

export interface RulesWatcherOptions {
  /** Called with each new valid version (not for saves that leave the bytes unchanged). */
  onRules: (rules: RulesDocument) => void;
  /** Called when a change cannot be loaded; the last good rules stay in force. */
  onError: (error: RulesFileError) => void;
  /** Coalesces the bursts of events one save produces. Default 50 ms. */
  debounceMs?: number;
  /** Domain checks (explicit mode accepts local names and IP literals). */
  validation?: RulesValidationOptions;
}

/**
 * Watches a rules file. The directory is watched, not the file: editors and config-map updates
 * replace the file (rename), which would orphan a watch on the old inode.
 */
export class RulesFileWatcher {
  readonly path: string;
  #current: RulesDocument | null = null;
  #watcher: FSWatcher | null = null;
  #timer: NodeJS.Timeout | null = null;
  #loading: Promise<void> = Promise.resolve();
  readonly #options: RulesWatcherOptions;

  constructor(path: string, options: RulesWatcherOptions) {
    this.path = path;
    this.#options = options;
  }

  /** The rules in force (last good version), or null before the first successful load. */
  get current(): RulesDocument | null {
    return this.#current;
  }

  /** Loads the file (throws if it is invalid) and starts watching. */
  async start(): Promise<RulesDocument> {
    const first = await loadRulesFile(this.path, this.#options.validation);
    this.#current = first;
    const name = basename(this.path);
    this.#watcher = watch(dirname(this.path), (_event, filename) => {
      if (filename !== null && filename !== name && !filename.startsWith('..')) return;
      if (this.#timer) clearTimeout(this.#timer);
      this.#timer = setTimeout(() => {
        this.#timer = null;
        this.#loading = this.#loading.then(() => this.#reload());
      }, this.#options.debounceMs ?? 50);
    });
    return first;
  }

  async #reload(): Promise<void> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e) {
      this.#options.onError(new RulesFileError(this.path, '', `cannot read: ${(e as Error).message}`));
      return;
    }
    const hash = createHash('sha256').update(text).digest('hex');
    if (hash === this.#current?.hash) return;
    try {
      const next = parseRules(text, this.path, this.#options.validation);
      this.#current = next;
      this.#options.onRules(next);
    } catch (e) {
      if (e instanceof RulesFileError) this.#options.onError(e);
      else throw e;
    }
  }

  close(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#watcher?.close();
    this.#watcher = null;
  }
}
