import { join } from 'node:path';
import { afterEach, describe, expect, test } from 'vitest';
import {
  type ChainHeadersDecision,
  definePlugin,
  type FailureMode,
  type PluginProcessSpec,
  PluginSupervisor,
} from '../src/index.js';
import { PACKAGE_DIR, PYTHON, pythonMissing, tempDir, tsPlugin, waitFor } from './helpers.js';

const noPython = pythonMissing();
if (noPython && process.env['CI']) throw new Error(`CI must run the Python supervisor test: ${noPython}`);

const conformance = tsPlugin('test/fixtures/conformance-plugin.ts');

function spec(failureMode: FailureMode, env: Record<string, string> = {}): PluginProcessSpec {
  return {
    name: 'conformance',
    command: conformance.command,
    args: conformance.args,
    cwd: PACKAGE_DIR,
    env,
    order: 1,
    timeoutMs: 1000,
    failureMode,
  };
}

const HEAD = { method: 'GET', scheme: 'https', authority: 'api.example.test', path: '/', headers: [] };

let supervisor: PluginSupervisor | undefined;
afterEach(async () => {
  await supervisor?.stop();
  supervisor = undefined;
});

async function exchange(sup: PluginSupervisor): Promise<ChainHeadersDecision> {
  const ex = sup.chain.startExchange({ host: 'api.example.test', path: '/' });
  try {
    return await ex.onRequestHeaders(HEAD);
  } finally {
    ex.complete({ status: 200, totalMs: 1 });
  }
}

function versionOf(d: ChainHeadersDecision): string | undefined {
  return d.kind === 'mutate' ? d.headers.find(([n]) => n === 'x-plugin-version')?.[1] : undefined;
}

/**
 * Runs exchanges with `concurrency` workers, each pausing `paceMs` between exchanges so the load is
 * spread over seconds (the pause shapes the load; it synchronises nothing), until `stop()` says so,
 * `max` is reached or the deadline passes.
 */
async function load(
  sup: PluginSupervisor,
  opts: {
    max: number;
    concurrency: number;
    paceMs: number;
    deadlineMs: number;
    stop: (done: number) => boolean;
  },
  onResult: (d: ChainHeadersDecision, index: number) => void,
): Promise<number> {
  let started = 0;
  let done = 0;
  const deadline = Date.now() + opts.deadlineMs;
  const worker = async (): Promise<void> => {
    while (started < opts.max && Date.now() < deadline && !opts.stop(done)) {
      const i = started++;
      onResult(await exchange(sup), i);
      done++;
      await new Promise((r) => setTimeout(r, opts.paceMs));
    }
  };
  await Promise.all(Array.from({ length: opts.concurrency }, worker));
  return done;
}

