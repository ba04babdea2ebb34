/**
 * The single executable built by `npm run build` (dist/sea/httpmesh-sidecar): it starts without Node's module
 * tree, lists its flags, proxies real HTTP and intercepted HTTPS to loopback upstreams, measures per pattern,
 * stops with exit 0 on SIGTERM, and loads the SO_ORIGINAL_DST addon from beside itself (or falls back).
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { type AddressInfo, connect, createServer as createNetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { fileURLToPath } from 'node:url';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { connectTunnel, getLocal } from './plugins-harness.js';
import { OPTION_SPECS } from '../src/index.js';

const binary = fileURLToPath(new URL('../dist/sea/httpmesh-sidecar', import.meta.url));
const ADDON_MISSING_LINE = 'SO_ORIGINAL_DST addon unavailable';
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-sea-'));
const rulesFile = join(dir, 'rules.yaml');

let upstream: Server;
let upstreamPort = 0;
let tlsUpstream: Server;
let tlsUpstreamPort = 0;
let upstreamCaFile = '';

function listen(server: Server, host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, () => resolve((server.address() as AddressInfo).port));
  });
}

/** A port that was free a moment ago (for flags that do not take 0). */
async function freePort(host: string): Promise<number> {
  const probe = createNetServer();
  const port = await listen(probe as unknown as Server, host);
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

function runBinary(
  path: string,
  args: readonly string[],
): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      path,
      args,
      { timeout: 20_000, env: { PATH: process.env['PATH'] ?? '' } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

async function eventually<T>(
  probe: () => T | Promise<T>,
  ok: (v: T) => boolean,
  timeoutMs = 10_000,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (ok(value)) return value;
    if (Date.now() > deadline) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}

/** A running `httpmesh-sidecar run` child with its stderr split into JSON log lines and other lines. */
class SidecarProcess {
  readonly logs: Record<string, unknown>[] = [];
  readonly otherLines: string[] = [];
  readonly exited: Promise<number | null>;
  readonly #child: ChildProcess;
  #buffered = '';

  constructor(path: string, args: readonly string[]) {
    this.#child = spawn(path, ['run', ...args], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { PATH: process.env['PATH'] ?? '' },
    });
    this.#child.stderr?.on('data', (chunk: Buffer) => {
      this.#buffered += chunk.toString();
      const lines = this.#buffered.split('\n');
      this.#buffered = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('{')) this.logs.push(JSON.parse(line) as Record<string, unknown>);
        else if (line !== '') this.otherLines.push(line);
      }
    });
    this.exited = new Promise((resolve) => this.#child.once('exit', (code) => resolve(code)));
  }

  async started(): Promise<{ proxy: AddressInfo; admin: AddressInfo }> {
    let exitCode: number | null | undefined;
    void this.exited.then((code) => {
      exitCode = code;
    });
    const line = await eventually(
      () => {
        if (exitCode !== undefined) {
          throw new Error(`sidecar exited (${exitCode}) before starting: ${JSON.stringify(this.logs)}`);
        }
        return this.logs.find((l) => l['event'] === 'sidecar.started');
      },
      (l) => l !== undefined,
    );
    return { proxy: line?.['proxy'] as AddressInfo, admin: line?.['admin'] as AddressInfo };
  }

  signal(name: NodeJS.Signals): void {
    this.#child.kill(name);
  }
}

function readAll(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    socket.setEncoding('utf8');
    socket.on('data', (c: string) => {
      text += c;
    });
    socket.once('end', () => resolve(text));
    socket.once('error', reject);
  });
}

