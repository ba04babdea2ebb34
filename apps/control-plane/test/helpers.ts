import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), `cp-${prefix}-`));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Polls `condition` until it holds or `timeoutMs` passes (bounded, no fixed sleeps). */
export async function waitFor(
  condition: () => boolean | Promise<boolean>,
  timeoutMs = 10_000,
  what = 'condition',
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

export const ETCD_BINARY = '/usr/bin/etcd';
export const hasEtcd = existsSync(ETCD_BINARY);
/** Outside CI a missing etcd skips the etcd tests visibly; under CI it must be installed. */
export const skipEtcd = !hasEtcd && process.env['CI'] !== 'true';

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address !== null ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

export interface EtcdInstance {
  endpoint: string;
  stop(): Promise<void>;
}

/** A real single-member etcd on loopback with free ports and a temporary data dir. */
export async function startEtcd(): Promise<EtcdInstance> {
  for (let attempt = 0; ; attempt++) {
    const { dir, cleanup } = tempDir('etcd');
    const clientPort = await freePort();
    const peerPort = await freePort();
    const client = `http://127.0.0.1:${clientPort}`;
    const peer = `http://127.0.0.1:${peerPort}`;
    const child: ChildProcess = spawn(
      ETCD_BINARY,
      [
        '--name=test',
        `--data-dir=${dir}`,
        `--listen-client-urls=${client}`,
        `--advertise-client-urls=${client}`,
        `--listen-peer-urls=${peer}`,
        `--initial-advertise-peer-urls=${peer}`,
        `--initial-cluster=test=${peer}`,
        '--log-level=error',
      ],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    let dead = false;
    void exited.then(() => {
      dead = true;
    });
    const stop = async (): Promise<void> => {
      if (!dead) {
        child.kill('SIGTERM');
        await exited;
      }
      cleanup();
    };
    try {
      await waitFor(
        async () => {
          if (dead) throw new Error(`etcd exited: ${stderr}`);
          try {
            const res = await fetch(`${client}/health`);
            return res.ok;
          } catch {
            return false;
          }
        },
        15_000,
        'etcd to become healthy',
      );
      return { endpoint: client, stop };
    } catch (err) {
      await stop();
      // A free port can be taken between probing and binding; retry a couple of times.
      if (attempt >= 2) throw err;
    }
  }
}
