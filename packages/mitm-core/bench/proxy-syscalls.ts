// System calls per exchange, engine vs nginx, under the same fixed load: HTTP (explicit forward proxy,
// absolute-form requests) and HTTPS (client TLS terminated, verified TLS re-originated). After a warm-up,
// `strace -c -f` is attached to every thread of the proxy (nginx: master and worker) for a bounded number of
// keep-alive requests, then detached. Under gVisor every syscall (and the loopback TCP stack behind it) is
// expensive, so any call Node makes that nginx does not is a target. strace and nginx are benchmark-only tools
// (skipped with a message when missing).
// Run: node --import tsx bench/proxy-syscalls.ts   [SYSCALL_REQUESTS=5000] [SYSCALL_CONNECTIONS=20]
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import {
  childPids,
  hasNginx,
  startNginx,
  startServerChild,
  writeBenchCertificates,
} from './bench-fixtures.js';

const REQUESTS = Number(process.env['SYSCALL_REQUESTS'] ?? 5_000);
const CONNECTIONS = Number(process.env['SYSCALL_CONNECTIONS'] ?? 20);

export interface SyscallCount {
  calls: number;
  errors: number;
}

interface Target {
  name: string;
  scenario: 'HTTP' | 'HTTPS';
  port: number;
  /** Where absolute-form HTTP requests point (the HTTP upstream). */
  upstreamPort: number;
  /** Processes to trace (all their threads). */
  pids: number[];
}

async function drive(target: Target, amount: number): Promise<number> {
  const https = target.scenario === 'HTTPS';
  const result = await autocannon({
    url: `${https ? 'https' : 'http'}://127.0.0.1:${target.port}`,
    ...(https ? { servername: 'localhost' } : {}),
    connections: CONNECTIONS,
    amount,
    requests: [
      {
        method: 'GET',
        // A forward proxy gets absolute-form targets; the TLS targets see origin-form inside the tunnel.
        path: https ? '/bench' : `http://localhost:${target.upstreamPort}/bench`,
        headers: { host: 'localhost' },
      },
    ],
  } as autocannon.Options);
  const failures = result.errors + result.timeouts + result.non2xx;
  if (failures > 0) throw new Error(`${target.name} ${target.scenario}: ${failures} failures`);
  return result.requests.total;
}

/** Parses `strace -c` output into per-syscall counts. */
export function parseStraceSummary(text: string): Map<string, SyscallCount> {
  const counts = new Map<string, SyscallCount>();
  for (const line of text.split('\n')) {
    const fields = line.trim().split(/\s+/);
    // % time, seconds, usecs/call, calls, [errors], syscall
    if (fields.length < 5 || !/^\d/.test(fields[0] ?? '')) continue;
    const name = fields.at(-1) as string;
    if (name === 'total') continue;
    const calls = Number(fields[3]);
    const errors = fields.length >= 6 ? Number(fields[4]) : 0;
    if (Number.isFinite(calls)) counts.set(name, { calls, errors: Number.isFinite(errors) ? errors : 0 });
  }
  return counts;
}

