/**
 * Zero-downtime sidecar upgrade.
 *
 * Node cannot pass file descriptors between two unrelated processes (no SCM_RIGHTS API), but it can send
 * a listening `net.Server` to a child over the IPC channel. So the running sidecar (the "old" process)
 * listens on a control Unix socket (0600); `httpmesh-sidecar run --upgrade-from <socket>` (the
 * "launcher") connects and sends its own command line; the old process spawns that command as a
 * detached child with an IPC channel and sends it the listening sockets (proxy, inbound, admin). The
 * child serves on them, says ready, takes over the control socket; the old process stops accepting,
 * drains and exits 0. Both processes accept on the same sockets for a moment, so no connection is refused.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { type AddressInfo, connect, createServer, type Server as NetServer, type Socket } from 'node:net';
import { dirname } from 'node:path';
import type { Logger } from 'pino';

/** Set in the child's environment: wait for listening sockets on the IPC channel instead of binding. */
export const HANDOFF_ENV = 'HTTPMESH_UPGRADE_HANDOFF';
const MAX_REQUEST_BYTES = 256 * 1024;

/**
 * A listening socket's libuv handle (TCPWrap). Sent over IPC as a bare handle, the receiver gets it
 * without anybody accepting on it yet: a `net.Server` would start accepting in the child the moment it
 * arrives, before the sidecar has a listener for its connections (they would hang).
 */
export interface ListenHandle {
  close(): void;
  getsockname?(out: Record<string, unknown>): number;
}

/** The libuv handle behind a listening server (Node's `server.listen(handle)` accepts it back). */
export function handleOf(server: NetServer): ListenHandle {
  return (server as unknown as { _handle: ListenHandle })._handle;
}

/** Local address of a listening handle. */
export function addressOf(handle: ListenHandle): AddressInfo {
  const out: Record<string, unknown> = {};
  handle.getsockname?.(out);
  return out as unknown as AddressInfo;
}

/** The listening sockets a sidecar hands to its successor. */
export interface HandoffListeners {
  readonly proxy: ListenHandle;
  readonly inbound: ListenHandle | null;
  readonly admin: ListenHandle;
}

/** What the old process needs from the running sidecar. */
export interface UpgradeSource {
  listeners(): HandoffListeners;
  /** Closes the listening sockets in this process (the successor keeps its copies). */
  stopAccepting(): void;
}

/** The control-socket request (one JSON line). */
export interface UpgradeRequest {
  readonly op: 'upgrade';
  readonly execPath: string;
  readonly args: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly cwd: string;
}

/** A malformed request on the control socket, or an upgrade that failed before the handover. */
export class UpgradeError extends Error {
  readonly code: string;
  constructor(
    code: 'HTTPMESH_SIDECAR_UPGRADE_REQUEST_INVALID' | 'HTTPMESH_SIDECAR_UPGRADE_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'UpgradeError';
    this.code = code;
  }
}

type ChildMessage =
  | { type: 'hello' }
  | { type: 'ready'; pid: number }
  | { type: 'control-ready' }
  | { type: 'failed'; message: string };

/** Parses and checks one control-socket request line. */
export function parseUpgradeRequest(line: string): UpgradeRequest {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    throw new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_REQUEST_INVALID', 'request is not JSON');
  }
  const bad = (what: string): never => {
    throw new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_REQUEST_INVALID', what);
  };
  if (value === null || typeof value !== 'object' || Array.isArray(value)) bad('request must be an object');
  const r = value as Record<string, unknown>;
  if (r['op'] !== 'upgrade') bad('op must be "upgrade"');
  if (typeof r['execPath'] !== 'string' || r['execPath'] === '') bad('execPath must be a non-empty string');
  if (!Array.isArray(r['args']) || !r['args'].every((a) => typeof a === 'string'))
    bad('args must be strings');
  const env = r['env'];
  if (env === null || typeof env !== 'object' || Array.isArray(env)) bad('env must be an object');
  for (const v of Object.values(env as object)) if (typeof v !== 'string') bad('env values must be strings');
  if (typeof r['cwd'] !== 'string' || r['cwd'] === '') bad('cwd must be a non-empty string');
  return r as unknown as UpgradeRequest;
}

