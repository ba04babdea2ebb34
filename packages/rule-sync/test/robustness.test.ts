import { join } from 'node:path';
import {
  type sendUnaryData,
  Server,
  ServerCredentials,
  type ServerDuplexStream,
  status,
} from '@grpc/grpc-js';
import { describe, expect, test } from 'vitest';
import {
  type ControlMessage,
  type Resource,
  type ResourceType,
  readStateFile,
  ruleSyncGrpcDefinition,
  type SidecarMessage,
} from '../src/index.js';
import {
  INTERCEPT,
  interceptRule,
  memoryLogger,
  ROUTES,
  rawStream,
  routeSet,
  streamError,
  tempDir,
  waitFor,
} from './helpers.js';
import { GROUP, makeClient, onCleanup, startServer } from './setup.js';

const hello = (id = 'raw-1'): SidecarMessage => ({
  kind: {
    $case: 'hello',
    value: {
      node: { id, service: 'orders', labels: { env: 'test' }, version: '1' },
      subscriptions: [INTERCEPT],
      held: [],
    },
  },
});

describe('malformed messages from a sidecar', () => {
  const cases: [string, SidecarMessage[], RegExp][] = [
    [
      'a hello without a node',
      [{ kind: { $case: 'hello', value: { node: undefined, subscriptions: [INTERCEPT], held: [] } } }],
      /^HTTPMESH_RULESYNC_HELLO_INVALID: hello has no node id$/,
    ],
    [
      'a hello with an empty node id',
      [
        {
          kind: {
            $case: 'hello',
            value: {
              node: { id: '', service: 's', labels: {}, version: '' },
              subscriptions: [INTERCEPT],
              held: [],
            },
          },
        },
      ],
      /^HTTPMESH_RULESYNC_HELLO_INVALID: hello has no node id$/,
    ],
    [
      'a hello without a service',
      [
        {
          kind: {
            $case: 'hello',
            value: {
              node: { id: 'n', service: '', labels: {}, version: '' },
              subscriptions: [INTERCEPT],
              held: [],
            },
          },
        },
      ],
      /HELLO_INVALID: hello from node n has no service name/,
    ],
    [
      'a hello without subscriptions',
      [
        {
          kind: {
            $case: 'hello',
            value: { node: { id: 'n', service: 's', labels: {}, version: '' }, subscriptions: [], held: [] },
          },
        },
      ],
      /HELLO_INVALID: hello from node n subscribes to nothing/,
    ],
    [
      'a hello subscribing to an unknown type',
      [
        {
          kind: {
            $case: 'hello',
            value: {
              node: { id: 'n', service: 's', labels: {}, version: '' },
              subscriptions: [INTERCEPT, 99 as ResourceType],
              held: [],
            },
          },
        },
      ],
      /HELLO_INVALID: .*unknown types 99/,
    ],
    [
      'an ack before the hello',
      [
        {
          kind: {
            $case: 'ack',
            value: { type: INTERCEPT, version: '', responseNonce: '1', errorDetail: undefined },
          },
        },
      ],
      /^HTTPMESH_RULESYNC_HELLO_INVALID: first message must be a hello, got ack$/,
    ],
    ['an empty first message', [{ kind: undefined }], /first message must be a hello, got an empty message/],
    [
      'a second hello',
      [hello(), hello()],
      /^HTTPMESH_RULESYNC_PROTOCOL_VIOLATION: hello sent twice on one stream$/,
    ],
    [
      'an empty message after the hello',
      [hello(), { kind: undefined }],
      /PROTOCOL_VIOLATION: empty or unknown sidecar message/,
    ],
  ];
  test.each(cases)(
    '%s ends the stream with INVALID_ARGUMENT and a clear reason',
    async (_label, messages, reason) => {
      const { server, address } = await startServer();
      const { call, client } = rawStream(address);
      onCleanup(() => client.close());
      const ended = streamError(call);
      for (const message of messages) call.write(message);
      const err = await ended;
      expect(err.code).toBe(status.INVALID_ARGUMENT);
      expect(err.details).toMatch(reason);
      await waitFor(() => server.sidecars().length === 0);
    },
  );

  test('an ack with a nonce the stream never issued is answered in-stream; the stream stays usable', async () => {
    const { server, address } = await startServer();
    server.setResources(GROUP, [interceptRule('a', 'a.partner.com')]);
    server.flush();
    const { call, client } = rawStream(address);
    onCleanup(() => client.close());
    const received: ControlMessage[] = [];
    call.on('data', (m: ControlMessage) => received.push(m));
    call.on('error', () => undefined);
    call.write(hello());
    await waitFor(() => received.some((m) => m.kind?.$case === 'response'));
    call.write({
      kind: {
        $case: 'ack',
        value: { type: INTERCEPT, version: 'x', responseNonce: 'zz-not-a-nonce', errorDetail: undefined },
      },
    });
    call.write({
      kind: {
        $case: 'ack',
        value: { type: INTERCEPT, version: 'x', responseNonce: '999', errorDetail: undefined },
      },
    });
    await waitFor(() => received.filter((m) => m.kind?.$case === 'error').length === 2);
    const errors = received.flatMap((m) => (m.kind?.$case === 'error' ? [m.kind.value.detail] : []));
    expect(errors[0]?.code).toBe('HTTPMESH_RULESYNC_UNKNOWN_NONCE');
    expect(errors[0]?.message).toContain('"zz-not-a-nonce"');
    expect(errors[1]?.message).toContain('"999"');
    call.write({ kind: { $case: 'heartbeat', value: { sequence: 7, sentAtUnixMs: 1 } } });
    await waitFor(() => received.some((m) => m.kind?.$case === 'heartbeat' && m.kind.value.sequence === 7));
    expect(server.sidecar('raw-1')).toBeDefined();
    call.end();
  });

  test('bytes that are not a SidecarMessage end that stream only; the server keeps serving', async () => {
    const { server, address } = await startServer();
    const { client } = rawStream(address);
    onCleanup(() => client.close());
    const bad = client.makeBidiStreamRequest(
      '/httpmesh.rulesync.v1.RuleSync/Stream',
      (b: Buffer) => b,
      (b: Buffer) => b,
    );
    const err = await new Promise<{ code: number }>((resolve) => {
      bad.on('error', resolve);
      bad.on('data', () => undefined);
      bad.write(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]));
    });
    expect(err.code).not.toBe(status.OK);
    const sidecar = makeClient(address, { subscriptions: [INTERCEPT] });
    await sidecar.start();
    await waitFor(() => server.sidecar('node-1') !== undefined);
  });
});

