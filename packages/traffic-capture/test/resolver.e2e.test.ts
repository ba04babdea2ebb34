/**
 * Resolver hand-over on a real namespace: an existing /etc/netns/NAME/resolv.conf is backed up, its
 * nameserver becomes dnsmasq's upstream, re-installing never overwrites the backup with our own file,
 * and remove restores the original byte for byte. Also: dnsmasq failing to start is reported with its code.
 * Needs root (CI runs as root).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { RESOLV_MARKER, TrafficCapture } from '../src/index.js';

const run = promisify(execFile);
const canRun = process.getuid?.() === 0 || process.env.CI === 'true';
const NS = `hmtcR${process.pid % 100000}`;
const ORIGINAL = '# original\nnameserver 10.203.8.53\nsearch corp.test\noptions ndots:2\n';
let dir = '';

describe.skipIf(!canRun)('resolver hand-over (needs root; skipped: not root and not CI)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'httpmesh-tc-resolv-'));
    await run('ip', ['netns', 'add', NS]);
    await run('ip', ['-n', NS, 'link', 'set', 'lo', 'up']);
    mkdirSync(`/etc/netns/${NS}`, { recursive: true });
    writeFileSync(`/etc/netns/${NS}/resolv.conf`, ORIGINAL);
  });

  afterAll(async () => {
    await new TrafficCapture({ netns: NS, stateDir: join(dir, 'state') }).remove().catch(() => {});
    await new TrafficCapture({ netns: NS, stateDir: join(dir, 'broken') }).remove().catch(() => {});
    await run('ip', ['netns', 'delete', NS]).catch(() => {});
    rmSync(`/etc/netns/${NS}`, { recursive: true, force: true });
    rmSync(dir, { recursive: true, force: true });
  });

  test('backs up, forwards to the original nameserver, survives re-install, restores on remove', async () => {
    const stateDir = join(dir, 'state');
    const capture = new TrafficCapture({ netns: NS, stateDir });
    await capture.install([{ domain: '*.partner.test' }]);
    const live = readFileSync(`/etc/netns/${NS}/resolv.conf`, 'utf8');
    expect(live).toBe(`${RESOLV_MARKER}\nnameserver 127.0.0.1\nsearch corp.test\noptions ndots:2\n`);
    expect(readFileSync(join(stateDir, 'dnsmasq.conf'), 'utf8')).toContain('server=10.203.8.53\n');
    // Inside the namespace, the resolver really is our file (ip netns exec bind-mounts it).
    expect((await run('ip', ['netns', 'exec', NS, 'cat', '/etc/resolv.conf'])).stdout).toBe(live);

    await capture.install([{ domain: '*.partner.test' }]);
    expect(readFileSync(join(stateDir, 'resolv.conf.orig'), 'utf8')).toBe(ORIGINAL);
    expect(readFileSync(join(stateDir, 'dnsmasq.conf'), 'utf8')).toContain('server=10.203.8.53\n');

    await capture.remove();
    expect(readFileSync(`/etc/netns/${NS}/resolv.conf`, 'utf8')).toBe(ORIGINAL);
    expect(existsSync(join(stateDir, 'resolv.conf.orig'))).toBe(false);
  });

  test('a resolver rewritten by someone else after install is left alone on remove', async () => {
    const capture = new TrafficCapture({ netns: NS, stateDir: join(dir, 'state') });
    await capture.install([]);
    writeFileSync(`/etc/netns/${NS}/resolv.conf`, 'nameserver 10.203.8.99\n');
    await capture.remove();
    expect(readFileSync(`/etc/netns/${NS}/resolv.conf`, 'utf8')).toBe('nameserver 10.203.8.99\n');
    writeFileSync(`/etc/netns/${NS}/resolv.conf`, ORIGINAL);
  });

  test('dnsmasq that cannot start is reported with HTTPMESH_CAPTURE_DNSMASQ_START_FAILED; nothing redirects', async () => {
    const capture = new TrafficCapture({
      netns: NS,
      stateDir: join(dir, 'broken'),
      dnsmasqPath: join(dir, 'no-such-dnsmasq'),
      dnsUpstream: '10.203.8.53',
    });
    await expect(capture.install([{ domain: '*.partner.test' }])).rejects.toMatchObject({
      code: 'HTTPMESH_CAPTURE_DNSMASQ_START_FAILED',
    });
    const status = await capture.status();
    expect(status.outputJumps).toBe(0); // nat rules come last, so a failed install redirects nothing
    await capture.remove();
  });
});
