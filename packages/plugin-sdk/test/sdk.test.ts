import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, test } from 'vitest';
import { definePlugin, PluginClient } from '../src/index.js';
import { tempDir } from './helpers.js';

const HEAD = { method: 'GET', scheme: 'http', authority: 'a.test', path: '/', headers: [] };

describe('definePlugin / serve', () => {
  test('a plugin in a few lines, served on TCP loopback (port 0)', async () => {
    const served = await definePlugin({
      name: 'hello',
      version: '0.0.1',
      onRequestHeaders: () => ({ set: { 'x-hello': 'world' } }),
    }).serve({ port: 0, handleSignals: false });
    try {
      expect(served.address).toMatch(/^127\.0\.0\.1:\d+$/);
      expect(served.port).toBeGreaterThan(0);
      const client = await PluginClient.connect(served.address);
      expect([...client.info.phases.keys()]).toEqual(['requestHeaders']);
      const ex = client.startExchange();
      expect(await ex.onRequestHeaders(HEAD)).toEqual({
        kind: 'mutate',
        headers: { set: [['x-hello', 'world']], append: [], remove: [] },
      });
      ex.close();
      client.close();
    } finally {
      await served.close();
    }
  });

  test('a Unix socket is created 0600 and a stale socket file is replaced', async () => {
    const tmp = tempDir('httpmesh-sdk-');
    const socket = join(tmp.dir, 'p.sock');
    const p = definePlugin({ name: 'stale', onRequestHeaders: () => undefined });
    const first = await p.serve({ socket, handleSignals: false });
    await first.close();
    // Simulates a crash that left the socket file behind.
    const second = await p.serve({ socket, handleSignals: false });
    try {
      expect(statSync(socket).mode & 0o777).toBe(0o600);
      const client = await PluginClient.connect(second.address);
      expect(client.info.name).toBe('stale');
      client.close();
    } finally {
      await second.close();
      tmp.remove();
    }
  });

  test('observe-only is fire-and-forget: the host never waits for the handler', async () => {
    let release: () => void = () => {};
    const gate = new Promise<void>((r) => {
      release = r;
    });
    const seen: string[] = [];
    const served = await definePlugin({
      name: 'watcher',
      observeOnly: true,
      async onRequestHeaders(ctx) {
        await gate;
        seen.push(ctx.path);
        return { respond: { status: 500 } };
      },
      onComplete(ctx) {
        seen.push(`complete:${ctx.status}`);
      },
    }).serve({ port: 0, handleSignals: false });
    const client = await PluginClient.connect(served.address, { failureMode: 'closed' });
    try {
      expect(client.info.observeOnly).toBe(true);
      const ex = client.startExchange();
      // Resolves although the handler is still blocked on `gate`; its reply is never sent.
      expect(await ex.onRequestHeaders({ ...HEAD, path: '/watched' })).toEqual({ kind: 'continue' });
      ex.complete({ status: 204, totalMs: 3 });
      expect(client.inFlight).toBe(0);
      release();
      await expect.poll(() => seen).toEqual(['/watched', 'complete:204']);
      expect(client.metrics.snapshot().observed).toBe(2);
      expect(client.lateReplies).toBe(0);
    } finally {
      client.close();
      await served.close();
    }
  });

  test('body modes and limits are declared at handshake', async () => {
    const served = await definePlugin({
      name: 'bodies',
      requestBody: { mode: 'streamed' },
      responseBody: { mode: 'buffered', maxBytes: 10 },
      onRequestBody: () => undefined,
      onResponseBody: () => undefined,
    }).serve({ port: 0, handleSignals: false });
    const client = await PluginClient.connect(served.address);
    try {
      expect(client.bodyDelivery('requestBody')).toEqual({ mode: 'streamed', maxBytes: 1024 * 1024 });
      expect(client.bodyDelivery('responseBody')).toEqual({ mode: 'buffered', maxBytes: 10 });
      expect(client.wants('requestHeaders')).toBe(false);
    } finally {
      client.close();
      await served.close();
    }
  });

  test('invalid definitions are rejected with HTTPMESH_PLUGIN_CONFIG_INVALID', async () => {
    expect(() => definePlugin({ name: '' })).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
    );
    expect(() => definePlugin({ name: 'UPPER case' })).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
    );
    expect(() => definePlugin({ name: 'p', phases: ['requestHead' as 'requestHeaders'] })).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
    );
    expect(() =>
      definePlugin({
        name: 'p',
        requestBody: { mode: 'buffered', maxBytes: -1 },
        onRequestBody: () => undefined,
      }),
    ).toThrow(expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }));
    const saved = process.env['HTTPMESH_PLUGIN_SOCKET'];
    delete process.env['HTTPMESH_PLUGIN_SOCKET'];
    await expect(definePlugin({ name: 'nowhere' }).serve({ handleSignals: false })).rejects.toMatchObject({
      code: 'HTTPMESH_PLUGIN_CONFIG_INVALID',
    });
    if (saved !== undefined) process.env['HTTPMESH_PLUGIN_SOCKET'] = saved;
  });
});