/**
 * Old-process side: listens on `path` (mode 0600; a missing parent directory is created) and runs upgrades.
 * `upgraded` resolves once a successor serves and owns the control socket; the caller then drains and
 * calls `finish()` to tell the launcher and exit.
 */
export class UpgradeControl {
  readonly path: string;
  readonly upgraded: Promise<{ pid: number }>;
  readonly #server: NetServer;
  readonly #log: Logger;
  readonly #source: UpgradeSource;
  #resolveUpgraded!: (v: { pid: number }) => void;
  #busy = false;
  #launcher: Socket | undefined;

  private constructor(path: string, server: NetServer, log: Logger, source: UpgradeSource) {
    this.path = path;
    this.#server = server;
    this.#log = log;
    this.#source = source;
    this.upgraded = new Promise((resolve) => {
      this.#resolveUpgraded = resolve;
    });
    server.on('connection', (socket) => this.#onConnection(socket));
  }

  static async listen(path: string, log: Logger, source: UpgradeSource): Promise<UpgradeControl> {
    // 0755 like init-net makes this directory (it also holds the intercept file); the socket itself is 0600.
    mkdirSync(dirname(path), { recursive: true, mode: 0o755 });
    if (existsSync(path)) {
      // A live control socket means another sidecar runs here; a dead one is left over from a crash.
      const alive = await new Promise<boolean>((resolve) => {
        const probe = connect(path);
        probe.once('connect', () => {
          probe.destroy();
          resolve(true);
        });
        probe.once('error', () => resolve(false));
      });
      if (alive)
        throw new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_FAILED', `${path}: another sidecar is listening`);
      unlinkSync(path);
    }
    const server = createServer();
    // umask for the bind itself, so the socket is never reachable by others, even briefly.
    const previous = process.umask(0o177);
    try {
      server.listen(path);
    } finally {
      process.umask(previous);
    }
    await new Promise<void>((resolve, reject) => {
      server.once('listening', resolve);
      server.once('error', reject);
    });
    chmodSync(path, 0o600);
    return new UpgradeControl(path, server, log, source);
  }

  /**
   * Stops listening; the socket file is removed at once (libuv unlinks it when the handle closes). Open
   * control connections (the launcher waiting for the result) stay up.
   */
  close(): void {
    this.#server.close();
  }

  /** After the drain: reports to the launcher that waits for it. */
  finish(result: { drained: boolean; abandoned: number }): Promise<void> {
    const launcher = this.#launcher;
    if (launcher === undefined || launcher.destroyed) return Promise.resolve();
    return new Promise((resolve) => {
      launcher.end(`${JSON.stringify({ event: 'drained', pid: process.pid, ...result })}\n`, () => resolve());
      setTimeout(resolve, 1000).unref();
    });
  }

  #onConnection(socket: Socket): void {
    let buffered = '';
    socket.setEncoding('utf8');
    const reply = (body: Record<string, unknown>) => {
      if (!socket.destroyed) socket.write(`${JSON.stringify(body)}\n`);
    };
    const fail = (error: UpgradeError) => {
      reply({ event: 'error', code: error.code, message: error.message });
      socket.end();
    };
    socket.on('error', () => socket.destroy());
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      const nl = buffered.indexOf('\n');
      if (nl < 0) {
        if (buffered.length > MAX_REQUEST_BYTES) {
          socket.removeAllListeners('data');
          fail(new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_REQUEST_INVALID', 'request line too long'));
        }
        return;
      }
      socket.removeAllListeners('data');
      let request: UpgradeRequest;
      try {
        request = parseUpgradeRequest(buffered.slice(0, nl));
      } catch (e) {
        fail(e as UpgradeError);
        return;
      }
      if (this.#busy) {
        fail(new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_FAILED', 'an upgrade is already in progress'));
        return;
      }
      this.#busy = true;
      this.#upgrade(request, reply).then(
        (pid) => {
          this.#launcher = socket;
          reply({ event: 'ready', pid, oldPid: process.pid });
          this.#resolveUpgraded({ pid });
        },
        (e: Error) => {
          this.#busy = false;
          this.#log.error(
            { event: 'upgrade.failed', err: e.message },
            'upgrade failed; this process keeps serving',
          );
          fail(
            e instanceof UpgradeError ? e : new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_FAILED', e.message),
          );
        },
      );
    });
  }

  async #upgrade(request: UpgradeRequest, reply: (body: Record<string, unknown>) => void): Promise<number> {
    const child: ChildProcess = spawn(request.execPath, [...request.args], {
      cwd: request.cwd,
      env: { ...request.env, [HANDOFF_ENV]: '1' },
      // Logs go where this process's go; the successor outlives us in its own process group.
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
      detached: true,
    });
    const pid = child.pid;
    this.#log.info({ event: 'upgrade.spawned', pid, execPath: request.execPath }, 'successor started');
    reply({ event: 'spawned', pid });
    const listeners = this.#source.listeners();
    const timeoutMs = 30_000;
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () =>
            reject(
              new UpgradeError(
                'HTTPMESH_SIDECAR_UPGRADE_FAILED',
                `successor not ready within ${timeoutMs} ms`,
              ),
            ),
          timeoutMs,
        );
        const done = (error?: Error) => {
          clearTimeout(timer);
          child.removeAllListeners('message');
          child.removeListener('exit', onExit);
          if (error) reject(error);
          else resolve();
        };
        const onExit = (code: number | null, signal: string | null) =>
          done(
            new UpgradeError(
              'HTTPMESH_SIDECAR_UPGRADE_FAILED',
              `successor exited (code ${code}, signal ${signal}) before it was ready`,
            ),
          );
        child.once('exit', onExit);
        child.once('error', (e) => done(new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_FAILED', e.message)));
        child.on('message', (message: ChildMessage) => {
          switch (message.type) {
            case 'hello':
              // Bare handles ('net.Native'): see ListenHandle.
              child.send({ type: 'listener', role: 'proxy' }, listeners.proxy as never);
              if (listeners.inbound !== null)
                child.send({ type: 'listener', role: 'inbound' }, listeners.inbound as never);
              child.send({ type: 'listener', role: 'admin' }, listeners.admin as never);
              child.send({ type: 'listeners-done' });
              break;
            case 'ready':
              // The successor accepts on the same sockets now: stop accepting here, free the control socket.
              this.#source.stopAccepting();
              this.close();
              child.send({ type: 'control-free' });
              break;
            case 'control-ready':
              done();
              break;
            case 'failed':
              done(
                new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_FAILED', `successor failed: ${message.message}`),
              );
              break;
          }
        });
      });
    } catch (error) {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      throw error;
    }
    child.disconnect();
    child.unref();
    return pid as number;
  }
}

