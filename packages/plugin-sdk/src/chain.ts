import {
  applyHeaderMutation,
  type Decision,
  type ExchangeTimings,
  type FailureMode,
  failureDecision,
  type PluginClient,
  type PluginExchange,
  type RequestHead,
  type RespondDecision,
  type ResponseHead,
} from './client.js';
import { createMatcher, MatcherOptionsError, PatternError } from '@httpmesh/url-matcher';
import type { Matcher } from '@httpmesh/url-matcher';
import { PluginConfigError, type PluginError, PluginUnavailableError } from './errors.js';
import type { HeaderList } from './protocol.js';

/** Per-plugin settings, as distributed by rule-sync (PluginConfig). */
export interface PluginConfig {
  readonly name: string;
  /** gRPC address (`unix:/path`, `/path` or `host:port`) for plugins the supervisor does not start. */
  readonly address?: string;
  /**
   * Hosts it applies to: exact (`api.example.com`) or subdomain wildcard (`*.example.com`), as
   * @httpmesh/url-matcher scopes routes (case, port and a trailing dot of the request host are ignored).
   * Omitted: all.
   */
  readonly hosts?: readonly string[];
  /**
   * Path patterns it applies to, in the mesh's one pattern language (@httpmesh/url-matcher, path-to-regexp
   * v8 syntax): `/v1/*rest`, `/orders/:id`, `/docs{/:lang}/intro`. The query string is ignored. Omitted: all.
   */
  readonly patterns?: readonly string[];
  /** Position in the chain; lower runs first. */
  readonly order: number;
  /** Per-message timeout in ms (default 200). */
  readonly timeoutMs?: number;
  readonly failureMode: FailureMode;
}

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

function isStringArray(v: unknown): v is string[] {
  return Array.isArray(v) && v.every((s) => typeof s === 'string' && s.length > 0);
}

/** Checks an untrusted config object (e.g. from rule-sync) and returns it typed. */
export function parsePluginConfig(input: unknown): PluginConfig {
  return compileConfig(input).config;
}

function compileConfig(input: unknown): CompiledEntry {
  if (typeof input !== 'object' || input === null || Array.isArray(input)) {
    throw new PluginConfigError('plugin config must be an object');
  }
  const c = input as Record<string, unknown>;
  const name = c['name'];
  if (typeof name !== 'string' || !NAME_RE.test(name)) {
    throw new PluginConfigError(`plugin config name must match ${NAME_RE.source}`);
  }
  const fail = (detail: string): never => {
    throw new PluginConfigError(`plugin ${name}: ${detail}`, name);
  };
  if (c['address'] !== undefined && (typeof c['address'] !== 'string' || c['address'] === '')) {
    fail('address must be a non-empty string');
  }
  if (c['hosts'] !== undefined && !isStringArray(c['hosts']))
    fail('hosts must be an array of non-empty strings');
  if (c['patterns'] !== undefined && !isStringArray(c['patterns']))
    fail('patterns must be an array of non-empty strings');
  if (typeof c['order'] !== 'number' || !Number.isInteger(c['order'])) fail('order must be an integer');
  const t = c['timeoutMs'];
  if (t !== undefined && (typeof t !== 'number' || !Number.isFinite(t) || t <= 0 || t > 60_000)) {
    fail('timeoutMs must be a number in (0, 60000]');
  }
  if (c['failureMode'] !== 'open' && c['failureMode'] !== 'closed')
    fail("failureMode must be 'open' or 'closed'");
  const config = c as unknown as PluginConfig;
  // Compiling the patterns is their validation: the same errors, positions and conflicts the chain hits.
  return { config, scope: compileScope(config) };
}

/** Every path, for a plugin scoped by host only: `/` and any deeper path. */
const ANY_PATH = '/{*rest}';

/**
 * One url-matcher per plugin with a route per (host, pattern): a plugin applies when any of them matches.
 * Undefined when the plugin has neither hosts nor patterns (it applies everywhere).
 * @throws PluginConfigError carrying the matcher's code (HTTPMESH_PATTERN_*, HTTPMESH_ROUTE_INVALID)
 */
