import type { RuleSyncClient } from '@httpmesh/rule-sync';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { EtcdStore } from '../src/index.js';
import { skipEtcd, startEtcd, waitFor } from './helpers.js';
import type { EtcdInstance } from './helpers.js';
import { connectSidecar, ROUTE_SET, startControlPlane } from './harness.js';
import type { Running } from './harness.js';

const ROUTES = { host: 'payments.example.com', routes: [{ pattern: '/orders/:id' }] };

describe.skipIf(skipEtcd)('two control-plane replicas on one etcd', () => {
  let etcd: EtcdInstance;
  let a: Running;
  let b: Running;
  let sidecarOnB: RuleSyncClient;

  beforeAll(async () => {
    etcd = await startEtcd();
    a = await startControlPlane({ store: await EtcdStore.open({ endpoints: [etcd.endpoint] }) });
    b = await startControlPlane({ store: await EtcdStore.open({ endpoints: [etcd.endpoint] }) });
    sidecarOnB = await connectSidecar(b.addresses.grpcAddress, 'payments-b', 'payments');
  }, 30_000);
  afterAll(async () => {
    await sidecarOnB?.close();
    await a?.close();
    await b?.close();
    await etcd?.stop();
  });

  test('a change made through replica A reaches a sidecar connected to replica B (ACKed)', async () => {
    const created = await a.api('POST', '/api/rules/RouteSet', { name: 'payments', spec: ROUTES });
    expect(created.status).toBe(201);
    await waitFor(
      () => sidecarOnB.resources(ROUTE_SET).some((r) => r.name === 'payments'),
      10_000,
      'the rule at the sidecar on B',
    );
    const version = sidecarOnB.version(ROUTE_SET);
    await waitFor(
      async () => {
        const { json } = await b.api('GET', '/api/sidecars/payments-b');
        return (json['sidecar'] as { types: { type: string; ackedVersion: string }[] }).types.some(
          (t) => t.type === 'RouteSet' && t.ackedVersion === version,
        );
      },
      10_000,
      'the ACK on B',
    );
    // B's API sees A's write and its history.
    expect((await b.api('GET', '/api/rules/RouteSet/payments')).json['rule']).toMatchObject({ revision: 1 });
  });

  test('edits through different replicas are resolved by revision', async () => {
    const edits = await Promise.all(
      [a, b].map((replica, i) =>
        replica.api('PUT', '/api/rules/RouteSet/payments', {
          revision: 1,
          spec: { ...ROUTES, routes: [{ pattern: `/r${i}` }] },
        }),
      ),
    );
    expect(edits.map((e) => e.status).sort()).toEqual([200, 409]);
    const winner = edits.findIndex((e) => e.status === 200);
    await waitFor(
      () => {
        const body = sidecarOnB.resources(ROUTE_SET).find((r) => r.name === 'payments')?.body;
        return body?.$case === 'routeSet' && body.value.routes[0]?.pattern === `/r${winner}`;
      },
      10_000,
      'the winning edit at the sidecar',
    );
    const deleted = await b.api('DELETE', '/api/rules/RouteSet/payments?revision=2');
    expect(deleted.status).toBe(200);
    expect((await a.api('GET', '/api/rules/RouteSet/payments')).status).toBe(404);
    await waitFor(() => sidecarOnB.resources(ROUTE_SET).length === 0, 10_000, 'the delete at the sidecar');
  });
});
