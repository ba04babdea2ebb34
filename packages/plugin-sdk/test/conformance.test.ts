import { statSync } from 'node:fs';
import {
  type ClientDuplexStream,
  credentials,
  makeGenericClientConstructor,
  type ServiceError,
} from '@grpc/grpc-js';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { PluginService, type ProcessingRequest, type ProcessingResponse } from '../src/gen/plugin.js';
import { applyHeaderMutation, type Decision, type RequestHead } from '../src/index.js';
import {
  type Command,
  pyPlugin,
  pythonMissing,
  type RunningPlugin,
  startPlugin,
  tsPlugin,
} from './helpers.js';

const missing = pythonMissing();
if (missing && process.env['CI']) throw new Error(`CI must run the Python conformance suite: ${missing}`);

const languages: ReadonlyArray<{ lang: string; cmd: Command; skip: string | undefined }> = [
  { lang: 'typescript', cmd: tsPlugin('test/fixtures/conformance-plugin.ts'), skip: undefined },
  { lang: 'python', cmd: pyPlugin('python/conformance_plugin.py'), skip: missing },
];

function head(path: string, headers: ReadonlyArray<readonly [string, string]> = []): RequestHead {
  return { method: 'GET', scheme: 'https', authority: 'api.example.test', path, headers };
}

function mutated(d: Decision, base: ReadonlyArray<readonly [string, string]> = []) {
  if (d.kind !== 'mutate' || !d.headers)
    throw new Error(`expected a header mutation, got ${JSON.stringify(d)}`);
  return applyHeaderMutation(base, d.headers);
}

