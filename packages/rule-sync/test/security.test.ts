import { credentials as grpcCredentials, status } from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import { createRuleSyncServer } from '../src/index.js';
import { INTERCEPT, interceptRule, memoryLogger, rawStream, streamError, waitFor } from './helpers.js';
import { GROUP, makeClient, onCleanup, SERVER_NAME, startServer, useMtlsPki } from './setup.js';

const mtls = useMtlsPki();

describe('mTLS', () => {
  test('a sidecar whose certificate carries its node id (spiffe URI SAN) syncs', async () => {
    const { server, address } = await startServer(mtls.serverOptions());
    server.setResources(GROUP, [interceptRule('a', 'api.partner.com')]);
    server.flush();
    const { cert, key } = mtls.pki.client('node-1');
    const client = makeClient(address, {
      insecure: false,
      tls: { ca: mtls.pki.ca, cert, key },
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
    });
    await client.start();
    await waitFor(() => client.version(INTERCEPT) === server.resources(GROUP, INTERCEPT).systemVersion);
    expect(server.sidecar('node-1')?.node.service).toBe('orders');
  });

  test('the subject CN identifies the node when there is no spiffe URI SAN', async () => {
    const { server, address } = await startServer(mtls.serverOptions());
    const { cert, key } = mtls.pki.client('node-1', 'cn');
    const client = makeClient(address, {
      insecure: false,
      tls: { ca: mtls.pki.ca, cert, key },
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
    });
    await client.start();
    await waitFor(() => server.sidecar('node-1') !== undefined);
  });

  test('a hello claiming another node than the certificate is rejected with IDENTITY_MISMATCH', async () => {
    const { server, address } = await startServer(mtls.serverOptions());
    const rejected: string[] = [];
    server.on('rejected', (_peer, err) => rejected.push(err.code));
    const { cert, key } = mtls.pki.client('node-2');
    const { call, client } = rawStream(
      address,
      grpcCredentials.createSsl(mtls.pki.ca, key, cert),
      SERVER_NAME,
    );
    onCleanup(() => client.close());
    const ended = streamError(call);
    call.write({
      kind: {
        $case: 'hello',
        value: {
          node: { id: 'node-1', service: 'orders', labels: {}, version: '' },
          subscriptions: [INTERCEPT],
          held: [],
        },
      },
    });
    const err = await ended;
    expect(err.code).toBe(status.PERMISSION_DENIED);
    expect(err.details).toMatch(
      /^HTTPMESH_RULESYNC_IDENTITY_MISMATCH: hello claims node "node-1" but the client certificate identifies "node-2"/,
    );
    expect(rejected).toEqual(['HTTPMESH_RULESYNC_IDENTITY_MISMATCH']);
    expect(server.sidecars()).toEqual([]);

    // The real client sees the same rejection and never applies anything.
    const sidecar = makeClient(address, {
      insecure: false,
      tls: { ca: mtls.pki.ca, cert, key },
      channelOptions: SERVER_NAME,
      subscriptions: [INTERCEPT],
    });
    const disconnected = new Promise<Error | undefined>((resolve) =>
      sidecar.once('disconnected', (_a, e) => resolve(e)),
    );
    await sidecar.start();
    expect((await disconnected)?.message).toContain('HTTPMESH_RULESYNC_IDENTITY_MISMATCH');
    expect(sidecar.version(INTERCEPT)).toBeUndefined();
  });

  test('a client without a certificate cannot open a stream', async () => {
    const { server, address } = await startServer(mtls.serverOptions());
    const { call, client } = rawStream(address, grpcCredentials.createSsl(mtls.pki.ca), SERVER_NAME);
    onCleanup(() => client.close());
    const ended = streamError(call);
    call.write({ kind: { $case: 'heartbeat', value: { sequence: 1, sentAtUnixMs: 0 } } });
    const err = await ended;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(server.sidecars()).toEqual([]);
  });
});

describe('plaintext', () => {
  test('is refused on a non-loopback address', async () => {
    const server = createRuleSyncServer({ insecure: true, logger: memoryLogger() });
    onCleanup(() => server.close(100));
    await expect(server.listen('0.0.0.0:0')).rejects.toMatchObject({
      code: 'HTTPMESH_RULESYNC_INSECURE_NON_LOOPBACK',
      name: 'InsecureNonLoopbackError',
    });
  });

  test('on loopback says so at startup', async () => {
    const logger = memoryLogger();
    const { port } = await startServer({ insecure: true, logger });
    expect(logger.lines).toEqual([
      `warn PLAINTEXT mode on 127.0.0.1:${port}: no TLS, no client authentication - loopback development only`,
    ]);
  });

  test('a server needs tls or an explicit insecure flag', () => {
    expect(() => createRuleSyncServer({})).toThrow(TypeError);
  });
});
