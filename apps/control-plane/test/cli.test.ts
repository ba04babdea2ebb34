/** The built command (`dist/cli.js`, what `bin` points at) run as a real process. */
import { spawn } from 'node:child_process';
import { chmodSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { describe, expect, test } from 'vitest';
import { resolveServeConfig, SERVE_DEFAULTS } from '../src/index.js';
import { tempDir, waitFor } from './helpers.js';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;

interface Proc {
  stdout: string;
  stderr: string;
  exit: Promise<number | null>;
  kill(signal: NodeJS.Signals): void;
}

function run(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, [cli, ...args], {
    env: { PATH: process.env['PATH'] ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const proc: Proc = {
    stdout: '',
    stderr: '',
    exit: new Promise((resolve) => child.once('exit', (code) => resolve(code))),
    kill: (signal) => child.kill(signal),
  };
  child.stdout.on('data', (c: Buffer) => {
    proc.stdout += c.toString();
  });
  child.stderr.on('data', (c: Buffer) => {
    proc.stderr += c.toString();
  });
  return proc;
}

describe('httpmesh-control-plane (built bin)', () => {
  test('bin points at dist/cli.js, which has a shebang', () => {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin['httpmesh-control-plane']).toBe('./dist/cli.js');
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
  });

  test('serve starts, serves the API, prints the generated token once, and stops cleanly on SIGTERM', async () => {
    const data = tempDir('cli');
    try {
      const proc = run(['serve', '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', data.dir]);
      await waitFor(() => proc.stdout.includes('control plane listening'), 20_000, 'the listening line');
      const line = JSON.parse(proc.stdout.split('\n')[0] ?? '') as {
        http: string;
        grpc: string;
        store: string;
      };
      expect(line.store).toBe('sqlite');
      const token = /admin token \(generated, kept in (\S+)\): (\S+)/.exec(proc.stderr)?.[2];
      expect(token).toBeDefined();
      // Kept for the next start, readable by the owner only.
      expect(statSync(join(data.dir, 'admin-token')).mode & 0o777).toBe(0o600);
      expect(readFileSync(join(data.dir, 'admin-token'), 'utf8').trim()).toBe(token);
      expect(((await (await fetch(`${line.http}/healthz`)).json()) as { status: string }).status).toBe('ok');
      const created = await fetch(`${line.http}/api/rules/RouteSet`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
        body: JSON.stringify({ name: 'r', spec: { routes: [{ pattern: '/x' }] } }),
      });
      expect(created.status).toBe(201);
      proc.kill('SIGTERM');
      expect(await proc.exit).toBe(0);
      expect(proc.stderr).toContain('SIGTERM: shutting down');
      expect(statSync(join(data.dir, 'rules.db')).size).toBeGreaterThan(0);
    } finally {
      data.cleanup();
    }
  });

  test('a generated admin token survives a restart and is not printed again', async () => {
    const data = tempDir('cli-token');
    try {
      const args = ['serve', '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', data.dir];
      const first = run(args);
      await waitFor(() => first.stdout.includes('control plane listening'), 20_000, 'the first start');
      const token = /admin token \(generated, kept in \S+\): (\S+)/.exec(first.stderr)?.[1] ?? '';
      expect(token.length).toBeGreaterThanOrEqual(16);
      first.kill('SIGTERM');
      expect(await first.exit).toBe(0);

      const second = run(args);
      await waitFor(() => second.stdout.includes('control plane listening'), 20_000, 'the second start');
      const { http } = JSON.parse(second.stdout.split('\n')[0] ?? '') as { http: string };
      expect(second.stderr).toContain(`admin token: read from ${join(data.dir, 'admin-token')}`);
      expect(second.stderr).not.toContain(token);
      const post = (bearer: string) =>
        fetch(`${http}/api/rules/RouteSet`, {
          method: 'POST',
          headers: { authorization: `Bearer ${bearer}` },
          body: JSON.stringify({ name: `r-${bearer.length}`, spec: { routes: [{ pattern: '/x' }] } }),
        });
      expect((await post(token)).status).toBe(201);
      expect((await post(`${token}x`)).status).toBe(401);
      second.kill('SIGTERM');
      expect(await second.exit).toBe(0);
    } finally {
      data.cleanup();
    }
  });

  test('an admin token file that others can read, or that holds no token, stops startup (exit 1)', async () => {
    const data = tempDir('cli-token-bad');
    try {
      const file = join(data.dir, 'admin-token');
      const args = ['serve', '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0', '--data-dir', data.dir];
      writeFileSync(file, 'a-perfectly-fine-token-value\n', { mode: 0o644 });
      chmodSync(file, 0o644);
      const open = run(args);
      expect(await open.exit).toBe(1);
      expect(open.stderr).toContain('HTTPMESH_CP_CONFIG_INVALID');
      expect(open.stderr).toContain('chmod 600');
      expect(open.stderr).not.toContain('a-perfectly-fine-token-value');

      for (const garbage of ['', 'short', 'has spaces in the middle of it', '\u0000'.repeat(32)]) {
        writeFileSync(file, garbage);
        chmodSync(file, 0o600);
        const bad = run(args);
        expect(await bad.exit).toBe(1);
        expect(bad.stderr).toContain('not an admin token');
      }
      // The refused file is left as it was: nothing is overwritten behind the operator's back.
      expect(readFileSync(file, 'utf8')).toBe('\u0000'.repeat(32));
    } finally {
      data.cleanup();
    }
  });

  test('a corrupt store file stops startup with a clear error and exit code 1', async () => {
    const data = tempDir('cli-corrupt');
    try {
      writeFileSync(join(data.dir, 'rules.db'), 'garbage that is not SQLite '.repeat(100));
      const proc = run(['serve', '--grpc', '127.0.0.1:0', '--http', '127.0.0.1:0'], {
        HTTPMESH_DATA_DIR: data.dir,
      });
      expect(await proc.exit).toBe(1);
      expect(proc.stderr).toContain('HTTPMESH_CP_STORE_CORRUPT');
    } finally {
      data.cleanup();
    }
  });

  test('bad flags and unknown commands exit 1 with usage', async () => {
    const bad = run(['serve', '--store', 'mongo']);
    expect(await bad.exit).toBe(1);
    expect(bad.stderr).toContain('HTTPMESH_CP_CONFIG_INVALID: --store: must be "sqlite" or "etcd"');
    const unknown = run(['serve', '--nope']);
    expect(await unknown.exit).toBe(1);
    const help = run(['--help']);
    expect(await help.exit).toBe(0);
    expect(help.stdout).toContain('httpmesh-control-plane serve');
  });

  test('issue-cert writes a sidecar bundle signed by the CA in --ca-dir', async () => {
    const dir = tempDir('cli-cert');
    try {
      const proc = run([
        'issue-cert',
        '--ca-dir',
        join(dir.dir, 'ca'),
        '--node-id',
        'orders-1',
        '--out',
        join(dir.dir, 'out'),
      ]);
      expect(await proc.exit).toBe(0);
      const cert = new X509Certificate(readFileSync(join(dir.dir, 'out', 'sidecar.crt')));
      expect(cert.subjectAltName).toBe('URI:spiffe://httpmesh/node/orders-1');
      expect(cert.verify(new X509Certificate(readFileSync(join(dir.dir, 'out', 'ca.crt'))).publicKey)).toBe(
        true,
      );
      expect(statSync(join(dir.dir, 'out', 'sidecar.key')).mode & 0o777).toBe(0o600);
    } finally {
      dir.cleanup();
    }
  });
});

describe('resolveServeConfig', () => {
  test('precedence: flag > environment > YAML > default', () => {
    const dir = tempDir('cfg');
    try {
      const file = join(dir.dir, 'cp.yaml');
      writeFileSync(
        file,
        'http: 127.0.0.1:9000\ngrpc: 127.0.0.1:9001\nstore: etcd\netcdEndpoints: [http://10.0.0.1:2379, http://10.0.0.2:2379]\nprotectReads: true\n',
      );
      const config = resolveServeConfig(['--config', file, '--http', '127.0.0.1:9100'], {
        HTTPMESH_GRPC: '127.0.0.1:9200',
      });
      expect(config).toMatchObject({
        http: '127.0.0.1:9100',
        grpc: '127.0.0.1:9200',
        store: 'etcd',
        etcdEndpoints: ['http://10.0.0.1:2379', 'http://10.0.0.2:2379'],
        protectReads: true,
        dataDir: SERVE_DEFAULTS.dataDir,
      });
      expect(resolveServeConfig([], {})).toEqual(SERVE_DEFAULTS);
    } finally {
      dir.cleanup();
    }
  });

  test('malformed configuration is refused with the offending source', () => {
    const dir = tempDir('cfg-bad');
    try {
      const file = join(dir.dir, 'bad.yaml');
      writeFileSync(file, 'colour: red\n');
      expect(() => resolveServeConfig(['--config', file], {})).toThrow(/unknown key "colour"/);
      writeFileSync(file, 'http: [1, 2\n');
      expect(() => resolveServeConfig(['--config', file], {})).toThrow(/config file/);
      writeFileSync(file, '- a\n- b\n');
      expect(() => resolveServeConfig(['--config', file], {})).toThrow(/must be a YAML mapping/);
      expect(() => resolveServeConfig([], { HTTPMESH_HTTP: 'nohost' })).toThrow(
        /HTTPMESH_HTTP: must be HOST:PORT/,
      );
      expect(() => resolveServeConfig(['--etcd-endpoints', 'ftp://x'], {})).toThrow(/is not an http/);
      expect(() => resolveServeConfig([], { HTTPMESH_PROTECT_READS: 'maybe' })).toThrow(
        /must be true or false/,
      );
      expect(() => resolveServeConfig(['--config', join(dir.dir, 'missing.yaml')], {})).toThrow(/ENOENT/);
    } finally {
      dir.cleanup();
    }
  });
});
