/**
 * Plugin configuration and its validation, with no gRPC code behind it: the `@httpmesh/plugin-sdk/config`
 * entry point, so a host validates plugin rules without loading the client until a plugin runs.
 */
import { createMatcher, MatcherOptionsError, PatternError } from '@httpmesh/url-matcher';
import type { Matcher } from '@httpmesh/url-matcher';
import type { FailureMode } from './client.js';
import { PluginConfigError } from './errors.js';

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

export function compileConfig(input: unknown): CompiledEntry {
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

export interface CompiledEntry {
  readonly config: PluginConfig;
  /** Undefined: applies to every host and path. */
  readonly scope: Matcher<undefined> | undefined;
}
