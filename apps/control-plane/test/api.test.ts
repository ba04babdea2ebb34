import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { RuleSyncClient } from '@httpmesh/rule-sync';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { waitFor } from './helpers.js';
import { ADMIN_TOKEN, connectSidecar, ordersSnapshot, ROUTE_SET, startControlPlane } from './harness.js';
import type { Running } from './harness.js';

const ROUTES = { host: 'payments.example.com', routes: [{ pattern: '/orders/:id', methods: ['GET'] }] };

describe('HTTP API with a real rule-sync sidecar client', () => {
  let run: Running;
  let sidecar: RuleSyncClient;
  let picky: RuleSyncClient;
  const clients: RuleSyncClient[] = [];

  beforeAll(async () => {
    run = await startControlPlane({ metricsSlotMs: 1_000 });
    sidecar = await connectSidecar(run.addresses.grpcAddress, 'payments-1', 'payments');
    // A sidecar that refuses any RouteSet named "refused-by-sidecar": shows NACK handling end to end.
    picky = await connectSidecar(run.addresses.grpcAddress, 'picky-1', 'picky', {
      validate: (update) => {
        if (update.resources.some((r) => r.name === 'refused-by-sidecar'))
          throw new Error('this sidecar refuses it');
      },
    });
    clients.push(sidecar, picky);
    await waitFor(
      async () => ((await run.api('GET', '/api/sidecars')).json['sidecars'] as unknown[]).length === 2,
      10_000,
      'two sidecars',
    );
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await run.close();
  });

  test('mutating calls need the admin bearer token; reads are open by default', async () => {
    expect(
      (await run.api('POST', '/api/rules/RouteSet', { name: 'x', spec: ROUTES }, { token: null })).status,
    ).toBe(401);
    const wrong = await run.api(
      'POST',
      '/api/rules/RouteSet',
      { name: 'x', spec: ROUTES },
      { token: 'nope' },
    );
    expect(wrong.status).toBe(401);
    expect(wrong.json['error']).toMatchObject({ code: 'HTTPMESH_CP_UNAUTHORIZED' });
    expect((await run.api('GET', '/api/rules', undefined, { token: null })).status).toBe(200);
    expect((await run.api('GET', '/api/rules/RouteSet/x')).status).toBe(404);
  });

  test('a rule created through the API reaches the sidecar and is ACKed', async () => {
    const created = await run.api('POST', '/api/rules/RouteSet', { name: 'payments', spec: ROUTES });
    expect(created.status).toBe(201);
    expect(created.json['rule']).toMatchObject({
      kind: 'RouteSet',
      name: 'payments',
      revision: 1,
      updatedBy: 'admin',
    });
    await waitFor(
      () => sidecar.resources(ROUTE_SET).some((r) => r.name === 'payments'),
      10_000,
      'rule at the sidecar',
    );
    const version = sidecar.version(ROUTE_SET);
    await waitFor(
      async () => {
        const { json } = await run.api('GET', '/api/sidecars/payments-1');
        const types = (json['sidecar'] as { types: { type: string; ackedVersion: string }[] }).types;
        return types.some((t) => t.type === 'RouteSet' && t.ackedVersion === version);
      },
      10_000,
      'the ACK in the registry',
    );
    const { json } = await run.api('GET', '/api/sidecars');
    expect(
      (json['sidecars'] as { id: string; labels: object }[]).find((s) => s.id === 'payments-1')?.labels,
    ).toEqual({ zone: 'a' });
  });

  test('an invalid rule is rejected with field and reason, and the running version is untouched', async () => {
    const before = sidecar.version(ROUTE_SET);
    const bad = await run.api('PUT', '/api/rules/RouteSet/payments', {
      revision: 1,
      spec: { host: 'payments.example.com', routes: [{ pattern: '/orders/:' }] },
    });
    expect(bad.status).toBe(400);
    expect(bad.json['error']).toMatchObject({
      code: 'HTTPMESH_CP_RULE_INVALID',
      issues: [{ field: 'spec.routes[0].pattern', reason: expect.stringMatching(/^HTTPMESH_PATTERN_/) }],
    });
    const created = await run.api('POST', '/api/rules/InterceptRule', {
      name: 'bad',
      spec: { domain: 'not a host', action: 'INTERCEPT' },
    });
    expect(created.json['error']).toMatchObject({ issues: [{ field: 'spec.domain' }] });
    expect((await run.api('GET', '/api/rules/RouteSet/payments')).json['rule']).toMatchObject({
      revision: 1,
      spec: ROUTES,
    });
    expect((await run.api('GET', '/api/rules/InterceptRule/bad')).status).toBe(404);
    // A valid change afterwards is the first thing the sidecar sees since `before`.
    const updated = await run.api('PUT', '/api/rules/RouteSet/payments', {
      revision: 1,
      spec: { ...ROUTES, routes: [...ROUTES.routes, { pattern: '/orders' }] },
    });
    expect(updated.status).toBe(200);
    await waitFor(() => sidecar.version(ROUTE_SET) !== before, 10_000, 'the valid update');
    expect(sidecar.resources(ROUTE_SET).find((r) => r.name === 'payments')?.body).toMatchObject({
      value: { routes: [{}, { pattern: '/orders' }] },
    });
  });

  test('a rule the sidecar NACKs leaves it on its last good version and shows in the registry', async () => {
    await run.api('POST', '/api/rules/RouteSet', {
      name: 'picky-ok',
      spec: { ...ROUTES, services: ['picky'] },
    });
    await waitFor(
      () => picky.resources(ROUTE_SET).some((r) => r.name === 'picky-ok'),
      10_000,
      'first picky rule',
    );
    const good = picky.version(ROUTE_SET);
    const refused = await run.api('POST', '/api/rules/RouteSet', {
      name: 'refused-by-sidecar',
      spec: { ...ROUTES, services: ['picky'] },
    });
    expect(refused.status).toBe(201);
    await waitFor(
      async () => {
        const { json } = await run.api('GET', '/api/sidecars/picky-1');
        const types = (
          json['sidecar'] as {
            types: { type: string; nackedVersion: string | null; lastError: { message: string } | null }[];
          }
        ).types;
        const routeSets = types.find((t) => t.type === 'RouteSet');
        return routeSets?.nackedVersion != null && (routeSets.lastError?.message ?? '').includes('refuses');
      },
      10_000,
      'the NACK in the registry',
    );
    expect(picky.version(ROUTE_SET)).toBe(good);
    // Rules scoped to another service never reach the payments sidecar.
    expect(sidecar.resources(ROUTE_SET).map((r) => r.name)).not.toContain('picky-ok');
  });

  test('concurrent edits: one wins by revision, the other gets 409, the sidecar converges on the winner', async () => {
    const current = (await run.api('GET', '/api/rules/RouteSet/payments')).json['rule'] as {
      revision: number;
    };
    const edits = await Promise.all(
      ['/a', '/b'].map((pattern) =>
        run.api('PUT', '/api/rules/RouteSet/payments', {
          revision: current.revision,
          spec: { ...ROUTES, routes: [{ pattern }] },
        }),
      ),
    );
    expect(edits.map((e) => e.status).sort()).toEqual([200, 409]);
    const loser = edits.find((e) => e.status === 409);
    expect(loser?.json['error']).toMatchObject({
      code: 'HTTPMESH_CP_REVISION_CONFLICT',
      currentRevision: current.revision + 1,
    });
    const winner = (
      edits.find((e) => e.status === 200)!.json['rule'] as { spec: { routes: { pattern: string }[] } }
    ).spec.routes[0]?.pattern;
    await waitFor(
      () => {
        const body = sidecar.resources(ROUTE_SET).find((r) => r.name === 'payments')?.body;
        return body?.$case === 'routeSet' && body.value.routes[0]?.pattern === winner;
      },
      10_000,
      'the winner at the sidecar',
    );
  });

  test('history, rollback, delete', async () => {
    const history = await run.api('GET', '/api/rules/RouteSet/payments/history');
    const entries = history.json['history'] as { revision: number; action: string; author: string }[];
    expect(entries[0]).toMatchObject({ revision: 1, action: 'create', author: 'admin' });
    const latest = entries[entries.length - 1]!.revision;
    const stale = await run.api('POST', '/api/rules/RouteSet/payments/rollback', {
      toRevision: 1,
      revision: latest - 1,
    });
    expect(stale.status).toBe(409);
    const rolled = await fetch(`${run.addresses.httpUrl}/api/rules/RouteSet/payments/rollback`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_TOKEN}`, 'x-httpmesh-author': 'carol' },
      body: JSON.stringify({ toRevision: 1, revision: latest }),
    });
    expect(rolled.status).toBe(200);
    expect(((await rolled.json()) as { rule: object }).rule).toMatchObject({
      revision: latest + 1,
      spec: ROUTES,
      updatedBy: 'carol',
    });
    await waitFor(
      () => {
        const body = sidecar.resources(ROUTE_SET).find((r) => r.name === 'payments')?.body;
        return (
          body?.$case === 'routeSet' &&
          body.value.routes.length === 1 &&
          body.value.routes[0]?.pattern === '/orders/:id'
        );
      },
      10_000,
      'the rollback at the sidecar',
    );
    expect((await run.api('POST', '/api/rules/RouteSet/payments/rollback', { toRevision: 99 })).status).toBe(
      404,
    );
    expect((await run.api('DELETE', `/api/rules/RouteSet/payments?revision=${latest}`)).status).toBe(409);
    const deleted = await run.api('DELETE', `/api/rules/RouteSet/payments?revision=${latest + 1}`);
    expect(deleted.json['revision']).toMatchObject({ action: 'delete' });
    await waitFor(
      () => !sidecar.resources(ROUTE_SET).some((r) => r.name === 'payments'),
      10_000,
      'removal at the sidecar',
    );
  });

  test('malformed requests: bad JSON, non-object, empty, oversized, unknown kind, missing revision, dry-run', async () => {
    const malformed = await run.api('POST', '/api/rules/RouteSet', undefined, {
      raw: '{"name": "x", "spec": ',
    });
    expect(malformed.status).toBe(400);
    expect(malformed.json['error']).toMatchObject({
      code: 'HTTPMESH_CP_MALFORMED_JSON',
      issues: [{ field: 'body' }],
    });
    expect(
      (await run.api('POST', '/api/rules/RouteSet', undefined, { raw: '[1,2]' })).json['error'],
    ).toMatchObject({ code: 'HTTPMESH_CP_BAD_REQUEST' });
    expect((await run.api('POST', '/api/rules/RouteSet', undefined, { raw: '' })).status).toBe(400);
    expect(
      (
        await run.api('POST', '/api/rules/RouteSet', undefined, {
          raw: `{"name":"${'a'.repeat(2_000_000)}"}`,
        })
      ).status,
    ).toBe(413);
    expect((await run.api('POST', '/api/rules/Gateway', { name: 'x', spec: {} })).status).toBe(404);
    const noRevision = await run.api('PUT', '/api/rules/RouteSet/x', { spec: ROUTES });
    expect(noRevision.json['error']).toMatchObject({
      issues: [{ field: 'revision', reason: 'is required' }],
    });
    expect((await run.api('PUT', '/api/rules/RouteSet/x', { spec: ROUTES, revision: -1 })).status).toBe(400);
    const dry = await run.api('POST', '/api/rules/RouteSet?dryRun=true', { name: 'dry', spec: ROUTES });
    expect(dry.json).toMatchObject({ valid: true, dryRun: true });
    expect((await run.api('GET', '/api/rules/RouteSet/dry')).status).toBe(404);
    const validate = await run.api('POST', '/api/validate', {
      kind: 'Policy',
      name: 'p',
      spec: { rateLimit: { requestsPerSecond: -1 } },
    });
    expect(validate.json['error']).toMatchObject({
      issues: [{ field: 'spec.rateLimit.requestsPerSecond', reason: 'must be > 0' }],
    });
    expect((await run.api('GET', '/api/metrics/patterns?window=2d')).json['error']).toMatchObject({
      issues: [{ field: 'window' }],
    });
    expect((await run.api('GET', '/nope')).status).toBe(404);
  });

  test('metric snapshots from sidecars feed per-pattern views and the mesh-wide Prometheus endpoint', async () => {
    expect(sidecar.sendMetricSnapshot(ordersSnapshot('payments', 90, 10))).toBe(true);
    // Malformed snapshots are dropped whole and counted, never merged.
    sidecar.sendMetricSnapshot({ version: 1, service: 'payments', series: 'garbage' });
    await waitFor(
      () => run.cp.metrics.total.snapshotCount === 1 && run.cp.snapshotErrors === 1,
      10_000,
      'snapshots',
    );
    const { json } = await run.api('GET', '/api/metrics/patterns?window=5m&service=payments');
    const rows = json['rows'] as {
      key: Record<string, unknown>;
      requests: number;
      errorRatio: number;
      p50: number;
      p99: number;
      rate: number;
    }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]?.key).toMatchObject({
      service: 'payments',
      host: 'payments.example.com',
      method: 'GET',
      route: '/orders/:id',
    });
    expect(rows[0]?.requests).toBe(100);
    expect(rows[0]?.errorRatio).toBeCloseTo(0.1);
    expect(rows[0]?.p50).toBeLessThanOrEqual(0.025);
    expect(rows[0]?.p99).toBeGreaterThan(0.75);
    expect(rows[0]?.rate).toBeGreaterThan(0);
    const services = (await run.api('GET', '/api/metrics/services')).json['rows'] as {
      key: { service: string };
    }[];
    expect(services.map((r) => r.key.service)).toEqual(['payments']);
    const prom = await run.api('GET', '/metrics', undefined, { token: null });
    expect(prom.text).toContain(
      'httpmesh_mesh_requests_total{service="payments",direction="inbound",host="payments.example.com",route="/orders/:id",method="GET",status_code="503",error_type="503"} 10',
    );
    expect(prom.text).toMatch(/httpmesh_mesh_request_duration_seconds_bucket\{[^}]*le="\+Inf"\} 100/);
    const points = (await run.api('GET', '/api/metrics/timeseries?window=1m&route=/orders/:id')).json[
      'points'
    ] as { requests: number }[];
    expect(points.reduce((sum, p) => sum + p.requests, 0)).toBe(100);
  });
});

describe('alerts', () => {
  test('fire and resolve, listed in the API, JSON webhook retried with backoff', async () => {
    const received: { status: string; alert: string }[] = [];
    let calls = 0;
    const hook = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        calls++;
        // The first two deliveries fail: the engine must retry.
        if (calls <= 2) {
          res.writeHead(503).end();
          return;
        }
        received.push(JSON.parse(Buffer.concat(chunks).toString()) as { status: string; alert: string });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((resolve) => hook.listen(0, '127.0.0.1', resolve));
    let now = Date.now();
    const run = await startControlPlane({
      metricsSlotMs: 1_000,
      alertIntervalMs: 3_600_000,
      alertWebhook: {
        url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/hook`,
        backoffMs: 10,
        attempts: 4,
      },
    });
    const sidecar = await connectSidecar(run.addresses.grpcAddress, 'pay-1', 'payments');
    try {
      const rule = await run.api('POST', '/api/rules/AlertRule', {
        name: 'orders-errors',
        spec: {
          metric: 'errorRatio',
          service: 'payments',
          method: 'GET',
          route: '/orders/:id',
          above: 0.05,
          forSeconds: 0,
          windowSeconds: 2,
        },
      });
      expect(rule.status).toBe(201);
      await waitFor(() => run.cp.alerts.list().length === 1, 5_000, 'alert rule loaded');
      await waitFor(() => run.cp.ruleSync.sidecars().length === 1, 5_000, 'sidecar connected');
      sidecar.sendMetricSnapshot(ordersSnapshot('payments', 80, 20));
      await waitFor(() => run.cp.metrics.total.snapshotCount === 1, 5_000, 'snapshot');
      run.cp.alerts.evaluate();
      const listed = (await run.api('GET', '/api/alerts')).json['alerts'] as {
        name: string;
        state: string;
        value: number;
      }[];
      expect(listed).toEqual([
        expect.objectContaining({ name: 'orders-errors', state: 'firing', value: 0.2 }),
      ]);
      await waitFor(() => received.length === 1, 5_000, 'firing webhook');
      expect(calls).toBe(3);
      expect(received[0]).toMatchObject({ status: 'firing', alert: 'orders-errors', value: 0.2 });
      // Once the erroring slot leaves the 2 s window and only good traffic remains, the alert resolves.
      await waitFor(
        () => {
          sidecar.sendMetricSnapshot(ordersSnapshot('payments', 50, 0));
          run.cp.alerts.evaluate();
          return run.cp.alerts.list()[0]?.state === 'inactive';
        },
        10_000,
        'resolution',
      );
      await waitFor(() => received.length === 2, 5_000, 'resolved webhook');
      expect(received[1]).toMatchObject({ status: 'resolved', alert: 'orders-errors' });
      expect(
        ((await run.api('GET', '/api/alerts')).json['alerts'] as { resolvedAt: string }[])[0]?.resolvedAt,
      ).toBeTruthy();
      now = Date.now() - now;
    } finally {
      await sidecar.close();
      await run.close();
      hook.close();
    }
  });

  test('read-only calls can be protected by the admin token', async () => {
    const run = await startControlPlane({ protectReads: true });
    try {
      expect((await run.api('GET', '/api/rules', undefined, { token: null })).status).toBe(401);
      expect((await run.api('GET', '/metrics', undefined, { token: null })).status).toBe(401);
      expect((await run.api('GET', '/api/rules')).status).toBe(200);
      expect((await run.api('GET', '/healthz', undefined, { token: null })).status).toBe(200);
    } finally {
      await run.close();
    }
  });
});
