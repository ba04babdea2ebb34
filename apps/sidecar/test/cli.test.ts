/**
 * The built command (`dist/cli.js`, what `bin` points at) run as a real process.
 */
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';

const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-cli-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

interface Result {
  code: number;
  stdout: string;
  stderr: string;
}

function runCli(args: string[], env: Record<string, string> = {}): Promise<Result> {
  return new Promise((resolve) => {
    execFile(
      cli,
      args,
      { env: { PATH: process.env['PATH'] ?? '', ...env }, cwd: dir },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

describe('httpmesh-sidecar (built bin)', () => {
  test('is executable with a node shebang', () => {
    expect(readFileSync(cli, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(statSync(cli).mode & 0o111).not.toBe(0);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as {
      bin: Record<string, string>;
    };
    expect(pkg.bin['httpmesh-sidecar']).toBe('./dist/cli.js');
  });

  test('--help lists the commands; each command has its own --help', async () => {
    const top = await runCli(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toMatch(/run\s.*\n.*init-net \[--remove\][\s\S]*ca init\|show\|trust/);
    for (const command of ['run', 'init-net', 'ca']) {
      const r = await runCli([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`httpmesh-sidecar ${command}`);
      expect(r.stdout).toContain('env HTTPMESH_LOG_LEVEL, yaml logLevel');
    }
  });

  test('no command, an unknown command and an unknown flag exit 2 with a coded message', async () => {
    expect((await runCli([])).code).toBe(2);
    const unknownCommand = await runCli(['serve']);
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain('[HTTPMESH_SIDECAR_USAGE]');
    const unknownFlag = await runCli(['init-net', '--no-such-flag']);
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain('[HTTPMESH_SIDECAR_FLAG_UNKNOWN]');
    const badConfig = join(dir, 'bad.yaml');
    writeFileSync(badConfig, 'mode: [\n');
    const malformed = await runCli(['run', '--config', badConfig]);
    expect(malformed.code).toBe(2);
    expect(malformed.stderr).toContain('[HTTPMESH_SIDECAR_CONFIG_INVALID]');
    const badEnv = await runCli(['ca', 'show'], { HTTPMESH_LOG_LEVEL: 'chatty' });
    expect(badEnv.stderr).toContain('HTTPMESH_LOG_LEVEL');
    expect(badEnv.code).toBe(2);
  });

  test('ca init creates the CA once, ca show prints its PEM on stdout, logs are JSON on stderr', async () => {
    const caDir = join(dir, 'ca');
    const init = await runCli(['ca', 'init', '--ca-dir', caDir]);
    expect(init.code).toBe(0);
    const logLine = JSON.parse(init.stderr.trim().split('\n')[0] ?? '') as { event: string; level: number };
    expect(logLine.event).toBe('ca.created');
    const certBefore = readFileSync(join(caDir, 'ca.crt'), 'utf8');
    expect(statSync(join(caDir, 'ca.key')).mode & 0o077).toBe(0);

    const again = await runCli(['ca', 'init'], { HTTPMESH_CA_DIR: caDir });
    expect(again.code).toBe(0);
    expect(readFileSync(join(caDir, 'ca.crt'), 'utf8')).toBe(certBefore);

    const show = await runCli(['ca', 'show', '--ca-dir', caDir]);
    expect(show.code).toBe(0);
    const cert = new X509Certificate(show.stdout);
    expect(cert.ca).toBe(true);
    expect(cert.toString().trim()).toBe(new X509Certificate(certBefore).toString().trim());
  });

  test('ca show without a CA fails with the CA file error code', async () => {
    const r = await runCli(['ca', 'show', '--ca-dir', join(dir, 'none')]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('HTTPMESH_CA_FILE');
  });

  test('ca trust --trust env writes an env file and a bundle holding the mesh CA', async () => {
    const caDir = join(dir, 'trust-ca');
    const trustEnvFile = join(dir, 'trust.env');
    const r = await runCli([
      'ca',
      'trust',
      '--ca-dir',
      caDir,
      '--trust',
      'env',
      '--trust-env-file',
      trustEnvFile,
    ]);
    expect(r.code).toBe(0);
    const env = Object.fromEntries(
      readFileSync(trustEnvFile, 'utf8')
        .split('\n')
        .filter((l) => l.includes('='))
        .map((l) => l.split('=') as [string, string]),
    );
    expect(env['NODE_EXTRA_CA_CERTS']).toBe(join(caDir, 'ca.crt'));
    const ours = readFileSync(join(caDir, 'ca.crt'), 'utf8').trim();
    expect(readFileSync(env['SSL_CERT_FILE'] ?? '', 'utf8')).toContain(ours);
    expect(env['REQUESTS_CA_BUNDLE']).toBe(env['SSL_CERT_FILE']);
    expect(env['CURL_CA_BUNDLE']).toBe(env['SSL_CERT_FILE']);
    const unknown = await runCli(['ca', 'trust', '--ca-dir', caDir, '--trust', 'browser']);
    expect(unknown.code).toBe(2);
  });
});
