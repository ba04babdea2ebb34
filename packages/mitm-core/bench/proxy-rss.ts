// Resident memory of the engine as deployed (compiled dist/, plain node, no tsx): idle after start-up, and
// after keep-alive HTTP and HTTPS load (peak VmHWM too). Build first (npx nx run @httpmesh/mitm-core:build).
// Run: node --import tsx bench/proxy-rss.ts   [RSS_REQUESTS=20000] [RSS_ROUNDS=3]
//   A/B: RSS_DISTS='before=/abs/a/dist/index.js,after=/abs/b/dist/index.js' runs each build in fresh processes,
//   interleaved round by round (default: this package's dist only). RSS_DIST still selects a single build.
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import { median, rssMb, startServerChild, writeBenchCertificates } from './bench-fixtures.js';

const REQUESTS = Number(process.env['RSS_REQUESTS'] ?? 20_000);
const ROUNDS = Number(process.env['RSS_ROUNDS'] ?? 3);

/** [label, absolute path of a dist/index.js or undefined for this package's]. */
function builds(): Array<[string, string | undefined]> {
  const list = process.env['RSS_DISTS'];
  if (list === undefined || list === '') return [['dist', process.env['RSS_DIST']]];
  return list.split(',').map((item) => {
    const [label, path] = item.split('=');
    if (label === undefined || path === undefined)
      throw new Error(`RSS_DISTS entry ${item} is not label=path`);
    return [label, path];
  });
}

interface EngineStart {
  port: number;
  bare: number;
  imported: number;
  caLoaded: number;
}
const here = fileURLToPath(new URL('.', import.meta.url));

function peakMb(pid: number): number {
  const match = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match === null ? 0 : Number(match[1]) / 1024;
}

async function startEngine(
  dir: string,
  mode: string,
  upstreamPort: number,
  dist: string | undefined,
): Promise<{ child: ChildProcess; start: EngineStart }> {
  const env = { ...process.env };
  if (dist === undefined) delete env['RSS_DIST'];
  else env['RSS_DIST'] = dist;
  const child = spawn(
    process.execPath,
    [join(here, 'proxy-rss-server.mjs'), dir, mode, String(upstreamPort)],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
      env,
    },
  );
  let out = '';
  for await (const chunk of child.stdout as AsyncIterable<Buffer>) {
    out += chunk.toString();
    if (out.includes('\n')) break;
  }
  return { child, start: JSON.parse(out) as EngineStart };
}

export async function benchProxyRss(): Promise<void> {
  if (!existsSync(join(here, '..', 'dist', 'index.js'))) {
    console.log('dist/ not built: RSS bench skipped (npx nx run @httpmesh/mitm-core:build)');
    return;
  }
  const dir = mkdtempSync(join(tmpdir(), 'mitm-rss-bench-'));
  const children: ChildProcess[] = [];
  const rows = new Map<
    string,
    { imported: number[]; caLoaded: number[]; idle: number[]; loaded: number[]; peak: number[] }
  >();
  try {
    await writeBenchCertificates(dir);
    const httpsUpstream = await startServerChild(['upstream', dir]);
    const httpUpstream = await startServerChild(['upstream-http', dir]);
    children.push(httpsUpstream.child, httpUpstream.child);
    for (let round = 0; round < ROUNDS; round++) {
      for (const scenario of ['HTTP', 'HTTPS'] as const) {
        // Alternate which build goes first, so drift on the shared machine does not favour one.
        const order = round % 2 === 0 ? builds() : builds().reverse();
        for (const [label, dist] of order) {
          const https = scenario === 'HTTPS';
          const engine = await startEngine(dir, https ? 'transparent' : 'explicit', httpsUpstream.port, dist);
          try {
            const pid = engine.child.pid as number;
            const key = `${label} ${scenario}`;
            const row = rows.get(key) ?? { imported: [], caLoaded: [], idle: [], loaded: [], peak: [] };
            row.imported.push(engine.start.imported - engine.start.bare);
            row.caLoaded.push(engine.start.caLoaded);
            row.idle.push(rssMb(pid));
            await autocannon({
              url: `${https ? 'https' : 'http'}://127.0.0.1:${engine.start.port}`,
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
            rows.set(key, row);
          } finally {
            engine.child.kill('SIGTERM');
          }
        }
      }
    }
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `\nEngine RSS (dist, plain node; ${REQUESTS} keep-alive requests over 50 connections; median [min-max] of ${ROUNDS} fresh processes, builds interleaved)`,
  );
  console.log(
    '| build, scenario | import adds MB | after CA load + 1 leaf MB | idle MB | after load MB | peak MB |',
  );
  console.log('| --- | ---: | ---: | ---: | ---: | ---: |');
  const cell = (values: number[]): string =>
    `${median(values).toFixed(1)} [${Math.min(...values).toFixed(1)}-${Math.max(...values).toFixed(1)}]`;
  for (const [key, row] of [...rows].sort(([a], [b]) => a.localeCompare(b)))
    console.log(
      `| ${key} | ${cell(row.imported)} | ${cell(row.caLoaded)} | ${cell(row.idle)} | ${cell(row.loaded)} | ${cell(row.peak)} |`,
    );
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchProxyRss();
