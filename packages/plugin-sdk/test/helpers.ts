import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { PluginClient, type PluginClientOptions } from '../src/index.js';

export const PACKAGE_DIR = fileURLToPath(new URL('..', import.meta.url));
export const REPO_DIR = join(PACKAGE_DIR, '..', '..');
export const PYTHON = '/usr/bin/python3';

/** Why Python plugins cannot run here, or undefined when they can. */
export function pythonMissing(): string | undefined {
  const r = spawnSync(PYTHON, ['-c', 'import grpc, google.protobuf'], { encoding: 'utf8' });
  if (r.error) return `${PYTHON} not found`;
  if (r.status !== 0)
    return `${PYTHON} lacks grpc/protobuf (apt-get install python3-grpcio python3-protobuf)`;
  return undefined;
}

export interface Command {
  readonly command: string;
  readonly args: readonly string[];
}

export function tsPlugin(file: string): Command {
  return { command: process.execPath, args: ['--import', 'tsx', file] };
}

export function pyPlugin(file: string): Command {
  return { command: PYTHON, args: [file] };
}

export function tempDir(prefix: string): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunningPlugin {
  readonly child: ChildProcess;
  readonly socket: string;
  readonly client: PluginClient;
  readonly output: () => string;
  stop(): Promise<void>;
}

/** Spawns a plugin process on a fresh Unix socket and connects a client to it. */
export async function startPlugin(
  cmd: Command,
  options: PluginClientOptions & { env?: Record<string, string> } = {},
): Promise<RunningPlugin> {
  const tmp = tempDir('httpmesh-plugin-');
  const socket = join(tmp.dir, 'plugin.sock');
  const child = spawn(cmd.command, [...cmd.args], {
    cwd: PACKAGE_DIR,
    env: { ...process.env, ...options.env, HTTPMESH_PLUGIN_SOCKET: socket },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  child.stderr?.on('data', (d: Buffer) => {
    output += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
    tmp.remove();
  };
  try {
    const client = await PluginClient.connect(socket, { handshakeTimeoutMs: 20_000, ...options });
    return {
      child,
      socket,
      client,
      output: () => output,
      stop: async () => {
        client.close();
        await stop();
      },
    };
  } catch (err) {
    await stop();
    throw new Error(`plugin did not start: ${(err as Error).message}\n${output}`);
  }
}

/** Polls `cond` until true or the deadline passes (no fixed sleeps). */
export async function waitFor(cond: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await cond())) {
    if (Date.now() > deadline) throw new Error('condition not met before deadline');
    await new Promise((r) => setTimeout(r, 10));
  }
}
