/**
 * The sidecar end to end on real kernel networking: `init-net` installs capture in a service namespace,
 * `run --mode transparent` runs there as the proxy uid, and real curl clients show that outbound HTTP is
 * captured and measured per pattern, HTTPS to an intercepted domain is decrypted (the client trusts only
 * the mesh CA) and measured, HTTPS to other domains passes untouched (the client trusts only the
 * upstream's CA), inbound HTTP is captured, the sidecar's own upstream calls are not looped, and a rules
 * file change switches a domain between intercept and passthrough without a restart. Java and Go clients
 * trust the mesh CA the way `ca trust` sets it up (a keytool keystore, the env file), curl through the
 * system store (`ca trust --trust system`, restored byte for byte afterwards), and a domain added to the
 * rules file reaches dnsmasq/ipset through the intercept file and `init-net --follow` (root) while the
 * proxy runs as uid 1337.
 * Needs root (CI runs as root); everything is removed in afterAll.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import { createTestNetwork, type TestNetwork } from '@httpmesh/traffic-capture/testing';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';

const run = promisify(execFile);
const canRun = process.getuid?.() === 0 || process.env.CI === 'true';
const id = process.pid % 100000;
// The names createTestNetwork({ prefix: 'hmsd', id }) gives the two namespaces.
const UP = `hmsdU${id}`;
const SVC = `hmsdS${id}`;
const NET = '10.203.11';
const UPSTREAM_IP = `${NET}.1`; // shop.test, api.partner.test
const OTHER_IP = `${NET}.2`; // www.other.test
const EXTRA_IP = `${NET}.3`; // api.extra.test: intercepted only once the rules file adds it
const SERVICE_IP = `${NET}.10`;
const PROXY_UID = 1337;
const cli = new URL('../dist/cli.js', import.meta.url).pathname;
const fixture = new URL('./fixtures/servers.mjs', import.meta.url).pathname;
const javaClient = new URL('./fixtures/Client.java', import.meta.url).pathname;
const goClient = new URL('./fixtures/client.go', import.meta.url).pathname;
const SYSTEM_BUNDLE = '/etc/ssl/certs/ca-certificates.crt';
const JAVA_SYSTEM_CACERTS = '/etc/ssl/certs/java/cacerts';

const children: ChildProcess[] = [];
let net: TestNetwork | undefined;
let sidecar: ChildProcess | null = null;
const sidecarLog: Record<string, unknown>[] = [];
const followerLog: Record<string, unknown>[] = [];
let interceptFile = '';
let dir = '';
let rulesFile = '';
let meshCa = '';
let upstreamCa = '';

const ORDER_HOSTS = [
  'api.partner.test',
  'java.partner.test',
  'go.partner.test',
  'sys.partner.test',
  'api.extra.test',
];
const rules = (action: 'intercept' | 'passthrough', extra = false) => `intercept:
  - domain: '*.partner.test'
    action: ${action}
${extra ? '  - domain: api.extra.test\n' : ''}routes:
  - host: shop.test
    patterns: ['/items/:id']
${ORDER_HOSTS.map((h) => `  - host: ${h}\n    patterns: ['/orders/:id']\n`).join('')}  - host: ${SERVICE_IP}
    patterns: ['/hello/:name']
`;

function jsonLines(sink: Record<string, unknown>[]) {
  return (b: Buffer) => {
    for (const line of b.toString().split('\n')) {
      if (line.startsWith('{')) sink.push(JSON.parse(line) as Record<string, unknown>);
    }
  };
}

/** The env file's assignments, as `env` takes them (values may contain spaces: no shell involved). */
function envFileVars(path: string): string[] {
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter((l) => /^[A-Z_]+=/.test(l));
}

async function sh(...argv: string[]): Promise<string> {
  const [cmd, ...args] = argv;
  return (await run(cmd ?? 'false', args)).stdout;
}

function startInNs(ns: string, argv: string[], ready: (text: string) => boolean): Promise<ChildProcess> {
  if (net === undefined) throw new Error('the test network is not up');
  return net.start(ns, argv, ready, 15_000);
}

async function curlIn(
  ns: string,
  ...args: string[]
): Promise<{ server: string; host: string; path: string }> {
  const out = await sh('ip', 'netns', 'exec', ns, 'curl', '-sS', '--fail', '--max-time', '5', ...args);
  return JSON.parse(out) as { server: string; host: string; path: string };
}

async function adminGet(path: string): Promise<string> {
  return sh('ip', 'netns', 'exec', SVC, 'curl', '-sS', '--max-time', '5', `http://127.0.0.1:15000${path}`);
}

