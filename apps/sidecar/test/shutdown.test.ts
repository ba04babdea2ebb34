/**
 * SIGTERM is a graceful stop at any moment of a sidecar's life, start-up included: the handler is installed
 * before anything starts, so a SIGTERM while the rules are being applied (or right after `sidecar.started`,
 * before the control socket is up) drains and exits 0 instead of hitting the default action (the process
 * killed by the signal, once seen as a flaky exit code in CI).
 */
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import {
  CLI,
  collectLogs,
  type LogLine,
  loopbackRunArgs,
  startSidecarProcess,
  tempDir,
  waitFor,
} from './plugins-harness.js';

const dirs: { remove(): void }[] = [];
afterAll(() => {
  for (const dir of dirs) dir.remove();
});

function freshDir(): string {
  const dir = tempDir('httpmesh-sidecar-shutdown-');
  dirs.push(dir);
  return dir.dir;
}

describe('graceful stop during and right after start-up', () => {
  test('SIGTERM while start-up is still under way (rules applied, not yet listening): drained, exit 0', async () => {
    const dir = freshDir();
    const rules = join(dir, 'rules.yaml');
    writeFileSync(rules, 'routes: []\n');
    const child = spawn(
      process.execPath,
      [CLI, 'run', ...loopbackRunArgs(join(dir, 'ca')), '--state-dir', join(dir, 'state'), '--rules', rules],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const logs: LogLine[] = [];
    collectLogs(child, logs, { text: '' });
    const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
    await waitFor(
      () => logs.some((l) => l.event === 'rules.applied'),
      (seen) => seen,
    );
    child.kill('SIGTERM');
    const [code, signal] = await exited;
    expect({ code, signal }).toEqual({ code: 0, signal: null });
    expect(logs.map((l) => l.event)).toEqual(expect.arrayContaining(['sidecar.draining', 'sidecar.stopped']));
  });

  test('SIGTERM the moment sidecar.started is logged: drained, exit 0 (5 starts)', async () => {
    const dir = freshDir();
    for (let i = 0; i < 5; i++) {
      const sidecar = await startSidecarProcess({ dir, rules: 'routes: []\n' });
      expect(await sidecar.stop()).toBe(0);
      expect(sidecar.logs.some((l) => l.event === 'sidecar.draining')).toBe(true);
    }
  });
});