/** A hand-written control plane that sends whatever the test wants, to feed the client bad pushes. */
async function fakeControlPlane(
  script: (call: ServerDuplexStream<SidecarMessage, ControlMessage>, acks: SidecarMessage[]) => void,
): Promise<{ address: string; acks: SidecarMessage[] }> {
  const acks: SidecarMessage[] = [];
  const server = new Server();
  server.addService(ruleSyncGrpcDefinition, {
    stream: (call: ServerDuplexStream<SidecarMessage, ControlMessage>) => {
      call.on('data', (m: SidecarMessage) => {
        if (m.kind?.$case === 'hello') script(call, acks);
        else if (m.kind?.$case === 'ack') acks.push(m);
      });
      call.on('error', () => undefined);
    },
  } as Record<
    string,
    (call: ServerDuplexStream<SidecarMessage, ControlMessage>, cb?: sendUnaryData<unknown>) => void
  >);
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', ServerCredentials.createInsecure(), (e, p) =>
      e ? reject(e) : resolve(p),
    ),
  );
  onCleanup(() => server.forceShutdown());
  return { address: `127.0.0.1:${port}`, acks };
}

describe('malformed messages from a control plane', () => {
  test('bad pushes are NACKed with clear codes and nothing of them is applied', async () => {
    const good: Resource = interceptRule('a', 'a.partner.com', 'v1');
    const { address, acks } = await fakeControlPlane((call) => {
      call.write({
        kind: {
          $case: 'response',
          value: { type: INTERCEPT, systemVersion: 's1', nonce: 'n1', resources: [good], removed: [] },
        },
      });
      // Half good, half bad: the body does not match the type. Must be rejected as a whole.
      call.write({
        kind: {
          $case: 'response',
          value: {
            type: INTERCEPT,
            systemVersion: 's2',
            nonce: 'n2',
            resources: [interceptRule('b', 'b.partner.com'), routeSet('r', '', ['/x'])],
            removed: ['a'],
          },
        },
      });
      call.write({
        kind: {
          $case: 'response',
          value: { type: ROUTES, systemVersion: 's3', nonce: 'n3', resources: [], removed: [] },
        },
      });
      call.write({ kind: undefined });
      call.write({
        kind: {
          $case: 'response',
          value: {
            type: INTERCEPT,
            systemVersion: 's4',
            nonce: 'n4',
            resources: [interceptRule('', 'c.partner.com')],
            removed: [],
          },
        },
      });
    });
    const client = makeClient(address, { subscriptions: [INTERCEPT] });
    const protocolErrors: string[] = [];
    client.on('protocolError', (d) => protocolErrors.push(d.code));
    await client.start();
    await waitFor(() => acks.length === 4);
    const replies = acks.map((m) => (m.kind?.$case === 'ack' ? m.kind.value : undefined));
    expect(replies.map((a) => [a?.responseNonce, a?.version, a?.errorDetail?.code])).toEqual([
      ['n1', 's1', undefined],
      ['n2', 's1', 'HTTPMESH_RULESYNC_RESOURCE_INVALID'],
      // NACK carries the last good version of that type: none for an unsubscribed type.
      ['n3', '', 'HTTPMESH_RULESYNC_PROTOCOL_VIOLATION'],
      ['n4', 's1', 'HTTPMESH_RULESYNC_RESOURCE_INVALID'],
    ]);
    expect(replies[1]?.errorDetail?.message).toContain('has a routeSet body but was sent as InterceptRule');
    expect(replies[1]?.errorDetail?.resourceNames).toEqual(['r']);
    expect(replies[3]?.errorDetail?.message).toBe('resource name is empty');
    expect(protocolErrors).toEqual(['HTTPMESH_RULESYNC_PROTOCOL_VIOLATION']);
    expect(client.version(INTERCEPT)).toBe('s1');
    expect(client.resources(INTERCEPT)).toEqual([good]);
  });
});

