import { expect, test } from 'vitest';
import { EtcdStore } from '../src/index.js';
import { skipEtcd, startEtcd } from './helpers.js';
import { startControlPlane } from './harness.js';

test.skipIf(skipEtcd)(
  'etcd going away: writes answer 503 STORE_UNAVAILABLE, the control plane still stops cleanly',
  async () => {
    const etcd = await startEtcd();
    const run = await startControlPlane({
      store: await EtcdStore.open({ endpoints: [etcd.endpoint], timeoutMs: 1_000 }),
    });
    try {
      expect(
        (await run.api('POST', '/api/rules/RouteSet', { name: 'a', spec: { routes: [{ pattern: '/a' }] } }))
          .status,
      ).toBe(201);
      await etcd.stop();
      const failed = await run.api('POST', '/api/rules/RouteSet', {
        name: 'b',
        spec: { routes: [{ pattern: '/b' }] },
      });
      expect(failed.status).toBe(503);
      expect(failed.json['error']).toMatchObject({ code: 'HTTPMESH_CP_STORE_UNAVAILABLE' });
    } finally {
      await run.close();
    }
  },
);
