import { timingSafeEqual } from 'node:crypto';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import {
  meshPrometheusText,
  PROMETHEUS_CONTENT_TYPE,
  parseWindowDuration,
  WindowParameterError,
} from '@httpmesh/metrics';
import type { ViewDimension, ViewKey, WindowedAggregator } from '@httpmesh/metrics';
import type { RuleSyncServer } from '@httpmesh/rule-sync';
import type { AlertEngine } from './alerts.js';
import { createDashboardHandler } from './dashboard-assets.js';
import { ControlPlaneError, RevisionConflictError, RuleValidationError } from './errors.js';
import type { ValidationIssue } from './errors.js';
import type { ControlPlanePki } from './pki.js';
import { compileRule, isRuleKind } from './rules.js';
import type { JsonObject, RuleKind } from './rules.js';
import type { Store } from './store/types.js';

export interface ApiOptions {
  store: Store;
  ruleSync: RuleSyncServer;
  metrics: WindowedAggregator;
  alerts: AlertEngine;
  pki: ControlPlanePki | undefined;
  adminToken: string;
  /** When true, read-only calls need the admin token too. */
  protectReads: boolean;
  /** Directory of the built dashboard served at `/`; default the built @httpmesh/dashboard package. */
  dashboardDir?: string;
  /** Largest accepted request body. Default 1 MiB. */
  maxBodyBytes?: number;
}

/** An HTTP-level failure with its status and stable code. */
class HttpError extends ControlPlaneError {
  override readonly name = 'HttpError';
  constructor(
    readonly status: number,
    override readonly code: string,
    message: string,
    readonly issues?: readonly ValidationIssue[],
  ) {
    super(message);
  }
}

/** The `window` query parameter (`30s`, `5m`, `1h` or plain seconds; default 1 minute) as a 400 when malformed. */
function parseWindow(value: string | null, maxMs: number): number {
  if (value === null || value === '') return Math.min(60_000, maxMs);
  try {
    return parseWindowDuration(value, maxMs);
  } catch (err) {
    if (!(err instanceof WindowParameterError)) throw err;
    throw new HttpError(400, 'HTTPMESH_CP_BAD_REQUEST', err.message, [
      { field: 'window', reason: `${err.code}: ${err.message}` },
    ]);
  }
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}

async function readJson(req: IncomingMessage, limit: number): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit)
      throw new HttpError(413, 'HTTPMESH_CP_BODY_TOO_LARGE', `request body exceeds ${limit} bytes`);
    chunks.push(chunk);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  if (text.trim() === '')
    throw new HttpError(400, 'HTTPMESH_CP_BAD_REQUEST', 'request body is empty', [
      { field: 'body', reason: 'a JSON object is required' },
    ]);
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new HttpError(
      400,
      'HTTPMESH_CP_MALFORMED_JSON',
      `request body is not valid JSON: ${(err as Error).message}`,
      [{ field: 'body', reason: 'malformed JSON' }],
    );
  }
}

function asObject(value: unknown): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new HttpError(400, 'HTTPMESH_CP_BAD_REQUEST', 'request body must be a JSON object', [
      { field: 'body', reason: 'must be a JSON object' },
    ]);
  }
  return value as Record<string, unknown>;
}

function revisionField(value: unknown, field: string, required: boolean): number | undefined {
  if (value === undefined || value === null || value === '') {
    if (required)
      throw new HttpError(
        400,
        'HTTPMESH_CP_BAD_REQUEST',
        `${field} is required (the revision you last read; 0 to create)`,
        [{ field, reason: 'is required' }],
      );
    return undefined;
  }
  const n = typeof value === 'string' ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 0) {
    throw new HttpError(400, 'HTTPMESH_CP_BAD_REQUEST', `${field} must be a non-negative integer`, [
      { field, reason: 'must be a non-negative integer' },
    ]);
  }
  return n;
}

const AUTHOR = /^[\w.@:-]{1,64}$/;

const METRIC_VIEWS: Readonly<Record<string, readonly ViewDimension[]>> = {
  services: ['service', 'direction'],
  hosts: ['service', 'host', 'direction'],
  patterns: ['service', 'host', 'method', 'route', 'direction'],
};

