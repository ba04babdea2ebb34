import { type ChildProcess, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createWriteStream, existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import { startTrafficGenerator, type TrafficGenerator, type TrafficTarget } from './traffic.js';
import {
  type DemoUpstream,
  type HttpsDemoUpstream,
  startPaymentsService,
  startShopService,
} from './upstreams.js';

/** Service name of the sidecar whose outbound calls the demo measures. */
export const DEMO_SERVICE = 'storefront';

export interface DemoOptions {
  /** Working directory of the demo (store, CAs, logs). Emptied at start: it holds only demo state. */
  dataDir: string;
  /** Control plane API + dashboard port on 127.0.0.1. Default 8080; 0 picks a free port. */
  httpPort?: number;
  /** Requests per second of the traffic generator. Default 20. */
  ratePerSecond?: number;
  /** How often the sidecar uploads metric snapshots (`--metrics-interval`). Default 1000 ms. */
  metricsIntervalMs?: number;
  /** Progress lines for humans. Default: none. */
  log?: (line: string) => void;
  /** Called when a child process exits while the demo is running (not during `stop()`). */
  onChildExit?: (name: string, code: number | null, signal: NodeJS.Signals | null) => void;
  /** Startup deadline per component. Default 30 000 ms. */
  startTimeoutMs?: number;
  /** Admin token of the control plane. Default: 18 random bytes, base64url (may start with '-'). */
  adminToken?: string;
  /** How long the sidecar may take to get its first metrics to the control plane. Default 15 000 ms. */
  metricsDeadlineMs?: number;
}

export interface DemoChild {
  readonly name: 'control-plane' | 'sidecar';
  readonly process: ChildProcess;
  readonly logFile: string;
}

export interface RunningDemo {
  readonly dashboardUrl: string;
  readonly apiUrl: string;
  readonly adminToken: string;
  readonly proxy: { host: string; port: number };
  readonly children: readonly DemoChild[];
  /** Every process the demo started: the control plane, then the sidecar. */
  readonly pids: readonly number[];
  readonly upstreams: { shop: DemoUpstream; payments: HttpsDemoUpstream };
  readonly traffic: TrafficGenerator;
  /** Stops the traffic, SIGTERMs the children (SIGKILL after 10 s) and waits for them, closes the upstreams. */
  stop(): Promise<void>;
}

export class DemoStartError extends Error {
  override readonly name = 'DemoStartError';
  readonly code = 'HTTPMESH_DEMO_START_FAILED';
}

const require = createRequire(import.meta.url);
const here = dirname(fileURLToPath(import.meta.url));

function packageDir(name: string): string {
  return dirname(require.resolve(`${name}/package.json`));
}

/** The built bin of `pkg` (`dist/cli.js`); a clear error when it was not built. */
export function builtBin(
  pkg: '@httpmesh/control-plane' | '@httpmesh/sidecar',
  command: string,
  dir?: string,
): string {
  let cli: string;
  try {
    cli = join(dir ?? packageDir(pkg), 'dist', 'cli.js');
  } catch {
    throw new DemoStartError(`${command}: package ${pkg} is not installed (run \`npm install\` at the root)`);
  }
  if (!existsSync(cli)) {
    throw new DemoStartError(
      `${command} is not built (${cli} is missing): \`npm start\` builds it, or run \`npx nx run ${pkg}:build\``,
    );
  }
  return cli;
}

/** A free loopback port (bound then released: the component binds it again a moment later). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(0, '127.0.0.1', ok);
  });
  const address = server.address();
  await new Promise<void>((ok) => server.close(() => ok()));
  if (address === null || typeof address === 'string') throw new DemoStartError('no free port');
  return address.port;
}

/** Polls `check` every 100 ms until it returns a value, `failed` returns a reason, or the deadline passes. */
async function waitFor<T>(
  what: string,
  deadlineMs: number,
  check: () => Promise<T | undefined>,
  failed: () => string | undefined,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const reason = failed();
    if (reason !== undefined) throw new DemoStartError(`${what}: ${reason}`);
    const value = await check().catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new DemoStartError(`${what}: not ready within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function httpOk(url: string): Promise<true | undefined> {
  const res = await fetch(url, { signal: AbortSignal.timeout(2_000) });
  await res.arrayBuffer();
  return res.ok ? true : undefined;
}

interface Spawned {
  child: ChildProcess;
  logFile: string;
  exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  output: () => string;
}

function spawnNode(
  name: string,
  script: string,
  args: string[],
  env: Record<string, string>,
  logDir: string,
  nodeArgs: string[] = [],
): Spawned {
  const logFile = join(logDir, `${name}.log`);
  const log = createWriteStream(logFile, { flags: 'a' });
  const child = spawn(process.execPath, [...nodeArgs, script, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  let tail = '';
  const keep = (chunk: Buffer) => {
    log.write(chunk);
    tail = (tail + chunk.toString('utf8')).slice(-4_000);
  };
  child.stdout?.on('data', keep);
  child.stderr?.on('data', keep);
  const spawned: Spawned = { child, logFile, exit: undefined, output: () => tail };
  child.once('exit', (code, signal) => {
    spawned.exit = { code, signal };
  });
  child.once('close', () => log.end());
  return spawned;
}

async function stopChild(child: ChildProcess, graceMs: number): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((ok) => child.once('exit', () => ok()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Number of pattern rows with requests in the last minute, as the control plane's metrics API reports. */
export async function patternsWithTraffic(apiUrl: string, token: string): Promise<number> {
  const res = await fetch(`${apiUrl}/api/metrics/patterns?window=1m`, {
    headers: { authorization: `Bearer ${token}` },
    signal: AbortSignal.timeout(2_000),
  });
  const body = (await res.json()) as { rows?: { requests: number; key: { route?: string | null } }[] };
  return (body.rows ?? []).filter((r) => r.requests > 0 && r.key.route !== 'UNMATCHED').length;
}

async function api(base: string, token: string, method: string, path: string, body?: unknown) {
  const res = await fetch(`${base}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${token}`,
      'content-type': 'application/json',
      'x-httpmesh-author': 'demo',
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const json = (await res.json().catch(() => ({}))) as Record<string, unknown>;
  if (!res.ok) throw new DemoStartError(`${method} ${path} answered ${res.status}: ${JSON.stringify(json)}`);
  return json;
}

/** Starts the whole demo mesh; resolves once traffic flows through the sidecar. */
export async function startDemo(options: DemoOptions): Promise<RunningDemo> {
  const say = options.log ?? (() => undefined);
  const deadline = options.startTimeoutMs ?? 30_000;
  const dataDir = resolve(options.dataDir);
  rmSync(dataDir, { recursive: true, force: true });
  const logDir = join(dataDir, 'logs');
  mkdirSync(logDir, { recursive: true });
  const spawned: Spawned[] = [];
  const children: DemoChild[] = [];
  let stopping = false;
  const cleanups: (() => Promise<void>)[] = [];

  // If this process dies without stop() (uncaught error, process.exit), take the children along.
  const killChildren = () => {
    for (const s of spawned) if (s.exit === undefined) s.child.kill('SIGKILL');
  };
  process.once('exit', killChildren);
  const stopAll = async () => {
    stopping = true;
    for (const cleanup of cleanups.reverse()) await cleanup().catch(() => undefined);
    await Promise.all(spawned.map((s) => stopChild(s.child, 10_000)));
    process.off('exit', killChildren);
  };
  const watchExit = (name: DemoChild['name'], s: Spawned) => {
    s.child.once('exit', (code, signal) => {
      if (!stopping) options.onChildExit?.(name, code, signal);
    });
  };

  try {
    const shop = await startShopService();
    const payments = await startPaymentsService();
    cleanups.push(
      () => shop.close(),
      () => payments.close(),
    );
    say(`demo upstreams: shop ${shop.origin} (HTTP), payments ${payments.origin} (HTTPS, own CA)`);
    const paymentsCaFile = join(dataDir, 'payments-ca.pem');
    writeFileSync(paymentsCaFile, payments.caPem);

    // --- control plane ---------------------------------------------------------------------------
    const httpPort =
      options.httpPort === undefined ? 8080 : options.httpPort === 0 ? await freePort() : options.httpPort;
    const grpcPort = await freePort();
    const adminToken = options.adminToken ?? randomBytes(18).toString('base64url');
    const apiUrl = `http://127.0.0.1:${httpPort}`;
    // Both bins are checked before anything starts, so a missing build fails at once and says what to run.
    const cpCli = builtBin('@httpmesh/control-plane', 'httpmesh-control-plane');
    const sidecarCli = builtBin('@httpmesh/sidecar', 'httpmesh-sidecar');
    // `--flag=value` throughout: a generated value may start with '-' (a base64url token does one time in
    // 32) and would otherwise be read as a flag ("argument is ambiguous").
    const cp = spawnNode(
      'control-plane',
      cpCli,
      [
        'serve',
        `--http=127.0.0.1:${httpPort}`,
        `--grpc=127.0.0.1:${grpcPort}`,
        `--data-dir=${join(dataDir, 'control-plane')}`,
        `--admin-token=${adminToken}`,
      ],
      {},
      logDir,
    );
    spawned.push(cp);
    await waitFor(
      'control plane',
      deadline,
      () => httpOk(`${apiUrl}/healthz`),
      () =>
        cp.exit === undefined ? undefined : `exited (${cp.exit.code ?? cp.exit.signal}): ${cp.output()}`,
    );
    children.push({ name: 'control-plane', process: cp.child, logFile: cp.logFile });
    watchExit('control-plane', cp);
    say(
      `control plane (httpmesh-control-plane serve) on ${apiUrl}, rule-sync 127.0.0.1:${grpcPort} (plaintext, loopback dev mode)`,
    );

    // --- rules, created through the API like an operator would -----------------------------------
    const shopRoutes = shop.routes.filter((r) => r.pattern !== '/products/:sku');
    await api(apiUrl, adminToken, 'POST', '/api/rules/RouteSet', {
      name: 'shop',
      spec: { host: shop.host, routes: shopRoutes },
    });
    // A second revision, so the dashboard's rule history has something to show.
    await api(apiUrl, adminToken, 'PUT', '/api/rules/RouteSet/shop', {
      revision: 1,
      spec: { host: shop.host, routes: shop.routes },
    });
    await api(apiUrl, adminToken, 'POST', '/api/rules/RouteSet', {
      name: 'payments',
      spec: { host: payments.host, routes: payments.routes },
    });
    await api(apiUrl, adminToken, 'POST', '/api/rules/InterceptRule', {
      name: 'payments-tls',
      spec: { domain: payments.host, action: 'INTERCEPT' },
    });
    await api(apiUrl, adminToken, 'POST', '/api/rules/AlertRule', {
      name: 'orders-error-ratio',
      spec: {
        metric: 'errorRatio',
        service: DEMO_SERVICE,
        method: 'GET',
        route: '/orders/:id',
        above: 0.05,
        forSeconds: 60,
        windowSeconds: 60,
      },
    });
    say(
      'rules created: RouteSet shop (2 revisions), RouteSet payments, InterceptRule payments-tls, AlertRule orders-error-ratio',
    );

    // --- sidecar ---------------------------------------------------------------------------------
    const caDir = join(dataDir, 'sidecar-ca');
    const meshCa = await CertificateAuthority.create({
      commonName: 'httpmesh demo mesh CA',
      validityDays: 30,
    });
    await meshCa.saveToDir(caDir);
    mkdirSync(join(dataDir, 'sidecar'), { recursive: true });
    const proxy = { host: '127.0.0.1', port: await freePort() };
    const adminPort = await freePort();
    // Intercept rules need DNS names; the sidecar resolves the demo's names through a preload (no root).
    const hostsEnv = {
      HTTPMESH_DEMO_HOSTS: JSON.stringify({ [shop.host]: '127.0.0.1', [payments.host]: '127.0.0.1' }),
    };
    const hostsPreload = ['--import', pathToFileURL(join(here, 'demo-hosts.js')).href];
    const sidecar = spawnNode(
      'sidecar',
      sidecarCli,
      [
        'run',
        '--mode=explicit',
        `--listen=${proxy.host}:${proxy.port}`,
        `--admin=127.0.0.1:${adminPort}`,
        `--control-plane=127.0.0.1:${grpcPort}`,
        `--service=${DEMO_SERVICE}`,
        `--node-id=${DEMO_SERVICE}-demo-1`,
        `--ca-dir=${caDir}`,
        `--upstream-ca=${paymentsCaFile}`,
        `--rules-cache=${join(dataDir, 'sidecar', 'rules-last-good.bin')}`,
        `--control-socket=${join(dataDir, 'sidecar', 'control.sock')}`,
        `--metrics-interval=${options.metricsIntervalMs ?? 1_000}`,
      ],
      hostsEnv,
      logDir,
      hostsPreload,
    );
    spawned.push(sidecar);
    await waitFor(
      'sidecar',
      deadline,
      () => httpOk(`http://127.0.0.1:${adminPort}/readyz`),
      () =>
        sidecar.exit === undefined
          ? undefined
          : `exited (${sidecar.exit.code ?? sidecar.exit.signal}): ${sidecar.output()}`,
    );
    say(
      `sidecar (httpmesh-sidecar run --mode explicit) proxy ${proxy.host}:${proxy.port}, admin 127.0.0.1:${adminPort}, metric snapshots every ${options.metricsIntervalMs ?? 1_000} ms`,
    );

    // --- traffic ---------------------------------------------------------------------------------
    const targets: TrafficTarget[] = [
      { method: 'GET', url: `${shop.origin}/orders/{id}`, weight: 4 },
      { method: 'POST', url: `${shop.origin}/orders`, weight: 1 },
      { method: 'GET', url: `${shop.origin}/users/{id}/cart`, weight: 2 },
      { method: 'GET', url: `${shop.origin}/products/{id}`, weight: 2 },
      { method: 'GET', url: `${payments.origin}/payments/{id}`, weight: 2 },
      { method: 'POST', url: `${payments.origin}/payments`, weight: 1 },
      { method: 'GET', url: `${payments.origin}/accounts/{id}/balance`, weight: 1 },
    ];
    const traffic = startTrafficGenerator({
      proxy,
      targets,
      trustedCa: meshCa.certPem,
      ratePerSecond: options.ratePerSecond ?? 20,
    });
    cleanups.push(() => traffic.stop());
    say(
      `traffic generator: ${options.ratePerSecond ?? 20} req/s through the sidecar (HTTP absolute-URI, HTTPS via CONNECT + interception)`,
    );

    // The dashboard is only worth its URL once the sidecar's metrics reach the control plane.
    await waitFor(
      'sidecar metrics in the control plane',
      options.metricsDeadlineMs ?? 15_000,
      async () => ((await patternsWithTraffic(apiUrl, adminToken)) > 0 ? true : undefined),
      () =>
        sidecar.exit === undefined
          ? undefined
          : `sidecar exited (${sidecar.exit.code ?? sidecar.exit.signal}): ${sidecar.output()}`,
    );
    children.push({ name: 'sidecar', process: sidecar.child, logFile: sidecar.logFile });
    watchExit('sidecar', sidecar);

    return {
      dashboardUrl: `${apiUrl}/`,
      apiUrl,
      adminToken,
      proxy,
      children,
      pids: spawned.flatMap((s) => (s.child.pid === undefined ? [] : [s.child.pid])),
      upstreams: { shop, payments },
      traffic,
      stop: stopAll,
    };
  } catch (err) {
    await stopAll();
    throw err;
  }
}
