// Socket write system calls per intercepted HTTPS exchange (HTTP/1.1, keep-alive), counted with strace on the
// proxy process: each write is a TLS record encryption plus a syscall, and the sidecar's profile found ~44 % of
// CPU in socket writes. Needs `strace` (benchmark-only; skipped with a message otherwise).
// Run: node --import tsx bench/proxy-writes.ts   [REQUESTS=20000] [FILTERS=none|sync|async]
import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { writeBenchCertificates } from './bench-fixtures.js';

const REQUESTS = Number(process.env['REQUESTS'] ?? 20_000);
const FILTERS = process.env['FILTERS'] ?? 'none'; // none | sync | async (see proxy-server.ts)
/** PROFILE=1: run the proxy without strace under --cpu-prof and print the top self-time functions. */
const PROFILE = process.env['PROFILE'] === '1';

interface CpuProfile {
  nodes: { id: number; callFrame: { functionName: string; url: string }; hitCount?: number }[];
}

function topSelfTime(profileDir: string): string[] {
  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) return ['no profile written'];
  const profile = JSON.parse(readFileSync(join(profileDir, file), 'utf8')) as CpuProfile;
  const byName = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    total += hits;
    const url = node.callFrame.url.split('/').slice(-2).join('/');
    const key = `${node.callFrame.functionName || '(anonymous)'} ${url}`;
    byName.set(key, (byName.get(key) ?? 0) + hits);
  }
  return [...byName.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 15)
    .map(([name, hits]) => `${((hits / total) * 100).toFixed(1).padStart(5)} %  ${name}`);
}
const here = fileURLToPath(new URL('.', import.meta.url));

async function portOf(child: ChildProcess): Promise<number> {
  let out = '';
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    out += chunk.toString();
    if (out.includes('\n')) break;
  }
  return (JSON.parse(out) as { port: number }).port;
}

function childPids(pid: number): number[] {
  try {
    const list = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
    return list === '' ? [] : list.split(' ').map(Number);
  } catch {
    return [];
  }
}

export async function benchProxyWrites(): Promise<void> {
  if (spawnSync('strace', ['-V'], { stdio: 'ignore' }).status !== 0) {
    console.log('strace not installed: write-count bench skipped (apt-get install strace)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mitm-writes-bench-'));
  const children: ChildProcess[] = [];
  try {
    await writeBenchCertificates(dir);
    const server = join(here, 'proxy-server.ts');
    const upstream = spawn(process.execPath, ['--import', 'tsx', server, 'upstream', dir], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    children.push(upstream);
    const upstreamPort = await portOf(upstream);
    const trace = join(dir, 'strace.txt');
    const proxyArgs = ['--import', 'tsx', server, 'proxy', dir, String(upstreamPort), FILTERS];
    const traced = PROFILE
      ? spawn(process.execPath, ['--cpu-prof', '--cpu-prof-dir', join(dir, 'prof'), ...proxyArgs], {
          stdio: ['ignore', 'pipe', 'inherit'],
        })
      : spawn(
          'strace',
          [
            '-f',
            '-qq',
            '-c',
            '-o',
            trace,
            '-e',
            'trace=write,writev,sendmsg,sendto',
            process.execPath,
            ...proxyArgs,
          ],
          {
            stdio: ['ignore', 'pipe', 'inherit'],
          },
        );
    children.push(traced);
    const port = await portOf(traced);
    const result = await autocannon({
      url: `https://127.0.0.1:${port}/bench`,
      servername: 'localhost',
      headers: { host: 'localhost' },
      connections: 20,
      amount: REQUESTS,
    } as autocannon.Options);
    // Stop the proxy itself (strace writes its summary when the traced process exits).
    const exited = new Promise((resolve) => traced.once('exit', resolve));
    if (PROFILE) traced.kill('SIGTERM');
    else for (const pid of childPids(traced.pid as number)) process.kill(pid, 'SIGTERM');
    await exited;
    if (PROFILE) {
      console.log(
        `\nProxy CPU profile (filters: ${FILTERS}, ${result.requests.total} requests), top self time:`,
      );
      for (const line of topSelfTime(join(dir, 'prof'))) console.log(line);
      return;
    }
    let calls = 0;
    const rows: string[] = [];
    for (const line of readFileSync(trace, 'utf8').split('\n')) {
      const fields = line.trim().split(/\s+/);
      const name = fields.at(-1) ?? '';
      if (!['write', 'writev', 'sendmsg', 'sendto'].includes(name)) continue;
      const count = Number(fields[3]);
      if (!Number.isFinite(count)) continue;
      calls += count;
      rows.push(`${name}=${count}`);
    }
    const requests = result.requests.total;
    console.log(
      `\nProxy write syscalls (filters: ${FILTERS}, ${requests} HTTPS keep-alive requests, 20 connections): ` +
        `${(calls / requests).toFixed(2)} per exchange (${rows.join(', ')}); ${result.non2xx + result.errors} failures`,
    );
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchProxyWrites();
}
