// HTTPS interception throughput: direct vs httpmesh (no filters / sync filters / async filter) vs nginx
// (terminate + re-originate TLS) vs mitmproxy (reverse mode), same upstream, same client, one run.
// Run: node --import tsx bench/proxy.ts   (also called from bench/index.ts)
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { freePort, startServerChild, waitForPort, writeBenchCertificates } from './bench-fixtures.js';

const DURATION_S = Number(process.env['BENCH_DURATION'] ?? 5);
const CONNECTIONS = Number(process.env['BENCH_CONNECTIONS'] ?? 50);
const ROUNDS = Number(process.env['BENCH_ROUNDS'] ?? 2);

export interface ProxyBenchRow {
  name: string;
  requestsPerSecond: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
  /** CPU time the proxy process tree spent per request (user + system), over all rounds. */
  proxyCpuMicrosPerRequest: number | undefined;
  /** Requests one fully used core would serve at that cost: throughput independent of machine load. */
  requestsPerCpuSecond: number | undefined;
  totalRequests: number;
}

const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** utime + stime of a process and its descendants, in clock ticks (Linux /proc). */
function cpuTicks(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    let ticks = Number(fields[11]) + Number(fields[12]);
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    if (children !== '') for (const child of children.split(' ')) ticks += cpuTicks(Number(child));
    return ticks;
  } catch {
    return 0;
  }
}

async function load(name: string, port: number, duration: number): Promise<ProxyBenchRow> {
  const result = await autocannon({
    url: `https://127.0.0.1:${port}/bench`,
    servername: 'localhost',
    headers: { host: 'localhost' },
    connections: CONNECTIONS,
    duration,
  } as autocannon.Options);
  return {
    name,
    requestsPerSecond: Math.round(result.requests.average),
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
    proxyCpuMicrosPerRequest: undefined,
    requestsPerCpuSecond: undefined,
    totalRequests: result.requests.total,
  };
}

function stop(child: ChildProcess | undefined): void {
  if (child !== undefined && child.exitCode === null) child.kill('SIGTERM');
}

export async function benchProxy(): Promise<ProxyBenchRow[]> {
  const dir = mkdtempSync(join(tmpdir(), 'mitm-proxy-bench-'));
  const children: ChildProcess[] = [];
  const rows: ProxyBenchRow[] = [];
  try {
    await writeBenchCertificates(dir);

    const upstream = await startServerChild(['upstream', dir]);
    children.push(upstream.child);
    const targets: { name: string; port: number; pid: number | undefined }[] = [
      { name: 'direct (client -> upstream)', port: upstream.port, pid: undefined },
    ];
    for (const [label, mode] of [
      ['httpmesh, no filters', 'none'],
      ['httpmesh, 3 sync filters', 'sync'],
      ['httpmesh, async filter', 'async'],
    ] as const) {
      const proxy = await startServerChild(['proxy', dir, String(upstream.port), mode]);
      children.push(proxy.child);
      targets.push({ name: label, port: proxy.port, pid: proxy.child.pid });
    }

    if (spawnSync('nginx', ['-v']).status === 0) {
      const port = await freePort();
      for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi']) mkdirSync(join(dir, sub));
      writeFileSync(join(dir, 'nginx.conf'), nginxConf(dir, port, upstream.port));
      const nginx = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'inherit' });
      children.push(nginx);
      await waitForPort(port, nginx);
      targets.push({ name: 'nginx 1 worker, TLS terminate + re-originate', port, pid: nginx.pid });
    } else {
      console.log('nginx not installed: skipped (apt-get install nginx)');
    }

    if (spawnSync('mitmdump', ['--version']).status === 0) {
      const port = await freePort();
      const confdir = join(dir, 'mitmproxy');
      mkdirSync(confdir);
      const mitm = spawn(
        'mitmdump',
        [
          '--mode',
          `reverse:https://127.0.0.1:${upstream.port}`,
          '--listen-host',
          '127.0.0.1',
          '--listen-port',
          String(port),
          '--set',
          `confdir=${confdir}`,
          '--set',
          `ssl_verify_upstream_trusted_ca=${dir}/upstream-ca.pem`,
          '--set',
          'keep_host_header=true',
          '-q',
        ],
        { stdio: 'inherit' },
      );
      children.push(mitm);
      await waitForPort(port, mitm);
      targets.push({ name: 'mitmproxy 8 (mitmdump reverse mode)', port, pid: mitm.pid });
    } else {
      console.log('mitmproxy not installed: skipped (apt-get install mitmproxy)');
    }

    // Warm every target (JIT, leaf cache, upstream pools), then alternate rounds and keep each target's
    // best round: the 2-core machine is shared, so interleaving spreads background noise evenly.
    for (const target of targets) await load('warm-up', target.port, 1);
    const best = new Map<string, ProxyBenchRow>();
    const cpu = new Map<string, { ticks: number; requests: number }>();
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        const ticksBefore = target.pid === undefined ? 0 : cpuTicks(target.pid);
        const row = await load(target.name, target.port, DURATION_S);
        const spent = cpu.get(target.name) ?? { ticks: 0, requests: 0 };
        if (target.pid !== undefined) spent.ticks += cpuTicks(target.pid) - ticksBefore;
        spent.requests += row.totalRequests;
        cpu.set(target.name, spent);
        const previous = best.get(target.name);
        if (previous === undefined || row.requestsPerSecond > previous.requestsPerSecond)
          best.set(target.name, row);
      }
    }
    for (const target of targets) {
      const row = best.get(target.name) as ProxyBenchRow;
      const spent = cpu.get(target.name);
      if (target.pid !== undefined && spent !== undefined && spent.ticks > 0 && spent.requests > 0) {
        const micros = ((spent.ticks / CLOCK_TICKS_PER_SECOND) * 1e6) / spent.requests;
        row.proxyCpuMicrosPerRequest = Math.round(micros);
        row.requestsPerCpuSecond = Math.round(1e6 / micros);
      }
      rows.push(row);
    }
  } finally {
    for (const child of children) stop(child);
    rmSync(dir, { recursive: true, force: true });
  }
  printRows(rows);
  return rows;
}

