/**
 * `httpmesh-sidecar init-net` (the built bin) against a real network namespace: installs iptables chains,
 * the ipset and dnsmasq from a rules file, is idempotent, and `--remove` takes everything away.
 * Needs root (CI runs as root).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const run = promisify(execFile);
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const canRun = process.getuid?.() === 0 || process.env.CI === 'true';
const NS = `hmsc${process.pid % 100000}`;
let dir = '';

async function cliRun(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run(cli, args, { env: { PATH: process.env['PATH'] ?? '' } });
}

describe.skipIf(!canRun)('init-net on a real namespace (needs root; skipped: not root and not CI)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'httpmesh-initnet-'));
    await run('ip', ['netns', 'add', NS]);
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
  });

  afterAll(async () => {
    await cliRun('init-net', '--remove', '--netns', NS, '--state-dir', join(dir, 'state')).catch(() => {});
    await run('ip', ['netns', 'delete', NS]).catch(() => {});
    rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('installs from the rules file, idempotently, and removes everything', async () => {
    const rulesFile = join(dir, 'rules.yaml');
    writeFileSync(
      rulesFile,
      "intercept:\n  - domain: '*.partner.test'\n  - domain: bank.test\n    action: passthrough\n",
    );
    const config = join(dir, 'sidecar.yaml');
    writeFileSync(
      config,
      `rules: rules.yaml\ninboundPorts: [8080]\nstateDir: ${join(dir, 'state')}\ninterceptFile: published/intercept.json\n`,
    );
    const args = ['init-net', '--config', config, '--netns', NS, '--dns-upstream', '10.203.9.1'];
    const first = JSON.parse((await cliRun(...args)).stdout) as Record<string, unknown>;
    const second = JSON.parse((await cliRun(...args)).stdout) as Record<string, unknown>;
    for (const status of [first, second]) {
      expect(status).toMatchObject({
        outputChain: true,
        preroutingChain: true,
        outputJumps: 1,
        preroutingJumps: 1,
        ipset: true,
        resolverManaged: true,
        suffixes: ['partner.test'],
      });
    }
    // The directory of the intercept file is made for the proxy uid, which writes it (run, transparent).
    const published = statSync(join(dir, 'published'));
    expect([published.uid, published.gid, published.mode & 0o777]).toEqual([1337, 1337, 0o755]);
    const nat = (await run('ip', ['netns', 'exec', NS, 'iptables-save', '-t', 'nat'])).stdout;
    expect(nat).toContain('-A HTTPMESH_PREROUTING -p tcp -m tcp --dport 8080 -j REDIRECT --to-ports 15006');
    expect(nat).toContain('--match-set httpmesh-intercept dst -j REDIRECT --to-ports 15001');

    const removed = JSON.parse(
      (await cliRun('init-net', '--remove', '--netns', NS, '--state-dir', join(dir, 'state'))).stdout,
    ) as Record<string, unknown>;
    expect(removed).toMatchObject({
      outputChain: false,
      ipset: false,
      dnsmasqPid: null,
      resolverManaged: false,
    });
    expect((await run('ip', ['netns', 'exec', NS, 'iptables-save', '-t', 'nat'])).stdout).not.toContain(
      'HTTPMESH',
    );
  });

  test('a malformed rules file is rejected before anything is installed', async () => {
    const rulesFile = join(dir, 'bad-rules.yaml');
    writeFileSync(rulesFile, 'intercept:\n  - domain: "partner.test/x"\n');
    const error = await cliRun(
      'init-net',
      '--netns',
      NS,
      '--rules',
      rulesFile,
      '--dns-upstream',
      '10.203.9.1',
      '--state-dir',
      join(dir, 'state2'),
    ).then(
      () => null,
      (e: { code: number; stderr: string }) => e,
    );
    expect(error?.code).toBe(2);
    expect(error?.stderr).toContain('HTTPMESH_SIDECAR_RULES_INVALID');
    expect((await run('ip', ['netns', 'exec', NS, 'iptables-save', '-t', 'nat'])).stdout).not.toContain(
      'HTTPMESH',
    );
  });
});
