/**
 * `run` with --control-plane: a real rule-sync server on loopback pushes intercept rules and route sets;
 * the sidecar becomes ready, measures with the pushed patterns, follows updates, NACKs a bad push while
 * keeping the last good rules, and after a restart without the control plane serves the persisted copy.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  createRuleSyncServer,
  InterceptRule_Action,
  type Resource,
  type RuleSyncServer,
} from '@httpmesh/rule-sync';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { createLogger, resolveOptions } from '../src/index.js';
import { followInterceptFile, type InterceptFileContent } from '../src/intercept-file.js';
import { type SidecarRuntime, startSidecar } from '../src/run.js';
import { getLocal, listenOnLoopback, loopbackRunArgs, waitFor } from './plugins-harness.js';

const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-cp-'));
let upstream: Server;
let upstreamPort = 0;
let server: RuleSyncServer;
let cpPort = 0;
const runtimes: SidecarRuntime[] = [];
const group = { service: 'checkout' };

function resources(routePattern: string, domain = '*.partner.test'): Resource[] {
  return [
    {
      name: 'partner',
      version: '',
      body: {
        $case: 'interceptRule',
        value: {
          name: 'partner',
          domain,
          action: InterceptRule_Action.ACTION_INTERCEPT,
          upstreamTlsVerify: undefined,
        },
      },
    },
    {
      name: 'loopback',
      version: '',
      body: {
        $case: 'routeSet',
        value: { name: 'loopback', host: '127.0.0.1', routes: [{ pattern: routePattern, methods: [] }] },
      },
    },
  ];
}

async function start(transparent = false): Promise<SidecarRuntime> {
  const { options } = resolveOptions(
    'run',
    [
      ...loopbackRunArgs(join(dir, 'ca')),
      '--control-plane',
      `127.0.0.1:${cpPort}`,
      '--service',
      'checkout',
      '--rules-cache',
      join(dir, 'rules.bin'),
      '--log-level',
      'silent',
    ],
    {},
    dir,
  );
  // Transparent mode on ports 0: only the rules path is exercised here (nothing is redirected to it).
  const effective = transparent
    ? {
        ...options,
        mode: 'transparent' as const,
        outboundPort: 0,
        inboundPort: 0,
        interceptFile: join(dir, 'published', 'intercept.json'),
        rulesCache: join(dir, 'rules-transparent.bin'),
      }
    : options;
  const runtime = await startSidecar(effective, createLogger('silent'));
  runtimes.push(runtime);
  return runtime;
}

const config = async (rt: SidecarRuntime) =>
  JSON.parse((await getLocal(rt.adminAddress.port, '/config')).body) as {
    rules: {
      source: string;
      version: string | null;
      intercept: { domain: string }[];
      routes: { routes: { pattern: string }[] }[];
    };
  };

beforeAll(async () => {
  upstream = createServer((req, res) => res.end(JSON.stringify({ path: req.url })));
  upstreamPort = await listenOnLoopback(upstream);
  server = createRuleSyncServer({ insecure: true, debounce: { quietMs: 10, maxDelayMs: 100 } });
  cpPort = await server.listen('127.0.0.1:0');
});

afterAll(async () => {
  for (const rt of runtimes) await rt.drain(1000).catch(() => {});
  await server?.close(100);
  upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('run with --control-plane', () => {
  test('becomes ready with pushed rules, measures with them and follows updates; a bad push is NACKed', async () => {
    server.setResources(group, resources('/items/:id'));
    const rt = await start();
    await waitFor(
      async () => (await getLocal(rt.adminAddress.port, '/readyz')).status,
      (s) => s === 200,
    );
    // Intercept rules and route sets arrive as two updates; ready follows the first of them.
    const first = await waitFor(
      () => config(rt),
      (c) => c.rules.routes.length > 0 && c.rules.intercept.length > 0,
    );
    expect(first.rules.source).toBe('control-plane');
    expect(first.rules.intercept.map((r) => r.domain)).toEqual(['*.partner.test']);

    const url = `http://127.0.0.1:${upstreamPort}/items/5`;
    expect((await getLocal(rt.proxyAddress.port, url, { host: `127.0.0.1:${upstreamPort}` })).status).toBe(
      200,
    );
    await waitFor(
      async () => (await getLocal(rt.adminAddress.port, '/metrics')).body,
      (m) => m.includes('http_route="/items/:id"'),
    );

    server.setResources(group, resources('/orders/:id'));
    // Each resource type is its own push, so the version can move before the route set does: wait for the routes.
    const second = await waitFor(
      () => config(rt),
      (c) => c.rules.routes[0]?.routes[0]?.pattern === '/orders/:id',
    );
    expect(second.rules.version).not.toBe(first.rules.version);

    // A domain the sidecar refuses (a whole TLD): NACKed, the last good rules stay.
    const nacked = new Promise<void>((resolve) => server.once('nack', () => resolve()));
    server.setResources(group, resources('/orders/:id', '*.test'));
    await nacked;
    expect((await config(rt)).rules.version).toBe(second.rules.version);
    await rt.drain(1000);
  });

  test('transparent mode publishes pushed intercept rules to the intercept file init-net --follow applies', async () => {
    server.setResources(group, resources('/orders/:id', '*.partner.test'));
    const rt = await start(true);
    const seen: InterceptFileContent[] = [];
    const follower = followInterceptFile(
      join(dir, 'published', 'intercept.json'),
      null,
      async (content) => {
        seen.push(content);
      },
      (e) => {
        throw e;
      },
      10,
    );
    try {
      await waitFor(
        async () => seen.map((c) => c.intercept.map((r) => r.domain).join(',')),
        (domains) => domains.includes('*.partner.test'),
      );
      server.setResources(group, resources('/orders/:id', 'api.extra.test'));
      await waitFor(
        async () => seen.at(-1)?.intercept.map((r) => r.domain),
        (domains) => domains?.[0] === 'api.extra.test',
      );
      expect(seen.at(-1)?.version).toBe((await config(rt)).rules.version);
    } finally {
      follower.close();
      await rt.drain(1000);
    }
  });

  test('restarted with the control plane gone, it serves the persisted last good rules', async () => {
    await server.close(100);
    const rt = await start();
    const restored = await waitFor(
      () => config(rt),
      (c) => c.rules.version !== null,
    );
    expect(restored.rules.routes[0]?.routes[0]?.pattern).toBe('/orders/:id');
    expect((await getLocal(rt.adminAddress.port, '/readyz')).status).toBe(200);
  });

  test('--control-plane with --rules, or off loopback without mTLS files, is a usage error', async () => {
    const both = resolveOptions(
      'run',
      ['--control-plane', '127.0.0.1:1', '--rules', join(dir, 'r.yaml'), '--ca-dir', join(dir, 'ca')],
      {},
      dir,
    ).options;
    await expect(startSidecar(both, createLogger('silent'))).rejects.toMatchObject({
      code: 'HTTPMESH_SIDECAR_USAGE',
    });
    const remote = resolveOptions(
      'run',
      ['--control-plane', 'cp.example:7000', '--ca-dir', join(dir, 'ca')],
      {},
      dir,
    ).options;
    await expect(startSidecar(remote, createLogger('silent'))).rejects.toMatchObject({
      code: 'HTTPMESH_SIDECAR_USAGE',
    });
  });
});
