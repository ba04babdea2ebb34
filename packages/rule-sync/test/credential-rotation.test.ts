/**
 * Certificate rotation without a restart: `tls` as a function called per session, and `reconnect()` which
 * loads the new credentials first and only then ends the stream cleanly and reconnects at once. Real gRPC over
 * real mTLS (openssl-made CA and node certificates) on loopback port 0.
 */
import { describe, expect, test } from 'vitest';
import type { AppliedUpdate, RuleSyncClientTls, RuleSyncError, SidecarStatus } from '../src/index.js';
import { INTERCEPT, interceptRule, memoryLogger, waitFor } from './helpers.js';
import { GROUP, makeClient, SERVER_NAME, startServer, useMtlsPki } from './setup.js';

const mtls = useMtlsPki();

/** A server with one intercept rule published, recording its connects, disconnects and rejections. */
async function mtlsServer() {
  const started = await startServer(mtls.serverOptions());
  const connects: SidecarStatus[] = [];
  const disconnects: [SidecarStatus, RuleSyncError | undefined][] = [];
  const rejected: string[] = [];
  const nacks: string[] = [];
  const snapshots: string[] = [];
  started.server.on('connected', (s) => connects.push(s));
  started.server.on('disconnected', (s, e) => disconnects.push([s, e]));
  started.server.on('rejected', (_peer, e) => rejected.push(e.code));
  started.server.on('nack', (_s, _t, d) => nacks.push(d.code));
  started.server.on('metricSnapshot', (_n, snap) => snapshots.push(new TextDecoder().decode(snap.payload)));
  started.server.setResources(GROUP, [interceptRule('a', 'api.partner.com')]);
  started.server.flush();
  return { ...started, connects, disconnects, rejected, nacks, snapshots };
}

