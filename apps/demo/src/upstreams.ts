import {
  createServer as createHttpServer,
  type IncomingMessage,
  type Server,
  type ServerResponse,
} from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { CertificateAuthority } from '@httpmesh/mitm-core';

/** A running demo upstream. */
export interface DemoUpstream {
  /** Host name clients use and the RouteSet host (`shop.demo.test`, `payments.demo.test`); served on 127.0.0.1. */
  readonly host: string;
  readonly port: number;
  /** `http://shop.demo.test:PORT` or `https://payments.demo.test:PORT`. */
  readonly origin: string;
  /** The patterns this service answers, for RouteSets: `{ pattern, methods }`. */
  readonly routes: readonly DemoRoute[];
  /** Requests answered so far. */
  readonly served: number;
  close(): Promise<void>;
}

export interface DemoRoute {
  pattern: string;
  methods: string[];
}

export interface HttpsDemoUpstream extends DemoUpstream {
  /** PEM of the service's own CA (what the sidecar's `--upstream-ca` trusts). */
  readonly caPem: string;
}

export interface UpstreamOptions {
  /** Host name of the service (it listens on 127.0.0.1 whatever the name; the demo resolves the name). */
  host?: string;
  /** Listen port; 0 (default) picks a free one. */
  port?: number;
  /** Fraction of `/orders/:id` (shop) or `/payments/:id` (payments) requests answered 500. Default 0.04. */
  errorRatio?: number;
  /** Random extra latency per request, in ms. Default 25. */
  maxDelayMs?: number;
}

type Handler = (params: string[], req: IncomingMessage) => { status: number; body: unknown };

interface Endpoint {
  method: string;
  /** Path segments; `:x` is a parameter. */
  segments: string[];
  pattern: string;
  handler: Handler;
  /** Base latency of this endpoint in ms, so patterns differ visibly on the dashboard. */
  baseDelayMs: number;
}

function endpoint(method: string, pattern: string, baseDelayMs: number, handler: Handler): Endpoint {
  return { method, segments: pattern.split('/').slice(1), pattern, handler, baseDelayMs };
}

/** A malformed escape (`%E0%A4%A`) is a non-match (404), never an exception in the request handler. */
function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

function matchEndpoint(endpoints: readonly Endpoint[], method: string, path: string) {
  const segments = path.split('/').slice(1);
  for (const e of endpoints) {
    if (e.method !== method || e.segments.length !== segments.length) continue;
    const params: string[] = [];
    let ok = true;
    for (let i = 0; i < segments.length; i++) {
      const want = e.segments[i] ?? '';
      const got = segments[i] ?? '';
      if (want.startsWith(':')) {
        const value = safeDecode(got);
        if (value === undefined || value === '') ok = false;
        else params.push(value);
      } else if (want !== got) ok = false;
      if (!ok) break;
    }
    if (ok) return { endpoint: e, params };
  }
  return undefined;
}

function routesOf(endpoints: readonly Endpoint[]): DemoRoute[] {
  const byPattern = new Map<string, string[]>();
  for (const e of endpoints) byPattern.set(e.pattern, [...(byPattern.get(e.pattern) ?? []), e.method]);
  return [...byPattern].map(([pattern, methods]) => ({ pattern, methods }));
}

/** Builds the request listener; counts answered requests into `counter`. */
function listener(endpoints: readonly Endpoint[], options: UpstreamOptions, counter: { served: number }) {
  const errorRatio = options.errorRatio ?? 0.04;
  const maxDelayMs = options.maxDelayMs ?? 25;
  return (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0] ?? '/';
    const found = matchEndpoint(endpoints, req.method ?? 'GET', path);
    // Request bodies are drained, not parsed: the demo only needs realistic exchanges.
    req.resume();
    req.once('end', () => {
      const answer = (status: number, body: unknown) => {
        counter.served++;
        const text = JSON.stringify(body);
        res.writeHead(status, {
          'content-type': 'application/json',
          'content-length': Buffer.byteLength(text),
        });
        res.end(text);
      };
      if (found === undefined) {
        answer(404, { error: 'not found', path });
        return;
      }
      const { endpoint: e, params } = found;
      const delay = e.baseDelayMs + Math.random() * maxDelayMs;
      setTimeout(() => {
        const failing =
          e.segments.length === 2 && e.segments[1]?.startsWith(':') && Math.random() < errorRatio;
        if (failing) answer(500, { error: 'simulated failure' });
        else {
          const { status, body } = e.handler(params, req);
          answer(status, body);
        }
      }, delay);
    });
  };
}

async function listen(server: Server, port: number): Promise<number> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return (server.address() as AddressInfo).port;
}

function closer(servers: Server[]): () => Promise<void> {
  return async () => {
    await Promise.all(
      servers.map(
        (server) =>
          new Promise<void>((resolve) => {
            server.close(() => resolve());
            server.closeAllConnections();
          }),
      ),
    );
  };
}

const SHOP_ENDPOINTS: readonly Endpoint[] = [
  endpoint('GET', '/orders/:id', 4, ([id]) => ({ status: 200, body: { id, status: 'shipped', items: 3 } })),
  endpoint('POST', '/orders', 12, () => ({ status: 201, body: { id: String(Date.now() % 100_000) } })),
  endpoint('GET', '/users/:id/cart', 8, ([id]) => ({ status: 200, body: { user: id, items: [] } })),
  endpoint('GET', '/products/:sku', 1, ([sku]) => ({ status: 200, body: { sku, price: 12.5 } })),
];

const PAYMENTS_ENDPOINTS: readonly Endpoint[] = [
  endpoint('GET', '/payments/:id', 10, ([id]) => ({ status: 200, body: { id, state: 'captured' } })),
  endpoint('POST', '/payments', 30, () => ({ status: 201, body: { state: 'authorized' } })),
  endpoint('GET', '/accounts/:id/balance', 6, ([id]) => ({
    status: 200,
    body: { account: id, balance: 100 },
  })),
];

/** The plain-HTTP "shop" service (on 127.0.0.1): orders, carts, products. */
export async function startShopService(options: UpstreamOptions = {}): Promise<DemoUpstream> {
  const counter = { served: 0 };
  const server = createHttpServer(listener(SHOP_ENDPOINTS, options, counter));
  const port = await listen(server, options.port ?? 0);
  const host = options.host ?? 'shop.demo.test';
  return {
    host,
    port,
    origin: `http://${host}:${port}`,
    routes: routesOf(SHOP_ENDPOINTS),
    get served() {
      return counter.served;
    },
    close: closer([server]),
  };
}

/**
 * The HTTPS "payments" service, with a certificate for its host name from its own CA (created here, in
 * memory), so clients must be told to trust it, like a partner API with a private CA.
 */
export async function startPaymentsService(options: UpstreamOptions = {}): Promise<HttpsDemoUpstream> {
  const ca = await CertificateAuthority.create({ commonName: 'httpmesh demo payments CA', validityDays: 30 });
  const host = options.host ?? 'payments.demo.test';
  const leaf = await ca.issueLeaf([host]);
  const counter = { served: 0 };
  const server = createHttpsServer(
    { cert: leaf.chainPem, key: leaf.keyPem },
    listener(PAYMENTS_ENDPOINTS, options, counter),
  );
  const port = await listen(server, options.port ?? 0);
  return {
    host,
    port,
    origin: `https://${host}:${port}`,
    routes: routesOf(PAYMENTS_ENDPOINTS),
    caPem: ca.certPem,
    get served() {
      return counter.served;
    },
    close: closer([server]),
  };
}