/**
 * Child side: when started by an upgrade (HANDOFF_ENV set and an IPC channel present), asks the parent
 * for its listening sockets. Returns null otherwise.
 */
export async function receiveHandoff(timeoutMs = 30_000): Promise<Handoff | null> {
  if (process.env[HANDOFF_ENV] !== '1' || typeof process.send !== 'function') return null;
  delete process.env[HANDOFF_ENV];
  const send = process.send.bind(process);
  const received: { proxy?: ListenHandle; inbound?: ListenHandle; admin?: ListenHandle } = {};
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new UpgradeError('HTTPMESH_SIDECAR_UPGRADE_FAILED', 'no listeners from the old process')),
      timeoutMs,
    );
    const onMessage = (message: { type?: string; role?: string }, handle: unknown) => {
      if (message.type === 'listener' && handle !== undefined) {
        if (message.role === 'proxy' || message.role === 'inbound' || message.role === 'admin') {
          received[message.role] = handle as ListenHandle;
        }
      } else if (message.type === 'listeners-done') {
        clearTimeout(timer);
        process.removeListener('message', onMessage);
        resolve();
      }
    };
    process.on('message', onMessage);
    send({ type: 'hello' });
  });
  if (received.proxy === undefined || received.admin === undefined) {
    throw new UpgradeError(
      'HTTPMESH_SIDECAR_UPGRADE_FAILED',
      'the old process sent no proxy or admin listener',
    );
  }
  const listeners: HandoffListeners = {
    proxy: received.proxy,
    inbound: received.inbound ?? null,
    admin: received.admin,
  };
  return {
    listeners,
    async serving() {
      const controlFree = new Promise<void>((resolve) => {
        const onMessage = (message: { type?: string }) => {
          if (message.type !== 'control-free') return;
          process.removeListener('message', onMessage);
          resolve();
        };
        process.on('message', onMessage);
      });
      send({ type: 'ready', pid: process.pid });
      await controlFree;
    },
    controlReady() {
      send({ type: 'control-ready' });
      // The parent disconnects; an open IPC channel must not keep this process alive on its own.
      process.channel?.unref();
    },
    failed(error: Error) {
      send({ type: 'failed', message: error.message });
    },
  };
}