describe('tls as a function + reconnect()', () => {
  test('rotating to another certificate of the same node: new session, resources kept, nothing re-applied', async () => {
    const { server, address, connects, disconnects, nacks, snapshots } = await mtlsServer();
    const certA = mtls.pki.client('node-1');
    const certB = mtls.pki.client('node-1');
    let current: RuleSyncClientTls = { ca: mtls.pki.ca, ...certA };
    const handedOut: RuleSyncClientTls[] = [];
    const client = makeClient(address, {
      insecure: false,
      tls: async () => {
        handedOut.push(current);
        return current;
      },
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
    });
    const applied: AppliedUpdate[] = [];
    client.on('applied', (u) => applied.push(u));
    await client.start();
    const version = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === version, 5_000, 'first ACK');
    expect(applied.map((u) => u.systemVersion)).toEqual([version]);
    expect(handedOut).toEqual([current]);

    current = { ca: mtls.pki.ca, ...certB };
    // Queued just before the reconnect: the drain writes it before the half-close.
    expect(client.sendMetricSnapshot({ last: 'before-rotation' })).toBe(true);
    await client.reconnect({ drainMs: 5_000 });
    await waitFor(() => connects.length === 2 && client.connected, 5_000, 'the new session');

    expect(handedOut.at(-1)?.cert).toBe(certB.cert);
    expect(snapshots).toContain(JSON.stringify({ last: 'before-rotation' }));
    // The old stream ended cleanly (the client half-closed): not an eviction, not a failure.
    expect(disconnects).toHaveLength(1);
    expect(disconnects[0]?.[1]).toBeUndefined();
    expect(nacks).toEqual([]);
    // The new Hello stated the held version: nothing was pushed or applied again.
    expect(applied).toHaveLength(1);
    expect(client.version(INTERCEPT)).toBe(version);
    expect(server.sidecar('node-1')?.types[0]).toMatchObject({
      ackedVersion: version,
      pendingNonce: undefined,
    });

    // The new session carries on: a change is pushed, applied and ACKed.
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com'), interceptRule('b', 'b.partner.com')]);
    server.flush();
    const next = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === next, 5_000, 'second ACK');
    expect(applied.map((u) => u.systemVersion)).toEqual([version, next]);
  });

  test('the new session presents the new certificate (one of another node is refused), and reconnect() cuts a backoff wait', async () => {
    const { address, connects, rejected } = await mtlsServer();
    const own = mtls.pki.client('node-1');
    const foreign = mtls.pki.client('node-2');
    let current: RuleSyncClientTls = { ca: mtls.pki.ca, ...own };
    const client = makeClient(address, {
      insecure: false,
      tls: () => current,
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
      // Long backoff: only reconnect() can bring the client back within the test's deadline.
      backoff: { initialMs: 60_000, maxMs: 60_000, jitter: 0 },
    });
    await client.start();
    await waitFor(() => client.connected, 5_000, 'connected');

    current = { ca: mtls.pki.ca, ...foreign };
    await client.reconnect();
    await waitFor(() => rejected.length === 1, 5_000, 'the rejection');
    expect(rejected).toEqual(['HTTPMESH_RULESYNC_IDENTITY_MISMATCH']);
    await waitFor(() => !client.connected, 5_000, 'disconnected');

    current = { ca: mtls.pki.ca, ...own };
    const started = Date.now();
    await client.reconnect();
    await waitFor(() => client.connected && connects.length === 2, 10_000, 'reconnected');
    // Well below the 60 s backoff the failed attempt started.
    expect(Date.now() - started).toBeLessThan(30_000);
  });

  test('a tls function that throws fails the attempt with the code and retries; fixed, the client connects', async () => {
    const { address, connects } = await mtlsServer();
    const logger = memoryLogger();
    let broken: Error | undefined = new Error('sidecar.key: ENOENT');
    let calls = 0;
    const tls = mtls.pki.client('node-1');
    const client = makeClient(address, {
      insecure: false,
      tls: () => {
        calls++;
        if (broken) throw broken;
        return { ca: mtls.pki.ca, ...tls };
      },
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
      logger,
      backoff: { initialMs: 10, maxMs: 40 },
    });
    const failures: (Error | undefined)[] = [];
    client.on('disconnected', (_a, e) => failures.push(e));
    await client.start();
    await waitFor(() => failures.length >= 2, 5_000, 'two failed attempts');
    expect(failures[0]).toMatchObject({
      name: 'CredentialsUnavailableError',
      code: 'HTTPMESH_RULESYNC_CREDENTIALS_UNAVAILABLE',
    });
    expect((failures[0] as Error).message).toContain('sidecar.key: ENOENT');
    expect(
      logger.lines.some(
        (l) => l.startsWith('error ') && l.includes('HTTPMESH_RULESYNC_CREDENTIALS_UNAVAILABLE'),
      ),
    ).toBe(true);
    expect(connects).toEqual([]);

    broken = undefined;
    const before = calls;
    await waitFor(() => client.connected, 5_000, 'connected once fixed');
    expect(calls).toBeGreaterThan(before);
    expect(connects).toHaveLength(1);
  });

  test.each([
    [
      'garbage PEM',
      () => ({
        ca: mtls.pki.ca,
        cert: Buffer.from('-----BEGIN CERTIFICATE-----\nnot base64 at all\n'),
        key: mtls.pki.client('node-1').key,
      }),
    ],
    [
      'a key that does not match the certificate',
      () => ({ ca: mtls.pki.ca, cert: mtls.pki.client('node-1').cert, key: mtls.pki.client('node-1').key }),
    ],
    ['empty files', () => ({ ca: '', cert: '', key: '' })],
  ])('%s: reconnect() rejects with the code and the working stream stays', async (_what, bad) => {
    const { server, address, connects, disconnects } = await mtlsServer();
    const good = { ca: mtls.pki.ca, ...mtls.pki.client('node-1') };
    let current: RuleSyncClientTls = good;
    const client = makeClient(address, {
      insecure: false,
      tls: () => current,
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
    });
    await client.start();
    await waitFor(() => client.connected, 5_000, 'connected');

    current = bad();
    await expect(client.reconnect()).rejects.toMatchObject({
      code: 'HTTPMESH_RULESYNC_CREDENTIALS_UNAVAILABLE',
    });
    expect(client.connected).toBe(true);
    expect(connects).toHaveLength(1);
    expect(disconnects).toEqual([]);
    // The same stream still works: a change pushed now is applied and ACKed on it.
    server.setResources(GROUP, [interceptRule('c', 'c.partner.com')]);
    server.flush();
    const next = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(
      () => server.sidecar('node-1')?.types[0]?.ackedVersion === next,
      5_000,
      'ACK on the old stream',
    );
    expect(client.version(INTERCEPT)).toBe(next);
    expect(connects).toHaveLength(1);
  });

  test('static credentials that do not load fail every attempt with the code instead of crashing the loop', async () => {
    const { address } = await mtlsServer();
    const client = makeClient(address, {
      insecure: false,
      tls: { ca: mtls.pki.ca, cert: 'garbage', key: 'garbage' },
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
      backoff: { initialMs: 5, maxMs: 10 },
    });
    const failures: (Error | undefined)[] = [];
    client.on('disconnected', (_a, e) => failures.push(e));
    await client.start();
    await waitFor(() => failures.length >= 3, 5_000, 'three failed attempts');
    for (const f of failures) expect(f).toMatchObject({ code: 'HTTPMESH_RULESYNC_CREDENTIALS_UNAVAILABLE' });
  });

  test('close() does not wait for a tls function that never settles', async () => {
    const { address, connects } = await mtlsServer();
    let calls = 0;
    const client = makeClient(address, {
      insecure: false,
      tls: () => {
        calls++;
        return new Promise<RuleSyncClientTls>(() => undefined);
      },
      channelOptions: SERVER_NAME,
    });
    await client.start();
    await waitFor(() => calls === 1, 5_000, 'the tls function called');
    await client.close();
    expect(connects).toEqual([]);
  });

  test('reconnect() after close() is refused with HTTPMESH_RULESYNC_CLOSED', async () => {
    const { address } = await mtlsServer();
    const tls = { ca: mtls.pki.ca, ...mtls.pki.client('node-1') };
    const client = makeClient(address, { insecure: false, tls: () => tls, channelOptions: SERVER_NAME });
    await client.start();
    await client.close();
    await expect(client.reconnect()).rejects.toMatchObject({ code: 'HTTPMESH_RULESYNC_CLOSED' });
  });
});
