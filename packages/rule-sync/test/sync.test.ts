import { describe, expect, test } from 'vitest';
import { backoffDelay, type CandidateUpdate } from '../src/index.js';
import { INTERCEPT, interceptRule, memoryLogger, ROUTES, routeSet, waitFor } from './helpers.js';
import { domains, GROUP, makeClient, startServer } from './setup.js';

describe('ACK/NACK', () => {
  test('a valid push is applied and ACKed; the registry shows the acked version per type', async () => {
    const { server, address } = await startServer();
    server.setResources(GROUP, [
      interceptRule('a', 'api.partner.com'),
      routeSet('r', 'api.partner.com', ['/orders/:id']),
    ]);
    server.flush();
    const client = makeClient(address);
    await client.start();
    const expected = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(
      () =>
        server.sidecar('node-1')?.types.find((t) => t.type === 'InterceptRule')?.ackedVersion === expected,
    );
    expect(domains(client)).toEqual(['api.partner.com']);
    expect(client.version(INTERCEPT)).toBe(expected);
    expect(client.resources(ROUTES)[0]?.body).toEqual({
      $case: 'routeSet',
      value: { name: 'r', host: 'api.partner.com', routes: [{ pattern: '/orders/:id', methods: ['GET'] }] },
    });
    const status = server.sidecar('node-1');
    expect(status?.group).toBe('orders{env=test}');
    expect(status?.types.map((t) => t.type).sort()).toEqual(['InterceptRule', 'RouteSet']);
    expect(server.sidecars()).toHaveLength(1);
  });

  test('a rejected push is NACKed with the reason, the last good set is kept, the version is not resent', async () => {
    const { server, address } = await startServer();
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com')]);
    server.flush();
    const client = makeClient(address, {
      subscriptions: [INTERCEPT],
      validate: (update) => {
        if (
          update.resources.some(
            (r) => r.body?.$case === 'interceptRule' && r.body.value.domain.endsWith('.evil.com'),
          )
        ) {
          throw new Error('evil domains are not allowed');
        }
      },
    });
    const answers: string[] = [];
    server.on('ack', () => answers.push('ack'));
    server.on('nack', () => answers.push('nack'));
    await client.start();
    const good = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => client.version(INTERCEPT) === good);

    server.upsertResources(GROUP, [interceptRule('b', 'x.evil.com')]);
    server.flush();
    const bad = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.lastError !== undefined);
    const status = server.sidecar('node-1')?.types[0];
    expect(status?.lastError?.code).toBe('HTTPMESH_RULESYNC_VALIDATION_REJECTED');
    expect(status?.lastError?.message).toContain('evil domains are not allowed');
    expect(status?.lastError?.resourceNames).toEqual(['b']);
    expect(status?.ackedVersion).toBe(good);
    expect(status?.nackedVersion).toBe(bad);
    expect(status?.pendingNonce).toBeUndefined();
    expect(domains(client)).toEqual(['api.partner.com']);
    expect(client.version(INTERCEPT)).toBe(good);

    // Re-publishing the same (NACKed) content does not push again.
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com'), interceptRule('b', 'x.evil.com')]);
    server.flush();
    expect(server.sidecar('node-1')?.types[0]?.pendingNonce).toBeUndefined();
    expect(answers).toEqual(['ack', 'nack']);

    // A changed snapshot is pushed again and, being valid, applied.
    server.removeResources(GROUP, INTERCEPT, ['b']);
    server.upsertResources(GROUP, [interceptRule('c', 'c.partner.com')]);
    server.flush();
    const next = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === next);
    expect(client.version(INTERCEPT)).toBe(next);
    expect(domains(client)).toEqual(['api.partner.com', 'c.partner.com']);
    expect(answers).toEqual(['ack', 'nack', 'ack']);
    await waitFor(() => server.sidecar('node-1')?.types[0]?.lastError === undefined);
  });

  test('a NACKed version is not resent after the sidecar reconnects', async () => {
    const { server, address } = await startServer();
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com')]);
    server.flush();
    const validated: string[] = [];
    const client = makeClient(address, {
      subscriptions: [INTERCEPT],
      validate: (update) => {
        validated.push(update.systemVersion);
        if (update.resources.length > 1) throw new Error('only one rule allowed');
      },
    });
    await client.start();
    const good = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === good);
    server.upsertResources(GROUP, [interceptRule('b', 'b.partner.com')]);
    server.flush();
    const bad = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.nackedVersion === bad);

    const reconnected = new Promise((resolve) => server.once('connected', resolve));
    server.disconnect('node-1');
    await reconnected;
    // The heartbeat round trip after the hello proves the server processed it without pushing.
    await waitFor(() => server.sidecar('node-1')?.lastHeartbeatAt !== undefined);
    const status = server.sidecar('node-1')?.types[0];
    expect(status?.ackedVersion).toBe(good);
    expect(status?.nackedVersion).toBe(bad);
    expect(status?.lastError?.message).toContain('only one rule allowed');
    expect(status?.pendingNonce).toBeUndefined();
    expect(validated).toEqual([good, bad]);
  });

  test('a validate hook that never settles NACKs after validateTimeoutMs; close() does not hang on it', async () => {
    const { server, address } = await startServer();
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com')]);
    server.flush();
    let calls = 0;
    const client = makeClient(address, {
      subscriptions: [INTERCEPT],
      validateTimeoutMs: 100,
      validate: () => {
        calls++;
        return new Promise<void>(() => undefined);
      },
    });
    await client.start();
    await waitFor(() => server.sidecar('node-1')?.types[0]?.lastError !== undefined);
    expect(server.sidecar('node-1')?.types[0]?.lastError).toMatchObject({
      code: 'HTTPMESH_RULESYNC_VALIDATION_REJECTED',
      message: 'validate did not settle within 100 ms',
    });
    expect(client.version(INTERCEPT)).toBeUndefined();

    await client.close();

    // A hook that would hang for 10 minutes: close() still returns (the test would time out otherwise).
    let hung = false;
    const stuck = makeClient(address, {
      node: { id: 'node-2', service: 'orders', labels: { env: 'test' } },
      subscriptions: [INTERCEPT],
      validateTimeoutMs: 600_000,
      validate: () => {
        hung = true;
        return new Promise<void>(() => undefined);
      },
    });
    await stuck.start();
    await waitFor(() => hung);
    await stuck.close();
    expect(stuck.version(INTERCEPT)).toBeUndefined();
    expect(calls).toBe(1);
  });

  test('a throwing applied listener is logged; the push is still ACKed', async () => {
    const { server, address } = await startServer();
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com')]);
    server.flush();
    const logger = memoryLogger();
    const client = makeClient(address, { subscriptions: [INTERCEPT], logger });
    client.on('applied', () => {
      throw new Error('listener bug');
    });
    await client.start();
    const version = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === version);
    expect(logger.lines).toContain("error an 'applied' listener threw: listener bug");
  });

  test('the server refuses malformed resources at the API with RESOURCE_INVALID', async () => {
    const { server } = await startServer();
    expect(() => server.setResources(GROUP, [routeSet('bad', 'api.partner.com', ['no-slash'])])).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_RULESYNC_RESOURCE_INVALID' }),
    );
    expect(() => server.setResources(GROUP, [interceptRule('w', '*.*.partner.com')])).toThrow(
      /invalid domain/,
    );
    expect(() => server.setResources(GROUP, [{ name: 'x', version: '', body: undefined }])).toThrow(
      /no body/,
    );
    expect(() =>
      server.setResources(GROUP, [interceptRule('d', 'a.com'), interceptRule('d', 'b.com')]),
    ).toThrow(/duplicate/);
  });
});

