/**
 * Metric uploads end to end: the real control plane (its built bin, port 0, SQLite store) and real sidecar
 * processes (built bin, explicit mode) connected over rule-sync. Traffic through the sidecar shows up in the
 * control plane's metrics API per pattern; traffic while the control plane is down arrives after it is back;
 * the last traffic before SIGTERM arrives through the final flush. Malformed --metrics-interval values are
 * refused.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, request, type Server } from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { resolveOptions } from '../src/index.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const controlPlaneCli = join(
  dirname(createRequire(import.meta.url).resolve('@httpmesh/control-plane/package.json')),
  'dist',
  'cli.js',
);
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-telemetry-'));
// Starts with '-': must be passed as --admin-token=VALUE (a separate argument would read as a flag).
const TOKEN = '-telemetry-test-token-0123456789';
const processes: ChildProcess[] = [];
let upstream: Server;
let upstreamPort = 0;

async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 20_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await Promise.resolve(probe()).catch(() => undefined);
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

interface Proc {
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
}

function spawnNode(args: string[]): Proc {
  const child = spawn(process.execPath, args, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  processes.push(child);
  let out = '';
  child.stdout?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  child.stderr?.on('data', (b: Buffer) => {
    out += b.toString();
  });
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, output: () => out, exited };
}

interface ControlPlaneProc extends Proc {
  http: string;
  grpc: string;
}

async function startControlPlane(grpc: string): Promise<ControlPlaneProc> {
  const p = spawnNode([
    controlPlaneCli,
    'serve',
    `--grpc=${grpc}`,
    '--http=127.0.0.1:0',
    `--data-dir=${join(dir, 'cp-data')}`,
    `--admin-token=${TOKEN}`,
  ]);
  let exited = false;
  void p.exited.then(() => {
    exited = true;
  });
  const line = await waitFor('control plane listening', () => {
    if (exited) throw new Error(`control plane exited: ${p.output()}`);
    return p
      .output()
      .split('\n')
      .find((l) => l.includes('control plane listening'));
  }).catch((e: Error) => {
    throw new Error(`${e.message}\n${p.output()}`);
  });
  const { http, grpc: grpcAddress } = JSON.parse(line) as { http: string; grpc: string };
  return { ...p, http, grpc: grpcAddress };
}

interface SidecarProc extends Proc {
  proxyPort: number;
  adminPort: number;
}

async function startSidecar(grpc: string, service: string, extra: string[]): Promise<SidecarProc> {
  const p = spawnNode([
    cli,
    'run',
    '--mode=explicit',
    '--listen=127.0.0.1:0',
    '--admin=127.0.0.1:0',
    `--control-plane=${grpc}`,
    `--service=${service}`,
    `--node-id=${service}-1`,
    `--ca-dir=${join(dir, `ca-${service}`)}`,
    `--rules-cache=${join(dir, `rules-${service}.bin`)}`,
    `--control-socket=${join(dir, `control-${service}.sock`)}`,
    ...extra,
  ]);
  const started = await waitFor('sidecar started', () => {
    if (p.child.exitCode !== null) throw new Error('exited');
    for (const l of p.output().split('\n')) {
      if (!l.includes('"sidecar.started"')) continue;
      return JSON.parse(l) as { proxy: AddressInfo; admin: AddressInfo };
    }
    return undefined;
  }).catch((e: Error) => {
    throw new Error(`${e.message}\n${p.output()}`);
  });
  return { ...p, proxyPort: started.proxy.port, adminPort: started.admin.port };
}

function getJson<T>(port: number, path: string): Promise<T> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => {
        try {
          resolve(JSON.parse(body) as T);
        } catch (e) {
          reject(e);
        }
      });
    })
      .on('error', reject)
      .end();
  });
}

/** One request through the explicit proxy (absolute-form URI); resolves with the status. */
function viaProxy(proxyPort: number, path: string): Promise<number> {
  return new Promise((resolve, reject) => {
    request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: `http://127.0.0.1:${upstreamPort}${path}`,
        headers: { host: `127.0.0.1:${upstreamPort}` },
        agent: false,
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    )
      .on('error', reject)
      .end();
  });
}

async function sendTraffic(proxyPort: number, paths: string[]): Promise<void> {
  for (const path of paths) expect(await viaProxy(proxyPort, path)).toBe(200);
}

