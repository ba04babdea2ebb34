// Run with `npx tsx examples/quickstart.ts` after `npx nx run @httpmesh/control-plane:build`.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ControlPlane, SqliteStore } from '@httpmesh/control-plane';
import { createRuleSyncClient, ResourceType } from '@httpmesh/rule-sync';

const dir = mkdtempSync(join(tmpdir(), 'cp-example-'));
const cp = await ControlPlane.create({
  store: SqliteStore.open(join(dir, 'rules.db')),
  grpc: '127.0.0.1:0', // plaintext dev mode (loopback only); pass `pki` for mTLS
  http: '127.0.0.1:0',
  adminToken: 'example-token',
});
const { httpUrl, grpcAddress } = await cp.start();

// A sidecar, exactly as @httpmesh/sidecar connects.
const sidecar = createRuleSyncClient({
  addresses: [grpcAddress],
  node: { id: 'payments-1', service: 'payments' },
  subscriptions: [ResourceType.RESOURCE_TYPE_ROUTE_SET],
  insecure: true,
});
await sidecar.start();
const applied = new Promise((resolve) => sidecar.once('applied', resolve));

// Create a rule through the API (what the dashboard or curl does).
const res = await fetch(`${httpUrl}/api/rules/RouteSet`, {
  method: 'POST',
  headers: { authorization: 'Bearer example-token', 'content-type': 'application/json' },
  body: JSON.stringify({
    name: 'payments',
    spec: { host: 'payments.example.com', routes: [{ pattern: '/orders/:id', methods: ['GET'] }] },
  }),
});
console.log(res.status, await res.json()); // 201 { rule: { kind: 'RouteSet', name: 'payments', revision: 1, ... } }
await applied;
console.log(
  'sidecar holds',
  sidecar.resources(ResourceType.RESOURCE_TYPE_ROUTE_SET).map((r) => r.name),
);

// An invalid rule: 400 with the exact field and reason.
const bad = await fetch(`${httpUrl}/api/rules/RouteSet`, {
  method: 'POST',
  headers: { authorization: 'Bearer example-token' },
  body: JSON.stringify({ name: 'broken', spec: { routes: [{ pattern: 'orders' }] } }),
});
console.log(bad.status, JSON.stringify(await bad.json()));

await sidecar.close();
await cp.close();
rmSync(dir, { recursive: true, force: true });
