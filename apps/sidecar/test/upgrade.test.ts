/**
 * Zero-downtime sidecar upgrade through REAL processes: the built bin serving an explicit proxy on
 * loopback, a bounded load (keep-alive off and on, concurrency 20) through it, and
 * `httpmesh-sidecar run --upgrade-from <control socket>` in the middle. Asserts zero failed requests,
 * that the old process exits 0 and that a different pid serves afterwards; plus the control socket's
 * permissions and malformed requests on it.
 */
import { spawn } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { Agent } from 'node:http';
import { connect } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { parseUpgradeRequest, successorArgs } from '../src/upgrade.js';
import {
  adminGet,
  CLI,
  loopbackRunArgs,
  REPO_DIR,
  runLoad,
  SEA_BIN,
  type SidecarProcess,
  startSidecarProcess,
  startUpstream,
  tempDir,
  type Upstream,
  viaProxy,
  waitFor,
} from './plugins-harness.js';

let upstream: Upstream;
beforeAll(async () => {
  upstream = await startUpstream();
});
afterAll(async () => {
  await upstream.close();
});

/** Runs the launcher; resolves with its exit code and stdout (JSON progress lines). */
function launchUpgrade(
  controlSocket: string,
  dir: string,
  rulesFile: string,
  bin?: string,
): Promise<{ code: number | null; lines: Record<string, unknown>[] }> {
  const child = spawn(
    bin ?? process.execPath,
    [
      ...(bin === undefined ? [CLI] : []),
      'run',
      ...loopbackRunArgs(join(dir, 'ca')),
      '--rules',
      rulesFile,
      '--control-socket',
      controlSocket,
      '--upgrade-from',
      controlSocket,
    ],
    { cwd: REPO_DIR, stdio: ['ignore', 'pipe', 'inherit'] },
  );
  let out = '';
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (c: string) => {
    out += c;
  });
  return new Promise((resolve) =>
    child.once('exit', (code) =>
      resolve({
        code,
        lines: out
          .split('\n')
          .filter(Boolean)
          .map((l) => JSON.parse(l) as Record<string, unknown>),
      }),
    ),
  );
}

const seaMissing = existsSync(SEA_BIN) ? undefined : `${SEA_BIN} not built (npm run build)`;
if (seaMissing !== undefined && process.env['CI'] === 'true') throw new Error(seaMissing);
const VARIANTS = [
  { keepAlive: false, bin: undefined, label: 'keep-alive off', skip: undefined },
  { keepAlive: true, bin: undefined, label: 'keep-alive on', skip: undefined },
  { keepAlive: true, bin: SEA_BIN, label: 'keep-alive on, single executable', skip: seaMissing },
] as const;

for (const { keepAlive, bin, label, skip } of VARIANTS) {
  describe.skipIf(skip !== undefined)(
    `sidecar upgrade under load, ${label}${skip ? ` (skipped: ${skip})` : ''}`,
    () => {
      const tmp = tempDir('httpmesh-sidecar-upgrade-');
      const controlSocket = join(tmp.dir, 'state', 'control.sock');
      let sidecar: SidecarProcess;

      beforeAll(async () => {
        sidecar = await startSidecarProcess({
          dir: tmp.dir,
          rules: 'routes:\n  - host: 127.0.0.1\n    patterns: [/load/:n]\n',
          args: ['--control-socket', controlSocket, '--drain-timeout', '10000'],
          ...(bin === undefined ? {} : { bin }),
        });
      }, 60_000);
      afterAll(async () => {
        // The successor is not our child: stop it by pid.
        const successor = sidecar.logs.find((l) => l.event === 'upgrade.serving')?.['pid'];
        if (typeof successor === 'number') {
          try {
            process.kill(successor, 'SIGTERM');
          } catch {
            // already gone
          }
          await waitFor(
            () => {
              try {
                process.kill(successor, 0);
                return false;
              } catch {
                return true;
              }
            },
            (gone) => gone,
          );
        }
        await sidecar.stop();
        tmp.remove();
      });

      test('3,000 requests with an upgrade in the middle: zero failures, old exits 0, new pid serves', async () => {
        expect(statSync(controlSocket).mode & 0o777).toBe(0o600);
        const oldPid = sidecar.child.pid as number;
        const agent = keepAlive ? new Agent({ keepAlive: true, maxSockets: 20 }) : false;
        let n = 0;
        let upgrade: Promise<{ code: number | null; lines: Record<string, unknown>[] }> | undefined;
        let upgradeDone = false;
        const result = await runLoad({
          count: 3000,
          concurrency: 20,
          maxCount: 30_000,
          maxMs: 60_000,
          // Keep the load running until the old process has drained and exited.
          keepGoing: () => !upgradeDone,
          send: () => viaProxy(sidecar.proxyPort, upstream.port, `/load/${n++}`, {}, agent),
          onReply: (done) => {
            if (done === 300 && upgrade === undefined) {
              upgrade = launchUpgrade(controlSocket, tmp.dir, join(tmp.dir, 'rules.yaml'), bin);
              void upgrade
                .then(() => sidecar.exited)
                .then(() => {
                  upgradeDone = true;
                });
            }
          },
        });
        if (agent) agent.destroy();
        expect(result.failures).toEqual([]);
        expect(result.sent).toBeGreaterThanOrEqual(3000);
        const launched = await (upgrade as Promise<{
          code: number | null;
          lines: Record<string, unknown>[];
        }>);
        expect(launched.code).toBe(0);
        const ready = launched.lines.find((l) => l['event'] === 'ready');
        expect(ready?.['oldPid']).toBe(oldPid);
        const newPid = ready?.['pid'] as number;
        expect(newPid).not.toBe(oldPid);
        expect(launched.lines.find((l) => l['event'] === 'drained')?.['drained']).toBe(true);
        expect(await sidecar.exited).toBe(0);

        // Same ports, served by the new process (it logs to the same stream).
        const after = await viaProxy(sidecar.proxyPort, upstream.port, '/load/after');
        expect(after.status).toBe(200);
        // The admin socket was handed over too: ready (the old process would say draining).
        expect((await adminGet(sidecar.adminPort, '/readyz')).status).toBe(200);
        const serving = sidecar.logs.find((l) => l.event === 'upgrade.serving');
        expect(serving?.['pid']).toBe(newPid);
        // The successor owns the control socket now (0600 again).
        await waitFor(
          () => {
            try {
              return statSync(controlSocket).mode & 0o777;
            } catch {
              return -1;
            }
          },
          (mode) => mode === 0o600,
        );
      }, 120_000);
    },
  );
}

