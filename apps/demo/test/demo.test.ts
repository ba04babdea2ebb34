import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, test } from 'vitest';
import { builtBin, DemoStartError, startDemo } from '../dist/index.js';

const bin = join(dirname(fileURLToPath(import.meta.url)), '..', 'dist', 'bin.js');

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Polls `check` until it returns a value or the deadline passes (bounded; no fixed sleeps). */
async function until<T>(
  what: string,
  deadlineMs: number,
  check: () => Promise<T | undefined> | T | undefined,
): Promise<T> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const value = await Promise.resolve(check()).catch(() => undefined);
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error(`${what}: not within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

interface PatternRow {
  key: { service: string; host: string; method: string; route: string };
  requests: number;
  rate: number;
  p50: number | null;
}

describe('npm start demo (apps/demo/dist/bin.js)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'httpmesh-demo-'));
  let demo: ChildProcess | undefined;
  afterAll(() => {
    if (demo?.pid !== undefined && demo.exitCode === null) process.kill(-demo.pid, 'SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  });

  test.each([
    ['Ctrl-C (SIGINT to the process group)', 'SIGINT', true],
    ['SIGTERM to the orchestrator alone', 'SIGTERM', false],
  ] as const)(
    'runs the whole mesh, the control plane shows per-pattern metrics, %s stops every child',
    async (_name, signal, group) => {
      // Own process group, so a signal can go to the whole group, as a terminal's Ctrl-C does.
      demo = spawn(process.execPath, [bin, '--http-port', '0', '--rate', '30', '--data-dir', dataDir], {
        stdio: ['ignore', 'pipe', 'pipe'],
        detached: true,
      });
      let out = '';
      demo.stdout?.on('data', (c: Buffer) => {
        out += c.toString('utf8');
      });
      demo.stderr?.on('data', (c: Buffer) => {
        out += c.toString('utf8');
      });
      const exited = new Promise<number | null>((resolve) => demo?.once('exit', (code) => resolve(code)));

      const dashboard = await until('dashboard URL printed', 90_000, () => {
        if (demo?.exitCode !== null) throw new Error(`demo exited early:\n${out}`);
        return /Dashboard: (http:\/\/127\.0\.0\.1:\d+\/)/.exec(out)?.[1];
      });
      const token = /admin token: ([\w-]+)/.exec(out)?.[1] ?? '';
      const pids = (/child pids: ([\d ]+)/.exec(out)?.[1] ?? '').trim().split(' ').map(Number);
      // The control plane and the sidecar, both the real bins (no stand-in exists any more).
      expect(pids).toHaveLength(2);
      for (const pid of pids) expect(alive(pid)).toBe(true);
      expect(out).toContain('control plane (httpmesh-control-plane serve)');
      expect(out).toContain('sidecar (httpmesh-sidecar run --mode explicit)');
      expect(readFileSync(join(dataDir, 'logs', 'sidecar.log'), 'utf8')).toContain('"sidecar.started"');

      // The page itself is served by the control plane.
      const page = await fetch(dashboard);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('httpmesh dashboard');

      const wanted = [
        'shop.demo.test GET /orders/:id',
        'shop.demo.test GET /users/:id/cart',
        'payments.demo.test GET /payments/:id',
        'payments.demo.test POST /payments',
      ];
      const rows = await until('demo patterns with non-zero rates', 60_000, async () => {
        const res = await fetch(`${dashboard}api/metrics/patterns?window=1m`, {
          headers: { authorization: `Bearer ${token}` },
        });
        const body = (await res.json()) as { rows: PatternRow[] };
        const seen = new Map(body.rows.map((r) => [`${r.key.host} ${r.key.method} ${r.key.route}`, r]));
        return wanted.every((w) => (seen.get(w)?.rate ?? 0) > 0) ? seen : undefined;
      });
      for (const w of wanted) {
        const row = rows.get(w);
        expect(row?.key.service).toBe('storefront');
        expect(row?.requests).toBeGreaterThan(0);
        expect(row?.p50).toBeGreaterThan(0);
      }
      // Raw ids never become pattern rows.
      for (const key of rows.keys()) expect(key).not.toMatch(/\/\d+/);

      const sidecars = (await (await fetch(`${dashboard}api/sidecars`)).json()) as {
        sidecars: {
          service: string;
          types: { ackedVersion: string | null; nackedVersion: string | null }[];
        }[];
      };
      expect(sidecars.sidecars.map((s) => s.service)).toEqual(['storefront']);
      for (const t of sidecars.sidecars[0]?.types ?? []) {
        expect(t.ackedVersion).toBeTruthy();
        expect(t.nackedVersion).toBeNull();
      }

      process.kill(group ? -(demo.pid ?? 0) : (demo.pid ?? 0), signal);
      expect(await exited).toBe(0);
      expect(out).toContain(`stopping (${signal})`);
      expect(out).toMatch(/stopped; \d+ requests answered/);
      for (const pid of pids) expect(alive(pid), `child ${pid} still running`).toBe(false);
    },
  );

  test('rejects malformed arguments with exit code 2 and usage', async () => {
    for (const args of [['--rate', 'lots'], ['--http-port', '70000'], ['--bogus'], ['--rate', '0']]) {
      const child = spawn(process.execPath, [bin, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
      let err = '';
      child.stderr?.on('data', (c: Buffer) => {
        err += c.toString('utf8');
      });
      const code = await new Promise<number | null>((resolve) => child.once('exit', (c) => resolve(c)));
      expect(code, args.join(' ')).toBe(2);
      expect(err).toContain('Usage: npm start');
    }
  });

  test('a generated-looking token that starts with "-" reaches the control plane intact (--admin-token=)', async () => {
    const token = '-demo-token-with-a-leading-dash-0123';
    const demo = await startDemo({ dataDir: join(dataDir, 'dash'), httpPort: 0, adminToken: token });
    try {
      expect(demo.adminToken).toBe(token);
      // The sidecar's metrics already reached the control plane (startDemo waits for them).
      const ok = await fetch(`${demo.apiUrl}/api/rules/RouteSet`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        body: JSON.stringify({
          name: 'extra',
          spec: { host: 'extra.demo.test', routes: [{ pattern: '/x' }] },
        }),
      });
      expect(ok.status).toBe(201);
      const refused = await fetch(`${demo.apiUrl}/api/rules/RouteSet/extra`, {
        method: 'DELETE',
        headers: { authorization: 'Bearer demo-token-with-a-leading-dash-0123' },
      });
      expect(refused.status).toBe(401);
    } finally {
      await demo.stop();
    }
    for (const child of demo.children)
      expect(child.process.exitCode ?? child.process.signalCode).not.toBeNull();
  });

  test('a missing bin is a clear start error naming the build command', () => {
    const empty = join(dataDir, 'no-build');
    mkdirSync(empty, { recursive: true });
    let error: unknown;
    try {
      builtBin('@httpmesh/sidecar', 'httpmesh-sidecar', empty);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(DemoStartError);
    expect((error as DemoStartError).code).toBe('HTTPMESH_DEMO_START_FAILED');
    expect((error as Error).message).toContain('httpmesh-sidecar is not built');
    expect((error as Error).message).toContain('npx nx run @httpmesh/sidecar:build');
    expect(builtBin('@httpmesh/control-plane', 'httpmesh-control-plane')).toMatch(
      /control-plane\/dist\/cli\.js$/,
    );
  });
});