describe('slow consumers', () => {
  test('a sidecar that never answers a push is disconnected after the ACK timeout and resyncs later', async () => {
    const { server, address } = await startServer({ insecure: true, ackTimeoutMs: 150 });
    server.setResources(GROUP, [interceptRule('a', 'a.partner.com')]);
    server.flush();
    const disconnects: string[] = [];
    server.on('disconnected', (_s, err) => disconnects.push(err?.code ?? 'none'));
    let release: () => void = () => undefined;
    const stuck = new Promise<void>((resolve) => {
      release = resolve;
    });
    let calls = 0;
    const client = makeClient(address, {
      subscriptions: [INTERCEPT],
      validate: async () => {
        // The first push hangs (a stuck sidecar) until the server has given up on it.
        if (calls++ === 0) await stuck;
      },
    });
    await client.start();
    await waitFor(() => disconnects.length === 1, 5_000, 'slow-consumer disconnect');
    expect(disconnects).toEqual(['HTTPMESH_RULESYNC_SLOW_CONSUMER']);
    release();
    const version = server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() => server.sidecar('node-1')?.types[0]?.ackedVersion === version, 5_000, 'resync');
    expect(client.version(INTERCEPT)).toBe(version);
  });

  test('a sidecar that stops reading is cut when its stream stalls; the server does not buffer without bound', async () => {
    const { server, address } = await startServer({
      insecure: true,
      writeStallTimeoutMs: 200,
      maxQueuedMessages: 8,
    });
    // ~3 MB of routes so the push cannot fit in the HTTP/2 window of a client that does not read.
    const big = Array.from({ length: 300 }, (_, i) =>
      routeSet(
        `set${i}`,
        `h${i}.partner.com`,
        Array.from({ length: 100 }, (_, j) => `/api/v1/resource-${j}/:id/${'x'.repeat(60)}`),
      ),
    );
    server.setResources(GROUP, big);
    server.flush();
    const { call, client } = rawStream(address);
    onCleanup(() => client.close());
    const disconnected = new Promise<string | undefined>((resolve) =>
      server.once('disconnected', (_s, e) => resolve(`${e?.code} ${e?.message}`)),
    );
    call.pause();
    call.write({
      kind: {
        $case: 'hello',
        value: {
          node: { id: 'slow', service: 'orders', labels: { env: 'test' }, version: '' },
          subscriptions: [ROUTES],
          held: [],
        },
      },
    });
    // Heartbeats keep asking for echoes the server cannot deliver.
    for (let i = 1; i <= 50; i++)
      call.write({ kind: { $case: 'heartbeat', value: { sequence: i, sentAtUnixMs: 0 } } });
    // Cut by the write stall or the queue bound, long before the 30 s default ACK timeout.
    expect(await disconnected).toMatch(
      /^HTTPMESH_RULESYNC_SLOW_CONSUMER (stream did not drain within 200 ms|outbound queue reached 8 messages)$/,
    );
    expect(server.sidecar('slow')).toBeUndefined();
    call.on('error', () => undefined);
    call.resume();
  });
});