describe('control socket input', () => {
  const tmp = tempDir('httpmesh-sidecar-control-');
  const controlSocket = join(tmp.dir, 'state', 'control.sock');
  let sidecar: SidecarProcess;
  beforeAll(async () => {
    sidecar = await startSidecarProcess({
      dir: tmp.dir,
      rules: 'routes: []\n',
      args: ['--control-socket', controlSocket],
    });
  }, 60_000);
  afterAll(async () => {
    expect(await sidecar.stop()).toBe(0);
    tmp.remove();
  });

  const ask = (payload: string): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const socket = connect(controlSocket);
      let out = '';
      socket.setEncoding('utf8');
      socket.on('connect', () => socket.write(payload));
      socket.on('data', (c: string) => {
        out += c;
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(JSON.parse(out.split('\n')[0] ?? '{}') as Record<string, unknown>));
    });

  test('malformed requests are answered with an error and change nothing', async () => {
    for (const payload of [
      'not json\n',
      '[]\n',
      '{"op":"reload"}\n',
      '{"op":"upgrade","execPath":"","args":[],"env":{},"cwd":"/"}\n',
      '{"op":"upgrade","execPath":"x","args":[1],"env":{},"cwd":"/"}\n',
    ]) {
      const reply = await ask(payload);
      expect(reply['event']).toBe('error');
      expect(reply['code']).toBe('HTTPMESH_SIDECAR_UPGRADE_REQUEST_INVALID');
    }
    // Still serving.
    expect((await viaProxy(sidecar.proxyPort, upstream.port, '/still')).status).toBe(200);
  });

  test('a successor that cannot start fails the upgrade; the old process keeps serving', async () => {
    const reply = await new Promise<string>((resolve, reject) => {
      const socket = connect(controlSocket);
      let out = '';
      socket.setEncoding('utf8');
      socket.on('connect', () =>
        socket.write(
          `${JSON.stringify({ op: 'upgrade', execPath: process.execPath, args: ['-e', 'process.exit(7)'], env: {}, cwd: tmp.dir })}\n`,
        ),
      );
      socket.on('data', (c: string) => {
        out += c;
      });
      socket.on('error', reject);
      socket.on('close', () => resolve(out));
    });
    expect(reply).toContain('"event":"spawned"');
    expect(reply).toContain('HTTPMESH_SIDECAR_UPGRADE_FAILED');
    expect((await viaProxy(sidecar.proxyPort, upstream.port, '/still')).status).toBe(200);
  });

  test('a second sidecar on the same control socket does not steal it', async () => {
    const other = tempDir('httpmesh-sidecar-control2-');
    const second = await startSidecarProcess({
      dir: other.dir,
      rules: 'routes: []\n',
      args: ['--control-socket', controlSocket],
    });
    // The control socket is tried after sidecar.started: wait for the verdict.
    await second.waitForLog((l) => l.event === 'upgrade.control_unavailable');
    expect(await second.stop()).toBe(0);
    other.remove();
    expect(statSync(controlSocket).isSocket()).toBe(true);
  });
});

describe('request parsing and the successor command line', () => {
  test('parseUpgradeRequest rejects every malformed shape with a stable code', () => {
    for (const line of [
      '',
      '{',
      'null',
      '"x"',
      '{"op":"upgrade"}',
      '{"op":"upgrade","execPath":"n","args":[],"env":{"A":1},"cwd":"/"}',
    ]) {
      expect(() => parseUpgradeRequest(line)).toThrow(
        expect.objectContaining({ code: 'HTTPMESH_SIDECAR_UPGRADE_REQUEST_INVALID' }),
      );
    }
    expect(
      parseUpgradeRequest('{"op":"upgrade","execPath":"n","args":["a"],"env":{"A":"1"},"cwd":"/"}').args,
    ).toEqual(['a']);
  });

  test('successorArgs drops --upgrade-from and keeps node flags and the script', () => {
    expect(
      successorArgs(
        ['--import', 'tsx'],
        ['/usr/bin/node', '/x/cli.js', 'run', '--upgrade-from', '/s', '--listen', 'a:1'],
      ),
    ).toEqual(['--import', 'tsx', '/x/cli.js', 'run', '--listen', 'a:1']);
    expect(successorArgs([], ['/usr/bin/node', '/x/cli.js', 'run', '--upgrade-from=/s'])).toEqual([
      '/x/cli.js',
      'run',
    ]);
    // Single executable: argv[1] is the executable itself.
    expect(successorArgs([], [process.execPath, process.execPath, 'run', '--upgrade-from', '/s'])).toEqual([
      'run',
    ]);
  });
});