/** Metrics are recorded when an exchange completes, which may be just after the client has its reply. */
async function metricsMatching(re: RegExp): Promise<void> {
  await eventually(
    () => adminGet('/metrics'),
    (m) => re.test(m),
  );
}

async function eventually<T>(probe: () => Promise<T>, ok: (v: T) => boolean, ms = 8000): Promise<T> {
  const deadline = Date.now() + ms;
  let last: unknown;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (ok(v)) return v;
      last = v;
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`condition not met: ${String(last)}`);
}

/** Waits until `init-net --follow` applied the given intercept-file version (dnsmasq restarted if needed). */
async function followed(version: string): Promise<void> {
  await eventually(
    // The last one applied: a version can come back (intercept -> passthrough -> intercept).
    async () => followerLog.filter((l) => l['event'] === 'init-net.followed').at(-1)?.['version'],
    (last) => last === version,
    15_000,
  );
}

async function cleanup(): Promise<void> {
  sidecar?.kill('SIGKILL');
  for (const child of children) child.kill('SIGKILL');
  if (dir) {
    await run(process.execPath, [
      cli,
      'init-net',
      '--remove',
      '--netns',
      SVC,
      '--state-dir',
      join(dir, 'state'),
    ]).catch(() => {});
  }
  await net?.remove();
  if (dir) rmSync(dir, { recursive: true, force: true });
}

