/**
 * End to end on real kernel networking: two network namespaces joined by a veth pair, real iptables,
 * ipset and dnsmasq, real curl. Needs root (CI runs as root); everything is created with names unique to
 * this process and removed in afterAll even when a test fails.
 */
import { type ChildProcess, execFile } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TrafficCapture } from '../src/index.js';
import { createTestNetwork, type TestNetwork } from '../src/testing.js';

const run = promisify(execFile);
const isRoot = process.getuid?.() === 0;
const inCi = process.env.CI === 'true';

// Addresses exist only inside the two namespaces this test creates (createTestNetwork).
const NET = '10.203.7';
const UPSTREAM_IP = `${NET}.1`; // api.partner.test
const OTHER_IP = `${NET}.2`; // www.other.test
const LATER_IP = `${NET}.3`; // api.later.test
const SERVICE_IP = `${NET}.10`;
const PROXY_UID = 1337;

const fixture = new URL('./fixtures/server.mjs', import.meta.url).pathname;
let workDir = '';
let net: TestNetwork | undefined;
let capture: TrafficCapture;
// Namespace names, set once the network exists.
let UP = '';
let SVC = '';

async function sh(...argv: string[]): Promise<string> {
  const [cmd, ...args] = argv;
  const { stdout } = await run(cmd ?? 'false', args);
  return stdout;
}

/** Starts a long-running process in a namespace and waits (bounded) for it to print `readyLine`. */
function startInNs(ns: string, argv: string[], readyLine = 'ready'): Promise<ChildProcess> {
  if (net === undefined) throw new Error('the test network is not up');
  return net.start(ns, argv, readyLine, 10_000);
}

interface Reply {
  server: string;
  localPort: number;
  tls: boolean;
  host: string | null;
  originalDestination: { address: string; port: number } | null;
}

/** curl inside a namespace, optionally as another uid; returns the JSON reply of the fixture server. */
async function curl(ns: string, url: string, asUid?: number): Promise<Reply> {
  const as = asUid === undefined ? [] : ['setpriv', `--reuid=${asUid}`, `--regid=${asUid}`, '--clear-groups'];
  const out = await sh('ip', 'netns', 'exec', ns, ...as, 'curl', '-sS', '-k', '--max-time', '5', url);
  return JSON.parse(out) as Reply;
}

/** Polls a condition until it holds or a bounded deadline passes (no fixed sleeps). */
async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms = 5000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: T | undefined;
  let lastError: unknown;
  while (Date.now() < deadline) {
    try {
      last = await probe();
      if (ok(last)) return last;
    } catch (e) {
      lastError = e;
    }
    await delay(50);
  }
  throw new Error(`condition not met: last=${JSON.stringify(last)} error=${String(lastError)}`);
}

async function cleanup(): Promise<void> {
  try {
    await capture?.remove();
  } catch {
    // best effort: the namespace deletion below takes its rules and set with it
  }
  await net?.remove();
  if (workDir) rmSync(workDir, { recursive: true, force: true });
}

