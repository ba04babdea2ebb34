import { createRuleSyncClient } from '@httpmesh/rule-sync';
import type { RuleSyncClient } from '@httpmesh/rule-sync';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { ControlPlanePki } from '../src/index.js';
import type { SidecarBundle } from '../src/index.js';
import { tempDir, waitFor } from './helpers.js';
import { ALL_TYPES, ROUTE_SET, silent, startControlPlane } from './harness.js';
import type { Running } from './harness.js';
import { X509Certificate } from 'node:crypto';

describe('mTLS between sidecars and the control plane', () => {
  let run: Running;
  let caDir: { dir: string; cleanup: () => void };
  const clients: RuleSyncClient[] = [];

  beforeAll(async () => {
    caDir = tempDir('ca');
    run = await startControlPlane({ pki: await ControlPlanePki.open(caDir.dir) });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await run.close();
    caDir.cleanup();
  });

  const client = (nodeId: string, bundle: SidecarBundle | undefined): RuleSyncClient => {
    const c = createRuleSyncClient({
      addresses: [`127.0.0.1:${run.addresses.grpcPort}`],
      node: { id: nodeId, service: 'payments' },
      subscriptions: ALL_TYPES,
      ...(bundle === undefined
        ? { insecure: true }
        : { tls: { ca: bundle.caPem, cert: bundle.certPem, key: bundle.keyPem } }),
      logger: silent,
      backoff: { initialMs: 20, maxMs: 100 },
    });
    clients.push(c);
    return c;
  };

  test('a sidecar with a bundle issued through the API connects and receives rules', async () => {
    const issued = await run.api('POST', '/api/sidecar-certificates', {
      nodeId: 'payments-7f9c',
      interceptDomains: ['payments.example.com'],
    });
    expect(issued.status).toBe(201);
    const bundle = issued.json as unknown as SidecarBundle & { interceptionCa: { certPem: string } };
    const cert = new X509Certificate(bundle.certPem);
    expect(cert.subjectAltName).toBe('URI:spiffe://httpmesh/node/payments-7f9c');
    expect(cert.verify(new X509Certificate(bundle.caPem).publicKey)).toBe(true);
    expect(new X509Certificate(bundle.interceptionCa.certPem).ca).toBe(true);
    await run.api('POST', '/api/rules/RouteSet', {
      name: 'payments',
      spec: { routes: [{ pattern: '/orders/:id' }] },
    });
    const sidecar = client('payments-7f9c', bundle);
    await sidecar.start();
    await waitFor(
      () => sidecar.resources(ROUTE_SET).some((r) => r.name === 'payments'),
      10_000,
      'rules over mTLS',
    );
    const { json } = await run.api('GET', '/api/sidecars');
    expect((json['sidecars'] as { id: string }[]).map((s) => s.id)).toEqual(['payments-7f9c']);
  });

  test('a certificate for another node id, and a plaintext client, are refused', async () => {
    const other = (await run.api('POST', '/api/sidecar-certificates', { nodeId: 'orders-1' }))
      .json as unknown as SidecarBundle;
    const impostor = client('payments-victim', other);
    const disconnected = new Promise<Error | undefined>((resolve) =>
      impostor.once('disconnected', (_address, err) => resolve(err)),
    );
    await impostor.start();
    expect(String(await disconnected)).toMatch(
      /HTTPMESH_RULESYNC_IDENTITY_MISMATCH|PERMISSION_DENIED|identif/i,
    );
    const plain = client('plain-1', undefined);
    const plainFailed = new Promise<Error | undefined>((resolve) =>
      plain.once('disconnected', (_address, err) => resolve(err)),
    );
    await plain.start();
    expect(await plainFailed).toBeDefined();
    expect((await run.api('GET', '/api/sidecars')).json['sidecars']).toHaveLength(1);
  });

  test('certificate requests are validated and need the admin token', async () => {
    expect(
      (await run.api('POST', '/api/sidecar-certificates', { nodeId: 'x' }, { token: null })).status,
    ).toBe(401);
    const bad = await run.api('POST', '/api/sidecar-certificates', { nodeId: '../etc/passwd' });
    expect(bad.status).toBe(400);
    expect(bad.json['error']).toMatchObject({ code: 'HTTPMESH_CP_CERT_REQUEST_INVALID' });
    expect(
      (await run.api('POST', '/api/sidecar-certificates', { nodeId: 'ok', validityDays: 0 })).json['error'],
    ).toMatchObject({ issues: [{ field: 'validityDays' }] });
    const ca = await run.api('GET', '/api/ca');
    expect(ca.json['certPem']).toContain('BEGIN CERTIFICATE');
  });

  test('the CA persists in --ca-dir: reopening loads the same CA', async () => {
    const again = await ControlPlanePki.open(caDir.dir);
    expect(again.caPem).toBe(run.cp.pki?.caPem);
  });
});