function nginxConf(dir: string, port: number, upstreamPort: number): string {
  return `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream bench_upstream { server 127.0.0.1:${upstreamPort}; keepalive 128; }
  server {
    listen 127.0.0.1:${port} ssl;
    ssl_certificate ${dir}/nginx-leaf.pem;
    ssl_certificate_key ${dir}/nginx-leaf.key;
    location / {
      proxy_pass https://bench_upstream;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_ssl_server_name on;
      proxy_ssl_name localhost;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${dir}/upstream-ca.pem;
      proxy_ssl_session_reuse on;
    }
  }
}
`;
}

function printRows(rows: readonly ProxyBenchRow[]): void {
  console.log(
    `\nHTTPS, ${CONNECTIONS} keep-alive connections, best of ${ROUNDS} interleaved ${DURATION_S} s rounds (autocannon)`,
  );
  console.log(
    '| setup | req/s | p50 ms | p99 ms | errors | non-2xx | proxy CPU µs/req | req per CPU-second |',
  );
  console.log('|---|---:|---:|---:|---:|---:|---:|---:|');
  for (const row of rows) {
    console.log(
      `| ${row.name} | ${row.requestsPerSecond} | ${row.p50} | ${row.p99} | ${row.errors} | ${row.non2xx} | ${row.proxyCpuMicrosPerRequest ?? '-'} | ${row.requestsPerCpuSecond ?? '-'} |`,
    );
  }
  const find = (prefix: string): ProxyBenchRow | undefined => rows.find((r) => r.name.startsWith(prefix));
  const ours = find('httpmesh, no filters');
  const nginx = find('nginx');
  const mitm = find('mitmproxy');
  if (ours !== undefined && mitm !== undefined && mitm.requestsPerSecond > 0) {
    const ratio = ours.requestsPerSecond / mitm.requestsPerSecond;
    console.log(
      `httpmesh / mitmproxy = ${ratio.toFixed(1)}x (target >= 30x): ${ratio >= 30 ? 'PASS' : 'FAIL'}`,
    );
  }
  if (ours !== undefined && nginx !== undefined && nginx.requestsPerSecond > 0) {
    const ratio = ours.requestsPerSecond / nginx.requestsPerSecond;
    console.log(`httpmesh / nginx = ${ratio.toFixed(2)} (target >= 0.6): ${ratio >= 0.6 ? 'PASS' : 'FAIL'}`);
  }
  // Same comparisons by CPU cost per request: robust to other load on a shared machine.
  const perCpu = (row: ProxyBenchRow | undefined): number | undefined => row?.requestsPerCpuSecond;
  const oursCpu = perCpu(ours);
  const mitmCpu = perCpu(mitm);
  const nginxCpu = perCpu(nginx);
  if (oursCpu !== undefined && mitmCpu !== undefined) {
    const ratio = oursCpu / mitmCpu;
    console.log(
      `per CPU-second: httpmesh / mitmproxy = ${ratio.toFixed(1)}x (target >= 30x): ${ratio >= 30 ? 'PASS' : 'FAIL'}`,
    );
  }
  if (oursCpu !== undefined && nginxCpu !== undefined) {
    const ratio = oursCpu / nginxCpu;
    console.log(
      `per CPU-second: httpmesh / nginx = ${ratio.toFixed(2)} (target >= 0.6): ${ratio >= 0.6 ? 'PASS' : 'FAIL'}`,
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchProxy();
}
