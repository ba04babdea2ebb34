/**
 * A stop signal is a clean stop at any moment of `serve`, start-up included: the handlers are installed
 * before the store opens, so a SIGTERM while start-up is under way waits for it to settle, closes what it
 * opened and exits 0, instead of the signal's default action (the process killed by the signal).
 *
 * The etcd test is deterministic: the store's connection to etcd goes through a gate this test holds shut,
 * so the signal lands while the CLI is provably still inside start-up; only then does the gate open.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { type AddressInfo, connect, createServer, type Server, type Socket } from 'node:net';
import { afterEach, describe, expect, test } from 'vitest';
import { skipEtcd, startEtcd, tempDir, waitFor } from './helpers.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;

interface Serve {
  readonly child: ChildProcess;
  readonly out: { stdout: string; stderr: string };
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function serve(args: string[]): Serve {
  const child = spawn(process.execPath, [cli, 'serve', ...args], {
    env: { PATH: process.env['PATH'] ?? '' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const out = { stdout: '', stderr: '' };
  child.stdout?.on('data', (c: Buffer) => {
    out.stdout += c.toString();
  });
  child.stderr?.on('data', (c: Buffer) => {
    out.stderr += c.toString();
  });
  const exit = (once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>).then(
    ([code, signal]) => ({ code, signal }),
  );
  return { child, out, exit };
}

/** A TCP gate in front of `target`: connections are accepted but not read until `open()`, then piped. */
interface Gate {
  readonly port: number;
  readonly held: number;
  open(): void;
  close(): Promise<void>;
}

async function startGate(target: { host: string; port: number }): Promise<Gate> {
  const sockets = new Set<Socket>();
  const waiting: Socket[] = [];
  let isOpen = false;
  let held = 0;
  const pipe = (client: Socket): void => {
    const upstream = connect(target.port, target.host);
    sockets.add(upstream);
    upstream.on('close', () => sockets.delete(upstream));
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
    client.pipe(upstream).pipe(client);
    client.resume();
  };
  const server: Server = createServer({ pauseOnConnect: true }, (client) => {
    sockets.add(client);
    client.on('close', () => sockets.delete(client));
    held++;
    if (isOpen) pipe(client);
    else waiting.push(client);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as AddressInfo).port,
    get held() {
      return held;
    },
    open() {
      isOpen = true;
      for (const client of waiting.splice(0)) pipe(client);
    },
    async close() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

function killOnCleanup(proc: Serve): void {
  cleanups.push(async () => {
    if (proc.child.exitCode === null && proc.child.signalCode === null) {
      proc.child.kill('SIGKILL');
      await proc.exit;
    }
  });
}

describe('httpmesh-control-plane serve: stop signal during start-up', () => {
  test.skipIf(skipEtcd)(
    'SIGTERM while the etcd store is still opening: start-up completes, then it stops cleanly (exit 0, not killed)',
    async () => {
      const etcd = await startEtcd();
      cleanups.push(() => etcd.stop());
      const etcdUrl = new URL(etcd.endpoint);
      const gate = await startGate({ host: etcdUrl.hostname, port: Number(etcdUrl.port) });
      cleanups.push(() => gate.close());
      const data = tempDir('cli-startup-signal');
      cleanups.push(() => data.cleanup());

      const proc = serve([
        '--store',
        'etcd',
        '--etcd-endpoints',
        `http://127.0.0.1:${gate.port}`,
        '--etcd-prefix',
        '/startup-signal',
        '--grpc',
        '127.0.0.1:0',
        '--http',
        '127.0.0.1:0',
        '--data-dir',
        data.dir,
      ]);
      killOnCleanup(proc);
      // The CLI has connected to etcd and waits for its reply, which the gate holds back: start-up is
      // under way and cannot finish before the signal lands.
      await waitFor(() => gate.held > 0, 20_000, 'the store to connect to etcd');
      proc.child.kill('SIGTERM');
      // Fixed code: it says it will stop once start-up settles. Old code: the signal killed it.
      await Promise.race([
        proc.exit,
        waitFor(
          () => proc.out.stderr.includes('SIGTERM: shutting down once start-up settles'),
          10_000,
          'the stop to be acknowledged',
        ),
      ]);
      gate.open();
      const { code, signal } = await proc.exit;
      expect({ code, signal, stderr: proc.out.stderr }).toMatchObject({ code: 0, signal: null });
      expect(proc.out.stderr).toContain('start-up done; stopping as SIGTERM asked');
      // It never announced a service that was about to go away.
      expect(proc.out.stdout).not.toContain('control plane listening');
    },
    60_000,
  );

  test('SIGINT the moment start-up begins (SQLite store): exit 0, not killed by the signal', async () => {
    const data = tempDir('cli-startup-sigint');
    cleanups.push(() => data.cleanup());
    const proc = serve(['--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', data.dir]);
    killOnCleanup(proc);
    await waitFor(() => proc.out.stderr.includes('info starting: sqlite store'), 20_000, 'start-up to begin');
    proc.child.kill('SIGINT');
    const { code, signal } = await proc.exit;
    expect({ code, signal, stderr: proc.out.stderr }).toMatchObject({ code: 0, signal: null });
    expect(proc.out.stderr).toContain('SIGINT: shutting down');
  }, 30_000);
});