describe('delta and resync', () => {
  test('pushes carry only changed and removed resources; a reconnect resends nothing unchanged', async () => {
    const { server, address } = await startServer();
    server.setResources(
      GROUP,
      Array.from({ length: 5 }, (_, i) => interceptRule(`r${i}`, `h${i}.partner.com`)),
    );
    server.flush();
    const deltas: { changed: string[]; removed: string[] }[] = [];
    const record = (u: CandidateUpdate): void => {
      deltas.push({ changed: u.changed.map((r) => r.name).sort(), removed: [...u.removed] });
    };
    const client = makeClient(address, { subscriptions: [INTERCEPT], validate: record });
    await client.start();
    await waitFor(() => client.version(INTERCEPT) === server.resources(GROUP, INTERCEPT).systemVersion);
    expect(deltas).toEqual([{ changed: ['r0', 'r1', 'r2', 'r3', 'r4'], removed: [] }]);

    server.upsertResources(GROUP, [interceptRule('r1', 'changed.partner.com')]);
    server.removeResources(GROUP, INTERCEPT, ['r4']);
    server.flush();
    await waitFor(() => client.version(INTERCEPT) === server.resources(GROUP, INTERCEPT).systemVersion);
    expect(deltas[1]).toEqual({ changed: ['r1'], removed: ['r4'] });

    // Cut the stream; the client reconnects stating its versions, so nothing is pushed while unchanged.
    const reconnected = new Promise((resolve) => server.once('connected', resolve));
    expect(server.disconnect('node-1')).toBe(true);
    await reconnected;
    const held = server.sidecar('node-1')?.types[0];
    expect(held?.ackedVersion).toBe(server.resources(GROUP, INTERCEPT).systemVersion);
    expect(held?.pendingNonce).toBeUndefined();
    expect(deltas).toHaveLength(2);

    // Changes made while the sidecar is away arrive as one delta after it reconnects.
    const reconnected2 = new Promise((resolve) => server.once('connected', resolve));
    server.disconnect('node-1');
    server.upsertResources(GROUP, [interceptRule('r9', 'r9.partner.com')]);
    server.removeResources(GROUP, INTERCEPT, ['r0']);
    server.flush();
    await reconnected2;
    await waitFor(() => client.version(INTERCEPT) === server.resources(GROUP, INTERCEPT).systemVersion);
    expect(deltas.at(-1)).toEqual({ changed: ['r9'], removed: ['r0'] });
    expect(
      client
        .resources(INTERCEPT)
        .map((r) => r.name)
        .sort(),
    ).toEqual(['r1', 'r2', 'r3', 'r9']);
  });

  test('a restarted control plane with the same resources resends nothing (deterministic versions)', async () => {
    const first = await startServer();
    first.server.setResources(GROUP, [interceptRule('a', 'a.partner.com')]);
    first.server.flush();
    const second = await startServer();
    second.server.setResources(GROUP, [interceptRule('a', 'a.partner.com')]);
    second.server.flush();
    const pushes: string[] = [];
    const client = makeClient([first.address, second.address], {
      subscriptions: [INTERCEPT],
      validate: (u) => void pushes.push(u.systemVersion),
    });
    await client.start();
    await waitFor(() => client.version(INTERCEPT) !== undefined);
    const onSecond = new Promise((resolve) => second.server.once('connected', resolve));
    first.server.forceClose();
    await onSecond;
    expect(second.server.sidecar('node-1')?.types[0]?.ackedVersion).toBe(client.version(INTERCEPT));
    expect(pushes).toHaveLength(1);
  });
});