/** The control plane's JSON API, Prometheus endpoint and health check on node:http. */
export function createApiServer(options: ApiOptions): Server {
  const limit = options.maxBodyBytes ?? 1_048_576;
  const { store, ruleSync, metrics, alerts } = options;

  const send = (res: ServerResponse, status: number, body: unknown): void => {
    const text = JSON.stringify(body);
    res.writeHead(status, {
      'content-type': 'application/json; charset=utf-8',
      'content-length': Buffer.byteLength(text),
      'cache-control': 'no-store',
    });
    res.end(text);
  };

  const authorize = (req: IncomingMessage, mutating: boolean): void => {
    if (!mutating && !options.protectReads) return;
    const header = req.headers.authorization ?? '';
    const token = header.startsWith('Bearer ') ? header.slice(7).trim() : '';
    if (token === '' || !sameSecret(token, options.adminToken)) {
      throw new HttpError(401, 'HTTPMESH_CP_UNAUTHORIZED', 'a valid admin bearer token is required');
    }
  };

  const authorOf = (req: IncomingMessage): string => {
    const header = req.headers['x-httpmesh-author'];
    return typeof header === 'string' && AUTHOR.test(header) ? header : 'admin';
  };

  const kindOf = (segment: string | undefined): RuleKind => {
    const kind = decodeURIComponent(segment ?? '');
    if (!isRuleKind(kind)) {
      throw new HttpError(
        404,
        'HTTPMESH_CP_UNKNOWN_KIND',
        `unknown rule kind "${kind}" (InterceptRule, RouteSet, Policy, PluginConfig, AlertRule)`,
      );
    }
    return kind;
  };

  const filterOf = (url: URL): ViewKey => {
    const filter: ViewKey = {};
    for (const key of ['service', 'host', 'method', 'route', 'direction'] as const) {
      const value = url.searchParams.get(key);
      if (value !== null) filter[key] = value;
    }
    return filter;
  };

  const dashboard = createDashboardHandler(options.dashboardDir);

  async function route(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    const method = req.method ?? 'GET';
    const parts = url.pathname.split('/').filter((p) => p !== '');
    const mutating = method !== 'GET' && method !== 'HEAD';
    if (url.pathname === '/healthz') return send(res, 200, { status: 'ok', store: store.backend });
    // The dashboard page and assets carry no data (it calls the API, with the token from its URL fragment).
    if (parts[0] !== 'api' && url.pathname !== '/metrics' && (await dashboard(req, res, url.pathname)))
      return;
    authorize(req, mutating);

    if (url.pathname === '/metrics' && method === 'GET') {
      const text = meshPrometheusText(metrics.total);
      res.writeHead(200, {
        'content-type': PROMETHEUS_CONTENT_TYPE,
        'content-length': Buffer.byteLength(text),
      });
      res.end(text);
      return;
    }
    if (parts[0] !== 'api')
      throw new HttpError(404, 'HTTPMESH_CP_NOT_FOUND', `no route for ${method} ${url.pathname}`);

    // --- rules ---------------------------------------------------------------------------------
    if (parts[1] === 'rules') {
      const dryRun = url.searchParams.get('dryRun') === 'true';
      if (parts.length === 2 && method === 'GET') {
        const kind = url.searchParams.get('kind');
        return send(res, 200, { rules: await store.list(kind === null ? undefined : kindOf(kind)) });
      }
      const kind = kindOf(parts[2]);
      if (parts.length === 3 && method === 'GET') return send(res, 200, { rules: await store.list(kind) });
      if (parts.length === 3 && method === 'POST') {
        const body = asObject(await readJson(req, limit));
        const compiled = compileRule(kind, body['name'], body['spec']);
        if (dryRun) return send(res, 200, { valid: true, dryRun: true, rule: compiled.document });
        const rule = await store.put(kind, compiled.document.name, compiled.document.spec, {
          author: authorOf(req),
          expectedRevision: 0,
        });
        res.setHeader('location', `/api/rules/${kind}/${rule.name}`);
        return send(res, 201, { rule });
      }
      const name = decodeURIComponent(parts[3] ?? '');
      if (parts.length === 4) {
        if (method === 'GET') {
          const rule = await store.get(kind, name);
          if (rule === undefined)
            throw new HttpError(404, 'HTTPMESH_CP_RULE_NOT_FOUND', `${kind} "${name}" does not exist`);
          return send(res, 200, { rule });
        }
        if (method === 'PUT') {
          const body = asObject(await readJson(req, limit));
          const expectedRevision = revisionField(body['revision'], 'revision', true);
          const compiled = compileRule(kind, name, body['spec']);
          if (dryRun) return send(res, 200, { valid: true, dryRun: true, rule: compiled.document });
          const rule = await store.put(kind, name, compiled.document.spec as JsonObject, {
            author: authorOf(req),
            ...(expectedRevision === undefined ? {} : { expectedRevision }),
          });
          return send(res, 200, { rule });
        }
        if (method === 'DELETE') {
          const expectedRevision = revisionField(
            url.searchParams.get('revision') ?? undefined,
            'revision',
            false,
          );
          const revision = await store.delete(kind, name, {
            author: authorOf(req),
            ...(expectedRevision === undefined ? {} : { expectedRevision }),
          });
          return send(res, 200, { revision });
        }
      }
      if (parts.length === 5 && parts[4] === 'history' && method === 'GET') {
        const history = await store.history(kind, name);
        if (history.length === 0)
          throw new HttpError(404, 'HTTPMESH_CP_RULE_NOT_FOUND', `${kind} "${name}" has no history`);
        return send(res, 200, { history });
      }
      if (parts.length === 5 && parts[4] === 'rollback' && method === 'POST') {
        const body = asObject(await readJson(req, limit));
        const toRevision = revisionField(body['toRevision'], 'toRevision', true) ?? 0;
        const expectedRevision = revisionField(body['revision'], 'revision', false);
        const target = (await store.history(kind, name)).find((h) => h.revision === toRevision);
        // The target must still be valid under today's rules before it is distributed again.
        if (target?.spec != null) compileRule(kind, name, target.spec);
        const rule = await store.rollback(kind, name, toRevision, {
          author: authorOf(req),
          ...(expectedRevision === undefined ? {} : { expectedRevision }),
        });
        return send(res, 200, { rule: rule ?? null });
      }
    }
    if (parts[1] === 'validate' && parts.length === 2 && method === 'POST') {
      const body = asObject(await readJson(req, limit));
      const compiled = compileRule(String(body['kind'] ?? ''), body['name'], body['spec']);
      return send(res, 200, { valid: true, rule: compiled.document });
    }

    // --- sidecars ------------------------------------------------------------------------------
    if (parts[1] === 'sidecars' && method === 'GET') {
      const list = ruleSync.sidecars().map((s) => ({
        id: s.node.id,
        service: s.node.service,
        labels: s.node.labels,
        version: s.node.version,
        group: s.group,
        peer: s.peer,
        connectedAt: s.connectedAt.toISOString(),
        lastMessageAt: s.lastMessageAt.toISOString(),
        lastHeartbeatAt: s.lastHeartbeatAt?.toISOString() ?? null,
        types: s.types.map((t) => ({
          type: t.type,
          ackedVersion: t.ackedVersion,
          nackedVersion: t.nackedVersion ?? null,
          lastError: t.lastError ?? null,
          pending: t.pendingNonce !== undefined,
        })),
      }));
      if (parts.length === 2) return send(res, 200, { sidecars: list });
      const one = list.find((s) => s.id === decodeURIComponent(parts[2] ?? ''));
      if (one === undefined)
        throw new HttpError(404, 'HTTPMESH_CP_SIDECAR_NOT_FOUND', `sidecar "${parts[2]}" is not connected`);
      return send(res, 200, { sidecar: one });
    }
    if (parts[1] === 'sidecar-certificates' && parts.length === 2 && method === 'POST') {
      if (options.pki === undefined)
        throw new HttpError(
          409,
          'HTTPMESH_CP_NO_CA',
          'the control plane runs without --ca-dir; no certificates can be issued',
        );
      const body = asObject(await readJson(req, limit));
      const nodeId = body['nodeId'];
      if (typeof nodeId !== 'string')
        throw new HttpError(400, 'HTTPMESH_CP_BAD_REQUEST', 'nodeId is required', [
          { field: 'nodeId', reason: 'must be a string' },
        ]);
      const days = body['validityDays'] === undefined ? 30 : Number(body['validityDays']);
      if (!(Number.isInteger(days) && days >= 1 && days <= 365)) {
        throw new HttpError(400, 'HTTPMESH_CP_BAD_REQUEST', 'validityDays must be 1-365', [
          { field: 'validityDays', reason: 'must be an integer 1-365' },
        ]);
      }
      const bundle = await options.pki.issueSidecarBundle(nodeId, days);
      const permitted = body['interceptDomains'];
      if (permitted !== undefined) {
        if (!Array.isArray(permitted) || !permitted.every((d): d is string => typeof d === 'string')) {
          throw new HttpError(
            400,
            'HTTPMESH_CP_BAD_REQUEST',
            'interceptDomains must be an array of strings',
            [{ field: 'interceptDomains', reason: 'must be an array of strings' }],
          );
        }
        const intermediate = await options.pki.issueInterceptionIntermediate(nodeId, permitted, days);
        return send(res, 201, { ...bundle, interceptionCa: intermediate });
      }
      return send(res, 201, bundle);
    }
    if (parts[1] === 'ca' && parts.length === 2 && method === 'GET') {
      if (options.pki === undefined)
        throw new HttpError(404, 'HTTPMESH_CP_NO_CA', 'the control plane runs without --ca-dir');
      return send(res, 200, { certPem: options.pki.caPem });
    }

    // --- metrics & alerts ----------------------------------------------------------------------
    if (parts[1] === 'metrics' && parts.length === 3 && method === 'GET') {
      const windowMs = parseWindow(url.searchParams.get('window'), metrics.maxWindowMs);
      const filter = filterOf(url);
      if (parts[2] === 'timeseries')
        return send(res, 200, {
          windowMs,
          slotMs: metrics.slotMs,
          points: metrics.timeseries(windowMs, filter),
        });
      const dimensions = METRIC_VIEWS[parts[2] ?? ''];
      if (dimensions === undefined)
        throw new HttpError(
          404,
          'HTTPMESH_CP_NOT_FOUND',
          `unknown metric view "${parts[2]}" (services, hosts, patterns, timeseries)`,
        );
      return send(res, 200, { windowMs, rows: metrics.query(dimensions, windowMs, filter) });
    }
    if (parts[1] === 'alerts' && parts.length === 2 && method === 'GET')
      return send(res, 200, { alerts: alerts.list() });

    throw new HttpError(404, 'HTTPMESH_CP_NOT_FOUND', `no route for ${method} ${url.pathname}`);
  }

  return createServer((req, res) => {
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://control-plane');
    } catch {
      send(res, 400, { error: { code: 'HTTPMESH_CP_BAD_REQUEST', message: 'malformed request target' } });
      return;
    }
    route(req, res, url).catch((err: unknown) => {
      if (res.headersSent) {
        res.destroy();
        return;
      }
      if (!req.complete) {
        // The body was not read (rejected before parsing): do not leave it in a kept-alive connection.
        res.setHeader('connection', 'close');
        req.resume();
      }
      if (err instanceof HttpError) {
        send(res, err.status, {
          error: { code: err.code, message: err.message, ...(err.issues ? { issues: err.issues } : {}) },
        });
      } else if (err instanceof RuleValidationError) {
        send(res, 400, { error: { code: err.code, message: err.message, issues: err.issues } });
      } else if (err instanceof RevisionConflictError) {
        send(res, 409, {
          error: { code: err.code, message: err.message, currentRevision: err.currentRevision },
        });
      } else if (err instanceof ControlPlaneError) {
        const status =
          err.code === 'HTTPMESH_CP_RULE_NOT_FOUND' || err.code === 'HTTPMESH_CP_REVISION_NOT_FOUND'
            ? 404
            : err.code === 'HTTPMESH_CP_CERT_REQUEST_INVALID'
              ? 400
              : err.code === 'HTTPMESH_CP_STORE_UNAVAILABLE'
                ? 503
                : 500;
        send(res, status, { error: { code: err.code, message: err.message } });
      } else {
        send(res, 500, { error: { code: 'HTTPMESH_CP_INTERNAL', message: (err as Error).message } });
      }
    });
  });
}
