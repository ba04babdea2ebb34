import { RouteSetError } from './errors.js';

/** One route of a RouteSet: a url-matcher pattern, optionally restricted to some methods. */
export interface RouteSpec {
  pattern: string;
  methods?: string[];
}

/**
 * Route configuration for one host, structurally the control plane's RouteSet resource.
 * `host` is an exact host name or a `*.example.com` wildcard.
 */
export interface RouteSetSpec {
  host: string;
  routes: RouteSpec[];
}

// Validation runs on configuration changes only, so regexes are fine here.
const HOST_LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const HOST_RE = new RegExp(`^(?:\\*\\.)?${HOST_LABEL}(?:\\.${HOST_LABEL})*$`);
const METHOD_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Checks an untrusted list of RouteSet documents and returns normalised copies (host lower-cased).
 * Unknown extra fields are ignored so control-plane resources can be passed as they are.
 * @throws RouteSetError (`HTTPMESH_METRICS_ROUTESET_INVALID`) naming the offending path.
 */
export function validateRouteSets(input: unknown): RouteSetSpec[] {
  if (!Array.isArray(input)) {
    throw new RouteSetError('', `expected an array of RouteSet documents, got ${describe(input)}`);
  }
  const seenHosts = new Set<string>();
  const out: RouteSetSpec[] = [];
  for (let i = 0; i < input.length; i++) {
    const doc: unknown = input[i];
    const at = `[${i}]`;
    if (!isPlainObject(doc)) throw new RouteSetError(at, `expected an object, got ${describe(doc)}`);
    const host = doc['host'];
    if (typeof host !== 'string' || host.length === 0) {
      throw new RouteSetError(`${at}.host`, `expected a non-empty string, got ${describe(host)}`);
    }
    const normalisedHost = host.toLowerCase();
    if (!HOST_RE.test(normalisedHost)) {
      throw new RouteSetError(
        `${at}.host`,
        `"${host}" is not a host name or *.suffix wildcard (no port, scheme or path)`,
      );
    }
    if (seenHosts.has(normalisedHost)) {
      throw new RouteSetError(`${at}.host`, `duplicate RouteSet for host "${normalisedHost}"`);
    }
    seenHosts.add(normalisedHost);
    const routes = doc['routes'];
    if (!Array.isArray(routes)) {
      throw new RouteSetError(`${at}.routes`, `expected an array, got ${describe(routes)}`);
    }
    const outRoutes: RouteSpec[] = [];
    for (let j = 0; j < routes.length; j++) {
      const route: unknown = routes[j];
      const rat = `${at}.routes[${j}]`;
      if (!isPlainObject(route)) throw new RouteSetError(rat, `expected an object, got ${describe(route)}`);
      const pattern = route['pattern'];
      if (typeof pattern !== 'string' || pattern.length === 0 || pattern.charCodeAt(0) !== 47 /* / */) {
        throw new RouteSetError(
          `${rat}.pattern`,
          `expected a string starting with "/", got ${describe(pattern)}`,
        );
      }
      const methods = route['methods'];
      if (methods === undefined) {
        outRoutes.push({ pattern });
        continue;
      }
      if (!Array.isArray(methods) || methods.length === 0) {
        throw new RouteSetError(
          `${rat}.methods`,
          `expected a non-empty array of method names, got ${describe(methods)}`,
        );
      }
      const outMethods: string[] = [];
      for (let k = 0; k < methods.length; k++) {
        const m: unknown = methods[k];
        if (typeof m !== 'string' || !METHOD_RE.test(m)) {
          throw new RouteSetError(
            `${rat}.methods[${k}]`,
            `expected an HTTP method token, got ${describe(m)}`,
          );
        }
        outMethods.push(m);
      }
      outRoutes.push({ pattern, methods: outMethods });
    }
    out.push({ host: normalisedHost, routes: outRoutes });
  }
  return out;
}

function describe(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'string') return JSON.stringify(value.length > 60 ? `${value.slice(0, 60)}…` : value);
  return typeof value;
}
