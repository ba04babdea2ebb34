// Shared set-up for the proxy benches that run the engine and nginx as separate processes: certificates in a
// temp dir, child servers (bench/proxy-server.ts), nginx with one worker, CPU time from /proc.
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CertificateAuthority } from '../src/ca/index.js';

const here = fileURLToPath(new URL('.', import.meta.url));

export const CLOCK_TICKS_PER_SECOND = 100; // USER_HZ on Linux

/** Writes the proxy CA, the upstream CA + leaf and a leaf for nginx into `dir`. */
export async function writeBenchCertificates(dir: string): Promise<void> {
  const proxyCa = await CertificateAuthority.create({ commonName: 'httpmesh bench proxy CA' });
  const upstreamCa = await CertificateAuthority.create({ commonName: 'httpmesh bench upstream CA' });
  const upstreamLeaf = await upstreamCa.issueLeaf(['localhost', '127.0.0.1']);
  const nginxLeaf = await proxyCa.issueLeaf(['localhost']);
  const proxyPem = await proxyCa.toPem();
  const files: Record<string, string> = {
    'proxy-ca.pem': proxyPem.certPem,
    'proxy-ca.key': proxyPem.keyPem,
    'upstream-ca.pem': upstreamCa.certPem,
    'upstream.pem': upstreamLeaf.chainPem,
    'upstream.key': upstreamLeaf.keyPem,
    'nginx-leaf.pem': nginxLeaf.chainPem,
    'nginx-leaf.key': nginxLeaf.keyPem,
  };
  for (const [name, content] of Object.entries(files))
    writeFileSync(join(dir, name), content, { mode: 0o600 });
}

/**
 * Starts `bench/proxy-server.ts` (or the one under `benchDir`, for A/B runs against another checkout) and
 * resolves once it printed its port.
 */
export async function startServerChild(
  args: readonly string[],
  benchDir = here,
  nodeArgs: readonly string[] = [],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [...nodeArgs, '--import', 'tsx', join(benchDir, 'proxy-server.ts'), ...args],
    { stdio: ['ignore', 'pipe', 'inherit'], env },
  );
  let out = '';
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    out += chunk.toString();
    if (out.includes('\n')) break;
  }
  if (!out.includes('\n')) throw new Error(`${args[0]} exited before reporting its port`);
  return { child, port: (JSON.parse(out) as { port: number }).port };
}

export async function freePort(): Promise<number> {
  const [port] = await freePorts(1);
  return port as number;
}

/** Distinct free ports (nginx cannot bind port 0): all held at once, then released. */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  for (let i = 0; i < count; i++) {
    const server = net.createServer();
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    servers.push(server);
  }
  const ports = servers.map((server) => (server.address() as net.AddressInfo).port);
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  return ports;
}

export async function waitForPort(port: number, child: ChildProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`child exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const socket = net.connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`port ${port} never opened`);
}

export function hasNginx(): boolean {
  return spawnSync('nginx', ['-v']).status === 0;
}

/**
 * nginx, one worker (the engine is one event loop), access log off, keep-alive upstream pools: an HTTP
 * forward-proxy server (absolute-form requests for the one upstream) and a TLS server that terminates and
 * re-originates verified TLS with session reuse.
 */
export async function startNginx(
  dir: string,
  upstreamPorts: { http: number; https: number },
): Promise<{ child: ChildProcess; httpPort: number; httpsPort: number }> {
  const [httpPort, httpsPort] = (await freePorts(2)) as [number, number];
  for (const sub of ['body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'])
    mkdirSync(join(dir, sub), { recursive: true });
  const conf = `${process.getuid?.() === 0 ? 'user root;\n' : ''}worker_processes 1;
daemon off;
pid ${dir}/nginx.pid;
error_log ${dir}/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000000;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream plain { server 127.0.0.1:${upstreamPorts.http}; keepalive 128; }
  upstream secure { server 127.0.0.1:${upstreamPorts.https}; keepalive 128; }
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
    listen 127.0.0.1:${httpsPort} ssl;
    ssl_certificate ${dir}/nginx-leaf.pem;
    ssl_certificate_key ${dir}/nginx-leaf.key;
    location / {
      proxy_pass https://secure;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_ssl_server_name on;
      proxy_ssl_name localhost;
      proxy_ssl_verify on;
      proxy_ssl_trusted_certificate ${dir}/upstream-ca.pem;
      proxy_ssl_session_reuse on;
    }
  }
}
`;
  writeFileSync(join(dir, 'nginx.conf'), conf);
  const child = spawn('nginx', ['-c', join(dir, 'nginx.conf'), '-p', dir], { stdio: 'inherit' });
  await waitForPort(httpPort, child);
  await waitForPort(httpsPort, child);
  return { child, httpPort, httpsPort };
}

export function childPids(pid: number): number[] {
  try {
    const list = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return list === '' ? [] : list.split(' ').map(Number);
  } catch {
    return [];
  }
}

/** utime and stime of a process and its descendants, in clock ticks (Linux /proc). */
export function cpuSplit(pid: number): { user: number; system: number } {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const split = { user: Number(fields[11]), system: Number(fields[12]) };
    for (const child of childPids(pid)) {
      const more = cpuSplit(child);
      split.user += more.user;
      split.system += more.system;
    }
    return split;
  } catch {
    return { user: 0, system: 0 };
  }
}

/** utime + stime of a process and its descendants, in clock ticks. */
export function cpuTicks(pid: number): number {
  const split = cpuSplit(pid);
  return split.user + split.system;
}

/** Resident set size (VmRSS) of one process, in MB. */
export function rssMb(pid: number): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const match = /VmRSS:\s+(\d+) kB/.exec(status);
    return match === null ? 0 : Number(match[1]) / 1024;
  } catch {
    return 0;
  }
}

export function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}