interface PatternRow {
  key: { service: string; host: string; method: string; route: string };
  requests: number;
}

/** `METHOD route` → requests for one service in the control plane's last-hour view. */
async function patterns(http: string, service: string): Promise<Map<string, number>> {
  const res = await fetch(`${http}/api/metrics/patterns?window=1h&service=${service}`);
  const body = (await res.json()) as { rows: PatternRow[] };
  return new Map(body.rows.map((r) => [`${r.key.host} ${r.key.method} ${r.key.route}`, r.requests]));
}

async function api(http: string, method: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${http}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  expect(res.status, await res.text()).toBeLessThan(300);
}

/** Waits until the sidecar applied rules from the control plane with these routes. */
async function rulesApplied(sidecar: SidecarProc): Promise<void> {
  await waitFor('sidecar has the routes', async () => {
    const config = await getJson<{ rules: { routes: unknown[] } }>(sidecar.adminPort, '/config');
    return config.rules.routes.length > 0 ? true : undefined;
  });
}

const ITEMS = '127.0.0.1 GET /items/:id';
const CART = '127.0.0.1 GET /users/:id/cart';

let cp: ControlPlaneProc;

beforeAll(async () => {
  upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('ok');
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', () => resolve()));
  upstreamPort = (upstream.address() as AddressInfo).port;
  cp = await startControlPlane('127.0.0.1:0');
  await api(cp.http, 'POST', '/api/rules/RouteSet', {
    name: 'loopback',
    spec: {
      host: '127.0.0.1',
      routes: [
        { pattern: '/items/:id', methods: ['GET'] },
        { pattern: '/users/:id/cart', methods: ['GET'] },
      ],
    },
  });
}, 40_000);

