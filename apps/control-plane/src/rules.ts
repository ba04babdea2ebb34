import {
  checkResource,
  InterceptRule_Action,
  PluginConfig_FailureMode,
  PluginConfig_Phase,
  ResourceType,
} from '@httpmesh/rule-sync';
import type { Resource } from '@httpmesh/rule-sync';
import { createMatcher, PatternError } from '@httpmesh/url-matcher';
import { RuleValidationError } from './errors.js';
import type { ValidationIssue } from './errors.js';

/** Kinds pushed to sidecars over rule-sync. */
export const SIDECAR_KINDS = ['InterceptRule', 'RouteSet', 'Policy', 'PluginConfig'] as const;
export type SidecarKind = (typeof SIDECAR_KINDS)[number];
/** Kinds the store holds: the sidecar kinds plus the control plane's own alert rules. */
export const RULE_KINDS = [...SIDECAR_KINDS, 'AlertRule'] as const;
export type RuleKind = (typeof RULE_KINDS)[number];

export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };
export type JsonObject = { [key: string]: JsonValue };

/** A rule as the API and the store see it. `spec` is the kind's JSON body (see docs/control-plane-api.yaml). */
export interface RuleDocument {
  kind: RuleKind;
  name: string;
  spec: JsonObject;
}

export const RESOURCE_TYPE_OF_KIND: Readonly<Record<SidecarKind, ResourceType>> = {
  InterceptRule: ResourceType.RESOURCE_TYPE_INTERCEPT_RULE,
  RouteSet: ResourceType.RESOURCE_TYPE_ROUTE_SET,
  Policy: ResourceType.RESOURCE_TYPE_POLICY,
  PluginConfig: ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG,
};

export function isRuleKind(value: string): value is RuleKind {
  return (RULE_KINDS as readonly string[]).includes(value);
}

export function isSidecarKind(value: string): value is SidecarKind {
  return (SIDECAR_KINDS as readonly string[]).includes(value);
}

const NAME = /^[a-z0-9]([a-z0-9._-]{0,126}[a-z0-9])?$/;
const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;
const METHOD = /^[A-Z]+$/;
const PHASES: Readonly<Record<string, PluginConfig_Phase>> = {
  REQUEST_HEADERS: PluginConfig_Phase.PHASE_REQUEST_HEADERS,
  REQUEST_BODY: PluginConfig_Phase.PHASE_REQUEST_BODY,
  RESPONSE_HEADERS: PluginConfig_Phase.PHASE_RESPONSE_HEADERS,
  RESPONSE_BODY: PluginConfig_Phase.PHASE_RESPONSE_BODY,
};
const ALERT_METRICS = ['errorRatio', 'rate', 'p50', 'p95', 'p99'] as const;
export type AlertMetric = (typeof ALERT_METRICS)[number];

function isHost(host: string): boolean {
  const bare = host.startsWith('*.') ? host.slice(2) : host;
  if (bare.length === 0 || bare.length > 253) return false;
  return bare.split('.').every((label) => HOST_LABEL.test(label));
}