for (const { lang, cmd, skip } of languages) {
  describe.skipIf(skip !== undefined)(`conformance: ${lang} SDK${skip ? ` (skipped: ${skip})` : ''}`, () => {
    let plugin: RunningPlugin;
    beforeAll(async () => {
      plugin = await startPlugin(cmd, { timeoutMs: 2000 });
    }, 30_000);
    afterAll(async () => {
      await plugin?.stop();
    });

    test('handshake declares name, version, protocol and per-phase body modes', () => {
      const info = plugin.client.info;
      expect(info.name).toBe('conformance');
      expect(info.version).toBe('1.0.0');
      expect(info.protocolVersion).toBe(1);
      expect(info.observeOnly).toBe(false);
      expect(info.phases.get('requestBody')).toEqual({ mode: 'buffered', maxBytes: 1024 });
      expect(info.phases.get('responseBody')?.mode).toBe('streamed');
      expect([...info.phases.keys()].sort()).toEqual(
        [
          'complete',
          'requestBody',
          'requestHeaders',
          'requestTrailers',
          'responseBody',
          'responseHeaders',
          'responseTrailers',
        ].sort(),
      );
    });

    test('the socket is private to its owner (0600)', () => {
      expect(statSync(plugin.socket).mode & 0o777).toBe(0o600);
    });

    test('request headers: set, append, remove', async () => {
      const base = [
        ['x-conf', 'old'],
        ['x-drop', 'a'],
        ['x-drop', 'b'],
      ] as const;
      let ex = plugin.client.startExchange();
      expect(mutated(await ex.onRequestHeaders(head('/set', base)), base)).toEqual([
        ['x-drop', 'a'],
        ['x-drop', 'b'],
        ['x-conf', 'set'],
      ]);
      ex.close();
      ex = plugin.client.startExchange();
      expect(mutated(await ex.onRequestHeaders(head('/append', base)), base)).toEqual([
        ...base,
        ['x-conf', 'appended'],
      ]);
      ex.close();
      ex = plugin.client.startExchange();
      expect(mutated(await ex.onRequestHeaders(head('/remove', base)), base)).toEqual([['x-conf', 'old']]);
      ex.close();
      ex = plugin.client.startExchange();
      expect(mutated(await ex.onRequestHeaders(head('/'))).find(([n]) => n === 'x-plugin-lang')?.[1]).toBe(
        lang,
      );
      ex.close();
    });

    test('immediate response short-circuits with status, headers and body', async () => {
      const ex = plugin.client.startExchange();
      const d = await ex.onRequestHeaders(head('/respond'));
      expect(d).toMatchObject({ kind: 'respond', status: 418, headers: [['x-conf', 'teapot']] });
      expect(d.kind === 'respond' && d.body.toString()).toBe('short and stout');
      ex.close();
    });

    test('buffered request body is sent whole once and replaced', async () => {
      const ex = plugin.client.startExchange();
      await ex.onRequestHeaders(head('/'));
      expect(await ex.onRequestBody(Buffer.from('hello '), false)).toEqual({ kind: 'continue' });
      const d = await ex.onRequestBody(Buffer.from('world'), true);
      expect(d.kind === 'mutate' && d.body?.toString()).toBe('HELLO WORLD');
      ex.close();
    });

    test('buffered body over the declared limit is a plugin failure (HTTPMESH_PLUGIN_BODY_TOO_LARGE)', async () => {
      const open = plugin.client.startExchange();
      const d = await open.onRequestBody(Buffer.alloc(2000), true);
      expect(d).toMatchObject({ kind: 'continue', failure: { code: 'HTTPMESH_PLUGIN_BODY_TOO_LARGE' } });
      open.close();
      const closed = plugin.client.startExchange({ failureMode: 'closed' });
      const d2 = await closed.onRequestBody(Buffer.alloc(2000), true);
      expect(d2).toMatchObject({ kind: 'respond', status: 503 });
      closed.close();
    });

    test('request trailers, response headers, streamed response body, response trailers', async () => {
      const ex = plugin.client.startExchange();
      await ex.onRequestHeaders(head('/'));
      expect(mutated(await ex.onRequestTrailers([['x-checksum', 'abc']]))).toEqual([
        ['x-trailer', 'seen-abc'],
      ]);
      expect(mutated(await ex.onResponseHeaders({ status: 201, headers: [] }))).toEqual([['x-resp', '201']]);
      const c1 = await ex.onResponseBody(Buffer.from('one'), false);
      const c2 = await ex.onResponseBody(Buffer.from('two'), true);
      expect(c1.kind === 'mutate' && c1.body?.toString()).toBe('[one]');
      expect(c2.kind === 'mutate' && c2.body?.toString()).toBe('[two]');
      const t = [
        ['x-secret', 's'],
        ['x-keep', 'k'],
      ] as const;
      expect(mutated(await ex.onResponseTrailers(t), t)).toEqual([['x-keep', 'k']]);
      ex.close();
    });

    test('response headers can answer immediately', async () => {
      const ex = plugin.client.startExchange();
      const d = await ex.onResponseHeaders({ status: 500, headers: [] });
      expect(d).toMatchObject({ kind: 'respond', status: 502 });
      ex.close();
    });

    test('completion events reach the plugin', async () => {
      const before = plugin.client.startExchange();
      const d0 = await before.onRequestHeaders(head('/completions'));
      before.close();
      const n0 = Number(d0.kind === 'respond' ? d0.body.toString() : Number.NaN);
      for (let i = 0; i < 3; i++) {
        const ex = plugin.client.startExchange();
        await ex.onRequestHeaders(head('/'));
        ex.complete({ status: 200, totalMs: 1.5, upstreamMs: 1 });
      }
      await expect
        .poll(async () => {
          const ex = plugin.client.startExchange();
          const d = await ex.onRequestHeaders(head('/completions'));
          ex.close();
          return d.kind === 'respond' ? Number(d.body.toString()) : -1;
        })
        .toBe(n0 + 3);
    });

    test('a handler that throws fails fast (HTTPMESH_PLUGIN_HANDLER_ERROR), open and closed', async () => {
      // A 20 s timeout: getting HANDLER_ERROR rather than TIMEOUT shows the host did not wait.
      const open = plugin.client.startExchange({ timeoutMs: 20_000 });
      const d = await open.onRequestHeaders(head('/throw'));
      expect(d).toMatchObject({ kind: 'continue', failure: { code: 'HTTPMESH_PLUGIN_HANDLER_ERROR' } });
      open.close();
      const closed = plugin.client.startExchange({ failureMode: 'closed' });
      const d2 = await closed.onRequestHeaders(head('/throw'));
      expect(d2).toMatchObject({
        kind: 'respond',
        status: 503,
        headers: [
          ['x-httpmesh-error', 'HTTPMESH_PLUGIN_HANDLER_ERROR'],
          ['content-type', 'text/plain; charset=utf-8'],
        ],
      });
      closed.close();
    });

    test('a reply the SDK cannot encode is reported as a handler failure, and the plugin lives on', async () => {
      const ex = plugin.client.startExchange();
      expect(await ex.onRequestHeaders(head('/bad-reply'))).toMatchObject({
        kind: 'continue',
        failure: { code: 'HTTPMESH_PLUGIN_HANDLER_ERROR' },
      });
      ex.close();
      expect(await plugin.client.health()).toBe(true);
    });

    test('a slow plugin times out: fail-open continues, fail-closed answers 503; others are unaffected', async () => {
      const open = plugin.client.startExchange({ timeoutMs: 100 });
      const closed = plugin.client.startExchange({ timeoutMs: 100, failureMode: 'closed' });
      const fast = plugin.client.startExchange();
      const [a, b, c] = await Promise.all([
        open.onRequestHeaders(head('/slow')),
        closed.onRequestHeaders(head('/slow')),
        fast.onRequestHeaders(head('/set')),
      ]);
      expect(a).toMatchObject({ kind: 'continue', failure: { code: 'HTTPMESH_PLUGIN_TIMEOUT' } });
      expect(b).toMatchObject({
        kind: 'respond',
        status: 503,
        headers: [
          ['x-httpmesh-error', 'HTTPMESH_PLUGIN_TIMEOUT'],
          ['content-type', 'text/plain; charset=utf-8'],
        ],
      });
      expect(c.kind).toBe('mutate');
      for (const ex of [open, closed, fast]) ex.close();
      expect(plugin.client.metrics.snapshot().timeouts).toBeGreaterThanOrEqual(2);
      // The late replies arrive after the timeout and are counted, not misrouted.
      await expect.poll(() => plugin.client.lateReplies, { timeout: 5000 }).toBeGreaterThanOrEqual(2);
    });

    test('malformed input from a host (undecodable bytes, empty message) does not take the plugin down', async () => {
      const Garbage = makeGenericClientConstructor(
        {
          ...PluginService,
          process: {
            ...PluginService.process,
            requestSerialize: () => Buffer.from([0x08, 0xff, 0xff, 0xff, 0xff, 0xff]),
          },
        },
        'httpmesh.plugin.v1.Plugin',
      );
      const raw = new Garbage(`unix:${plugin.socket}`, credentials.createInsecure());
      const call = (
        raw as unknown as { process(): ClientDuplexStream<ProcessingRequest, ProcessingResponse> }
      ).process();
      const ended = new Promise<ServiceError | undefined>((resolve) => {
        call.on('error', (e: ServiceError) => resolve(e));
        call.on('end', () => resolve(undefined));
        call.on('data', () => {});
      });
      call.write({ exchangeId: 1, message: undefined });
      call.end();
      await ended;
      raw.close();
      // A well-formed stream without any phase message is ignored too.
      const empty = new (makeGenericClientConstructor(PluginService, 'httpmesh.plugin.v1.Plugin'))(
        `unix:${plugin.socket}`,
        credentials.createInsecure(),
      );
      const call2 = (
        empty as unknown as { process(): ClientDuplexStream<ProcessingRequest, ProcessingResponse> }
      ).process();
      const replies: ProcessingResponse[] = [];
      const ended2 = new Promise<void>((resolve) => {
        call2.on('data', (r: ProcessingResponse) => replies.push(r));
        call2.on('error', () => resolve());
        call2.on('end', () => resolve());
      });
      call2.write({ exchangeId: 7, message: undefined });
      call2.end();
      await ended2;
      empty.close();
      expect(replies).toEqual([]);
      expect(await plugin.client.health()).toBe(true);
      const ex = plugin.client.startExchange();
      expect((await ex.onRequestHeaders(head('/set'))).kind).toBe('mutate');
      ex.close();
    });

    test('using an exchange wrongly is reported (HTTPMESH_PLUGIN_EXCHANGE_STATE)', async () => {
      const ex = plugin.client.startExchange();
      const first = ex.onRequestHeaders(head('/'));
      await expect(ex.onRequestHeaders(head('/'))).rejects.toMatchObject({
        code: 'HTTPMESH_PLUGIN_EXCHANGE_STATE',
      });
      await first;
      ex.close();
      await expect(ex.onResponseHeaders({ status: 200, headers: [] })).rejects.toMatchObject({
        code: 'HTTPMESH_PLUGIN_EXCHANGE_STATE',
      });
    });
  });
}
