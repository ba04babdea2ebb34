import { join } from 'node:path';
import { MeshMetrics } from '@httpmesh/metrics';
import { createRuleSyncClient, ResourceType } from '@httpmesh/rule-sync';
import type { RuleSyncClient, RuleSyncClientOptions, RuleSyncLogger } from '@httpmesh/rule-sync';
import { ControlPlane, SqliteStore } from '../src/index.js';
import type { ControlPlaneAddresses, ControlPlaneOptions, Store } from '../src/index.js';
import { tempDir } from './helpers.js';

export const ALL_TYPES = [
  ResourceType.RESOURCE_TYPE_INTERCEPT_RULE,
  ResourceType.RESOURCE_TYPE_ROUTE_SET,
  ResourceType.RESOURCE_TYPE_POLICY,
  ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG,
];
export const ROUTE_SET = ResourceType.RESOURCE_TYPE_ROUTE_SET;

export const silent: RuleSyncLogger = {
  info: () => undefined,
  warn: () => undefined,
  error: () => undefined,
};

export interface Running {
  cp: ControlPlane;
  addresses: ControlPlaneAddresses;
  api(
    method: string,
    path: string,
    body?: unknown,
    options?: { token?: string | null; raw?: string },
  ): Promise<{ status: number; json: Record<string, unknown>; text: string }>;
  close(): Promise<void>;
}

export const ADMIN_TOKEN = 'test-admin-token-0123456789';

export async function startControlPlane(
  overrides: Partial<ControlPlaneOptions> & { store?: Store } = {},
): Promise<Running> {
  const dir = tempDir('cp');
  const store = overrides.store ?? SqliteStore.open(join(dir.dir, 'rules.db'));
  const cp = await ControlPlane.create({
    grpc: '127.0.0.1:0',
    http: '127.0.0.1:0',
    adminToken: ADMIN_TOKEN,
    ruleSyncDebounce: { quietMs: 5, maxDelayMs: 20 },
    logger: silent,
    ...overrides,
    store,
  });
  const addresses = await cp.start();
  return {
    cp,
    addresses,
    async api(method, path, body, options = {}) {
      const token = options.token === undefined ? ADMIN_TOKEN : options.token;
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (token !== null) headers['authorization'] = `Bearer ${token}`;
      const init: RequestInit = { method, headers };
      if (options.raw !== undefined) init.body = options.raw;
      else if (body !== undefined) init.body = JSON.stringify(body);
      const response = await fetch(`${addresses.httpUrl}${path}`, init);
      const text = await response.text();
      let json: Record<string, unknown> = {};
      try {
        json = JSON.parse(text) as Record<string, unknown>;
      } catch {
        // Non-JSON bodies (Prometheus text) are read through `text`.
      }
      return { status: response.status, json, text };
    },
    async close() {
      await cp.close();
      dir.cleanup();
    },
  };
}

export async function connectSidecar(
  address: string,
  id: string,
  service: string,
  extra: Partial<RuleSyncClientOptions> = {},
): Promise<RuleSyncClient> {
  const client = createRuleSyncClient({
    addresses: [address],
    node: { id, service, labels: { zone: 'a' }, version: 'test' },
    subscriptions: ALL_TYPES,
    insecure: true,
    logger: silent,
    backoff: { initialMs: 20, maxMs: 200 },
    ...extra,
  });
  await client.start();
  return client;
}

/** A real @httpmesh/metrics snapshot of `ok` fast and `failed` slow requests to GET /orders/:id. */
export function ordersSnapshot(service: string, ok: number, failed: number): object {
  const metrics = new MeshMetrics({
    service,
    producer: `${service}-1`,
    routeSets: [{ host: 'payments.example.com', routes: [{ pattern: '/orders/:id', methods: ['GET'] }] }],
  });
  for (let i = 0; i < ok; i++) {
    metrics.record({
      direction: 'inbound',
      method: 'GET',
      host: 'payments.example.com',
      path: `/orders/${i}`,
      statusCode: 200,
      durationMs: 20,
    });
  }
  for (let i = 0; i < failed; i++) {
    metrics.record({
      direction: 'inbound',
      method: 'GET',
      host: 'payments.example.com',
      path: `/orders/${i}`,
      statusCode: 503,
      durationMs: 900,
    });
  }
  return metrics.snapshot();
}
