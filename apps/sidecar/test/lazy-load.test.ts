/**
 * The sidecar loads a dependency only when its configuration uses it (README "Memory"): a sidecar fed by a
 * rules file (without plugins) never loads a gRPC client (rule-sync's nice-grpc, plugin-sdk's grpc-js) and,
 * until /metrics is scraped, no OpenTelemetry package; the OTLP exporter never. Checked on the built bin
 * (dist/cli.js), with a preload (test/fixtures/loaded-packages.mjs) that lists the packages in the module
 * cache at exit.
 */
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { adminGet, type SidecarProcess, startSidecarProcess, tempDir, viaProxy } from './plugins-harness.js';

const preload = new URL('./fixtures/loaded-packages.mjs', import.meta.url).pathname;
const RULES = `routes:\n  - host: 127.0.0.1\n    patterns: ['/items/:id']\n`;
const dirs: { remove(): void }[] = [];
let upstream: Server;
let upstreamPort = 0;

interface ProbedSidecar {
  readonly sidecar: SidecarProcess;
  readonly loadedFile: string;
}

/** A probed sidecar in a fresh directory, or in `dir` (whose CA and state a previous start left). */
async function startProbed(
  opts: { omitRules?: boolean; args?: readonly string[]; dir?: string } = {},
): Promise<ProbedSidecar> {
  const { dir: reuse, ...rest } = opts;
  let dir = reuse;
  if (dir === undefined) {
    const created = tempDir('httpmesh-sidecar-lazy-');
    dirs.push(created);
    dir = created.dir;
  }
  const loadedFile = join(dir, `loaded-${dirs.length}-${Date.now()}.json`);
  const sidecar = await startSidecarProcess({
    dir,
    rules: RULES,
    nodeArgs: ['--import', preload],
    env: { LOADED_PACKAGES_FILE: loadedFile },
    ...rest,
  });
  return { sidecar, loadedFile };
}

/** SIGTERM, exit 0, then the packages the process had loaded. */
async function stop({ sidecar, loadedFile }: ProbedSidecar): Promise<string[]> {
  expect(await sidecar.stop()).toBe(0);
  return JSON.parse(readFileSync(loadedFile, 'utf8')) as string[];
}

// The gRPC stack: rule-sync's client (nice-grpc) and, under it and under plugin-sdk's client, grpc-js. Plugin
// rules are validated through plugin-sdk's light `config` entry, so without plugins grpc-js stays unloaded.
const GRPC = ['nice-grpc', 'nice-grpc-common', 'abort-controller-x', '@grpc/grpc-js'];
const otel = (loaded: string[]) => loaded.filter((p) => p.startsWith('@opentelemetry/'));

beforeAll(async () => {
  upstream = createServer((req, res) => res.end(`upstream ${req.url}`));
  upstream.listen(0, '127.0.0.1');
  await once(upstream, 'listening');
  upstreamPort = (upstream.address() as AddressInfo).port;
});

afterAll(() => {
  upstream?.close();
  for (const dir of dirs) dir.remove();
});

describe('lazy loading (built bin, module cache at exit)', () => {
  test('rules file, traffic, no scrape: no gRPC, no OpenTelemetry; undici is seen', async () => {
    const probed = await startProbed();
    const proxied = await viaProxy(probed.sidecar.proxyPort, upstreamPort, '/items/7');
    expect([proxied.status, proxied.body]).toEqual([200, 'upstream /items/7']);
    expect((await adminGet(probed.sidecar.adminPort, '/readyz')).status).toBe(200);
    const loaded = await stop(probed);
    // The probe sees what is loaded: mitm-core's upstream client is there.
    expect(loaded).toContain('undici');
    expect(loaded).toContain('yaml');
    for (const name of GRPC) expect(loaded).not.toContain(name);
    expect(otel(loaded)).toEqual([]);
  });

  test('with an existing CA directory the CA is loaded without @peculiar/x509 (only creating one needs it)', async () => {
    const dir = tempDir('httpmesh-sidecar-lazy-ca-');
    dirs.push(dir);
    const peculiar = (loaded: string[]) => loaded.filter((p) => p.startsWith('@peculiar/'));
    // First start: no CA yet, so the sidecar creates one, which is what the library is for.
    const first = await startProbed({ dir: dir.dir });
    expect(peculiar(await stop(first))).toContain('@peculiar/x509');
    // Second start: the CA exists; loading it and serving traffic touches none of the @peculiar packages.
    const second = await startProbed({ dir: dir.dir });
    const proxied = await viaProxy(second.sidecar.proxyPort, upstreamPort, '/items/9');
    expect(proxied.status).toBe(200);
    expect(peculiar(await stop(second))).toEqual([]);
  });

  test('a /metrics scrape loads the Prometheus exporter and the SDK, never the OTLP exporter', async () => {
    const probed = await startProbed();
    await viaProxy(probed.sidecar.proxyPort, upstreamPort, '/items/8');
    const scrape = await adminGet(probed.sidecar.adminPort, '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.body).toContain('http_route="/items/:id"');
    const loaded = await stop(probed);
    expect(otel(loaded)).toEqual(
      expect.arrayContaining(['@opentelemetry/exporter-prometheus', '@opentelemetry/sdk-metrics']),
    );
    expect(loaded).not.toContain('@opentelemetry/exporter-metrics-otlp-http');
    for (const name of GRPC) expect(loaded).not.toContain(name);
  });

  test('--control-plane loads the gRPC client (and only then)', async () => {
    // A loopback port where nothing answers gRPC: the sidecar starts, not ready, and keeps retrying.
    const closed = createNetServer((socket) => socket.destroy());
    closed.listen(0, '127.0.0.1');
    await once(closed, 'listening');
    try {
      const port = (closed.address() as AddressInfo).port;
      const probed = await startProbed({ omitRules: true, args: ['--control-plane', `127.0.0.1:${port}`] });
      expect((await adminGet(probed.sidecar.adminPort, '/readyz')).status).toBe(503);
      const loaded = await stop(probed);
      for (const name of GRPC) expect(loaded).toContain(name);
    } finally {
      closed.close();
    }
  });
});