function isObject(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/** Collects issues while reading an untrusted spec, each with its exact field path. */
class Reader {
  readonly issues: ValidationIssue[] = [];
  constructor(private readonly allowed: Map<string, ReadonlySet<string>> = new Map()) {}

  fail(field: string, reason: string): void {
    this.issues.push({ field, reason });
  }

  object(value: unknown, field: string, keys: readonly string[]): JsonObject | undefined {
    if (!isObject(value)) {
      this.fail(field, 'must be an object');
      return undefined;
    }
    this.allowed.set(field, new Set(keys));
    for (const key of Object.keys(value)) {
      if (!keys.includes(key)) this.fail(`${field}.${key}`, `unknown field (allowed: ${keys.join(', ')})`);
    }
    return value;
  }

  string(
    value: unknown,
    field: string,
    opts: { required?: boolean; empty?: boolean } = {},
  ): string | undefined {
    if (value === undefined) {
      if (opts.required === true) this.fail(field, 'is required');
      return undefined;
    }
    if (typeof value !== 'string') {
      this.fail(field, 'must be a string');
      return undefined;
    }
    if (value.length === 0 && opts.empty !== true) {
      this.fail(field, 'must not be empty');
      return undefined;
    }
    return value;
  }

  integer(value: unknown, field: string, min: number, max: number, required = false): number | undefined {
    if (value === undefined) {
      if (required) this.fail(field, 'is required');
      return undefined;
    }
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
      this.fail(field, `must be an integer from ${min} to ${max}`);
      return undefined;
    }
    return value;
  }

  number(value: unknown, field: string, required = false): number | undefined {
    if (value === undefined) {
      if (required) this.fail(field, 'is required');
      return undefined;
    }
    if (typeof value !== 'number' || !Number.isFinite(value)) {
      this.fail(field, 'must be a finite number');
      return undefined;
    }
    return value;
  }

  stringArray(value: unknown, field: string): string[] {
    if (value === undefined) return [];
    if (!Array.isArray(value)) {
      this.fail(field, 'must be an array of strings');
      return [];
    }
    const out: string[] = [];
    value.forEach((item, i) => {
      if (typeof item !== 'string' || item.length === 0)
        this.fail(`${field}[${i}]`, 'must be a non-empty string');
      else out.push(item);
    });
    return out;
  }

  host(value: unknown, field: string, allowEmpty: boolean): string {
    const host = this.string(value, field, { required: !allowEmpty, empty: allowEmpty }) ?? '';
    if (host !== '' && !isHost(host)) {
      this.fail(field, `"${host}" is not a lower-case host name or a one-label wildcard (*.example.com)`);
    }
    return host;
  }

  /** Checks one path pattern with url-matcher, the same parser the sidecar uses. */
  pattern(value: unknown, field: string, required: boolean): string {
    const pattern = this.string(value, field, { required, empty: !required }) ?? '';
    if (pattern === '') return pattern;
    if (!pattern.startsWith('/')) {
      this.fail(field, 'must start with "/"');
      return pattern;
    }
    try {
      createMatcher([{ pattern }]);
    } catch (err) {
      if (err instanceof PatternError) this.fail(field, `${err.code}: ${err.message}`);
      else throw err;
    }
    return pattern;
  }

  methods(value: unknown, field: string): string[] {
    const methods = this.stringArray(value, field);
    methods.forEach((m, i) => {
      if (!METHOD.test(m)) this.fail(`${field}[${i}]`, `"${m}" is not an upper-case HTTP method`);
    });
    return methods;
  }
}

const COMMON_KEYS = ['services'];

function readServices(r: Reader, spec: JsonObject): string[] {
  return r.stringArray(spec['services'], 'spec.services');
}

/** A validated rule: the sidecar resource it becomes (none for AlertRule) and the services it targets. */
export interface CompiledRule {
  document: RuleDocument;
  /** Services whose sidecars receive the rule; empty means every service. */
  services: string[];
  resource: Resource | undefined;
  alert: AlertRuleSpec | undefined;
}

export interface AlertRuleSpec {
  metric: AlertMetric;
  /** View filter; omitted dimensions match everything. */
  service?: string;
  host?: string;
  method?: string;
  route?: string;
  /** Fires when the metric is above this (ratio 0-1 for errorRatio, requests/s for rate, seconds for pN). */
  above: number;
  /** How long the condition must hold before the alert fires. */
  forSeconds: number;
  /** Window the metric is computed over. */
  windowSeconds: number;
}

