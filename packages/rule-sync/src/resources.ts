import { createHash } from 'node:crypto';
import {
  InterceptRule_Action,
  PluginConfig_FailureMode,
  Resource,
  ResourceType,
} from './gen/httpmesh/rulesync/v1/rule_sync.js';

/** Resource types this version of the package understands, in push order. */
export const KNOWN_RESOURCE_TYPES: readonly ResourceType[] = [
  ResourceType.RESOURCE_TYPE_INTERCEPT_RULE,
  ResourceType.RESOURCE_TYPE_ROUTE_SET,
  ResourceType.RESOURCE_TYPE_POLICY,
  ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG,
];

type BodyCase = NonNullable<Resource['body']>['$case'];

const CASE_BY_TYPE: ReadonlyMap<ResourceType, BodyCase> = new Map<ResourceType, BodyCase>([
  [ResourceType.RESOURCE_TYPE_INTERCEPT_RULE, 'interceptRule'],
  [ResourceType.RESOURCE_TYPE_ROUTE_SET, 'routeSet'],
  [ResourceType.RESOURCE_TYPE_POLICY, 'policy'],
  [ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG, 'pluginConfig'],
]);

const TYPE_BY_CASE: ReadonlyMap<BodyCase, ResourceType> = new Map(
  [...CASE_BY_TYPE].map(([type, bodyCase]) => [bodyCase, type]),
);

const TYPE_NAMES: ReadonlyMap<ResourceType, string> = new Map([
  [ResourceType.RESOURCE_TYPE_INTERCEPT_RULE, 'InterceptRule'],
  [ResourceType.RESOURCE_TYPE_ROUTE_SET, 'RouteSet'],
  [ResourceType.RESOURCE_TYPE_POLICY, 'Policy'],
  [ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG, 'PluginConfig'],
]);

export function isKnownResourceType(type: ResourceType): boolean {
  return CASE_BY_TYPE.has(type);
}

/** Human name of a resource type (`InterceptRule`), for logs and the registry. */
export function resourceTypeName(type: ResourceType): string {
  return TYPE_NAMES.get(type) ?? `Unknown(${type})`;
}

/** The type a resource belongs to, derived from its body; undefined when it has no body. */
export function resourceTypeOf(resource: Resource): ResourceType | undefined {
  const bodyCase = resource.body?.$case;
  return bodyCase === undefined ? undefined : TYPE_BY_CASE.get(bodyCase);
}

/** Content hash of a resource (name + body), used as its version when the author gives none. */
export function contentVersion(resource: Resource): string {
  const bytes = Resource.encode({ ...resource, version: '' }).finish();
  return createHash('sha256').update(bytes).digest('base64url').slice(0, 16);
}

/**
 * Version of a whole set of one type: a hash of the sorted (name, version) pairs. Deterministic, so a
 * restarted control plane with the same resources reports the same version and nothing is resent.
 */
export function systemVersionOf(versions: Iterable<readonly [string, string]>): string {
  const sorted = [...versions].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  const hash = createHash('sha256');
  for (const [name, version] of sorted) hash.update(name).update('\0').update(version).update('\n');
  return hash.digest('base64url').slice(0, 16);
}

/** Canonical key of a sidecar group: service plus labels sorted by key (`orders{env=prod,zone=a}`). */
export function groupKey(service: string, labels: Readonly<Record<string, string>> = {}): string {
  const pairs = Object.keys(labels)
    .sort()
    .map((key) => `${key}=${labels[key] ?? ''}`);
  return `${service}{${pairs.join(',')}}`;
}

const HOST_LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/;

function isHostName(host: string): boolean {
  if (host.length === 0 || host.length > 253) return false;
  return host.split('.').every((label) => HOST_LABEL.test(label));
}

/** Exact host or a leading one-label wildcard (`*.partner.com`). */
function isHostOrWildcard(host: string): boolean {
  return host.startsWith('*.') ? isHostName(host.slice(2)) : isHostName(host);
}

const METHOD = /^[A-Z]+$/;

/**
 * Structural checks every resource passes before it is stored (server) or applied (client).
 * Returns a reason, or undefined when the resource is well formed for `type`.
 */
export function checkResource(type: ResourceType, resource: Resource): string | undefined {
  if (resource.name.length === 0) return 'resource name is empty';
  const expected = CASE_BY_TYPE.get(type);
  if (expected === undefined) return `unknown resource type ${type}`;
  const body = resource.body;
  if (body === undefined) return `resource "${resource.name}" has no body`;
  if (body.$case !== expected) {
    return `resource "${resource.name}" has a ${body.$case} body but was sent as ${resourceTypeName(type)}`;
  }
  switch (body.$case) {
    case 'interceptRule': {
      const rule = body.value;
      if (!isHostOrWildcard(rule.domain))
        return `InterceptRule "${resource.name}": invalid domain "${rule.domain}"`;
      if (
        rule.action !== InterceptRule_Action.ACTION_INTERCEPT &&
        rule.action !== InterceptRule_Action.ACTION_PASSTHROUGH
      ) {
        return `InterceptRule "${resource.name}": action must be INTERCEPT or PASSTHROUGH`;
      }
      return undefined;
    }
    case 'routeSet': {
      const set = body.value;
      if (set.host !== '' && !isHostOrWildcard(set.host)) {
        return `RouteSet "${resource.name}": invalid host "${set.host}"`;
      }
      for (const route of set.routes) {
        if (!route.pattern.startsWith('/')) {
          return `RouteSet "${resource.name}": pattern "${route.pattern}" must start with "/"`;
        }
        for (const method of route.methods) {
          if (!METHOD.test(method)) return `RouteSet "${resource.name}": invalid method "${method}"`;
        }
      }
      return undefined;
    }
    case 'policy': {
      const policy = body.value;
      if (policy.host !== '' && !isHostOrWildcard(policy.host)) {
        return `Policy "${resource.name}": invalid host "${policy.host}"`;
      }
      if (policy.routePattern !== '' && !policy.routePattern.startsWith('/')) {
        return `Policy "${resource.name}": route pattern must start with "/"`;
      }
      if (policy.rateLimit !== undefined && !(policy.rateLimit.requestsPerSecond > 0)) {
        return `Policy "${resource.name}": rate limit must be > 0 requests per second`;
      }
      return undefined;
    }
    case 'pluginConfig': {
      const plugin = body.value;
      const address = plugin.address;
      const validAddress =
        address.startsWith('unix:/') || /^[^\s:/]+:\d{1,5}$|^\[[0-9a-f:.]+\]:\d{1,5}$/i.test(address);
      if (!validAddress) return `PluginConfig "${resource.name}": address must be unix:/path or host:port`;
      if (
        plugin.failureMode !== PluginConfig_FailureMode.FAILURE_MODE_FAIL_OPEN &&
        plugin.failureMode !== PluginConfig_FailureMode.FAILURE_MODE_FAIL_CLOSED
      ) {
        return `PluginConfig "${resource.name}": failure mode must be FAIL_OPEN or FAIL_CLOSED`;
      }
      return undefined;
    }
  }
}
