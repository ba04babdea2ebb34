/**
 * Shared by the plugin, upgrade and lazy-loading tests and the others that need it: a real sidecar process (the
 * built bin, explicit mode on loopback port 0), a real upstream, and plain node:http clients through the proxy.
 */
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { type Agent, createServer, request, type Server } from 'node:http';
import type { AddressInfo, Server as NetServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect } from 'vitest';

export const APP_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_DIR = join(APP_DIR, '..', '..');
export const CLI = join(APP_DIR, 'dist', 'cli.js');
export const SEA_BIN = join(APP_DIR, 'dist', 'sea', 'httpmesh-sidecar');
export const PYTHON = '/usr/bin/python3';
export const TS_FIXTURE = join(APP_DIR, 'test', 'fixtures', 'plugin-fixture.ts');
export const PY_FIXTURE = join(APP_DIR, 'test', 'fixtures', 'plugin_fixture.py');

/** Why Python plugins cannot run here, or undefined when they can. */
export function pythonMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import grpc, google.protobuf'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0)
    return `${PYTHON} lacks grpc/protobuf (apt-get install python3-grpcio python3-protobuf)`;
  return undefined;
}

/** One plugin process spec per SDK language. */
export interface PluginLanguage {
  readonly lang: 'typescript' | 'python';
  readonly command: string;
  readonly args: readonly string[];
  /** Why this language cannot run here (outside CI only: under CI a missing Python SDK throws). */
  readonly skip: string | undefined;
}

/** A rules file running one plugin of `lang` (order 10): the shape every plugin suite starts its sidecar with. */
export function onePluginRules(
  name: string,
  lang: PluginLanguage,
  opts: { timeoutMs: number; failureMode: 'open' | 'closed'; env?: Record<string, string> },
): string {
  return [
    'plugins:',
    `  - name: ${name}`,
    `    command: ${JSON.stringify(lang.command)}`,
    `    args: ${JSON.stringify(lang.args)}`,
    ...(opts.env === undefined ? [] : [`    env: ${JSON.stringify(opts.env)}`]),
    '    order: 10',
    `    timeoutMs: ${opts.timeoutMs}`,
    `    failureMode: ${opts.failureMode}`,
    '',
  ].join('\n');
}

/**
 * The same plugin fixture in both SDK languages. Under CI a machine without the Python SDK's modules is an
 * error, never a skip.
 */
export function pluginLanguages(tsFixture: string, pyFixture: string): readonly PluginLanguage[] {
  const missingPython = pythonMissing();
  if (missingPython !== undefined && process.env['CI'] === 'true') {
    throw new Error(`CI must run the Python plugin tests: ${missingPython}`);
  }
  return [
    { lang: 'typescript', command: process.execPath, args: ['--import', 'tsx', tsFixture], skip: undefined },
    { lang: 'python', command: PYTHON, args: [pyFixture], skip: missingPython },
  ];
}

/** `run` flags for a proxy and an admin endpoint on loopback port 0, with the mesh CA kept in `caDir`. */
export function loopbackRunArgs(caDir: string): string[] {
  return ['--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--ca-dir', caDir];
}

/** Listens on loopback port 0; resolves with the port. */
export function listenOnLoopback(server: NetServer): Promise<number> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)),
  );
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface Upstream {
  readonly port: number;
  /** Requests the upstream answered. */
  readonly hits: () => number;
  close(): Promise<void>;
}

