/**
 * PluginConfig from the control plane: a real rule-sync server pushes a PluginConfig for an external
 * plugin (a real TypeScript plugin process on a Unix socket); the real sidecar process connects to it and
 * runs it per exchange; a malformed PluginConfig is NACKed and the plugin in force keeps working.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { join } from 'node:path';
import {
  createRuleSyncServer,
  PluginConfig_FailureMode,
  type Resource,
  type RuleSyncServer,
} from '@httpmesh/rule-sync';
import { afterAll, beforeAll, expect, test } from 'vitest';
import {
  adminGet,
  REPO_DIR,
  type SidecarProcess,
  seenHeaders,
  startSidecarProcess,
  startUpstream,
  TS_FIXTURE,
  tempDir,
  type Upstream,
  viaProxy,
  waitFor,
} from './plugins-harness.js';

const tmp = tempDir('httpmesh-sidecar-plugins-cp-');
const pluginSocket = join(tmp.dir, 'fixture.sock');
const group = { service: 'checkout' };
let upstream: Upstream;
let server: RuleSyncServer;
let plugin: ChildProcess;
let sidecar: SidecarProcess;

function resources(timeoutMs: number): Resource[] {
  return [
    {
      name: 'loopback',
      version: '',
      body: {
        $case: 'routeSet',
        value: { name: 'loopback', host: '127.0.0.1', routes: [{ pattern: '/items/:id', methods: [] }] },
      },
    },
    {
      name: 'fixture',
      version: '',
      body: {
        $case: 'pluginConfig',
        value: {
          name: 'fixture',
          address: `unix:${pluginSocket}`,
          phases: [],
          hosts: [],
          patterns: ['/items/*rest'],
          order: 1,
          timeoutMs,
          failureMode: PluginConfig_FailureMode.FAILURE_MODE_FAIL_CLOSED,
        },
      },
    },
  ];
}

beforeAll(async () => {
  upstream = await startUpstream();
  plugin = spawn(process.execPath, ['--import', 'tsx', TS_FIXTURE], {
    cwd: REPO_DIR,
    env: { ...process.env, HTTPMESH_PLUGIN_SOCKET: pluginSocket, PLUGIN_VERSION: 'cp' },
    stdio: 'ignore',
  });
  server = createRuleSyncServer({ insecure: true, debounce: { quietMs: 10, maxDelayMs: 100 } });
  const cpPort = await server.listen('127.0.0.1:0');
  server.setResources(group, resources(0));
  // No rules file: the rules and plugins come from the control plane.
  sidecar = await startSidecarProcess({
    dir: tmp.dir,
    rules: 'routes: []\n',
    omitRules: true,
    args: [
      '--control-plane',
      `127.0.0.1:${cpPort}`,
      '--service',
      'checkout',
      '--rules-cache',
      join(tmp.dir, 'rules-cache.bin'),
    ],
  });
}, 60_000);

afterAll(async () => {
  expect(await sidecar.stop()).toBe(0);
  await server.close(100);
  plugin.kill('SIGTERM');
  await upstream.close();
  tmp.remove();
});

test('a pushed PluginConfig is applied: the external plugin runs on matching exchanges only', async () => {
  const reply = await waitFor(
    () => viaProxy(sidecar.proxyPort, upstream.port, '/items/1'),
    (r) => r.status === 200 && seenHeaders(r)['x-plugin-version'] === 'cp',
    20_000,
  );
  expect(seenHeaders(reply)['x-plugin-lang']).toBe('typescript');
  const other = await viaProxy(sidecar.proxyPort, upstream.port, '/other');
  expect(seenHeaders(other)['x-plugin-lang']).toBeUndefined();
  // timeout_ms = 0 became the 200 ms default, FAIL_CLOSED became closed.
  const status = JSON.parse((await adminGet(sidecar.adminPort, '/plugins')).body) as Record<
    string,
    unknown
  >[];
  expect(status[0]).toMatchObject({
    name: 'fixture',
    address: `unix:${pluginSocket}`,
    timeoutMs: 200,
    failureMode: 'closed',
    state: 'ready',
  });
});

test('a PluginConfig the sidecar cannot use (timeout over 60 s) is NACKed; the plugin in force keeps working', async () => {
  const nacked = new Promise<void>((resolve) => server.once('nack', () => resolve()));
  server.setResources(group, resources(120_000));
  await nacked;
  const reply = await viaProxy(sidecar.proxyPort, upstream.port, '/items/2');
  expect(reply.status).toBe(200);
  expect(seenHeaders(reply)['x-plugin-version']).toBe('cp');
  // The log line travels through the sidecar's stderr pipe: wait for it.
  await sidecar.waitForLog(
    (l) => l.event === 'rules.nacked' && String(l['detail']).includes('plugins[0].timeoutMs'),
  );
});