describe.skipIf(!isRoot && !inCi)(
  'transparent capture in a real network namespace (needs root; skipped: not root and not CI)',
  () => {
    beforeAll(async () => {
      try {
        workDir = mkdtempSync(join(tmpdir(), 'httpmesh-tc-'));
        chmodSync(workDir, 0o755);
        const key = join(workDir, 'key.pem');
        const cert = join(workDir, 'cert.pem');
        await sh(
          'openssl',
          'req',
          '-x509',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-subj',
          '/CN=httpmesh-test',
          '-days',
          '1',
          '-keyout',
          key,
          '-out',
          cert,
        );
        chmodSync(key, 0o644); // read by the target running as the proxy uid

        net = await createTestNetwork({
          prefix: 'hmtc',
          subnet: NET,
          upstreamHosts: [1, 2, 3],
          serviceHost: 10,
          dns: { 'partner.test': UPSTREAM_IP, 'other.test': OTHER_IP, 'later.test': LATER_IP },
          workDir,
        });
        UP = net.upstreamNs;
        SVC = net.serviceNs;
        // Upstream HTTP and HTTPS servers (own self-signed certificate).
        await startInNs(UP, [process.execPath, fixture, 'upstream', key, cert, '80,443']);
        // The service itself (root) and the redirect target standing in for the proxy (proxy uid).
        await startInNs(SVC, [process.execPath, fixture, 'service', key, cert, '8080']);
        await startInNs(SVC, [
          'setpriv',
          `--reuid=${PROXY_UID}`,
          `--regid=${PROXY_UID}`,
          '--clear-groups',
          process.execPath,
          fixture,
          'proxy',
          key,
          cert,
          '15001,15006',
        ]);

        capture = new TrafficCapture({
          netns: SVC,
          stateDir: join(workDir, 'capture'),
          dnsUpstream: UPSTREAM_IP,
          inboundPorts: [8080],
          proxyUid: PROXY_UID,
        });
      } catch (e) {
        await cleanup();
        throw e;
      }
    }, 60_000);

    afterAll(cleanup, 30_000);

    test('before install nothing is redirected', async () => {
      expect((await curl(SVC, `http://${UPSTREAM_IP}/`)).server).toBe('upstream');
    });

    test('install is idempotent: one jump per chain, set, dnsmasq and resolver in place', async () => {
      await capture.install([
        { domain: '*.partner.test' },
        { domain: 'bank.other.test', action: 'passthrough' },
      ]);
      const status = await capture.install([
        { domain: '*.partner.test' },
        { domain: 'bank.other.test', action: 'passthrough' },
      ]);
      expect(status).toMatchObject({
        outputChain: true,
        preroutingChain: true,
        outputJumps: 1,
        preroutingJumps: 1,
        ipset: true,
        resolverManaged: true,
        suffixes: ['partner.test'],
      });
      expect(status.dnsmasqPid).toBeGreaterThan(0);
    });

    test('outbound HTTP is redirected to the outbound port', async () => {
      const reply = await curl(SVC, `http://${UPSTREAM_IP}/items/1`);
      expect(reply.server).toBe('proxy');
      expect(reply.localPort).toBe(15001);
      expect(reply.host).toBe(UPSTREAM_IP);
      if (reply.originalDestination !== null) {
        expect(reply.originalDestination).toMatchObject({ address: UPSTREAM_IP, port: 80 });
      }
    });

    test('HTTPS to an intercepted domain is redirected; its address is in the ipset', async () => {
      const reply = await curl(SVC, 'https://api.partner.test/');
      expect(reply).toMatchObject({ server: 'proxy', localPort: 15001, tls: true, host: 'api.partner.test' });
      expect(await capture.ipsetMembers()).toContain(UPSTREAM_IP);
    });

    test('HTTPS to a domain not in the rules passes untouched to the upstream', async () => {
      const reply = await curl(SVC, 'https://www.other.test/');
      expect(reply).toMatchObject({ server: 'upstream', localPort: 443, tls: true });
      const passthrough = await curl(SVC, 'https://bank.other.test/');
      expect(passthrough.server).toBe('upstream');
      expect(await capture.ipsetMembers()).not.toContain(OTHER_IP);
    });

    test("the proxy uid's own traffic is not redirected", async () => {
      expect((await curl(SVC, `http://${UPSTREAM_IP}/`, PROXY_UID)).server).toBe('upstream');
      expect((await curl(SVC, 'https://api.partner.test/', PROXY_UID)).server).toBe('upstream');
    });

    test('loopback calls inside the namespace are not redirected', async () => {
      expect((await curl(SVC, 'http://127.0.0.1:8080/')).server).toBe('service');
    });

    test('inbound connections to the service port are redirected to the inbound port', async () => {
      const reply = await curl(UP, `http://${SERVICE_IP}:8080/`);
      expect(reply).toMatchObject({ server: 'proxy', localPort: 15006 });
    });

    test('adding a domain redirects it; removing one stops redirecting it and flushes the set', async () => {
      expect((await curl(SVC, 'https://api.later.test/')).server).toBe('upstream');
      const added = await capture.update([{ domain: '*.partner.test' }, { domain: '*.later.test' }]);
      expect(added).toMatchObject({
        changed: true,
        flushed: false,
        suffixes: ['later.test', 'partner.test'],
      });
      expect((await curl(SVC, 'https://api.later.test/')).server).toBe('proxy');
      expect(await capture.ipsetMembers()).toContain(LATER_IP);

      const removed = await capture.update([{ domain: '*.later.test' }]);
      expect(removed).toMatchObject({ changed: true, flushed: true, suffixes: ['later.test'] });
      expect(await capture.ipsetMembers()).not.toContain(UPSTREAM_IP);
      expect((await curl(SVC, 'https://api.partner.test/')).server).toBe('upstream');
      expect(await capture.ipsetMembers()).not.toContain(UPSTREAM_IP);
      // The remaining domain is still captured once it resolves again.
      expect((await curl(SVC, 'https://api.later.test/')).server).toBe('proxy');

      const same = await capture.update([{ domain: 'later.test' }]);
      expect(same).toMatchObject({ changed: false, flushed: false });

      // Re-running install with the domain gone (what `init-net` does) flushes it too.
      expect(await capture.ipsetMembers()).toContain(LATER_IP);
      await capture.install([]);
      expect(await capture.ipsetMembers()).toEqual([]);
      expect((await curl(SVC, 'https://api.later.test/')).server).toBe('upstream');
    });

    test('remove leaves no chains, set, dnsmasq or resolver file, and traffic flows directly', async () => {
      const pid = (await capture.status()).dnsmasqPid;
      expect(pid).not.toBeNull();
      await capture.remove();
      await capture.remove(); // idempotent
      const status = await capture.status();
      expect(status).toMatchObject({
        outputChain: false,
        preroutingChain: false,
        outputJumps: 0,
        preroutingJumps: 0,
        ipset: false,
        dnsmasqPid: null,
        resolverManaged: false,
      });
      const rules = await sh('ip', 'netns', 'exec', SVC, 'iptables-save', '-t', 'nat');
      expect(rules).not.toContain('HTTPMESH');
      await eventually(
        async () => sh('ps', '-o', 'pid=', '-p', String(pid)).catch(() => ''),
        (out) => out.trim() === '',
      );
      expect((await curl(SVC, `http://${UPSTREAM_IP}/`)).server).toBe('upstream');
      expect((await curl(UP, `http://${SERVICE_IP}:8080/`)).server).toBe('service');
    });

    test('a test network that cannot be completed leaves no namespace behind', async () => {
      const before = await sh('ip', 'netns', 'list');
      // 10.203.7.300 is not an address: `ip addr add` fails after both namespaces and the veth pair exist.
      await expect(
        createTestNetwork({
          prefix: 'hmtx',
          subnet: NET,
          upstreamHosts: [300],
          serviceHost: 10,
          dns: {},
          workDir,
        }),
      ).rejects.toThrow(/addr add/);
      expect(await sh('ip', 'netns', 'list')).toBe(before);
      await expect(
        createTestNetwork({
          prefix: 'Bad-Prefix',
          subnet: NET,
          upstreamHosts: [1],
          serviceHost: 2,
          dns: {},
          workDir,
        }),
      ).rejects.toThrow(TypeError);
    });
  },
);
