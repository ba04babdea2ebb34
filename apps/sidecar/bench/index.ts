// Sidecar throughput and latency against a direct connection, nginx and mitmproxy (`npm run bench -w
// @httpmesh/sidecar`). Loopback only, inside a network namespace this script creates and removes (root):
// there /etc/netns/<ns>/hosts makes upstream.bench.test resolve to 127.0.0.2 for the sidecar and mitmproxy,
// since intercept rules take host names, not addresses.
//
// HTTP: explicit forward proxy (absolute-form requests) for the sidecar, nginx and mitmproxy.
// HTTPS: the client connects to the proxy as if redirected by init-net (TLS, SNI upstream.bench.test); the
// proxy terminates TLS with a certificate from its own CA and re-originates TLS to the upstream, verifying it
// against the upstream CA. Sidecar: transparent mode; nginx: ssl listener + proxy_pass https; mitmproxy:
// reverse mode. Each proxy is checked once with a verifying client (trusting that proxy's CA) before load.
//
// Same load generators for all, in this process. Max load: autocannon, BENCH_CONNECTIONS closed-loop
// connections; latency percentiles from autocannon's per-response timings (sub-millisecond), not its
// millisecond histogram. Moderate load: bench/paced.ts, an open-loop pacer (request i due at i / rate, latency
// from the due time, so stalls are not hidden) over a fixed pool of keep-alive connections opened before the
// run (autocannon's overallRate bursts each second's quota at full speed, i.e. measures a saturated proxy).
// CPU from /proc/<pid>/stat of the proxy's processes over the measured window; RSS from /proc/<pid>/status.
//
// Env: BENCH_SECONDS (5), BENCH_WARMUP_SECONDS (1), BENCH_CONNECTIONS (32), BENCH_RATE (moderate load,
// 1000 req/s), BENCH_PACED_CONNECTIONS (16, the moderate-load pool), BENCH_ROUNDS (3 paced rounds per proxy,
// interleaved with as many rounds of the direct connection, which the "added" latency compares against), BENCH_ONLY (comma list of proxy names: direct,sidecar,nginx,mitmproxy),
// BENCH_CPU_PROF (directory: run the sidecar under node --cpu-prof), BENCH_SIDECAR (`node`: dist/cli.js
// under this Node, default; `sea`: dist/sea/httpmesh-sidecar), BENCH_SIDECAR_NODE_ARGS (extra Node flags for
// the sidecar, e.g. `--max-semi-space-size=2`), BENCH_SIDECAR_CLI (another build's cli.js, for A/B runs).
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { type AddressInfo, createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createHistogram } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { CertificateAuthority } from '@httpmesh/mitm-core';
import autocannon from 'autocannon';
import { PacedPool, type PacedResult } from './paced.js';
import { cpuSeconds, memoryMb, processTree } from './proc.js';

const appDir = fileURLToPath(new URL('..', import.meta.url));
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? '5');
const WARMUP_SECONDS = Number(process.env['BENCH_WARMUP_SECONDS'] ?? '1');
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? '32');
const RATE = Number(process.env['BENCH_RATE'] ?? '1000');
const PACED_CONNECTIONS = Number(process.env['BENCH_PACED_CONNECTIONS'] ?? '16');
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? '3');
const ONLY = (process.env['BENCH_ONLY'] ?? 'direct,sidecar,nginx,mitmproxy').split(',');
const UPSTREAM_NAME = 'upstream.bench.test';
const UPSTREAM_ADDRESS = '127.0.0.2';
const PATH = '/items/1';

// ---- the network namespace ---------------------------------------------------------------------------