beforeAll(async () => {
  if (!existsSync(binary)) {
    throw new Error(`${binary} is missing: build it with \`npm run build -w @httpmesh/sidecar\``);
  }
  upstream = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ path: req.url, host: req.headers.host }));
  });
  upstreamPort = await listen(upstream);
  const upstreamCa = await CertificateAuthority.create({ commonName: 'sea test upstream CA' });
  upstreamCaFile = join(dir, 'upstream-ca.pem');
  writeFileSync(upstreamCaFile, upstreamCa.certPem);
  const leaf = await upstreamCa.issueLeaf(['127.0.0.1']);
  tlsUpstream = createHttpsServer({ key: leaf.keyPem, cert: leaf.chainPem }, (req, res) =>
    res.end(`tls-upstream ${req.url}`),
  );
  tlsUpstreamPort = await listen(tlsUpstream);
  writeFileSync(
    rulesFile,
    [
      'intercept:',
      '  - domain: sea.localhost',
      'routes:',
      '  - host: 127.0.0.1',
      '    patterns: [/items/:id]',
      '',
    ].join('\n'),
  );
});

afterAll(() => {
  upstream?.closeAllConnections();
  upstream?.close();
  tlsUpstream?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('single executable (dist/sea/httpmesh-sidecar)', () => {
  test('--help lists the commands, and each command lists every one of its flags', async () => {
    const top = await runBinary(binary, ['--help']);
    expect(top.code).toBe(0);
    for (const command of ['run', 'init-net', 'ca']) expect(top.stdout).toContain(command);
    for (const command of ['run', 'init-net', 'ca'] as const) {
      const help = await runBinary(binary, [command, '--help']);
      expect(help.code).toBe(0);
      const flags = OPTION_SPECS.filter((s) => s.commands.includes(command));
      expect(flags.length).toBeGreaterThan(0);
      for (const spec of flags) {
        expect(help.stdout).toContain(`--${spec.flag}`);
        expect(help.stdout).toContain(spec.env);
      }
    }
  });

  test('malformed command lines exit 2 with the error code', async () => {
    const badMode = await runBinary(binary, ['run', '--mode', 'sideways']);
    expect(badMode.code).toBe(2);
    expect(badMode.stderr).toContain('[HTTPMESH_SIDECAR_OPTION_INVALID]');
    const badFlag = await runBinary(binary, ['run', '--no-such-flag']);
    expect(badFlag.code).toBe(2);
    expect(badFlag.stderr).toContain('[HTTPMESH_SIDECAR_FLAG_UNKNOWN]');
    const badCommand = await runBinary(binary, ['r\u00fcn']);
    expect(badCommand.code).toBe(2);
    expect(badCommand.stderr).toContain('[HTTPMESH_SIDECAR_USAGE]');
  });

  test('explicit mode: HTTP, HTTPS passthrough and interception through the binary, per-pattern metrics, exit 0 on SIGTERM', async () => {
    const sidecar = new SidecarProcess(binary, [
      '--listen',
      '127.0.0.1:0',
      '--admin',
      '127.0.0.1:0',
      '--ca-dir',
      join(dir, 'mesh-ca'),
      '--rules',
      rulesFile,
      '--upstream-ca',
      upstreamCaFile,
    ]);
    try {
      const { proxy, admin } = await sidecar.started();
      expect(proxy.address).toBe('127.0.0.1');

      const plain = await getLocal(proxy.port, `http://127.0.0.1:${upstreamPort}/items/42?q=1`, {
        host: `127.0.0.1:${upstreamPort}`,
      });
      expect(plain.status).toBe(200);
      expect(JSON.parse(plain.body)).toEqual({ path: '/items/42?q=1', host: `127.0.0.1:${upstreamPort}` });

      // HTTPS not in the intercept rules (no SNI: an IP) passes through: the client sees the upstream's own
      // certificate and gets its answer.
      const passthrough = tlsConnect({
        socket: await connectTunnel(proxy.port, `127.0.0.1:${tlsUpstreamPort}`),
        host: '127.0.0.1',
        ca: readFileSync(upstreamCaFile, 'utf8'),
      });
      passthrough.write('GET /through HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n');
      const passthroughReply = await readAll(passthrough);
      expect(passthroughReply).toMatch(/^HTTP\/1\.1 200 /);
      expect(passthroughReply).toContain('tls-upstream /through');

      // HTTPS to an intercepted name is terminated with a leaf the binary mints from its mesh CA (the client
      // trusts only that CA). No request is sent: the name resolves nowhere, and the upstream leg is the one
      // already exercised above.
      const meshCa = readFileSync(join(dir, 'mesh-ca', 'ca.crt'), 'utf8');
      const intercepted = tlsConnect({
        socket: await connectTunnel(proxy.port, `127.0.0.1:${tlsUpstreamPort}`),
        servername: 'sea.localhost',
        ca: meshCa,
      });
      await new Promise<void>((resolve, reject) => {
        intercepted.once('secureConnect', resolve);
        intercepted.once('error', reject);
      });
      const leaf = intercepted.getPeerX509Certificate();
      expect(leaf?.checkIssued(new X509Certificate(meshCa))).toBe(true);
      expect(leaf?.checkHost('sea.localhost')).toBe('sea.localhost');
      intercepted.destroy();

      const metrics = await getLocal(admin.port, '/metrics');
      expect(metrics.status).toBe(200);
      expect(metrics.body).toMatch(
        /http_client_request_duration_count\{[^}]*http_route="\/items\/:id"[^}]*\} 1/,
      );
      expect(metrics.body).not.toContain('/items/42');

      sidecar.signal('SIGTERM');
      expect(await sidecar.exited).toBe(0);
      expect(sidecar.logs.some((l) => l['event'] === 'sidecar.stopped')).toBe(true);
    } finally {
      sidecar.signal('SIGKILL');
    }
  });

  /** Starts transparent mode (no init-net: connections arrive unredirected) and opens one connection. */
  async function transparentConnection(path: string, caDir: string) {
    const sidecar = new SidecarProcess(path, [
      '--mode',
      'transparent',
      '--outbound-port',
      String(await freePort('127.0.0.1')),
      '--inbound-port',
      String(await freePort('0.0.0.0')),
      '--admin',
      '127.0.0.1:0',
      '--ca-dir',
      caDir,
    ]);
    const { proxy, admin } = await sidecar.started();
    const socket = connect(proxy.port, '127.0.0.1');
    await new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve);
      socket.once('error', reject);
    });
    // The addon is loaded when the first connection is handed to the proxy, right after it is counted.
    await eventually(
      async () =>
        JSON.parse((await getLocal(admin.port, '/connections')).body) as { accepted: { outbound: number } },
      (c) => c.accepted.outbound === 1,
    );
    return { sidecar, socket };
  }

  test('transparent mode loads the SO_ORIGINAL_DST addon shipped beside the binary', async () => {
    const addon = join(fileURLToPath(new URL('../dist/sea/', import.meta.url)), 'original_dst.node');
    expect(existsSync(addon)).toBe(true);
    const { sidecar, socket } = await transparentConnection(binary, join(dir, 'transparent-ca'));
    try {
      socket.destroy();
      expect(sidecar.otherLines.filter((l) => l.includes(ADDON_MISSING_LINE))).toEqual([]);
      sidecar.signal('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    } finally {
      sidecar.signal('SIGKILL');
    }
  });

  test('without the addon beside it, the binary logs the fallback once and routes by Host', async () => {
    const lonely = join(dir, 'lonely', 'httpmesh-sidecar');
    mkdirSync(join(dir, 'lonely'));
    copyFileSync(binary, lonely);
    chmodSync(lonely, 0o755);
    const { sidecar, socket } = await transparentConnection(lonely, join(dir, 'lonely-ca'));
    try {
      let reply = '';
      socket.setEncoding('utf8');
      socket.on('data', (c: string) => {
        reply += c;
      });
      socket.write(`GET /fallback HTTP/1.1\r\nHost: 127.0.0.1:${upstreamPort}\r\nConnection: close\r\n\r\n`);
      await new Promise((resolve) => socket.once('end', resolve));
      expect(reply).toMatch(/^HTTP\/1\.1 200 /);
      expect(reply).toContain('"path":"/fallback"');
      expect(sidecar.otherLines.filter((l) => l.includes(ADDON_MISSING_LINE))).toHaveLength(1);
      sidecar.signal('SIGTERM');
      expect(await sidecar.exited).toBe(0);
    } finally {
      sidecar.signal('SIGKILL');
    }
  });
});