function compileScope(config: PluginConfig): Matcher<undefined> | undefined {
  if (config.hosts === undefined && config.patterns === undefined) return undefined;
  const patterns = [...new Set(config.patterns ?? [ANY_PATH])];
  const hosts =
    config.hosts === undefined ? [undefined] : [...new Set(config.hosts.map((h) => h.toLowerCase()))];
  const routes: { pattern: string; host?: string }[] = [];
  for (const host of hosts) {
    for (const pattern of patterns) routes.push(host === undefined ? { pattern } : { pattern, host });
  }
  try {
    return createMatcher<undefined>(routes);
  } catch (err) {
    if (err instanceof PatternError || err instanceof MatcherOptionsError) {
      throw new PluginConfigError(`plugin ${config.name}: ${err.code}: ${err.message}`, config.name, {
        cause: err,
      });
    }
    throw err;
  }
}

interface CompiledEntry {
  readonly config: PluginConfig;
  /** Undefined: applies to every host and path. */
  readonly scope: Matcher<undefined> | undefined;
}

/** What the chain decided for a headers phase: `mutate` carries the resulting header list. */
export type ChainHeadersDecision =
  | { readonly kind: 'continue'; readonly failures: readonly PluginError[] }
  | { readonly kind: 'mutate'; readonly headers: HeaderList; readonly failures: readonly PluginError[] }
  | RespondDecision;

/** What the chain decided for a whole body: `mutate` carries the resulting body. */
export type ChainBodyDecision =
  | { readonly kind: 'continue'; readonly failures: readonly PluginError[] }
  | { readonly kind: 'mutate'; readonly body: Buffer; readonly failures: readonly PluginError[] }
  | RespondDecision;

/**
 * Runs the plugins that apply to a host/path, in `order`. Each plugin sees the headers as left by
 * the previous one; an immediate response (or a fail-closed failure) stops the chain.
 */
export class PluginChain {
  private readonly entries: readonly CompiledEntry[];
  private readonly resolve: (name: string) => PluginClient | undefined;

  constructor(configs: readonly PluginConfig[], resolve: (name: string) => PluginClient | undefined) {
    const seen = new Set<string>();
    const entries: CompiledEntry[] = [];
    for (const raw of configs) {
      const entry = compileConfig(raw);
      const { config } = entry;
      if (seen.has(config.name))
        throw new PluginConfigError(`plugin ${config.name} configured twice`, config.name);
      seen.add(config.name);
      entries.push(entry);
    }
    entries.sort((a, b) => a.config.order - b.config.order);
    this.entries = entries;
    this.resolve = resolve;
  }

  /**
   * Configs of the plugins that apply to this host (`Host` / `:authority`, port ignored) and path (origin
   * form, query ignored), in chain order.
   */
  select(host: string, path: string): PluginConfig[] {
    const out: PluginConfig[] = [];
    for (const e of this.entries) {
      if (e.scope === undefined || e.scope.match(path, undefined, host) !== null) out.push(e.config);
    }
    return out;
  }

  startExchange(target: { readonly host: string; readonly path: string }): ChainExchange {
    const configs = this.select(target.host, target.path);
    const steps: ChainStep[] = configs.map((config) => {
      const client = this.resolve(config.name);
      const policy =
        config.timeoutMs === undefined
          ? { failureMode: config.failureMode }
          : { failureMode: config.failureMode, timeoutMs: config.timeoutMs };
      return { config, exchange: client?.startExchange(policy) };
    });
    return new ChainExchange(steps);
  }
}

interface ChainStep {
  readonly config: PluginConfig;
  /** Undefined when the plugin is not available (not started, crashed, restarting). */
  readonly exchange: PluginExchange | undefined;
}

export class ChainExchange {
  private readonly steps: readonly ChainStep[];

  /** @internal */
  constructor(steps: readonly ChainStep[]) {
    this.steps = steps;
  }

  /** Names of the plugins in this exchange's chain, in order. */
  get plugins(): string[] {
    return this.steps.map((s) => s.config.name);
  }