export interface Handoff {
  readonly listeners: HandoffListeners;
  /** Tells the old process we serve; resolves when it freed the control socket. */
  serving(): Promise<void>;
  /** Tells the old process our control socket is up (it then drains and exits). */
  controlReady(): void;
  failed(error: Error): void;
}

/**
 * Launcher side (`run --upgrade-from <socket>`): asks the running sidecar to start this command line as
 * its successor, prints the progress lines to stdout, resolves with the exit code (0 once the old process
 * drained, 1 on failure).
 */
export async function requestUpgrade(socketPath: string, log: Logger): Promise<number> {
  const request: UpgradeRequest = {
    op: 'upgrade',
    execPath: process.execPath,
    args: successorArgs(process.execArgv, process.argv),
    env: successorEnv(process.env),
    cwd: process.cwd(),
  };
  const socket = connect(socketPath);
  return await new Promise<number>((resolve) => {
    let buffered = '';
    let code = 1;
    socket.setEncoding('utf8');
    socket.once('connect', () => socket.write(`${JSON.stringify(request)}\n`));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let nl = buffered.indexOf('\n');
      while (nl >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        process.stdout.write(`${line}\n`);
        try {
          const event = JSON.parse(line) as { event?: string };
          if (event.event === 'drained') code = 0;
        } catch {
          // progress lines are informative only
        }
        nl = buffered.indexOf('\n');
      }
    });
    socket.on('error', (e) => {
      log.error(
        { event: 'upgrade.request_failed', socket: socketPath, err: e.message },
        'cannot reach the running sidecar',
      );
    });
    socket.on('close', () => resolve(code));
  });
}

/** The launcher's own command line without `--upgrade-from`, for the successor. */
export function successorArgs(execArgv: readonly string[], argv: readonly string[]): string[] {
  // A single executable has argv[1] === execPath: everything after it is ours.
  const script = argv[1];
  const rest = argv.slice(2);
  const out: string[] = [];
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] as string;
    if (a === '--upgrade-from') {
      i++;
      continue;
    }
    if (a.startsWith('--upgrade-from=')) continue;
    out.push(a);
  }
  if (script === undefined || script === process.execPath) return out;
  return [...execArgv, script, ...out];
}

function successorEnv(env: NodeJS.ProcessEnv): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) if (v !== undefined && k !== 'HTTPMESH_UPGRADE_FROM') out[k] = v;
  return out;
}