describe('server restart during a push', () => {
  const setOf = (tag: string, n: number): Resource[] =>
    Array.from({ length: n }, (_, i) =>
      interceptRule(`rule${i}`, `${tag}-${i}-${'p'.repeat(40)}.partner.com`),
    );

  test('no sidecar ends with a half-applied set', async () => {
    const { dir, cleanup } = tempDir('restart');
    onCleanup(cleanup);
    const first = await startServer();
    const port = first.port;
    first.server.setResources(GROUP, setOf('old', 2_000));
    first.server.flush();
    const tagsOf = (resources: readonly Resource[]): string[] => [
      ...new Set(
        resources.map((r) => (r.body?.$case === 'interceptRule' ? r.body.value.domain.split('-')[0]! : '?')),
      ),
    ];
    const SIDECARS = 5;
    const sidecars = Array.from({ length: SIDECARS }, (_, i) => {
      const path = join(dir, `rules-${i}.bin`);
      const client = makeClient(first.address, {
        node: { id: `node-${i}`, service: 'orders', labels: { env: 'test' } },
        subscriptions: [INTERCEPT],
        persistPath: path,
      });
      const seen: string[] = [];
      // Every state a sidecar ever exposes must be one whole set: all "old" (2000) or all "new" (1500).
      client.on('applied', (u) => seen.push(`${tagsOf(u.resources).join('+')}:${u.resources.length}`));
      return { client, path, seen, id: `node-${i}` };
    });
    for (const s of sidecars) await s.client.start();
    const oldVersion = first.server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(() =>
      sidecars.every((s) => first.server.sidecar(s.id)?.types[0]?.ackedVersion === oldVersion),
    );

    // New set (every resource changed, 500 removed, ~150 kB per push) published, then the control
    // plane dies while the pushes are being written.
    first.server.setResources(GROUP, setOf('new', 1_500));
    first.server.flush();
    expect(sidecars.every((s) => first.server.sidecar(s.id)?.types[0]?.pendingNonce !== undefined)).toBe(
      true,
    );
    first.server.forceClose();
    for (const s of sidecars) {
      const current = s.client.resources(INTERCEPT);
      expect([`old:2000`, `new:1500`]).toContain(`${tagsOf(current).join('+')}:${current.length}`);
    }

    // The control plane comes back on the same address with the new set.
    const restarted = await startServer({ insecure: true }, `127.0.0.1:${port}`);
    restarted.server.setResources(GROUP, setOf('new', 1_500));
    restarted.server.flush();
    const version = restarted.server.resources(GROUP, INTERCEPT).systemVersion;
    await waitFor(
      () => sidecars.every((s) => restarted.server.sidecar(s.id)?.types[0]?.ackedVersion === version),
      10_000,
      'resync',
    );
    for (const s of sidecars) {
      expect(s.seen.every((state) => state === 'old:2000' || state === 'new:1500')).toBe(true);
      expect(s.seen.at(-1)).toBe('new:1500');
      const persisted = await readStateFile(s.path);
      expect(tagsOf(persisted?.types[0]?.resources ?? [])).toEqual(['new']);
      expect(persisted?.types[0]?.resources).toHaveLength(1_500);
    }
  });
});