  onRequestHeaders(head: RequestHead): Promise<ChainHeadersDecision> {
    return this.runHeaders(head.headers, (ex, headers) => ex.onRequestHeaders({ ...head, headers }));
  }

  onResponseHeaders(head: ResponseHead): Promise<ChainHeadersDecision> {
    return this.runHeaders(head.headers, (ex, headers) => ex.onResponseHeaders({ ...head, headers }));
  }

  /** Whole request body (already buffered by the host) through every plugin that wants it. */
  onRequestBody(body: Buffer): Promise<ChainBodyDecision> {
    return this.runBody(body, (ex, b) => ex.onRequestBody(b, true));
  }

  onResponseBody(body: Buffer): Promise<ChainBodyDecision> {
    return this.runBody(body, (ex, b) => ex.onResponseBody(b, true));
  }

  /**
   * One request body chunk (STREAMED delivery) through every plugin that wants the body, each seeing the
   * chunk as the previous one left it; `endOfStream` marks the last (possibly empty) chunk. Only for
   * chains without a BUFFERED body plugin (a buffered plugin would replace the last chunk with a whole body).
   */
  onRequestBodyChunk(chunk: Buffer, endOfStream: boolean): Promise<ChainBodyDecision> {
    return this.runBody(chunk, (ex, b) => ex.onRequestBody(b, endOfStream));
  }

  /** One response body chunk (STREAMED delivery); see `onRequestBodyChunk`. */
  onResponseBodyChunk(chunk: Buffer, endOfStream: boolean): Promise<ChainBodyDecision> {
    return this.runBody(chunk, (ex, b) => ex.onResponseBody(b, endOfStream));
  }

  /** Request trailers through every plugin that declared the phase (header mutations apply in order). */
  onRequestTrailers(trailers: HeaderList): Promise<ChainHeadersDecision> {
    return this.runHeaders(trailers, (ex, t) => ex.onRequestTrailers(t));
  }

  /** Response trailers through every plugin that declared the phase (header mutations apply in order). */
  onResponseTrailers(trailers: HeaderList): Promise<ChainHeadersDecision> {
    return this.runHeaders(trailers, (ex, t) => ex.onResponseTrailers(t));
  }

  complete(timings: ExchangeTimings): void {
    for (const s of this.steps) s.exchange?.complete(timings);
  }

  close(): void {
    for (const s of this.steps) s.exchange?.close();
  }

  private unavailable(step: ChainStep): Decision {
    return failureDecision(
      new PluginUnavailableError(step.config.name, 'not running'),
      step.config.failureMode,
    );
  }

  private async runHeaders(
    initial: HeaderList,
    call: (ex: PluginExchange, headers: HeaderList) => Promise<Decision>,
  ): Promise<ChainHeadersDecision> {
    let headers = initial;
    let changed = false;
    const failures: PluginError[] = [];
    for (const step of this.steps) {
      const d = step.exchange ? await call(step.exchange, headers) : this.unavailable(step);
      if (d.kind === 'respond') return d;
      if (d.kind === 'continue') {
        if (d.failure) failures.push(d.failure);
        continue;
      }
      if (d.headers) {
        headers = applyHeaderMutation(headers, d.headers);
        changed = true;
      }
    }
    return changed ? { kind: 'mutate', headers, failures } : { kind: 'continue', failures };
  }

  private async runBody(
    initial: Buffer,
    call: (ex: PluginExchange, body: Buffer) => Promise<Decision>,
  ): Promise<ChainBodyDecision> {
    let body = initial;
    let changed = false;
    const failures: PluginError[] = [];
    for (const step of this.steps) {
      const d = step.exchange ? await call(step.exchange, body) : this.unavailable(step);
      if (d.kind === 'respond') return d;
      if (d.kind === 'continue') {
        if (d.failure) failures.push(d.failure);
        continue;
      }
      if (d.body) {
        body = d.body;
        changed = true;
      }
    }
    return changed ? { kind: 'mutate', body, failures } : { kind: 'continue', failures };
  }
}
