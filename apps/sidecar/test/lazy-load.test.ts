/**
 * The sidecar loads a dependency only when its configuration uses it (README "Memory"): a sidecar fed by a
 * rules file (without plugins) never loads a gRPC client (rule-sync's nice-grpc, plugin-sdk's grpc-js) and, until /metrics is
 * scraped, no OpenTelemetry package; the OTLP exporter never. Checked on the built bin (dist/cli.js), with
 * a preload (test/fixtures/loaded-packages.mjs) that lists the packages in the module cache at exit.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { type AddressInfo, createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const preload = new URL('./fixtures/loaded-packages.mjs', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-lazy-'));
const rulesFile = join(dir, 'rules.yaml');
let upstream: Server;
let upstreamPort = 0;

async function eventually<T>(probe: () => T, ok: (v: T) => boolean, ms = 15_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

interface Sidecar {
  readonly child: ChildProcess;
  readonly lines: Record<string, unknown>[];
  readonly loadedFile: string;
}

function startSidecar(name: string, extra: string[]): Sidecar {
  const loadedFile = join(dir, `${name}.loaded.json`);
  const child = spawn(
    process.execPath,
    [
      '--import',
      preload,
      cli,
      'run',
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--ca-dir',
      join(dir, 'ca'),
      '--control-socket',
      join(dir, `${name}.sock`),
      ...extra,
    ],
    {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '', LOADED_PACKAGES_FILE: loadedFile },
    },
  );
  const lines: Record<string, unknown>[] = [];
  let buffered = '';
  child.stderr?.on('data', (b: Buffer) => {
    buffered += b.toString();
    const parts = buffered.split('\n');
    buffered = parts.pop() ?? '';
    for (const p of parts) if (p.startsWith('{')) lines.push(JSON.parse(p) as Record<string, unknown>);
  });
  return { child, lines, loadedFile };
}

async function started(sidecar: Sidecar): Promise<{ proxy: number; admin: number }> {
  const line = await eventually(
    () => sidecar.lines.find((l) => l['event'] === 'sidecar.started'),
    (l) => l !== undefined || sidecar.child.exitCode !== null,
  );
  if (line === undefined) throw new Error(`sidecar exited with ${sidecar.child.exitCode}`);
  return {
    proxy: (line['proxy'] as AddressInfo).port,
    admin: (line['admin'] as AddressInfo).port,
  };
}

/** SIGTERM, exit 0, then the packages the process had loaded. */
async function stop(sidecar: Sidecar): Promise<string[]> {
  const exited = once(sidecar.child, 'exit');
  sidecar.child.kill('SIGTERM');
  const [code] = (await exited) as [number | null];
  expect(code).toBe(0);
  return JSON.parse(readFileSync(sidecar.loadedFile, 'utf8')) as string[];
}

function get(port: number, path: string, headers: Record<string, string> = {}) {
  return new Promise<{ status: number; body: string }>((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    })
      .on('error', reject)
      .end();
  });
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
  writeFileSync(rulesFile, `routes:\n  - host: 127.0.0.1\n    patterns: ['/items/:id']\n`);
});

afterAll(() => {
  upstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('lazy loading (built bin, module cache at exit)', () => {
  test('rules file, traffic, no scrape: no control-plane gRPC, no OpenTelemetry; undici is seen', async () => {
    const sidecar = startSidecar('rules', ['--rules', rulesFile]);
    const { proxy, admin } = await started(sidecar);
    const proxied = await get(proxy, `http://127.0.0.1:${upstreamPort}/items/7`, {
      host: `127.0.0.1:${upstreamPort}`,
    });
    expect(proxied).toEqual({ status: 200, body: 'upstream /items/7' });
    expect((await get(admin, '/readyz')).status).toBe(200);
    const loaded = await stop(sidecar);
    // The probe sees what is loaded: mitm-core's upstream client is there.
    expect(loaded).toContain('undici');
    expect(loaded).toContain('yaml');
    for (const name of GRPC) expect(loaded).not.toContain(name);
    expect(otel(loaded)).toEqual([]);
  });

  test('a /metrics scrape loads the Prometheus exporter and the SDK, never the OTLP exporter', async () => {
    const sidecar = startSidecar('scraped', ['--rules', rulesFile]);
    const { proxy, admin } = await started(sidecar);
    await get(proxy, `http://127.0.0.1:${upstreamPort}/items/8`, { host: `127.0.0.1:${upstreamPort}` });
    const scrape = await get(admin, '/metrics');
    expect(scrape.status).toBe(200);
    expect(scrape.body).toContain('http_route="/items/:id"');
    const loaded = await stop(sidecar);
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
      const sidecar = startSidecar('control-plane', [
        '--control-plane',
        `127.0.0.1:${port}`,
        '--rules-cache',
        join(dir, 'rules-cache.json'),
      ]);
      const { admin } = await started(sidecar);
      expect((await get(admin, '/readyz')).status).toBe(503);
      const loaded = await stop(sidecar);
      for (const name of GRPC) expect(loaded).toContain(name);
    } finally {
      closed.close();
    }
  });
});
