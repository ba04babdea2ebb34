// Resident memory of the engine as deployed (compiled dist/, plain node, no tsx): idle after start-up, and
// after keep-alive HTTP and HTTPS load (peak VmHWM too). Build first (npx nx run @httpmesh/mitm-core:build).
// Run: node --import tsx bench/proxy-rss.ts   [RSS_REQUESTS=20000] [RSS_DIST=/abs/path/to/other/dist/index.js]
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { median, rssMb, startServerChild, writeBenchCertificates } from './bench-fixtures.js';

const REQUESTS = Number(process.env['RSS_REQUESTS'] ?? 20_000);
const here = fileURLToPath(new URL('.', import.meta.url));

function peakMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? 0 : Number(match[1]) / 1024;
}

async function startEngine(
  dir: string,
  mode: string,
  upstreamPort: number,
): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(
    process.execPath,
    [join(here, 'proxy-rss-server.mjs'), dir, mode, String(upstreamPort)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  let out = '';
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    out += chunk.toString();
    if (out.includes('\n')) break;
  }
  return { child, port: (JSON.parse(out) as { port: number }).port };
}

export async function benchProxyRss(): Promise<void> {
  if (!existsSync(join(here, '..', 'dist', 'index.js'))) {
    console.log('dist/ not built: RSS bench skipped (npx nx run @httpmesh/mitm-core:build)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mitm-rss-bench-'));
  const children: ChildProcess[] = [];
  const rows = new Map<string, { idle: number[]; loaded: number[]; peak: number[] }>();
  try {
    await writeBenchCertificates(dir);
    const httpsUpstream = await startServerChild(['upstream', dir]);
    const httpUpstream = await startServerChild(['upstream-http', dir]);
    children.push(httpsUpstream.child, httpUpstream.child);
    for (let round = 0; round < 3; round++) {
      for (const scenario of ['HTTP', 'HTTPS'] as const) {
        const https = scenario === 'HTTPS';
        const engine = await startEngine(dir, https ? 'transparent' : 'explicit', httpsUpstream.port);
        try {
          const pid = engine.child.pid as number;
          const row = rows.get(scenario) ?? { idle: [], loaded: [], peak: [] };
          row.idle.push(rssMb(pid));
          await autocannon({
            url: `${https ? 'https' : 'http'}://127.0.0.1:${engine.port}`,
            ...(https ? { servername: 'localhost' } : {}),
            connections: 50,
            amount: REQUESTS,
            requests: [
              {
                method: 'GET',
                path: https ? '/bench' : `http://localhost:${httpUpstream.port}/bench`,
                headers: { host: 'localhost' },
              },
            ],
          } as autocannon.Options);
          row.loaded.push(rssMb(pid));
          row.peak.push(peakMb(pid));
          rows.set(scenario, row);
        } finally {
          engine.child.kill('SIGTERM');
        }
      }
    }
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `\nEngine RSS (dist, plain node; ${REQUESTS} keep-alive requests over 50 connections; median of 3 fresh processes)`,
  );
  console.log('| scenario | idle MB | after load MB | peak MB |');
  console.log('| --- | ---: | ---: | ---: |');
  for (const [scenario, row] of rows)
    console.log(
      `| ${scenario} | ${median(row.idle).toFixed(1)} | ${median(row.loaded).toFixed(1)} | ${median(row.peak).toFixed(1)} |`,
    );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchProxyRss();