describe.skipIf(!canRun)(
  'sidecar in transparent mode on a real namespace (needs root; skipped: not root and not CI)',
  () => {
    beforeAll(async () => {
      try {
        dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-e2e-'));
        chmodSync(dir, 0o755);
        // The upstream's own CA and certificate: the proxy trusts it through --upstream-ca.
        const ca = await CertificateAuthority.create({ commonName: 'e2e upstream CA' });
        const leaf = await ca.issueLeaf([...ORDER_HOSTS, 'www.other.test', 'shop.test']);
        upstreamCa = join(dir, 'upstream-ca.pem');
        writeFileSync(upstreamCa, ca.certPem);
        writeFileSync(join(dir, 'upstream.key'), leaf.keyPem);
        writeFileSync(join(dir, 'upstream.crt'), leaf.chainPem);
        rulesFile = join(dir, 'rules.yaml');
        writeFileSync(rulesFile, rules('intercept'));
        chmodSync(rulesFile, 0o644);
        // The mesh CA, owned by the proxy uid that reads its key.
        const caDir = join(dir, 'ca');
        await run(process.execPath, [cli, 'ca', 'init', '--ca-dir', caDir]);
        await sh('chown', '-R', `${PROXY_UID}:${PROXY_UID}`, caDir);
        meshCa = join(caDir, 'ca.crt');

        net = await createTestNetwork({
          prefix: 'hmsd',
          id,
          subnet: NET,
          upstreamHosts: [1, 2, 3],
          serviceHost: 10,
          dns: {
            'partner.test': UPSTREAM_IP,
            'shop.test': UPSTREAM_IP,
            'other.test': OTHER_IP,
            'extra.test': EXTRA_IP,
          },
          workDir: dir,
        });
        await startInNs(
          UP,
          [
            process.execPath,
            fixture,
            'upstream',
            '80',
            '443',
            join(dir, 'upstream.key'),
            join(dir, 'upstream.crt'),
          ],
          (t) => t.includes('ready'),
        );
        await startInNs(SVC, [process.execPath, fixture, 'service', '8080'], (t) => t.includes('ready'));

        mkdirSync(join(dir, 'state'));
        // init-net stays up as root (--follow) and creates the intercept file's directory for uid 1337.
        interceptFile = join(dir, 'published', 'intercept.json');
        const follower = spawn(
          process.execPath,
          [
            cli,
            'init-net',
            '--follow',
            '--netns',
            SVC,
            '--dns-upstream',
            UPSTREAM_IP,
            '--rules',
            rulesFile,
            '--inbound-ports',
            '8080',
            '--state-dir',
            join(dir, 'state'),
            '--intercept-file',
            interceptFile,
          ],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        );
        children.push(follower);
        follower.stderr?.on('data', jsonLines(followerLog));
        await eventually(
          async () => followerLog.some((l) => l['event'] === 'init-net.following'),
          (following) => following,
          20_000,
        );

        sidecar = await startInNs(
          SVC,
          [
            'setpriv',
            `--reuid=${PROXY_UID}`,
            `--regid=${PROXY_UID}`,
            '--clear-groups',
            process.execPath,
            cli,
            'run',
            '--mode',
            'transparent',
            '--rules',
            rulesFile,
            '--ca-dir',
            caDir,
            '--upstream-ca',
            upstreamCa,
            '--service',
            'shop',
            '--admin',
            '127.0.0.1:15000',
            '--intercept-file',
            interceptFile,
          ],
          (t) => t.includes('"sidecar.started"'),
        );
        sidecar.stderr?.on('data', jsonLines(sidecarLog));
      } catch (e) {
        await cleanup();
        throw e;
      }
    }, 90_000);

    afterAll(cleanup, 30_000);

    test('outbound HTTP is captured, forwarded and measured per pattern', async () => {
      const reply = await curlIn(SVC, 'http://shop.test/items/42');
      expect(reply).toMatchObject({ server: 'upstream', host: 'shop.test', path: '/items/42' });
      await metricsMatching(
        /http_client_request_duration_count\{[^}]*http_route="\/items\/:id",server_address="shop\.test"[^}]*\} 1/,
      );
    });

    test('HTTPS to an intercepted domain is decrypted and re-encrypted: the client trusts only the mesh CA', async () => {
      const reply = await curlIn(SVC, '--cacert', meshCa, 'https://api.partner.test/orders/9');
      expect(reply).toMatchObject({ server: 'upstream', host: 'api.partner.test', path: '/orders/9' });
      // (No negative check with the upstream CA here: a client rejecting our certificate makes mitm-core
      // pin the host to passthrough, which would outlive this test.)
      await metricsMatching(/http_client_request_duration_count\{[^}]*http_route="\/orders\/:id"/);
    });

    test('Node and Python clients trust the mesh CA through the env file `ca trust` writes', async () => {
      const envFile = join(dir, 'trust.env');
      await run(process.execPath, [
        cli,
        'ca',
        'trust',
        '--ca-dir',
        join(dir, 'ca'),
        '--trust',
        'env',
        '--trust-env-file',
        envFile,
      ]);
      const vars = readFileSync(envFile, 'utf8')
        .split('\n')
        .filter((l) => /^[A-Z_]+=/.test(l));
      const inNs = (...argv: string[]) => sh('ip', 'netns', 'exec', SVC, 'env', ...vars, ...argv);
      const node = await inNs(
        process.execPath,
        '-e',
        "require('node:https').get('https://api.partner.test/orders/3', (r) => r.pipe(process.stdout)).on('error', (e) => { console.error(e.message); process.exit(1); })",
      );
      expect(JSON.parse(node)).toMatchObject({ server: 'upstream', path: '/orders/3' });
      const python = await inNs(
        'python3',
        '-c',
        "import urllib.request; print(urllib.request.urlopen('https://api.partner.test/orders/4', timeout=5).read().decode())",
      );
      expect(JSON.parse(python)).toMatchObject({ server: 'upstream', path: '/orders/4' });
    });

    test('HTTPS to a domain not in the rules passes untouched: the client trusts only the upstream CA', async () => {
      const reply = await curlIn(SVC, '--cacert', upstreamCa, 'https://www.other.test/');
      expect(reply).toMatchObject({ server: 'upstream', host: 'www.other.test' });
    });

    test("inbound HTTP to the service is captured and measured; the sidecar's own calls are not looped", async () => {
      const reply = await curlIn(UP, `http://${SERVICE_IP}:8080/hello/bob`);
      expect(reply).toMatchObject({ server: 'service', path: '/hello/bob' });
      await metricsMatching(
        /http_server_request_duration_count\{[^}]*http_route="\/hello\/:name"[^}]*httpmesh_direction="inbound"/,
      );
      // Exactly the client connections were accepted: had the proxy's upstream calls been redirected back
      // to it, each would show up here again (and never finish).
      const connections = JSON.parse(await adminGet('/connections')) as {
        accepted: { outbound: number; inbound: number };
      };
      expect(connections.accepted).toEqual({ outbound: 4, inbound: 1 }); // HTTP items, HTTPS orders (curl, Node, Python)
    });

    test("TLS without SNI to an intercepted domain's address is not terminated: the upstream answers with its own certificate", async () => {
      // UPSTREAM_IP is in the ipset (api.partner.test resolved to it), so the connection is redirected; with
      // no SNI and no rule for the address, the sidecar must splice it rather than mint a certificate.
      const probe = [
        "const s = require('node:tls').connect({ host: process.argv[1], port: 443, rejectUnauthorized: false }, () => {",
        '  const issuer = s.getPeerX509Certificate().issuer;',
        "  s.write('GET /no-sni HTTP/1.1\\r\\nHost: api.partner.test\\r\\nConnection: close\\r\\n\\r\\n');",
        "  let reply = '';",
        "  s.on('data', (d) => { reply += d; });",
        "  s.on('end', () => console.log(JSON.stringify({ issuer, servername: s.servername ?? null, reply })));",
        '});',
        "s.on('error', (e) => { console.error(e.message); process.exit(1); });",
      ].join('\n');
      const out = JSON.parse(
        await sh('ip', 'netns', 'exec', SVC, process.execPath, '-e', probe, UPSTREAM_IP),
      ) as { issuer: string; reply: string };
      expect(out.issuer).toContain('e2e upstream CA');
      expect(out.reply).toMatch(/^HTTP\/1\.1 200 /);
      expect(out.reply).toContain('"path":"/no-sni"');
    });

    test('Java (keystore written by keytool) and Go (SSL_CERT_FILE) trust the mesh CA via ca trust', async () => {
      const jdkCacertsBefore = readFileSync(JAVA_SYSTEM_CACERTS);
      const keystore = join(dir, 'java', 'truststore.p12');
      const envFile = join(dir, 'trust-java-go.env');
      const trusted = JSON.parse(
        await sh(
          process.execPath,
          cli,
          'ca',
          'trust',
          '--ca-dir',
          join(dir, 'ca'),
          '--trust',
          'java,env',
          '--java-truststore',
          keystore,
          '--trust-env-file',
          envFile,
        ),
      ) as { store: string; done: boolean }[];
      expect(trusted).toEqual([
        expect.objectContaining({ store: 'java', done: true }),
        expect.objectContaining({ store: 'env', done: true }),
      ]);
      // The keystore holds the mesh CA and (seeded from the JDK) the public roots; the JDK's own is untouched.
      const listing = await sh('keytool', '-list', '-keystore', keystore, '-storepass', 'changeit');
      expect(listing).toMatch(/httpmesh-[0-9a-f]{12}/);
      expect(Number(/contains (\d+) entr/.exec(listing)?.[1])).toBeGreaterThan(10);
      expect(readFileSync(JAVA_SYSTEM_CACERTS).equals(jdkCacertsBefore)).toBe(true);

      const vars = envFileVars(envFile);
      expect(vars.some((v) => v.startsWith('JAVA_TOOL_OPTIONS=') && v.includes(keystore))).toBe(true);
      const java = await sh(
        'ip',
        'netns',
        'exec',
        SVC,
        'env',
        ...vars,
        'java',
        javaClient,
        'https://java.partner.test/orders/7',
      );
      expect(JSON.parse(java)).toMatchObject({
        server: 'upstream',
        host: 'java.partner.test',
        path: '/orders/7',
      });

      // Go: standard library only, offline, caches in the test's own directory.
      const goHome = join(dir, 'go');
      mkdirSync(goHome, { recursive: true });
      const go = await sh(
        'ip',
        'netns',
        'exec',
        SVC,
        'env',
        ...vars,
        `HOME=${goHome}`,
        `GOCACHE=${join(goHome, 'cache')}`,
        `GOPATH=${join(goHome, 'path')}`,
        'GOFLAGS=-mod=mod',
        'GOPROXY=off',
        'GOTOOLCHAIN=local',
        'go',
        'run',
        goClient,
        'https://go.partner.test/orders/8',
      );
      expect(JSON.parse(go)).toMatchObject({
        server: 'upstream',
        host: 'go.partner.test',
        path: '/orders/8',
      });

      for (const host of ['java\\.partner\\.test', 'go\\.partner\\.test']) {
        await metricsMatching(
          new RegExp(
            `http_client_request_duration_count\\{[^}]*http_route="/orders/:id",server_address="${host}"[^}]*\\} 1`,
          ),
        );
      }
    }, 120_000);

    test('ca trust --trust system: curl without --cacert trusts the mesh; the store is restored byte for byte', async () => {
      const bundleBefore = readFileSync(SYSTEM_BUNDLE);
      const javaBefore = existsSync(JAVA_SYSTEM_CACERTS) ? readFileSync(JAVA_SYSTEM_CACERTS) : null;
      let installed = '';
      try {
        const [result] = JSON.parse(
          await sh(process.execPath, cli, 'ca', 'trust', '--ca-dir', join(dir, 'ca'), '--trust', 'system'),
        ) as { store: string; done: boolean; detail: string }[];
        installed = result?.detail ?? '';
        expect(result).toMatchObject({ store: 'system', done: true });
        expect(installed).toMatch(/^\/usr\/local\/share\/ca-certificates\/httpmesh-[0-9a-f]{12}\.crt$/);
        expect(readFileSync(SYSTEM_BUNDLE, 'utf8')).toContain(readFileSync(meshCa, 'utf8').trim());
        // No --cacert: curl uses the system store.
        const reply = await curlIn(SVC, 'https://sys.partner.test/orders/5');
        expect(reply).toMatchObject({ server: 'upstream', host: 'sys.partner.test', path: '/orders/5' });
        await metricsMatching(
          /http_client_request_duration_count\{[^}]*http_route="\/orders\/:id",server_address="sys\.partner\.test"[^}]*\} 1/,
        );
      } finally {
        if (installed) rmSync(installed, { force: true });
        // --fresh rebuilds the bundle and the links from scratch, without the removed certificate.
        await run('update-ca-certificates', ['--fresh']);
        // The Java hook of update-ca-certificates rewrote the JDK store: put back the very same bytes.
        if (javaBefore !== null) writeFileSync(JAVA_SYSTEM_CACERTS, javaBefore);
      }
      expect(readFileSync(SYSTEM_BUNDLE).equals(bundleBefore)).toBe(true);
      if (javaBefore !== null) expect(readFileSync(JAVA_SYSTEM_CACERTS).equals(javaBefore)).toBe(true);
    }, 120_000);

    test('a rules change switches a domain between intercept and passthrough without restarting', async () => {
      const version = async () =>
        (JSON.parse(await adminGet('/config')) as { rules: { version: string } }).rules.version;
      const v1 = await version();
      writeFileSync(rulesFile, rules('passthrough'));
      const v2 = await eventually(version, (v) => v !== v1);
      await followed(v2);
      expect((await curlIn(SVC, '--cacert', upstreamCa, 'https://api.partner.test/x')).server).toBe(
        'upstream',
      );
      await expect(curlIn(SVC, '--cacert', meshCa, 'https://api.partner.test/x')).rejects.toThrow();

      writeFileSync(rulesFile, rules('intercept'));
      const v3 = await eventually(version, (v) => v !== v2);
      // Dropping *.partner.test flushed the ipset; it is back once init-net --follow restarted dnsmasq.
      await followed(v3);
      expect((await curlIn(SVC, '--cacert', meshCa, 'https://api.partner.test/orders/1')).server).toBe(
        'upstream',
      );
      expect(sidecar?.exitCode).toBeNull(); // same process throughout
    });

    test('a domain added to the rules file reaches dnsmasq/ipset through init-net --follow, nothing restarted', async () => {
      const members = async () =>
        (await sh('ip', 'netns', 'exec', SVC, 'ipset', 'list', 'httpmesh-intercept')).split('\n');
      // Before: not in the rules, so its address is not in the set: HTTPS goes straight to the upstream.
      expect((await curlIn(SVC, '--cacert', upstreamCa, 'https://api.extra.test/orders/1')).server).toBe(
        'upstream',
      );
      expect(await members()).not.toContain(EXTRA_IP);
      const accepted = async () =>
        (JSON.parse(await adminGet('/connections')) as { accepted: { outbound: number } }).accepted.outbound;
      const acceptedBefore = await accepted();
      const sidecarPid = sidecar?.pid;

      writeFileSync(rulesFile, rules('intercept', true));
      const published = await eventually(
        async () =>
          JSON.parse(readFileSync(interceptFile, 'utf8')) as {
            version: string;
            intercept: { domain: string }[];
          },
        (c) => c.intercept.some((r) => r.domain === 'api.extra.test'),
      );
      await followed(published.version);
      expect(readFileSync(join(dir, 'state', 'dnsmasq.conf'), 'utf8')).toContain('ipset=/api.extra.test/');

      const reply = await curlIn(SVC, '--cacert', meshCa, 'https://api.extra.test/orders/2');
      expect(reply).toMatchObject({ server: 'upstream', host: 'api.extra.test', path: '/orders/2' });
      expect(await members()).toContain(EXTRA_IP);
      expect(await accepted()).toBe(acceptedBefore + 1);
      await metricsMatching(
        /http_client_request_duration_count\{[^}]*http_route="\/orders\/:id",server_address="api\.extra\.test"[^}]*\} 1/,
      );
      expect(sidecar?.pid).toBe(sidecarPid);
      expect(sidecar?.exitCode).toBeNull();
    }, 60_000);

    test('SIGTERM stops the sidecar with exit code 0', async () => {
      expect(sidecar?.exitCode).toBeNull();
      const exited = new Promise<number | null>((resolve) => sidecar?.once('exit', (code) => resolve(code)));
      // setpriv execs node, so the signal reaches the sidecar itself.
      sidecar?.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(sidecarLog.some((l) => l['event'] === 'sidecar.stopped')).toBe(true);
    });
  },
);