/** Echoes the request headers as JSON; `/status/500` answers 500; `/trailers...` ends with trailers. */
export async function startUpstream(): Promise<Upstream> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    req.resume();
    if (req.url?.startsWith('/req-trailers')) {
      // The request-trailers phase: the reply names the trailers that arrived after the body.
      req.once('end', () => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ path: req.url, headers: req.headers, trailers: req.trailers }));
      });
      return;
    }
    if (req.url?.startsWith('/trailers')) {
      // Chunked with trailers: the response-trailers phase.
      res.writeHead(200, { 'content-type': 'application/json', trailer: 'x-checksum, x-secret-trailer' });
      res.write(JSON.stringify({ path: req.url, headers: req.headers }));
      res.addTrailers({ 'x-checksum': 'c0ffee', 'x-secret-trailer': 'hidden' });
      res.end();
      return;
    }
    const status = req.url?.startsWith('/status/500') ? 500 : 200;
    res.writeHead(status, { 'content-type': 'application/json', 'x-upstream-secret': 'hidden' });
    res.end(JSON.stringify({ path: req.url, headers: req.headers }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    hits: () => hits,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

export interface LogLine {
  readonly event?: string;
  readonly [key: string]: unknown;
}

export interface SidecarProcess {
  readonly child: ChildProcess;
  readonly proxyPort: number;
  readonly adminPort: number;
  readonly logs: LogLine[];
  /** Resolves with the exit code. */
  readonly exited: Promise<number | null>;
  waitForLog(match: (line: LogLine) => boolean, ms?: number): Promise<LogLine>;
  stop(): Promise<number | null>;
}

/** Collects JSON log lines from a child's stderr. */
export function collectLogs(child: ChildProcess, logs: LogLine[], raw: { text: string }): void {
  let partial = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (chunk: string) => {
    raw.text += chunk;
    partial += chunk;
    let nl = partial.indexOf('\n');
    while (nl >= 0) {
      const line = partial.slice(0, nl);
      partial = partial.slice(nl + 1);
      try {
        logs.push(JSON.parse(line) as LogLine);
      } catch {
        // not JSON (a plugin's own output): kept in raw only
      }
      nl = partial.indexOf('\n');
    }
  });
}

export async function waitFor<T>(
  probe: () => Promise<T> | T,
  ok: (v: T) => boolean,
  ms = 15_000,
): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (ok(v)) return v;
    if (Date.now() > deadline) throw new Error(`condition not met within ${ms} ms: ${JSON.stringify(v)}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Starts `httpmesh-sidecar run` (built bin) with a rules file; resolves once it logged sidecar.started. */
export async function startSidecarProcess(opts: {
  dir: string;
  rules: string;
  /** Do not pass --rules (e.g. rules from a control plane). */
  omitRules?: boolean;
  /** Run this executable (e.g. the single executable) instead of `node dist/cli.js`. */
  bin?: string;
  /** Node options before `dist/cli.js` (e.g. `--import` a probe); not with `bin`. */
  nodeArgs?: readonly string[];
  args?: readonly string[];
  env?: Record<string, string>;
}): Promise<SidecarProcess> {
  const rulesFile = join(opts.dir, 'rules.yaml');
  writeFileSync(rulesFile, opts.rules);
  const child = spawn(
    opts.bin ?? process.execPath,
    [
      ...(opts.bin === undefined ? [...(opts.nodeArgs ?? []), CLI] : []),
      'run',
      ...loopbackRunArgs(join(opts.dir, 'ca')),
      ...(opts.omitRules === true ? [] : ['--rules', rulesFile]),
      '--state-dir',
      join(opts.dir, 'state'),
      ...(opts.args ?? []),
    ],
    { cwd: REPO_DIR, env: { ...process.env, ...opts.env }, stdio: ['ignore', 'ignore', 'pipe'] },
  );
  const logs: LogLine[] = [];
  const raw = { text: '' };
  collectLogs(child, logs, raw);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const waitForLog = async (match: (line: LogLine) => boolean, ms = 20_000): Promise<LogLine> => {
    let exitedEarly = false;
    void exited.then(() => {
      exitedEarly = true;
    });
    const line = await waitFor(
      () => logs.find(match) ?? (exitedEarly ? null : undefined),
      (v) => v !== undefined,
      ms,
    ).catch((e: Error) => {
      throw new Error(`${e.message}\nsidecar stderr:\n${raw.text.slice(-4000)}`);
    });
    if (line === null || line === undefined)
      throw new Error(`sidecar exited early:\n${raw.text.slice(-4000)}`);
    return line;
  };
  const started = await waitForLog((l) => l.event === 'sidecar.started');
  const proxy = started['proxy'] as AddressInfo;
  const admin = started['admin'] as AddressInfo;
  return {
    child,
    proxyPort: proxy.port,
    adminPort: admin.port,
    logs,
    exited,
    waitForLog,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/**
 * For a describe block: a sidecar running `rules`, started in beforeAll (60 s budget, plugin processes
 * included) in a fresh temporary directory and stopped in afterAll, where it must exit 0. Tests read it
 * through `.current`; `dir` holds its rules file (`rules.yaml`, watched) and state.
 */
export function sidecarPerSuite(
  prefix: string,
  rules: string,
): { readonly current: SidecarProcess; readonly dir: string } {
  const tmp = tempDir(prefix);
  let sidecar: SidecarProcess | undefined;
  beforeAll(async () => {
    sidecar = await startSidecarProcess({ dir: tmp.dir, rules });
  }, 60_000);
  afterAll(async () => {
    try {
      if (sidecar !== undefined) expect(await sidecar.stop()).toBe(0);
    } finally {
      tmp.remove();
    }
  });
  return {
    dir: tmp.dir,
    get current(): SidecarProcess {
      if (sidecar === undefined) throw new Error('the suite sidecar has not started');
      return sidecar;
    },
  };
}

export interface Reply {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: string;
  /** Trailers after the body (HTTP/1.1 chunked). */
  readonly trailers?: Record<string, string | undefined>;
}

/** A request through the explicit proxy (absolute-form target) to the upstream on loopback. */
export function viaProxy(
  proxyPort: number,
  upstreamPort: number,
  path: string,
  headers: Record<string, string> = {},
  agent: Agent | false = false,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port: proxyPort,
        path: `http://127.0.0.1:${upstreamPort}${path}`,
        headers: { host: `127.0.0.1:${upstreamPort}`, ...headers },
        agent,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body, trailers: res.trailers }),
        );
        res.on('aborted', () => reject(new Error(`response to ${path} broken off`)));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    // A request that hangs is a failure with a name, not a test timeout.
    req.setTimeout(15_000, () => req.destroy(new Error(`no response within 15 s for ${path}`)));
    req.end();
  });
}