describe('metric snapshots and heartbeats', () => {
  test('travel upstream on the same stream and reach the callbacks', async () => {
    const snapshots: { node: string; contentType: string; body: unknown }[] = [];
    const heartbeats: number[] = [];
    const { server, address } = await startServer({
      insecure: true,
      onMetricSnapshot: (node, s) =>
        snapshots.push({
          node: node.id,
          contentType: s.contentType,
          body: JSON.parse(new TextDecoder().decode(s.payload)),
        }),
      onHeartbeat: (_node, hb) => heartbeats.push(hb.sequence),
    });
    const events: string[] = [];
    server.on('metricSnapshot', (node, s) => events.push(`metrics ${node.id} ${s.contentType}`));
    server.once('heartbeat', (node) => events.push(`heartbeat ${node.id}`));
    const client = makeClient(address, { subscriptions: [INTERCEPT], heartbeatIntervalMs: 20 });
    expect(client.sendMetricSnapshot({ routes: [] })).toBe(false); // not connected yet
    await client.start();
    await waitFor(() => client.connected);
    expect(client.sendMetricSnapshot({ routes: [{ pattern: '/orders/:id', count: 3 }] })).toBe(true);
    await waitFor(() => snapshots.length === 1 && heartbeats.length >= 2);
    expect(snapshots[0]).toEqual({
      node: 'node-1',
      contentType: 'application/vnd.httpmesh.metrics-snapshot+json',
      body: { routes: [{ pattern: '/orders/:id', count: 3 }] },
    });
    expect(heartbeats.slice(0, 2)).toEqual([1, 2]);
    expect(events).toEqual([
      'heartbeat node-1',
      'metrics node-1 application/vnd.httpmesh.metrics-snapshot+json',
    ]);
    expect(server.sidecar('node-1')?.lastHeartbeatAt).toBeInstanceOf(Date);
  });

  test('close({ drainMs }) writes every queued snapshot before the stream ends, and does not reconnect', async () => {
    const received: number[] = [];
    const { address } = await startServer({
      insecure: true,
      onMetricSnapshot: (_node, s) =>
        received.push((JSON.parse(new TextDecoder().decode(s.payload)) as { n: number }).n),
    });
    const logger = memoryLogger();
    const client = makeClient(address, { subscriptions: [INTERCEPT], logger });
    await client.start();
    await waitFor(() => client.connected);
    // Queued in one go, then closed at once: only the drain can get them all onto the wire.
    const filler = 'x'.repeat(16_384);
    for (let n = 0; n < 50; n++) expect(client.sendMetricSnapshot({ n, filler })).toBe(true);
    const disconnected = new Promise<Error | undefined>((resolve) =>
      client.once('disconnected', (_a, e) => resolve(e)),
    );
    await client.close({ drainMs: 10_000 });
    expect(received).toEqual(Array.from({ length: 50 }, (_, n) => n));
    // The control plane ended the stream (no error), and the client did not try to reconnect.
    expect(await disconnected).toBeUndefined();
    expect(logger.lines.join('\n')).not.toContain('reconnecting');
    expect(client.connected).toBe(false);
  });

  test('close({ drainMs }) gives up after drainMs when the control plane never ends the stream', async () => {
    // Echoes heartbeats (so the client counts as connected) but ignores the client's half-close.
    const { address } = await fakeControlPlane((call) => {
      call.on('data', (m: SidecarMessage) => {
        if (m.kind?.$case === 'heartbeat') call.write({ kind: { $case: 'heartbeat', value: m.kind.value } });
      });
      call.write({ kind: { $case: 'heartbeat', value: { sequence: 0, sentAtUnixMs: Date.now() } } });
    });
    const client = makeClient(address, { subscriptions: [INTERCEPT] });
    await client.start();
    await waitFor(() => client.connected);
    expect(client.sendMetricSnapshot({ last: true })).toBe(true);
    const disconnected = new Promise<Error | undefined>((resolve) =>
      client.once('disconnected', (_a, e) => resolve(e)),
    );
    // Resolves (the test would time out otherwise), then cancels the stream it could not drain.
    await client.close({ drainMs: 150 });
    await disconnected;
    expect(client.connected).toBe(false);
  });

  test('a silent control plane is detected by missing heartbeat echoes', async () => {
    const { address } = await fakeControlPlane(() => undefined);
    const logger = memoryLogger();
    const client = makeClient(address, {
      subscriptions: [INTERCEPT],
      heartbeatIntervalMs: 20,
      heartbeatTimeoutMs: 80,
      logger,
    });
    const disconnected = new Promise<Error | undefined>((resolve) =>
      client.once('disconnected', (_a, e) => resolve(e)),
    );
    await client.start();
    expect(await disconnected).toMatchObject({
      code: 'HTTPMESH_RULESYNC_PEER_SILENT',
      message: 'control plane silent for 80 ms',
    });
  });

  test('a silent sidecar is disconnected after the idle timeout', async () => {
    const { server, address } = await startServer({ insecure: true, idleTimeoutMs: 100 });
    const { call, client } = rawStream(address);
    onCleanup(() => client.close());
    const ended = streamError(call);
    call.write(hello('quiet'));
    const err = await ended;
    expect(err.code).toBe(status.UNAVAILABLE);
    expect(err.details).toBe('HTTPMESH_RULESYNC_PEER_SILENT: no message from the sidecar for 100 ms');
    expect(server.sidecar('quiet')).toBeUndefined();
  });

  test('a throwing telemetry callback is logged and does not break the stream', async () => {
    const logger = memoryLogger();
    const { server, address } = await startServer({
      insecure: true,
      logger,
      onMetricSnapshot: () => {
        throw new Error('sink down');
      },
    });
    const { call, client } = rawStream(address);
    onCleanup(() => client.close());
    const received: ControlMessage[] = [];
    call.on('data', (m: ControlMessage) => received.push(m));
    call.write(hello('metrics'));
    call.write({
      kind: {
        $case: 'metricSnapshot',
        value: { contentType: 'x', payload: new Uint8Array([1]), takenAtUnixMs: 0 },
      },
    });
    call.write({ kind: { $case: 'heartbeat', value: { sequence: 5, sentAtUnixMs: 0 } } });
    await waitFor(() => received.some((m) => m.kind?.$case === 'heartbeat'));
    expect(logger.lines).toContain('error onMetricSnapshot callback threw: sink down');
    expect(server.sidecar('metrics')).toBeDefined();
    call.end();
  });
});
