import { join } from 'node:path';
import { expect, test } from 'vitest';
import { SqliteStore } from '../src/index.js';
import { tempDir, waitFor } from './helpers.js';
import { connectSidecar, ordersSnapshot, ROUTE_SET, startControlPlane } from './harness.js';

test('control plane restarted under traffic: the sidecar keeps its last-good rules and resyncs', async () => {
  const data = tempDir('restart');
  const path = join(data.dir, 'rules.db');
  let first = await startControlPlane({ store: SqliteStore.open(path) });
  const grpcPort = first.addresses.grpcPort;
  const sidecar = await connectSidecar(`127.0.0.1:${grpcPort}`, 'payments-1', 'payments');
  try {
    await first.api('POST', '/api/rules/RouteSet', {
      name: 'payments',
      spec: { routes: [{ pattern: '/orders/:id' }] },
    });
    await waitFor(() => sidecar.resources(ROUTE_SET).length === 1, 10_000, 'initial rule');
    const version = sidecar.version(ROUTE_SET);
    // Traffic keeps flowing (metric snapshots) while the control plane goes away.
    const traffic = setInterval(() => sidecar.sendMetricSnapshot(ordersSnapshot('payments', 5, 0)), 20);
    try {
      await first.close();
      await waitFor(() => !sidecar.connected, 10_000, 'the sidecar to notice');
      expect(sidecar.version(ROUTE_SET)).toBe(version);
      expect(sidecar.resources(ROUTE_SET).map((r) => r.name)).toEqual(['payments']);
      // Same store file, same port: what a restarted process looks like to the sidecar.
      first = await startControlPlane({ store: SqliteStore.open(path), grpc: `127.0.0.1:${grpcPort}` });
      await waitFor(() => sidecar.connected, 15_000, 'reconnection');
      await waitFor(() => first.cp.ruleSync.sidecars().length === 1, 10_000, 'registry entry');
      // Nothing changed in the store, so the resynced version equals the one held.
      expect(sidecar.version(ROUTE_SET)).toBe(version);
      await waitFor(() => first.cp.metrics.total.snapshotCount > 0, 10_000, 'metrics after restart');
      await first.api('PUT', '/api/rules/RouteSet/payments', {
        revision: 1,
        spec: { routes: [{ pattern: '/orders' }] },
      });
      await waitFor(() => sidecar.version(ROUTE_SET) !== version, 10_000, 'a change after restart');
    } finally {
      clearInterval(traffic);
    }
  } finally {
    await sidecar.close();
    await first.close();
    data.cleanup();
  }
});