afterAll(async () => {
  for (const p of processes) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
  await new Promise<void>((resolve) => upstream?.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});

describe('metric snapshots from the real sidecar to the real control plane', () => {
  test('per-pattern traffic shows up at the interval; traffic during an outage arrives after it', async () => {
    const sidecar = await startSidecar(cp.grpc, 'checkout', ['--metrics-interval=200']);
    await rulesApplied(sidecar);
    await sendTraffic(sidecar.proxyPort, [
      '/items/1',
      '/items/2?x=1',
      '/items/3',
      '/items/4',
      '/items/5',
      '/users/7/cart',
      '/users/8/cart',
      '/users/9/cart',
      '/elsewhere',
    ]);
    const seen = await waitFor('per-pattern rows in the control plane', async () => {
      const rows = await patterns(cp.http, 'checkout');
      return rows.get(ITEMS) === 5 && rows.get(CART) === 3 ? rows : undefined;
    });
    // Unmatched paths are counted under UNMATCHED; raw paths never become rows.
    expect(seen.get('127.0.0.1 GET UNMATCHED')).toBe(1);
    for (const key of seen.keys()) expect(key).not.toMatch(/\/\d/);
    const stats = await getJson<{ telemetry: { sent: number; deferred: number } }>(
      sidecar.adminPort,
      '/connections',
    );
    expect(stats.telemetry.sent).toBeGreaterThan(0);
    expect(stats.telemetry.deferred).toBe(0);

    // Outage: the control plane stops; traffic continues; the control plane comes back on the same port
    // (its aggregate starts empty) and receives the outage's traffic in the first snapshot.
    cp.child.kill('SIGTERM');
    expect(await cp.exited).toBe(0);
    await waitFor('sidecar notices the outage', async () => {
      const s = await getJson<{ telemetry: { deferred: number } }>(sidecar.adminPort, '/connections');
      return s.telemetry.deferred > 0 ? true : undefined;
    });
    await sendTraffic(sidecar.proxyPort, ['/items/10', '/items/11', '/items/12', '/users/1/cart']);
    cp = await startControlPlane(cp.grpc);
    let last = new Map<string, number>();
    await waitFor(
      'outage traffic delivered after the reconnection',
      async () => {
        last = await patterns(cp.http, 'checkout');
        return last.get(ITEMS) === 3 && last.get(CART) === 1 ? true : undefined;
      },
      40_000,
    ).catch((e: Error) => {
      throw new Error(
        `${e.message}; rows ${JSON.stringify([...last])}\nsidecar:\n${sidecar.output().slice(-3000)}\ncontrol plane:\n${cp.output().slice(-2000)}`,
      );
    });
    sidecar.child.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
  }, 120_000);

  test('the final flush on SIGTERM uploads what the interval has not sent yet', async () => {
    // Ten minutes: only the final flush can deliver this traffic within the test.
    const sidecar = await startSidecar(cp.grpc, 'billing', ['--metrics-interval=600000']);
    await rulesApplied(sidecar);
    await waitFor('sidecar listed by the control plane', async () => {
      const res = await fetch(`${cp.http}/api/sidecars`);
      const body = (await res.json()) as { sidecars: { id?: string; nodeId?: string; service: string }[] };
      return body.sidecars.some((s) => s.service === 'billing') ? true : undefined;
    });
    await sendTraffic(sidecar.proxyPort, ['/items/1', '/items/2', '/users/3/cart']);
    expect((await patterns(cp.http, 'billing')).size).toBe(0);
    sidecar.child.kill('SIGTERM');
    expect(await sidecar.exited).toBe(0);
    expect(sidecar.output()).not.toContain('metrics.final_flush_skipped');
    const rows = await waitFor('final snapshot ingested', async () => {
      const r = await patterns(cp.http, 'billing');
      return r.get(ITEMS) === 2 ? r : undefined;
    });
    expect(rows.get(CART)).toBe(1);
  }, 60_000);
});

describe('--metrics-interval', () => {
  function runCli(args: string[], env: Record<string, string> = {}) {
    return new Promise<{ code: number; stdout: string; stderr: string }>((resolve) => {
      execFile(
        process.execPath,
        [cli, ...args],
        { cwd: dir, env: { PATH: process.env['PATH'] ?? '', ...env } },
        (error, stdout, stderr) => {
          const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
          resolve({ code, stdout, stderr });
        },
      );
    });
  }

  test('is a flag, an environment variable and a YAML key, listed in --help', async () => {
    const help = await runCli(['run', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('--metrics-interval MS');
    expect(help.stdout).toContain('env HTTPMESH_METRICS_INTERVAL, yaml metricsInterval');
    expect(help.stdout).toContain('[default: 10000]');

    const config = join(dir, 'config.yaml');
    writeFileSync(config, 'metricsInterval: 2500\n');
    expect(resolveOptions('run', [], {}, dir).options.metricsInterval).toBe(10_000);
    expect(resolveOptions('run', [`--config=${config}`], {}, dir).options.metricsInterval).toBe(2_500);
    expect(
      resolveOptions('run', [`--config=${config}`], { HTTPMESH_METRICS_INTERVAL: '1500' }, dir).options
        .metricsInterval,
    ).toBe(1_500);
    expect(
      resolveOptions(
        'run',
        [`--config=${config}`, '--metrics-interval', '700'],
        { HTTPMESH_METRICS_INTERVAL: '1500' },
        dir,
      ).options.metricsInterval,
    ).toBe(700);
  });

  test('malformed values exit 2 with their code', async () => {
    const base = ['run', '--listen=127.0.0.1:0', '--admin=127.0.0.1:0', `--ca-dir=${join(dir, 'ca-bad')}`];
    for (const value of ['10s', '-5', '1.5', '']) {
      const r = await runCli([...base, `--metrics-interval=${value}`]);
      expect(r.code, value).toBe(2);
      expect(r.stderr, value).toContain('HTTPMESH_SIDECAR_OPTION_INVALID');
    }
    const env = await runCli(base, { HTTPMESH_METRICS_INTERVAL: 'soon' });
    expect(env.code).toBe(2);
    expect(env.stderr).toContain('HTTPMESH_METRICS_INTERVAL');
    const yaml = join(dir, 'bad.yaml');
    writeFileSync(yaml, 'metricsInterval: [1, 2]\n');
    const fromFile = await runCli([...base, `--config=${yaml}`]);
    expect(fromFile.code).toBe(2);
    expect(fromFile.stderr).toContain('metricsInterval');
    // Well-formed but too short: refused before the sidecar connects or listens.
    const tooShort = await runCli([
      ...base,
      `--control-plane=${cp.grpc}`,
      `--rules-cache=${join(dir, 'short.bin')}`,
      '--metrics-interval=50',
    ]);
    expect(tooShort.code).toBe(2);
    expect(tooShort.stderr).toContain('HTTPMESH_SIDECAR_USAGE');
    expect(tooShort.stderr).toContain('at least 100 ms');
  });
});