async function traceWindow(
  target: Target,
  dir: string,
): Promise<{ counts: Map<string, SyscallCount>; requests: number }> {
  const output = join(dir, `strace-${target.name}-${target.scenario}.txt`);
  const args = ['-c', '-f', '-o', output];
  // With -f, `-p PID` attaches every thread of that process ("attached with N threads").
  for (const pid of target.pids) args.push('-p', String(pid));
  const strace: ChildProcess = spawn('strace', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  // Wait until strace reports every process attached (one line each on stderr).
  const expected = args.filter((arg) => arg === '-p').length;
  let attached = 0;
  await new Promise<void>((resolve, reject) => {
    const deadline = setTimeout(() => reject(new Error('strace did not attach within 10 s')), 10_000);
    strace.stderr?.on('data', (chunk: Buffer) => {
      attached += chunk.toString().split('attached').length - 1;
      if (attached >= expected) {
        clearTimeout(deadline);
        resolve();
      }
    });
    strace.once('exit', (code) => {
      clearTimeout(deadline);
      reject(new Error(`strace exited with ${code}`));
    });
  });
  const requests = await drive(target, REQUESTS);
  const exited = new Promise((resolve) => strace.once('exit', resolve));
  strace.kill('SIGINT'); // detaches and writes the summary
  await exited;
  return { counts: parseStraceSummary(readFileSync(output, 'utf8')), requests };
}

export async function benchProxySyscalls(): Promise<void> {
  if (spawnSync('strace', ['-V'], { stdio: 'ignore' }).status !== 0) {
    console.log('strace not installed: syscall bench skipped (apt-get install strace)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mitm-syscalls-bench-'));
  const children: ChildProcess[] = [];
  try {
    await writeBenchCertificates(dir);
    const httpsUpstream = await startServerChild(['upstream', dir]);
    children.push(httpsUpstream.child);
    const httpUpstream = await startServerChild(['upstream-http', dir]);
    children.push(httpUpstream.child);
    const transparent = await startServerChild(['proxy', dir, String(httpsUpstream.port), 'none']);
    children.push(transparent.child);
    const explicit = await startServerChild(['proxy-explicit', dir, '0', 'none']);
    children.push(explicit.child);
    const targets: Target[] = [
      {
        name: 'engine',
        scenario: 'HTTP',
        port: explicit.port,
        upstreamPort: httpUpstream.port,
        pids: [explicit.child.pid as number],
      },
      {
        name: 'engine',
        scenario: 'HTTPS',
        port: transparent.port,
        upstreamPort: httpsUpstream.port,
        pids: [transparent.child.pid as number],
      },
    ];
    if (hasNginx()) {
      const nginx = await startNginx(dir, { http: httpUpstream.port, https: httpsUpstream.port });
      children.push(nginx.child);
      const pids = [nginx.child.pid as number, ...childPids(nginx.child.pid as number)];
      const upstreamPort = httpUpstream.port;
      targets.push({ name: 'nginx', scenario: 'HTTP', port: nginx.httpPort, upstreamPort, pids });
      targets.push({ name: 'nginx', scenario: 'HTTPS', port: nginx.httpsPort, upstreamPort, pids });
    } else {
      console.log('nginx not installed: engine only (apt-get install nginx)');
    }
    const results = new Map<string, { counts: Map<string, SyscallCount>; requests: number }>();
    for (const target of targets) {
      await drive(target, 2_000); // warm-up: JIT, pools, TLS sessions
      results.set(`${target.name} ${target.scenario}`, await traceWindow(target, dir));
    }
    printTable(targets, results);
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

function printTable(
  targets: readonly Target[],
  results: Map<string, { counts: Map<string, SyscallCount>; requests: number }>,
): void {
  const columns = targets.map((t) => `${t.name} ${t.scenario}`);
  const names = new Set<string>();
  for (const result of results.values()) for (const name of result.counts.keys()) names.add(name);
  const total = (column: string): number => {
    const result = results.get(column);
    if (result === undefined) return 0;
    let sum = 0;
    for (const count of result.counts.values()) sum += count.calls;
    return sum / result.requests;
  };
  console.log(
    `\nSystem calls per exchange (${REQUESTS} keep-alive requests over ${CONNECTIONS} connections, strace -c -f; ` +
      'in brackets: calls that failed, e.g. EAGAIN)',
  );
  console.log(`| syscall | ${columns.join(' | ')} |`);
  console.log(`| --- | ${columns.map(() => '---:').join(' | ')} |`);
  const rows = [...names].map((name) => {
    const cells = columns.map((column) => {
      const result = results.get(column);
      const count = result?.counts.get(name);
      if (result === undefined || count === undefined) return { text: '-', value: 0 };
      const per = count.calls / result.requests;
      const errors = count.errors > 0 ? ` (${(count.errors / result.requests).toFixed(2)})` : '';
      return { text: `${per.toFixed(2)}${errors}`, value: per };
    });
    return { name, cells, weight: Math.max(...cells.map((c) => c.value)) };
  });
  rows.sort((a, b) => b.weight - a.weight);
  for (const row of rows) {
    if (row.weight < 0.005) continue;
    console.log(`| ${row.name} | ${row.cells.map((c) => c.text).join(' | ')} |`);
  }
  console.log(`| **total** | ${columns.map((c) => `**${total(c).toFixed(2)}**`).join(' | ')} |`);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchProxySyscalls();
}