/** A chunked POST through the explicit proxy whose body ends with `trailers` (node:http `addTrailers`). */
export function viaProxyWithTrailers(
  proxyPort: number,
  upstreamPort: number,
  path: string,
  trailers: Record<string, string>,
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        method: 'POST',
        host: '127.0.0.1',
        port: proxyPort,
        path: `http://127.0.0.1:${upstreamPort}${path}`,
        headers: { host: `127.0.0.1:${upstreamPort}`, trailer: Object.keys(trailers).join(', ') },
        agent: false,
      },
      (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => {
          body += c;
        });
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
        res.on('aborted', () => reject(new Error(`response to ${path} broken off`)));
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    req.setTimeout(15_000, () => req.destroy(new Error(`no response within 15 s for ${path}`)));
    req.write('signed body');
    req.addTrailers(trailers);
    req.end();
  });
}

/** A plain GET to a loopback port (admin endpoint, proxy, upstream), no connection reuse. */
export function getLocal(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return new Promise((resolve, reject) => {
    request({ host: '127.0.0.1', port, path, headers, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    })
      .on('error', reject)
      .end();
  });
}

export function adminGet(adminPort: number, path: string): Promise<Reply> {
  return getLocal(adminPort, path);
}

/** A CONNECT tunnel through the explicit proxy to `target` (`host:port`); rejects unless answered 200. */
export function connectTunnel(proxyPort: number, target: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const req = request({
      host: '127.0.0.1',
      port: proxyPort,
      method: 'CONNECT',
      path: target,
      agent: false,
    });
    req.on('connect', (res, socket) =>
      res.statusCode === 200 ? resolve(socket) : reject(new Error(`CONNECT answered ${res.statusCode}`)),
    );
    req.on('error', reject);
    req.end();
  });
}

/** Upstream's view of the request (it echoes headers). */
export function seenHeaders(reply: Reply): Record<string, string | string[]> {
  return (JSON.parse(reply.body) as { headers: Record<string, string | string[]> }).headers;
}

export interface LoadResult {
  readonly sent: number;
  readonly failures: string[];
  readonly replies: Reply[];
}

/**
 * Bounded load: at least `count` requests with `concurrency` workers, continuing (up to `maxCount` and
 * `maxMs`) while `keepGoing()` is true. Any transport error or a status other than 200 is a failure.
 */
export async function runLoad(opts: {
  count: number;
  concurrency: number;
  send: () => Promise<Reply>;
  keepGoing?: () => boolean;
  maxCount?: number;
  maxMs?: number;
  onReply?: (n: number) => void;
}): Promise<LoadResult> {
  const failures: string[] = [];
  const replies: Reply[] = [];
  let sent = 0;
  const deadline = Date.now() + (opts.maxMs ?? 60_000);
  const maxCount = opts.maxCount ?? opts.count;
  const more = () =>
    sent < opts.count || (opts.keepGoing?.() === true && sent < maxCount && Date.now() < deadline);
  const worker = async () => {
    while (more()) {
      sent++;
      try {
        const reply = await opts.send();
        replies.push(reply);
        if (reply.status !== 200) failures.push(`status ${reply.status}: ${reply.body.slice(0, 200)}`);
      } catch (e) {
        failures.push(`error ${(e as Error & { code?: string }).code ?? ''} ${(e as Error).message}`);
      }
      opts.onReply?.(replies.length + failures.length);
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return { sent, failures, replies };
}