function compileSpec(kind: RuleKind, name: string, spec: JsonObject, r: Reader): CompiledRule {
  const document: RuleDocument = { kind, name, spec };
  const services = readServices(r, spec);
  const base = { document, services, resource: undefined, alert: undefined };
  switch (kind) {
    case 'InterceptRule': {
      r.object(spec, 'spec', [...COMMON_KEYS, 'domain', 'action', 'upstreamTlsVerify']);
      const domain = r.host(spec['domain'], 'spec.domain', false);
      const action = spec['action'];
      if (action !== 'INTERCEPT' && action !== 'PASSTHROUGH')
        r.fail('spec.action', 'must be "INTERCEPT" or "PASSTHROUGH"');
      const verify = spec['upstreamTlsVerify'];
      if (verify !== undefined && typeof verify !== 'boolean')
        r.fail('spec.upstreamTlsVerify', 'must be a boolean');
      return {
        ...base,
        resource: {
          name,
          version: '',
          body: {
            $case: 'interceptRule',
            value: {
              name,
              domain,
              action:
                action === 'PASSTHROUGH'
                  ? InterceptRule_Action.ACTION_PASSTHROUGH
                  : InterceptRule_Action.ACTION_INTERCEPT,
              upstreamTlsVerify: typeof verify === 'boolean' ? verify : undefined,
            },
          },
        },
      };
    }
    case 'RouteSet': {
      r.object(spec, 'spec', [...COMMON_KEYS, 'host', 'routes']);
      const host = r.host(spec['host'] ?? '', 'spec.host', true);
      const rawRoutes = spec['routes'];
      const routes: { pattern: string; methods: string[] }[] = [];
      if (!Array.isArray(rawRoutes) || rawRoutes.length === 0) {
        r.fail('spec.routes', 'must be a non-empty array');
      } else {
        rawRoutes.forEach((raw, i) => {
          const field = `spec.routes[${i}]`;
          const route = r.object(raw, field, ['pattern', 'methods']);
          if (route === undefined) return;
          routes.push({
            pattern: r.pattern(route['pattern'], `${field}.pattern`, true),
            methods: r.methods(route['methods'], `${field}.methods`),
          });
        });
        if (r.issues.length === 0) {
          // Conflicts (two patterns matching the same paths ambiguously) only show in a whole-set build.
          try {
            createMatcher(
              routes.map((route) => (route.methods.length > 0 ? route : { pattern: route.pattern })),
            );
          } catch (err) {
            if (!(err instanceof PatternError)) throw err;
            const index = routes.findIndex((route) => route.pattern === err.pattern);
            r.fail(
              index === -1 ? 'spec.routes' : `spec.routes[${index}].pattern`,
              `${err.code}: ${err.message}`,
            );
          }
        }
      }
      return {
        ...base,
        resource: { name, version: '', body: { $case: 'routeSet', value: { name, host, routes } } },
      };
    }
    case 'Policy': {
      r.object(spec, 'spec', [...COMMON_KEYS, 'host', 'routePattern', 'timeoutMs', 'retries', 'rateLimit']);
      const host = r.host(spec['host'] ?? '', 'spec.host', true);
      const routePattern = r.pattern(spec['routePattern'] ?? '', 'spec.routePattern', false);
      const timeoutMs = r.integer(spec['timeoutMs'], 'spec.timeoutMs', 1, 3_600_000);
      let retries: { maxAttempts: number; perTryTimeoutMs: number; retryOn: string[] } | undefined;
      if (spec['retries'] !== undefined) {
        const raw = r.object(spec['retries'], 'spec.retries', ['maxAttempts', 'perTryTimeoutMs', 'retryOn']);
        if (raw !== undefined) {
          retries = {
            maxAttempts: r.integer(raw['maxAttempts'], 'spec.retries.maxAttempts', 1, 10, true) ?? 1,
            perTryTimeoutMs:
              r.integer(raw['perTryTimeoutMs'], 'spec.retries.perTryTimeoutMs', 0, 3_600_000) ?? 0,
            retryOn: r.stringArray(raw['retryOn'], 'spec.retries.retryOn'),
          };
        }
      }
      let rateLimit: { requestsPerSecond: number; burst: number } | undefined;
      if (spec['rateLimit'] !== undefined) {
        const raw = r.object(spec['rateLimit'], 'spec.rateLimit', ['requestsPerSecond', 'burst']);
        if (raw !== undefined) {
          const rps = r.number(raw['requestsPerSecond'], 'spec.rateLimit.requestsPerSecond', true) ?? 0;
          if (!(rps > 0)) r.fail('spec.rateLimit.requestsPerSecond', 'must be > 0');
          rateLimit = {
            requestsPerSecond: rps,
            burst: r.integer(raw['burst'], 'spec.rateLimit.burst', 0, 1_000_000) ?? 0,
          };
        }
      }
      return {
        ...base,
        resource: {
          name,
          version: '',
          body: { $case: 'policy', value: { name, host, routePattern, timeoutMs, retries, rateLimit } },
        },
      };
    }
    case 'PluginConfig': {
      r.object(spec, 'spec', [
        ...COMMON_KEYS,
        'address',
        'phases',
        'hosts',
        'patterns',
        'order',
        'timeoutMs',
        'failureMode',
      ]);
      const address = r.string(spec['address'], 'spec.address', { required: true }) ?? '';
      if (
        address !== '' &&
        !(address.startsWith('unix:/') || /^[^\s:/]+:\d{1,5}$|^\[[0-9a-f:.]+\]:\d{1,5}$/i.test(address))
      ) {
        r.fail('spec.address', 'must be unix:/path or host:port');
      }
      const phases = r.stringArray(spec['phases'], 'spec.phases').map((phase, i) => {
        const value = PHASES[phase];
        if (value === undefined)
          r.fail(`spec.phases[${i}]`, `must be one of ${Object.keys(PHASES).join(', ')}`);
        return value ?? PluginConfig_Phase.PHASE_UNSPECIFIED;
      });
      if (phases.length === 0) r.fail('spec.phases', 'must list at least one phase');
      const hosts = r.stringArray(spec['hosts'], 'spec.hosts');
      for (const [i, h] of hosts.entries()) r.host(h, `spec.hosts[${i}]`, false);
      const patterns = r.stringArray(spec['patterns'], 'spec.patterns');
      for (const [i, p] of patterns.entries()) r.pattern(p, `spec.patterns[${i}]`, true);
      const order = r.integer(spec['order'], 'spec.order', -1_000_000, 1_000_000) ?? 0;
      const timeoutMs = r.integer(spec['timeoutMs'], 'spec.timeoutMs', 1, 60_000) ?? 100;
      const mode = spec['failureMode'] ?? 'FAIL_OPEN';
      if (mode !== 'FAIL_OPEN' && mode !== 'FAIL_CLOSED')
        r.fail('spec.failureMode', 'must be "FAIL_OPEN" or "FAIL_CLOSED"');
      return {
        ...base,
        resource: {
          name,
          version: '',
          body: {
            $case: 'pluginConfig',
            value: {
              name,
              address,
              phases,
              hosts,
              patterns,
              order,
              timeoutMs,
              failureMode:
                mode === 'FAIL_CLOSED'
                  ? PluginConfig_FailureMode.FAILURE_MODE_FAIL_CLOSED
                  : PluginConfig_FailureMode.FAILURE_MODE_FAIL_OPEN,
            },
          },
        },
      };
    }
    case 'AlertRule': {
      r.object(spec, 'spec', [
        'metric',
        'service',
        'host',
        'method',
        'route',
        'above',
        'forSeconds',
        'windowSeconds',
      ]);
      const metric = spec['metric'];
      if (typeof metric !== 'string' || !(ALERT_METRICS as readonly string[]).includes(metric)) {
        r.fail('spec.metric', `must be one of ${ALERT_METRICS.join(', ')}`);
      }
      const alert: AlertRuleSpec = {
        metric: metric as AlertMetric,
        above: r.number(spec['above'], 'spec.above', true) ?? 0,
        forSeconds: r.integer(spec['forSeconds'] ?? 0, 'spec.forSeconds', 0, 86_400) ?? 0,
        windowSeconds: r.integer(spec['windowSeconds'] ?? 60, 'spec.windowSeconds', 1, 3_600) ?? 60,
      };
      if (metric === 'errorRatio' && (alert.above < 0 || alert.above > 1))
        r.fail('spec.above', 'an error ratio threshold must be within 0..1');
      for (const key of ['service', 'host', 'method', 'route'] as const) {
        const value = r.string(spec[key], `spec.${key}`);
        if (value !== undefined) alert[key] = value;
      }
      if (alert.route !== undefined) r.pattern(alert.route, 'spec.route', true);
      return { ...base, alert };
    }
  }
}