describe('PluginSupervisor', () => {
  test('zero-downtime upgrade under load: 2,000 exchanges, concurrency 20, no failed exchange', async () => {
    const sup = new PluginSupervisor([spec('closed', { PLUGIN_VERSION: '1.0.0' })], {
      startTimeoutMs: 20_000,
    });
    supervisor = sup;
    await sup.start();
    const oldPid = sup.pid('conformance');
    const versions = new Map<string, number>();
    const failures: ChainHeadersDecision[] = [];
    let upgrade: Promise<void> | undefined;
    const done = await load(
      sup,
      { max: 2000, concurrency: 20, paceMs: 30, deadlineMs: 60_000, stop: () => false },
      (d, i) => {
        const v = versionOf(d);
        if (v === undefined || d.kind !== 'mutate' || d.failures.length > 0) failures.push(d);
        else versions.set(v, (versions.get(v) ?? 0) + 1);
        if (i === 200) upgrade = sup.upgrade('conformance', { env: { PLUGIN_VERSION: '2.0.0' } });
      },
    );
    await upgrade;
    expect(done).toBe(2000);
    expect(failures).toEqual([]);
    expect(versions.get('1.0.0')).toBeGreaterThan(0);
    expect(versions.get('2.0.0')).toBeGreaterThan(0);
    expect(sup.pid('conformance')).not.toBe(oldPid);
    // The old process was stopped after draining.
    expect(() => process.kill(oldPid as number, 0)).toThrow();
    const m = sup.metrics()['conformance'];
    expect(m?.upgrades).toBe(1);
    expect(m?.restarts).toBe(0);
    expect(m?.errors).toEqual({});
    expect(m?.latency.count).toBeGreaterThanOrEqual(2000);
  }, 90_000);

  for (const mode of ['open', 'closed'] as const) {
    test(`a plugin killed mid-load: fail-${mode} ${mode === 'open' ? 'continues' : 'answers 503'}, then it is restarted`, async () => {
      const sup = new PluginSupervisor([spec(mode)], {
        startTimeoutMs: 20_000,
        restartBackoff: { initialMs: 100 },
      });
      supervisor = sup;
      await sup.start();
      const pid = sup.pid('conformance') as number;
      const outcomes: Array<'ok' | 'failed-open' | 'failed-closed' | 'other'> = [];
      let killed = false;
      let okAfterRestart = 0;
      await load(
        sup,
        {
          max: 20_000,
          concurrency: 10,
          paceMs: 5,
          deadlineMs: 60_000,
          stop: () => okAfterRestart >= 200,
        },
        (d) => {
          if (d.kind === 'mutate' && versionOf(d)) {
            outcomes.push('ok');
            if (killed && sup.pid('conformance') !== pid) okAfterRestart++;
          } else if (d.kind === 'continue' && d.failures.length > 0) outcomes.push('failed-open');
          else if (
            d.kind === 'respond' &&
            d.status === 503 &&
            d.headers.some(([n]) => n === 'x-httpmesh-error')
          ) {
            outcomes.push('failed-closed');
          } else outcomes.push('other');
          if (!killed && outcomes.length === 100) {
            killed = true;
            process.kill(pid, 'SIGKILL');
          }
        },
      );
      expect(okAfterRestart).toBeGreaterThanOrEqual(200);
      expect(outcomes).not.toContain('other');
      const failedKind = mode === 'open' ? 'failed-open' : 'failed-closed';
      const otherKind = mode === 'open' ? 'failed-closed' : 'failed-open';
      expect(outcomes.filter((o) => o === failedKind).length).toBeGreaterThan(0);
      expect(outcomes).not.toContain(otherKind);
      const m = sup.metrics()['conformance'];
      expect(m?.restarts).toBe(1);
      expect(m?.errors['HTTPMESH_PLUGIN_UNAVAILABLE'] ?? 0).toBeGreaterThan(0);
      expect(sup.state('conformance')).toBe('ready');
    }, 90_000);
  }

  test('a hung plugin fails health checks and is killed and restarted', async () => {
    const sup = new PluginSupervisor([spec('open')], {
      startTimeoutMs: 20_000,
      healthIntervalMs: 50,
      healthTimeoutMs: 100,
      unhealthyThreshold: 2,
      restartBackoff: { initialMs: 50 },
    });
    supervisor = sup;
    await sup.start();
    const pid = sup.pid('conformance') as number;
    process.kill(pid, 'SIGSTOP');
    try {
      await waitFor(() => sup.pid('conformance') !== undefined && sup.pid('conformance') !== pid, 30_000);
    } finally {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
    await waitFor(() => sup.state('conformance') === 'ready', 30_000);
    const m = sup.metrics()['conformance'];
    expect(m?.healthCheckFailures).toBeGreaterThanOrEqual(2);
    expect(m?.restarts).toBe(1);
    expect(versionOf(await exchange(sup))).toBe('1.0.0');
  }, 60_000);

  test('a plugin that cannot start rejects with HTTPMESH_PLUGIN_START_FAILED', async () => {
    const sup = new PluginSupervisor(
      [{ ...spec('open'), command: process.execPath, args: ['-e', 'process.exit(3)'] }],
      { startTimeoutMs: 5000 },
    );
    supervisor = sup;
    await expect(sup.start()).rejects.toMatchObject({ code: 'HTTPMESH_PLUGIN_START_FAILED' });
  });

  test('an upgrade while the plugin is down (restart pending) replaces the restart', async () => {
    const sup = new PluginSupervisor([spec('closed')], {
      startTimeoutMs: 20_000,
      restartBackoff: { initialMs: 5000 },
    });
    supervisor = sup;
    await sup.start();
    const restartScheduled = new Promise<void>((resolve) => sup.once('restart', () => resolve()));
    process.kill(sup.pid('conformance') as number, 'SIGKILL');
    await restartScheduled;
    expect(sup.state('conformance')).toBe('restarting');
    expect(await exchange(sup)).toMatchObject({ kind: 'respond', status: 503 });
    await sup.upgrade('conformance', { env: { PLUGIN_VERSION: '3.0.0' } });
    expect(sup.state('conformance')).toBe('ready');
    expect(versionOf(await exchange(sup))).toBe('3.0.0');
    const m = sup.metrics()['conformance'];
    expect(m?.restarts).toBe(0);
    expect(m?.upgrades).toBe(1);
  }, 60_000);

  test.skipIf(noPython !== undefined)(
    `supervises a Python plugin: start, crash, restart, upgrade${noPython ? ` (skipped: ${noPython})` : ''}`,
    async () => {
      const py: PluginProcessSpec = {
        ...spec('closed', { PLUGIN_VERSION: 'py-1' }),
        command: PYTHON,
        args: ['python/conformance_plugin.py'],
      };
      const sup = new PluginSupervisor([py], { startTimeoutMs: 20_000, restartBackoff: { initialMs: 50 } });
      supervisor = sup;
      await sup.start();
      const first = await exchange(sup);
      expect(first.kind === 'mutate' && first.headers).toContainEqual(['x-plugin-lang', 'python']);
      const pid = sup.pid('conformance') as number;
      process.kill(pid, 'SIGKILL');
      await waitFor(() => sup.state('conformance') === 'ready' && sup.pid('conformance') !== pid, 30_000);
      expect(versionOf(await exchange(sup))).toBe('py-1');
      await sup.upgrade('conformance', { env: { PLUGIN_VERSION: 'py-2' } });
      expect(versionOf(await exchange(sup))).toBe('py-2');
      expect(sup.metrics()['conformance']).toMatchObject({ restarts: 1, upgrades: 1 });
    },
    60_000,
  );

  test('an upgrade to a broken version keeps the old one serving', async () => {
    const sup = new PluginSupervisor([spec('closed')], { startTimeoutMs: 20_000 });
    supervisor = sup;
    await sup.start();
    const pid = sup.pid('conformance');
    await expect(sup.upgrade('conformance', { args: ['-e', 'process.exit(1)'] })).rejects.toMatchObject({
      code: 'HTTPMESH_PLUGIN_START_FAILED',
    });
    expect(sup.pid('conformance')).toBe(pid);
    expect(versionOf(await exchange(sup))).toBe('1.0.0');
  }, 60_000);

  test('an external plugin (address only) is connected, health-checked, reconnected and upgraded', async () => {
    const tmp = tempDir('httpmesh-external-');
    const external = (version: string) =>
      definePlugin({
        name: 'external',
        onRequestHeaders: () => ({ set: { 'x-plugin-version': version } }),
      });
    const socketA = join(tmp.dir, 'a.sock');
    let a = await external('a1').serve({ socket: socketA, handleSignals: false });
    const b = await external('b1').serve({ socket: join(tmp.dir, 'b.sock'), handleSignals: false });
    const sup = new PluginSupervisor(
      [{ name: 'external', address: a.address, order: 1, failureMode: 'closed', timeoutMs: 1000 }],
      {
        healthIntervalMs: 50,
        healthTimeoutMs: 100,
        unhealthyThreshold: 2,
        restartBackoff: { initialMs: 50 },
      },
    );
    supervisor = sup;
    try {
      await sup.start();
      expect(sup.pid('external')).toBeUndefined();
      expect(versionOf(await exchange(sup))).toBe('a1');
      // The container goes away: health checks fail, the plugin is dropped, exchanges get 503.
      await a.close();
      await waitFor(() => sup.state('external') === 'restarting', 10_000);
      expect(await exchange(sup)).toMatchObject({ kind: 'respond', status: 503 });
      // It comes back on the same address: the supervisor reconnects.
      a = await external('a2').serve({ socket: socketA, handleSignals: false });
      await waitFor(() => sup.state('external') === 'ready', 10_000);
      expect(versionOf(await exchange(sup))).toBe('a2');
      expect(sup.metrics()['external']?.restarts).toBeGreaterThanOrEqual(1);
      // Upgrade = switch new exchanges to another instance.
      await sup.upgrade('external', { address: b.address });
      expect(versionOf(await exchange(sup))).toBe('b1');
    } finally {
      await sup.stop();
      await a.close();
      await b.close();
      tmp.remove();
    }
  }, 60_000);

  test('malformed specs are rejected with HTTPMESH_PLUGIN_CONFIG_INVALID', () => {
    const { command: _omit, ...noCommand } = spec('open');
    expect(() => new PluginSupervisor([noCommand])).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
    );
    expect(() => new PluginSupervisor([{ ...spec('open'), command: '' }])).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
    );
    expect(() => new PluginSupervisor([spec('open'), spec('closed')])).toThrow(
      expect.objectContaining({ code: 'HTTPMESH_PLUGIN_CONFIG_INVALID' }),
    );
  });
});
