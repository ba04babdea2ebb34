import { join } from 'node:path';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import {
  type BodyMode,
  type HandshakeResponse,
  Phase,
  PluginService,
  type ProcessingRequest,
  type ProcessingResponse,
} from '../src/gen/plugin.js';
import { PluginClient, type PluginClientOptions } from '../src/index.js';
import { tempDir } from './helpers.js';

// A hand-driven plugin server: each test decides exactly what goes on the wire.
interface Fake {
  handshake: HandshakeResponse;
  reply: (req: ProcessingRequest) => ProcessingResponse | undefined;
  garbage: boolean;
}

const GOOD_HANDSHAKE: HandshakeResponse = {
  name: 'fake',
  version: '1.0.0',
  protocolVersion: 1,
  observeOnly: false,
  phases: [
    { phase: Phase.PHASE_REQUEST_HEADERS, bodyMode: 0, maxBodyBytes: 0 },
    { phase: Phase.PHASE_REQUEST_BODY, bodyMode: 2, maxBodyBytes: 0 },
  ],
};

const fake: Fake = { handshake: GOOD_HANDSHAKE, reply: () => undefined, garbage: false };
const tmp = tempDir('httpmesh-fake-');
const socket = join(tmp.dir, 'fake.sock');
const server = new Server();
const service = {
  ...PluginService,
  process: {
    ...PluginService.process,
    // Lets a test put undecodable bytes on the wire.
    responseSerialize: (m: ProcessingResponse): Buffer =>
      fake.garbage
        ? Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])
        : PluginService.process.responseSerialize(m),
  },
};
server.addService(service, {
  handshake: (_c: unknown, cb: (e: null, r: HandshakeResponse) => void) => cb(null, fake.handshake),
  health: (_c: unknown, cb: (e: null, r: { serving: boolean }) => void) => cb(null, { serving: true }),
  process: (call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>) => {
    call.on('data', (req: ProcessingRequest) => {
      const r = fake.reply(req);
      if (r) call.write(r);
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  },
});

beforeAll(async () => {
  await new Promise<void>((resolve, reject) =>
    server.bindAsync(`unix:${socket}`, ServerCredentials.createInsecure(), (e) =>
      e ? reject(e) : resolve(),
    ),
  );
});
afterAll(() => {
  server.forceShutdown();
  tmp.remove();
});

const clients: PluginClient[] = [];
afterEach(() => {
  for (const c of clients.splice(0)) c.close();
  fake.handshake = GOOD_HANDSHAKE;
  fake.garbage = false;
  fake.reply = () => undefined;
});

async function connect(options: PluginClientOptions = {}): Promise<PluginClient> {
  const c = await PluginClient.connect(socket, { timeoutMs: 1000, ...options });
  clients.push(c);
  return c;
}

const HEAD = { method: 'GET', scheme: 'http', authority: 'a.test', path: '/', headers: [] };

function answer(action: ProcessingResponse['action'], phase = Phase.PHASE_REQUEST_HEADERS) {
  return (req: ProcessingRequest): ProcessingResponse => ({ exchangeId: req.exchangeId, phase, action });
}

async function decide(client: PluginClient, failureMode: 'open' | 'closed') {
  const ex = client.startExchange({ failureMode });
  const d = await ex.onRequestHeaders(HEAD);
  ex.close();
  return d;
}

const BAD_REPLIES: ReadonlyArray<{
  what: string;
  code: string;
  reply: (req: ProcessingRequest) => ProcessingResponse;
}> = [
  { what: 'no action', code: 'HTTPMESH_PLUGIN_REPLY_MALFORMED', reply: answer(undefined) },
  {
    what: 'wrong phase',
    code: 'HTTPMESH_PLUGIN_REPLY_WRONG_PHASE',
    reply: answer({ $case: 'proceed', value: {} }, Phase.PHASE_RESPONSE_HEADERS),
  },
  {
    what: 'unknown phase number',
    code: 'HTTPMESH_PLUGIN_REPLY_WRONG_PHASE',
    reply: answer({ $case: 'proceed', value: {} }, 42 as Phase),
  },
  {
    what: 'CR/LF in a header value (response splitting)',
    code: 'HTTPMESH_PLUGIN_REPLY_INVALID_HEADER',
    reply: answer({
      $case: 'mutate',
      value: {
        headers: { set: [{ name: 'x-a', value: 'ok\r\nset-cookie: evil=1' }], append: [], remove: [] },
      },
    }),
  },
  {
    what: 'LF in a header name',
    code: 'HTTPMESH_PLUGIN_REPLY_INVALID_HEADER',
    reply: answer({
      $case: 'mutate',
      value: { headers: { set: [], append: [{ name: 'x-a\nx-b', value: '1' }], remove: [] } },
    }),
  },
  {
    what: 'empty header name in remove',
    code: 'HTTPMESH_PLUGIN_REPLY_INVALID_HEADER',
    reply: answer({ $case: 'mutate', value: { headers: { set: [], append: [], remove: [''] } } }),
  },
  {
    what: 'a proxy-owned header (content-length)',
    code: 'HTTPMESH_PLUGIN_REPLY_INVALID_HEADER',
    reply: answer({
      $case: 'mutate',
      value: { headers: { set: [{ name: 'Content-Length', value: '5' }], append: [], remove: [] } },
    }),
  },
  {
    what: 'CR in an immediate-response header',
    code: 'HTTPMESH_PLUGIN_REPLY_INVALID_HEADER',
    reply: answer({
      $case: 'immediate',
      value: { status: 403, headers: [{ name: 'x-a', value: 'a\rb' }], body: Buffer.alloc(0) },
    }),
  },
  {
    what: 'body replacement in a headers phase',
    code: 'HTTPMESH_PLUGIN_REPLY_MALFORMED',
    reply: answer({ $case: 'mutate', value: { headers: undefined, body: Buffer.from('x') } }),
  },
  {
    what: 'an empty mutation',
    code: 'HTTPMESH_PLUGIN_REPLY_MALFORMED',
    reply: answer({ $case: 'mutate', value: { headers: undefined, body: undefined } }),
  },
  {
    what: 'an immediate response with status 99',
    code: 'HTTPMESH_PLUGIN_REPLY_INVALID_STATUS',
    reply: answer({ $case: 'immediate', value: { status: 99, headers: [], body: Buffer.alloc(0) } }),
  },
  {
    what: 'an immediate response with status 600',
    code: 'HTTPMESH_PLUGIN_REPLY_INVALID_STATUS',
    reply: answer({ $case: 'immediate', value: { status: 600, headers: [], body: Buffer.alloc(0) } }),
  },
  {
    what: 'an immediate-response body over the limit',
    code: 'HTTPMESH_PLUGIN_REPLY_BODY_TOO_LARGE',
    reply: answer({ $case: 'immediate', value: { status: 200, headers: [], body: Buffer.alloc(4097) } }),
  },
  {
    what: 'a handler failure',
    code: 'HTTPMESH_PLUGIN_HANDLER_ERROR',
    reply: answer({ $case: 'failure', value: { message: 'kaput' } }),
  },
];

describe('every plugin reply is validated; a bad one is a plugin failure', () => {
  for (const bad of BAD_REPLIES) {
    test(`${bad.what} -> ${bad.code} (fail-open continues, fail-closed 503)`, async () => {
      fake.reply = bad.reply;
      const client = await connect({ maxReplyBodyBytes: 4096 });
      const open = await decide(client, 'open');
      expect(open).toMatchObject({ kind: 'continue', failure: { code: bad.code, plugin: 'fake' } });
      const closed = await decide(client, 'closed');
      expect(closed).toMatchObject({ kind: 'respond', status: 503, failure: { code: bad.code } });
      expect(closed.kind === 'respond' && closed.headers).toContainEqual(['x-httpmesh-error', bad.code]);
      expect(client.metrics.snapshot().errors[bad.code]).toBe(2);
    });
  }

  test('a replaced body over the limit -> HTTPMESH_PLUGIN_REPLY_BODY_TOO_LARGE', async () => {
    fake.reply = answer(
      { $case: 'mutate', value: { headers: undefined, body: Buffer.alloc(5000) } },
      Phase.PHASE_REQUEST_BODY,
    );
    const client = await connect({ maxReplyBodyBytes: 4096 });
    const ex = client.startExchange();
    const d = await ex.onRequestBody(Buffer.from('x'), true);
    ex.close();
    expect(d).toMatchObject({ kind: 'continue', failure: { code: 'HTTPMESH_PLUGIN_REPLY_BODY_TOO_LARGE' } });
  });

  test('a BUFFERED body over the limit keeps failing for later chunks and is never sent truncated', async () => {
    let sent = 0;
    fake.reply = (req) => {
      sent++;
      return {
        exchangeId: req.exchangeId,
        phase: Phase.PHASE_REQUEST_BODY,
        action: { $case: 'proceed', value: {} },
      };
    };
    const client = await connect({ defaultMaxBodyBytes: 100 });
    expect(client.bodyDelivery('requestBody')).toEqual({ mode: 'buffered', maxBytes: 100 });
    const ex = client.startExchange({ failureMode: 'closed' });
    expect(await ex.onRequestBody(Buffer.alloc(60), false)).toEqual({ kind: 'continue' });
    const over = await ex.onRequestBody(Buffer.alloc(60), false);
    expect(over).toMatchObject({
      kind: 'respond',
      status: 503,
      failure: { code: 'HTTPMESH_PLUGIN_BODY_TOO_LARGE' },
    });
    expect(await ex.onRequestBody(Buffer.alloc(1), true)).toBe(over);
    ex.close();
    expect(sent).toBe(0);
    expect(client.metrics.snapshot().errors['HTTPMESH_PLUGIN_BODY_TOO_LARGE']).toBe(1);
  });

  test('header mutation in a body phase -> HTTPMESH_PLUGIN_REPLY_MALFORMED', async () => {
    fake.reply = answer(
      { $case: 'mutate', value: { headers: { set: [{ name: 'x-a', value: '1' }], append: [], remove: [] } } },
      Phase.PHASE_REQUEST_BODY,
    );
    const client = await connect();
    const ex = client.startExchange();
    const d = await ex.onRequestBody(Buffer.from('x'), true);
    ex.close();
    expect(d).toMatchObject({ kind: 'continue', failure: { code: 'HTTPMESH_PLUGIN_REPLY_MALFORMED' } });
  });

  test('undecodable bytes on the stream -> HTTPMESH_PLUGIN_REPLY_MALFORMED, and the next exchange recovers', async () => {
    fake.reply = answer({ $case: 'proceed', value: {} });
    fake.garbage = true;
    const client = await connect();
    expect(await decide(client, 'closed')).toMatchObject({
      kind: 'respond',
      status: 503,
      failure: { code: 'HTTPMESH_PLUGIN_REPLY_MALFORMED' },
    });
    fake.garbage = false;
    expect(await decide(client, 'closed')).toEqual({ kind: 'continue' });
  });

  test('no reply at all -> HTTPMESH_PLUGIN_TIMEOUT after the per-message timeout', async () => {
    const client = await connect({ timeoutMs: 50 });
    expect(await decide(client, 'closed')).toMatchObject({
      status: 503,
      failure: { code: 'HTTPMESH_PLUGIN_TIMEOUT' },
    });
    expect(client.metrics.snapshot().timeouts).toBe(1);
  });

  test('a reply for an unknown exchange id is ignored and counted', async () => {
    fake.reply = (req) => ({
      exchangeId: req.exchangeId + 1000,
      phase: Phase.PHASE_REQUEST_HEADERS,
      action: { $case: 'proceed', value: {} },
    });
    const client = await connect({ timeoutMs: 50 });
    expect(await decide(client, 'open')).toMatchObject({ failure: { code: 'HTTPMESH_PLUGIN_TIMEOUT' } });
    await expect.poll(() => client.lateReplies).toBe(1);
  });

  test('a valid mutation decision is returned as data', async () => {
    fake.reply = answer({
      $case: 'mutate',
      value: { headers: { set: [{ name: 'X-Up', value: 'v' }], append: [], remove: ['X-Gone'] } },
    });
    const client = await connect();
    expect(await decide(client, 'closed')).toEqual({
      kind: 'mutate',
      headers: { set: [['x-up', 'v']], append: [], remove: ['x-gone'] },
    });
  });
});

describe('the handshake is validated', () => {
  const BAD: ReadonlyArray<{ what: string; handshake: HandshakeResponse }> = [
    { what: 'a future protocol version', handshake: { ...GOOD_HANDSHAKE, protocolVersion: 2 } },
    { what: 'protocol version 0 (empty handshake)', handshake: { ...GOOD_HANDSHAKE, protocolVersion: 0 } },
    { what: 'an empty name', handshake: { ...GOOD_HANDSHAKE, name: '' } },
    { what: 'a name with a newline', handshake: { ...GOOD_HANDSHAKE, name: 'a\nb' } },
    {
      what: 'an unknown phase',
      handshake: { ...GOOD_HANDSHAKE, phases: [{ phase: 99 as Phase, bodyMode: 0, maxBodyBytes: 0 }] },
    },
    {
      what: 'an unknown body mode',
      handshake: {
        ...GOOD_HANDSHAKE,
        phases: [{ phase: Phase.PHASE_REQUEST_BODY, bodyMode: 7 as BodyMode, maxBodyBytes: 0 }],
      },
    },
    {
      what: 'a phase declared twice',
      handshake: {
        ...GOOD_HANDSHAKE,
        phases: [
          { phase: Phase.PHASE_REQUEST_HEADERS, bodyMode: 0, maxBodyBytes: 0 },
          { phase: Phase.PHASE_REQUEST_HEADERS, bodyMode: 0, maxBodyBytes: 0 },
        ],
      },
    },
  ];
  for (const bad of BAD) {
    test(`rejects ${bad.what} with HTTPMESH_PLUGIN_HANDSHAKE_FAILED`, async () => {
      fake.handshake = bad.handshake;
      await expect(connect()).rejects.toMatchObject({ code: 'HTTPMESH_PLUGIN_HANDSHAKE_FAILED' });
    });
  }

  test('nobody listening -> HTTPMESH_PLUGIN_HANDSHAKE_FAILED after the handshake timeout', async () => {
    await expect(
      PluginClient.connect(join(tmp.dir, 'nobody.sock'), { handshakeTimeoutMs: 200 }),
    ).rejects.toMatchObject({ code: 'HTTPMESH_PLUGIN_HANDSHAKE_FAILED' });
  });

  test('phases not declared are never sent', async () => {
    let seen = 0;
    fake.reply = (req) => {
      seen++;
      return {
        exchangeId: req.exchangeId,
        phase: Phase.PHASE_REQUEST_HEADERS,
        action: { $case: 'proceed', value: {} },
      };
    };
    const client = await connect();
    const ex = client.startExchange();
    expect(await ex.onRequestHeaders(HEAD)).toEqual({ kind: 'continue' });
    expect(await ex.onResponseHeaders({ status: 200, headers: [] })).toEqual({ kind: 'continue' });
    expect(await ex.onRequestTrailers([])).toEqual({ kind: 'continue' });
    ex.complete({ status: 200, totalMs: 1 });
    expect(seen).toBe(1);
    expect(client.inFlight).toBe(0);
  });
});