/**
 * Validates an untrusted rule document and compiles it. Every problem is reported with the exact field
 * path and a reason.
 * @throws RuleValidationError (`HTTPMESH_CP_RULE_INVALID`)
 */
export function compileRule(kind: string, name: unknown, spec: unknown): CompiledRule {
  const r = new Reader();
  if (!isRuleKind(kind)) {
    throw new RuleValidationError([{ field: 'kind', reason: `must be one of ${RULE_KINDS.join(', ')}` }]);
  }
  if (typeof name !== 'string' || !NAME.test(name)) {
    r.fail(
      'name',
      'must be 1-128 characters of a-z, 0-9, ".", "_", "-", starting and ending with a letter or digit',
    );
  }
  if (!isObject(spec)) {
    r.fail('spec', 'must be an object');
    throw new RuleValidationError(r.issues);
  }
  const compiled = compileSpec(kind, typeof name === 'string' ? name : '', spec, r);
  if (r.issues.length > 0) throw new RuleValidationError(r.issues);
  if (compiled.resource !== undefined && isSidecarKind(kind)) {
    // Defence in depth: the resource must also pass the exact check rule-sync applies on both ends.
    const problem = checkResource(RESOURCE_TYPE_OF_KIND[kind], compiled.resource);
    if (problem !== undefined) throw new RuleValidationError([{ field: 'spec', reason: problem }]);
  }
  return compiled;
}