describe('debounce', () => {
  test('a burst of edits becomes one push after the quiet period', async () => {
    const { server, address } = await startServer({
      insecure: true,
      debounce: { quietMs: 60, maxDelayMs: 5_000 },
    });
    server.setResources(GROUP, []); // the group exists, empty
    server.flush();
    const pushes: number[] = [];
    const client = makeClient(address, {
      subscriptions: [INTERCEPT],
      validate: (u) => void pushes.push(u.changed.length),
    });
    await client.start();
    await waitFor(() => client.version(INTERCEPT) !== undefined); // initial empty set
    const published: string[] = [];
    server.on('published', (_g, _t, v) => published.push(v));
    for (let i = 0; i < 20; i++) server.upsertResources(GROUP, [interceptRule(`r${i}`, `h${i}.partner.com`)]);
    expect(published).toEqual([]);
    await waitFor(() => client.resources(INTERCEPT).length === 20);
    expect(published).toHaveLength(1);
    expect(pushes).toEqual([0, 20]);
  });

  test('continuous edits are still published after the maximum delay', async () => {
    const { server } = await startServer({ insecure: true, debounce: { quietMs: 40, maxDelayMs: 150 } });
    const published: number[] = [];
    server.on('published', () => published.push(Date.now()));
    const started = Date.now();
    let i = 0;
    // Edits every 10 ms never leave a 40 ms quiet gap; the max delay forces a publish anyway.
    await waitFor(
      () => {
        if (published.length === 0)
          server.upsertResources(GROUP, [interceptRule(`r${i++}`, `h${i}.partner.com`)]);
        return published.length > 0;
      },
      3_000,
      'publish under continuous edits',
    );
    expect(published[0]! - started).toBeLessThan(1_500);
    expect(i).toBeGreaterThan(3);
  });
});

describe('reconnect', () => {
  test('backoff grows exponentially up to the cap, with jitter taken off the top', () => {
    const opts = { initialMs: 100, maxMs: 1_000, multiplier: 2, jitter: 0.5 };
    expect([0, 1, 2, 3, 4, 5].map((a) => backoffDelay(a, opts, () => 0))).toEqual([
      100, 200, 400, 800, 1_000, 1_000,
    ]);
    expect(backoffDelay(2, opts, () => 1)).toBe(200);
    expect(backoffDelay(2, opts, () => 0.5)).toBe(300);
    expect(backoffDelay(0, { initialMs: 100, jitter: 1 }, () => 1)).toBe(0);
  });

  test('the client cycles through control-plane addresses until one answers', async () => {
    const dead = await startServer();
    await dead.server.close(100);
    const { server, address } = await startServer();
    server.setResources(GROUP, [interceptRule('a', 'a.partner.com')]);
    server.flush();
    const client = makeClient([dead.address, address], { subscriptions: [INTERCEPT] });
    const events: string[] = [];
    client.on('disconnected', (a) => events.push(`down ${a}`));
    client.on('connected', (a) => events.push(`up ${a}`));
    await client.start();
    await waitFor(() => client.version(INTERCEPT) === server.resources(GROUP, INTERCEPT).systemVersion);
    expect(events).toEqual([`down ${dead.address}`, `up ${address}`]);
  });
});