if (process.env['HTTPMESH_BENCH_NETNS'] === undefined) {
  if (process.getuid?.() !== 0) {
    console.error(
      'bench: needs root (it runs inside a network namespace of its own, with its own hosts file)',
    );
    process.exit(1);
  }
  const ns = `httpmesh-bench-${process.pid}`;
  const ip = (...args: string[]) => {
    const r = spawnSync('ip', args, { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`ip ${args.join(' ')}: ${r.stderr || r.error?.message}`);
  };
  const etc = `/etc/netns/${ns}`;
  let code = 1;
  try {
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    mkdirSync(etc, { recursive: true });
    writeFileSync(join(etc, 'hosts'), `127.0.0.1 localhost\n${UPSTREAM_ADDRESS} ${UPSTREAM_NAME}\n`);
    const child = spawnSync(
      'ip',
      ['netns', 'exec', ns, process.execPath, ...process.execArgv, fileURLToPath(import.meta.url)],
      { stdio: 'inherit', env: { ...process.env, HTTPMESH_BENCH_NETNS: ns } },
    );
    code = child.status ?? 1;
  } finally {
    spawnSync('ip', ['netns', 'del', ns]);
    rmSync(etc, { recursive: true, force: true });
  }
  process.exit(code);
}

// ---- helpers -----------------------------------------------------------------------------------------

interface Target {
  readonly name: string;
  /** Where the load generator connects: 127.0.0.2 for direct, the proxy's 127.0.0.1 otherwise. */
  readonly host: string;
  readonly port: number;
  /** Request target: origin-form, or absolute-form for a forward proxy. */
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly tls: boolean;
  /** Processes whose CPU and memory count (none for direct). */
  readonly pids: () => number[];
}

interface Row {
  readonly scenario: string;
  readonly target: string;
  readonly rps: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
  readonly cpuCores: number;
  readonly rssMb: number;
  readonly peakRssMb: number;
  /** Moderate load only: medians of ROUNDS runs; p99 from the actual send (not the due time); connections
   * reopened; the proxy's p99 range over the rounds; the direct connection's medians in the interleaved rounds. */
  readonly sentP99?: number;
  readonly reconnects?: number;
  readonly p99Range?: readonly [number, number];
  readonly directP50?: number;
  readonly directP99?: number;
}

const children: ChildProcess[] = [];

function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, host, () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

function start(command: string, args: string[], env: NodeJS.ProcessEnv = process.env): ChildProcess {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  child.stderr?.on('data', (chunk: Buffer) => {
    const text = chunk.toString();
    // Proxies log a line per connection the load generator drops at the end; show only real failures.
    if (/error|fatal|Traceback/i.test(text) && !/connection_error|ECONNRESET|client disconnect/i.test(text))
      process.stderr.write(`[${command}] ${text}`);
  });
  children.push(child);
  return child;
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/** Resolves once something accepts TCP connections on the port (bounded). */
async function waitForPort(port: number, child: ChildProcess, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${child.spawnfile} exited with ${child.exitCode}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = new Socket();
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
      socket.connect(port, '127.0.0.1');
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${port} after ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** One HTTPS request with full verification against `ca`: proves the proxy's chain before load. */
function verifiedGet(port: number, ca: string): Promise<number> {
  return new Promise((resolve, reject) => {
    httpsRequest(
      {
        host: '127.0.0.1',
        port,
        path: PATH,
        servername: UPSTREAM_NAME,
        headers: { host: UPSTREAM_NAME },
        ca,
        agent: false,
        checkServerIdentity: (_host, cert) =>
          (cert.subjectaltname ?? '').split(', ').includes(`DNS:${UPSTREAM_NAME}`)
            ? undefined
            : new Error(`certificate is not for ${UPSTREAM_NAME}: ${cert.subjectaltname}`),
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    )
      .on('error', reject)
      .end();
  });
}

/** Max load: autocannon, CONNECTIONS closed-loop keep-alive connections. */
function load(target: Target, seconds: number) {
  const latencies = createHistogram();
  let ok = 0;
  let failed = 0;
  return new Promise<{ rps: number; p50: number; p99: number; errors: number }>((resolve, reject) => {
    const options: autocannon.Options = {
      url: `${target.tls ? 'https' : 'http'}://${target.host}:${target.port}`,
      connections: CONNECTIONS,
      duration: seconds,
      requests: [{ method: 'GET', path: target.path, headers: target.headers }],
      ...(target.tls ? { servername: UPSTREAM_NAME } : {}),
    };
    const instance = autocannon(options, (error, result) => {
      if (error) return reject(error);
      resolve({
        rps: (ok + failed) / seconds,
        p50: latencies.count === 0 ? Number.NaN : latencies.percentile(50) / 1e6,
        p99: latencies.count === 0 ? Number.NaN : latencies.percentile(99) / 1e6,
        errors: failed + result.errors + result.timeouts,
      });
    });
    instance.on(
      'response',
      (_client: unknown, statusCode: number, _bytes: number, responseTimeMs: number) => {
        if (statusCode === 200) {
          ok++;
          latencies.record(Math.max(1, Math.round(responseTimeMs * 1e6)));
        } else failed++;
      },
    );
  });
}

function reportLine(row: Row, note = ''): void {
  console.log(
    `${row.scenario.padEnd(22)} ${row.target.padEnd(34)} ${row.rps.toFixed(0).padStart(7)} req/s  p50 ${row.p50.toFixed(3)} ms  p99 ${row.p99.toFixed(3)} ms  errors ${row.errors}  cpu ${row.cpuCores.toFixed(2)}  rss ${row.rssMb.toFixed(1)} MB${note}`,
  );
}

/** Max load: warm-up, then one autocannon run; CPU of the proxy's processes over the run. */
async function measureMax(scenario: string, target: Target): Promise<Row> {
  await load(target, WARMUP_SECONDS);
  const pids = target.pids().flatMap((pid) => processTree(pid));
  const cpuBefore = cpuSeconds(pids);
  const startedAt = performance.now();
  const result = await load(target, SECONDS);
  const elapsed = (performance.now() - startedAt) / 1000;
  const memory = memoryMb(pids);
  const row: Row = {
    scenario,
    target: target.name,
    ...result,
    cpuCores: pids.length === 0 ? 0 : (cpuSeconds(pids) - cpuBefore) / elapsed,
    rssMb: memory.rss,
    peakRssMb: memory.peak,
  };
  reportLine(row);
  return row;
}

function pacedPool(target: Target): PacedPool {
  return new PacedPool(
    {
      origin: `${target.tls ? 'https' : 'http'}://${target.host}:${target.port}`,
      path: target.path,
      headers: target.headers,
      ...(target.tls ? { servername: UPSTREAM_NAME } : {}),
    },
    PACED_CONNECTIONS,
  );
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

/**
 * Moderate load: ROUNDS paced runs of the proxy interleaved with as many of the direct connection, each pool
 * opened and warmed up first, so the "added" latency compares rounds measured at the same moments on this
 * shared machine. Reports the medians of the rounds' percentiles and the proxy's p99 spread.
 */
async function measurePaced(
  scenario: string,
  target: Target,
  direct: Target | undefined,
  rate: number,
): Promise<Row> {
  const pool = pacedPool(target);
  const reference = direct === undefined ? undefined : pacedPool(direct);
  try {
    for (const p of [pool, reference]) {
      if (p === undefined) continue;
      await p.open();
      await p.run(rate, WARMUP_SECONDS);
    }
    const pids = target.pids().flatMap((pid) => processTree(pid));
    const rounds: PacedResult[] = [];
    const directRounds: PacedResult[] = [];
    let cpu = 0;
    let busy = 0;
    for (let round = 0; round < ROUNDS; round++) {
      if (reference !== undefined) directRounds.push(await reference.run(rate, SECONDS));
      const cpuBefore = cpuSeconds(pids);
      const startedAt = performance.now();
      rounds.push(await pool.run(rate, SECONDS));
      busy += (performance.now() - startedAt) / 1000;
      cpu += cpuSeconds(pids) - cpuBefore;
    }
    const memory = memoryMb(pids);
    const p99s = rounds.map((r) => r.p99);
    const row: Row = {
      scenario,
      target: target.name,
      rps: median(rounds.map((r) => r.rps)),
      p50: median(rounds.map((r) => r.p50)),
      p99: median(p99s),
      errors: rounds.reduce((sum, r) => sum + r.errors, 0),
      cpuCores: pids.length === 0 ? 0 : cpu / busy,
      rssMb: memory.rss,
      peakRssMb: memory.peak,
      p99Range: [Math.min(...p99s), Math.max(...p99s)],
      sentP99: median(rounds.map((r) => r.sentP99)),
      reconnects: rounds.reduce((sum, r) => sum + r.reconnects, 0),
      ...(directRounds.length === 0
        ? {}
        : {
            directP50: median(directRounds.map((r) => r.p50)),
            directP99: median(directRounds.map((r) => r.p99)),
          }),
    };
    const paired =
      row.directP99 === undefined
        ? ''
        : `, paired direct p50 ${row.directP50?.toFixed(3)} p99 ${row.directP99.toFixed(3)} ms`;
    reportLine(
      row,
      `  (${ROUNDS} rounds, p99 ${p99s.map((v) => v.toFixed(3)).join(' ')}; from send ${row.sentP99?.toFixed(3)} ms; reconnects ${row.reconnects}${paired})`,
    );
    return row;
  } finally {
    await Promise.all([pool.close(), reference?.close()]);
  }
}

// ---- set-up ------------------------------------------------------------------------------------------

const dir = mkdtempSync(join(tmpdir(), 'httpmesh-sidecar-bench-'));
const rows: Row[] = [];
try {
  const upstreamCa = await CertificateAuthority.create({ commonName: 'bench upstream CA' });
  const upstreamLeaf = await upstreamCa.issueLeaf([UPSTREAM_NAME, UPSTREAM_ADDRESS]);
  const nginxCa = await CertificateAuthority.create({ commonName: 'bench nginx CA' });
  const nginxLeaf = await nginxCa.issueLeaf([UPSTREAM_NAME]);
  const file = (name: string, text: string) => {
    writeFileSync(join(dir, name), text);
    return join(dir, name);
  };
  const upstreamCaFile = file('upstream-ca.pem', upstreamCa.certPem);
  const upstreamCert = file('upstream.pem', upstreamLeaf.chainPem);
  const upstreamKey = file('upstream.key', upstreamLeaf.keyPem);
  file('nginx.pem', nginxLeaf.chainPem);
  file('nginx.key', nginxLeaf.keyPem);
  const rulesFile = file(
    'rules.yaml',
    `intercept:\n  - domain: ${UPSTREAM_NAME}\nroutes:\n  - host: ${UPSTREAM_NAME}\n    patterns: ['/items/:id']\n  - host: ${UPSTREAM_ADDRESS}\n    patterns: ['/items/:id']\n`,
  );

  // The HTTPS upstream listens on 127.0.0.2:443 (inside the bench's own network namespace, so the port is
  // free): in transparent mode without a NAT entry the sidecar routes by SNI to the scheme's default port.
  const httpsPort = await freePort();
  const upstream = start(process.execPath, ['--import', 'tsx', join(appDir, 'bench', 'upstream.ts')], {
    ...process.env,
    BENCH_UPSTREAM_HOST: UPSTREAM_ADDRESS,
    BENCH_UPSTREAM_HTTPS_PORT: '443',
    BENCH_UPSTREAM_CERT: upstreamCert,
    BENCH_UPSTREAM_KEY: upstreamKey,
  });
  const upstreamPorts = await new Promise<{ http: number; https: number }>((resolve, reject) => {
    let out = '';
    upstream.stdout?.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(JSON.parse(out) as { http: number; https: number });
    });
    upstream.once('exit', (code) => reject(new Error(`upstream exited with ${code}`)));
  });
  const httpAuthority = `${UPSTREAM_ADDRESS}:${upstreamPorts.http}`;
  const absolute = `http://${httpAuthority}${PATH}`;
  console.log(
    `bench: ${SECONDS} s per run after ${WARMUP_SECONDS} s warm-up, ${CONNECTIONS} connections (max load), ${RATE} req/s paced over ${PACED_CONNECTIONS} connections (moderate load); node ${process.version}; netns ${process.env['HTTPMESH_BENCH_NETNS']}`,
  );

  // Each proxy kind is started, measured in every scenario, and stopped before the next starts, so the
  // proxies never compete with each other for the two cores.
  type Kind = { http: Target; https: Target; stop: () => Promise<void> };
  const kinds: Record<string, () => Promise<Kind>> = {
    direct: async () => ({
      http: {
        name: 'direct',
        host: UPSTREAM_ADDRESS,
        port: upstreamPorts.http,
        path: PATH,
        headers: { host: httpAuthority },
        tls: false,
        pids: () => [],
      },
      https: {
        name: 'direct',
        host: UPSTREAM_ADDRESS,
        port: upstreamPorts.https,
        path: PATH,
        headers: { host: UPSTREAM_NAME },
        tls: true,
        pids: () => [],
      },
      stop: async () => {},
    }),
    sidecar: async () => {
      const sidecarArgs = (mode: string[]) => {
        const common = [
          'run',
          ...mode,
          '--admin',
          '127.0.0.1:0',
          '--ca-dir',
          join(dir, 'mesh-ca'),
          '--rules',
          rulesFile,
          '--upstream-ca',
          upstreamCaFile,
          '--log-level',
          'warn',
        ];
        const profile = process.env['BENCH_CPU_PROF'];
        if (process.env['BENCH_SIDECAR'] === 'sea') {
          return { command: join(appDir, 'dist', 'sea', 'httpmesh-sidecar'), args: common };
        }
        const node = [
          ...(process.env['BENCH_SIDECAR_NODE_ARGS'] ?? '').split(' ').filter((a) => a !== ''),
          ...(profile === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', profile]),
        ];
        // BENCH_SIDECAR_CLI: another build's cli.js (A/B against an earlier commit built elsewhere).
        const cli = process.env['BENCH_SIDECAR_CLI'] ?? join(appDir, 'dist', 'cli.js');
        return { command: process.execPath, args: [...node, cli, ...common] };
      };
      const explicitPort = await freePort();
      const explicit = sidecarArgs(['--mode', 'explicit', '--listen', `127.0.0.1:${explicitPort}`]);
      const httpProxy = start(explicit.command, explicit.args);
      await waitForPort(explicitPort, httpProxy);
      const transparent = sidecarArgs([
        '--mode',
        'transparent',
        '--outbound-port',
        String(httpsPort),
        '--inbound-port',
        String(await freePort()),
      ]);
      const httpsProxy = start(transparent.command, transparent.args);
      await waitForPort(httpsPort, httpsProxy);
      const meshCa = readFileSync(join(dir, 'mesh-ca', 'ca.crt'), 'utf8');
      const status = await verifiedGet(httpsPort, meshCa);
      if (status !== 200) throw new Error(`sidecar HTTPS check answered ${status}`);
      return {
        http: {
          name: 'sidecar (explicit proxy)',
          host: '127.0.0.1',
          port: explicitPort,
          path: absolute,
          headers: { host: httpAuthority },
          tls: false,
          pids: () => [httpProxy.pid as number],
        },
        https: {
          name: 'sidecar (transparent, intercept)',
          host: '127.0.0.1',
          port: httpsPort,
          path: PATH,
          headers: { host: UPSTREAM_NAME },
          tls: true,
          pids: () => [httpsProxy.pid as number],
        },
        stop: async () => {
          await Promise.all([stop(httpProxy), stop(httpsProxy)]);
        },
      };
    },
    nginx: async () => {
      const httpPort = await freePort();
      const tlsPort = await freePort();
      const prefix = join(dir, 'nginx');
      mkdirSync(join(prefix, 'logs'), { recursive: true });
      writeFileSync(join(prefix, 'nginx.conf'), nginxConf(dir, httpPort, tlsPort, upstreamPorts));
      const nginx = start('nginx', ['-c', join(prefix, 'nginx.conf'), '-p', prefix, '-g', 'daemon off;']);
      await waitForPort(httpPort, nginx);
      await waitForPort(tlsPort, nginx);
      const status = await verifiedGet(tlsPort, nginxCa.certPem);
      if (status !== 200) throw new Error(`nginx HTTPS check answered ${status}`);
      return {
        http: {
          name: 'nginx (1 worker, forward)',
          host: '127.0.0.1',
          port: httpPort,
          path: absolute,
          headers: { host: httpAuthority },
          tls: false,
          pids: () => [nginx.pid as number],
        },
        https: {
          name: 'nginx (1 worker, TLS re-originate)',
          host: '127.0.0.1',
          port: tlsPort,
          path: PATH,
          headers: { host: UPSTREAM_NAME },
          tls: true,
          pids: () => [nginx.pid as number],
        },
        stop: () => stop(nginx),
      };
    },
    mitmproxy: async () => {
      const confdir = join(dir, 'mitmproxy');
      mkdirSync(confdir, { recursive: true });
      const common = ['--listen-host', '127.0.0.1', '--set', `confdir=${confdir}`, '-q'];
      const trust = ['--set', `ssl_verify_upstream_trusted_ca=${upstreamCaFile}`];
      const httpPort = await freePort();
      const forward = start('mitmdump', [...common, ...trust, '--listen-port', String(httpPort)]);
      await waitForPort(httpPort, forward, 30_000);
      const tlsPort = await freePort();
      const reverse = start('mitmdump', [
        ...common,
        ...trust,
        '--mode',
        `reverse:https://${UPSTREAM_NAME}:${upstreamPorts.https}`,
        '--set',
        'keep_host_header=true',
        '--listen-port',
        String(tlsPort),
      ]);
      await waitForPort(tlsPort, reverse, 30_000);
      const status = await verifiedGet(tlsPort, readFileSync(join(confdir, 'mitmproxy-ca-cert.pem'), 'utf8'));
      if (status !== 200) throw new Error(`mitmproxy HTTPS check answered ${status}`);
      return {
        http: {
          name: 'mitmproxy 8 (mitmdump forward)',
          host: '127.0.0.1',
          port: httpPort,
          path: absolute,
          headers: { host: httpAuthority },
          tls: false,
          pids: () => [forward.pid as number],
        },
        https: {
          name: 'mitmproxy 8 (mitmdump reverse)',
          host: '127.0.0.1',
          port: tlsPort,
          path: PATH,
          headers: { host: UPSTREAM_NAME },
          tls: true,
          pids: () => [reverse.pid as number],
        },
        stop: async () => {
          await Promise.all([stop(forward), stop(reverse)]);
        },
      };
    },
  };

  for (const name of ONLY) {
    const make = kinds[name];
    if (make === undefined) throw new Error(`BENCH_ONLY: unknown ${name}`);
    const tool = name === 'nginx' ? ['nginx', '-v'] : name === 'mitmproxy' ? ['mitmdump', '--version'] : null;
    if (tool !== null && spawnSync(tool[0] as string, tool.slice(1)).status !== 0) {
      console.log(`${name}: not installed, skipped (apt-get install -y ${name})`);
      continue;
    }
    const kind = await make();
    // The direct connection is paced in rounds interleaved with each proxy's (its own rows are alone).
    const reference = name === 'direct' ? undefined : await kinds['direct']?.();
    try {
      rows.push(await measureMax('HTTP max', kind.http));
      rows.push(await measurePaced(`HTTP ${RATE} req/s`, kind.http, reference?.http, RATE));
      rows.push(await measureMax('HTTPS max', kind.https));
      rows.push(await measurePaced(`HTTPS ${RATE} req/s`, kind.https, reference?.https, RATE));
    } finally {
      await kind.stop();
    }
  }
  report(rows);
} finally {
  await Promise.all(children.map((child) => stop(child)));
  rmSync(dir, { recursive: true, force: true });
}

function nginxConf(
  base: string,
  httpPort: number,
  tlsPort: number,
  upstreamPorts: { http: number; https: number },
): string {
  // One worker: the sidecar is one Node process (one event loop). Upstream keep-alive pools, access log off,
  // TLS session reuse: nginx at its best. The forward proxy serves absolute-form requests for the one
  // upstream through a pooled upstream block (nginx has no pooled dynamic forward proxy).
  return `worker_processes 1;
pid ${base}/nginx/nginx.pid;
error_log ${base}/nginx/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${base}/nginx/body;
  proxy_temp_path ${base}/nginx/proxy;
  fastcgi_temp_path ${base}/nginx/fastcgi;
  uwsgi_temp_path ${base}/nginx/uwsgi;
  scgi_temp_path ${base}/nginx/scgi;
  keepalive_requests 1000000;
  upstream plain { server ${UPSTREAM_ADDRESS}:${upstreamPorts.http}; keepalive 64; }
  upstream secure { server ${UPSTREAM_ADDRESS}:${upstreamPorts.https}; keepalive 64; }
  server {
    listen 127.0.0.1:${httpPort};
    location / {
      proxy_pass http://plain;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
    }
  }
  server {
    listen 127.0.0.1:${tlsPort} ssl;
    ssl_certificate ${base}/nginx.pem;
    ssl_certificate_key ${base}/nginx.key;
    location / {
      proxy_pass https://secure;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${base}/upstream-ca.pem;
      proxy_ssl_name ${UPSTREAM_NAME};
      proxy_ssl_server_name on;
      proxy_ssl_session_reuse on;
    }
  }
}
`;
}

function report(all: readonly Row[]): void {
  const find = (scenario: string, prefix: string) =>
    all.find((r) => r.scenario === scenario && r.target.startsWith(prefix));
  console.log(
    '\n| scenario | proxy | req/s | p50 ms | p99 ms (range of rounds) | added p50 / p99 ms | errors | proxy CPU (cores) | CPU per 1k req/s | RSS MB (peak) |',
  );
  console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const r of all) {
    const direct = find(r.scenario, 'direct');
    const added =
      r.directP99 !== undefined && r.directP50 !== undefined
        ? `${(r.p50 - r.directP50).toFixed(3)} / ${(r.p99 - r.directP99).toFixed(3)}`
        : direct === undefined || r.target === 'direct'
          ? '—'
          : `${(r.p50 - direct.p50).toFixed(3)} / ${(r.p99 - direct.p99).toFixed(3)}`;
    const perK = r.rps > 0 && r.target !== 'direct' ? (r.cpuCores / (r.rps / 1000)).toFixed(3) : '—';
    const mem = r.target === 'direct' ? '—' : `${r.rssMb.toFixed(1)} (${r.peakRssMb.toFixed(1)})`;
    const cpu = r.target === 'direct' ? '—' : r.cpuCores.toFixed(2);
    console.log(
      `| ${r.scenario} | ${r.target} | ${r.rps.toFixed(0)} | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)}${r.p99Range === undefined ? '' : ` (${r.p99Range[0].toFixed(3)}–${r.p99Range[1].toFixed(3)})`} | ${added} | ${r.errors} | ${cpu} | ${perK} | ${mem} |`,
    );
  }
  const ratio = (scenario: string, a: string, b: string) => {
    const x = find(scenario, a);
    const y = find(scenario, b);
    return x === undefined || y === undefined || y.rps === 0 ? undefined : x.rps / y.rps;
  };
  const verdict = (label: string, value: number | undefined, ok: (v: number) => boolean, unit = '') =>
    console.log(
      `${label}: ${value === undefined ? 'not measured' : `${value.toFixed(unit === 'ms' ? 3 : 2)}${unit} ${ok(value) ? 'PASS' : 'FAIL'}`}`,
    );
  console.log('\nTargets (issue 6):');
  verdict('HTTP throughput sidecar / nginx >= 0.6', ratio('HTTP max', 'sidecar', 'nginx'), (v) => v >= 0.6);
  verdict(
    'HTTPS interception sidecar / nginx >= 0.6',
    ratio('HTTPS max', 'sidecar', 'nginx'),
    (v) => v >= 0.6,
  );
  verdict(
    'HTTPS interception sidecar / mitmproxy >= 30',
    ratio('HTTPS max', 'sidecar', 'mitmproxy'),
    (v) => v >= 30,
  );
  for (const proto of ['HTTP', 'HTTPS']) {
    const scenario = `${proto} ${RATE} req/s`;
    const ours = find(scenario, 'sidecar');
    const direct = find(scenario, 'direct');
    const reference = ours?.directP99 ?? direct?.p99;
    verdict(
      `${scenario}: sidecar p99 added latency < 1 ms (vs interleaved direct rounds)`,
      ours === undefined || reference === undefined ? undefined : ours.p99 - reference,
      (v) => v < 1,
      ' ms',
    );
  }
  const sidecarRows = all.filter((r) => r.target.startsWith('sidecar'));
  verdict(
    'sidecar peak RSS < 80 MB',
    sidecarRows.length === 0 ? undefined : Math.max(...sidecarRows.map((r) => r.peakRssMb)),
    (v) => v < 80,
    ' MB',
  );
}
