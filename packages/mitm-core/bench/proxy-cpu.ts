// CPU time per exchange of the proxy process (utime + stime from /proc), HTTP (explicit, absolute-form) and
// HTTPS (transparent, TLS terminated and re-originated), in fresh processes, interleaved and repeated, with
// nginx (one worker) under the same load as the reference. CPU per exchange depends far less on what else the
// shared machine runs than req/s does. Also the proxy's RSS after the load.
// Run: node --import tsx bench/proxy-cpu.ts
//   CPU_REQUESTS=20000 CPU_CONNECTIONS=20 CPU_ROUNDS=3
//   CPU_VARIANTS=name=/path/to/bench,...  A/B: other checkouts' bench dirs (their proxy-server.ts is run);
//                                         `name=/path/to/bench#dist` runs that checkout's compiled dist/
//   CPU_FILTERS=sync,async                 also the engine with 3 sync filters / an async one (proxy-server.ts)
//   CPU_FLOOR=1                            also the `floor` proxy (node:http(s) server + undici, no engine)
//   CPU_FROM_DIST=1                        the engine row runs this package's dist/ (build it first)
//   CPU_ONLY=HTTP|HTTPS  CPU_NGINX=0
import { type ChildProcess, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import autocannon from 'autocannon';
import {
  CLOCK_TICKS_PER_SECOND,
  childPids,
  cpuSplit,
  hasNginx,
  median,
  rssMb,
  startNginx,
  startServerChild,
  writeBenchCertificates,
} from './bench-fixtures.js';

const REQUESTS = Number(process.env['CPU_REQUESTS'] ?? 20_000);
const CONNECTIONS = Number(process.env['CPU_CONNECTIONS'] ?? 20);
const ROUNDS = Number(process.env['CPU_ROUNDS'] ?? 3);
const WARM_UP = 3_000;
const here = fileURLToPath(new URL('.', import.meta.url));

type Scenario = 'HTTP' | 'HTTPS';

async function drive(
  scenario: Scenario,
  port: number,
  upstreamPort: number,
  amount: number,
): Promise<number> {
  const https = scenario === 'HTTPS';
  const result = await autocannon({
    url: `${https ? 'https' : 'http'}://127.0.0.1:${port}`,
    ...(https ? { servername: 'localhost' } : {}),
    connections: CONNECTIONS,
    amount,
    requests: [
      {
        method: 'GET',
        path: https ? '/bench' : `http://localhost:${upstreamPort}/bench`,
        headers: { host: 'localhost' },
      },
    ],
  } as autocannon.Options);
  const failures = result.errors + result.timeouts + result.non2xx;
  if (failures > 0) throw new Error(`${scenario}: ${failures} failures`);
  return result.requests.total;
}

interface Sample {
  micros: number;
  /** Share of the CPU time spent in the kernel (system time). */
  systemShare: number;
  rss: number;
}

function sample(
  pid: number,
  before: { user: number; system: number },
  requests: number,
  rss: number,
): Sample {
  const after = cpuSplit(pid);
  const user = after.user - before.user;
  const system = after.system - before.system;
  return {
    micros: (((user + system) / CLOCK_TICKS_PER_SECOND) * 1e6) / requests,
    systemShare: user + system === 0 ? 0 : system / (user + system),
    rss,
  };
}

export async function benchProxyCpu(): Promise<void> {
  const fromDist = process.env['CPU_FROM_DIST'] === '1';
  const variants: { name: string; benchDir: string; dist: boolean; filters?: string }[] = [
    { name: 'engine', benchDir: here, dist: fromDist },
  ];
  for (const mode of (process.env['CPU_FILTERS'] ?? '').split(',')) {
    if (mode === 'sync' || mode === 'async')
      variants.push({ name: `engine+${mode}`, benchDir: here, dist: fromDist, filters: mode });
  }
  if (process.env['CPU_FLOOR'] === '1') variants.push({ name: 'floor', benchDir: here, dist: false });
  for (const entry of (process.env['CPU_VARIANTS'] ?? '').split(',')) {
    const eq = entry.indexOf('=');
    if (eq <= 0) continue;
    const path = entry.slice(eq + 1);
    const dist = path.endsWith('#dist');
    variants.push({ name: entry.slice(0, eq), benchDir: dist ? path.slice(0, -5) : path, dist });
  }
  const only = process.env['CPU_ONLY'];
  const scenarios: Scenario[] = only === 'HTTP' || only === 'HTTPS' ? [only] : ['HTTP', 'HTTPS'];
  const dir = mkdtempSync(join(tmpdir(), 'mitm-cpu-bench-'));
  const children: ChildProcess[] = [];
  const samples = new Map<string, Sample[]>();
  const add = (key: string, sample: Sample): void => {
    const list = samples.get(key) ?? [];
    list.push(sample);
    samples.set(key, list);
  };
  try {
    await writeBenchCertificates(dir);
    const httpsUpstream = await startServerChild(['upstream', dir]);
    children.push(httpsUpstream.child);
    const httpUpstream = await startServerChild(['upstream-http', dir]);
    children.push(httpUpstream.child);
    const upstreamPortOf = (scenario: Scenario): number =>
      scenario === 'HTTPS' ? httpsUpstream.port : httpUpstream.port;
    let nginx: Awaited<ReturnType<typeof startNginx>> | undefined;
    if (process.env['CPU_NGINX'] !== '0' && hasNginx()) {
      nginx = await startNginx(dir, { http: httpUpstream.port, https: httpsUpstream.port });
      children.push(nginx.child);
      for (const scenario of scenarios)
        await drive(scenario, scenario === 'HTTPS' ? nginx.httpsPort : nginx.httpPort, 0, WARM_UP);
    }
    for (let round = 0; round < ROUNDS; round++) {
      // Rotate the order each round so no variant always runs right after nginx (or first).
      const order = variants.map(
        (_, i) => variants[(i + round) % variants.length] as (typeof variants)[number],
      );
      for (const scenario of scenarios) {
        for (const variant of order) {
          const kind = variant.name === 'floor' ? 'floor' : 'proxy';
          const role = scenario === 'HTTPS' ? kind : `${kind}-explicit`;
          const proxy = await startServerChild(
            [role, dir, String(httpsUpstream.port), variant.filters ?? 'none'],
            variant.benchDir,
            [],
            { ...process.env, BENCH_FROM_DIST: variant.dist ? '1' : '0' },
          );
          try {
            await drive(scenario, proxy.port, upstreamPortOf(scenario), WARM_UP);
            const pid = proxy.child.pid as number;
            const before = cpuSplit(pid);
            const requests = await drive(scenario, proxy.port, upstreamPortOf(scenario), REQUESTS);
            add(`${variant.name} ${scenario}`, sample(pid, before, requests, rssMb(pid)));
          } finally {
            proxy.child.kill('SIGTERM');
          }
        }
        if (process.env['CPU_UPSTREAM'] !== '0') {
          // The floor for any Node hop: the bench upstream (node:http(s) server, fixed response) loaded directly.
          const upstream = scenario === 'HTTPS' ? httpsUpstream : httpUpstream;
          const pid = upstream.child.pid as number;
          const before = cpuSplit(pid);
          const https = scenario === 'HTTPS';
          const result = await autocannon({
            url: `${https ? 'https' : 'http'}://127.0.0.1:${upstream.port}/bench`,
            ...(https ? { servername: 'localhost' } : {}),
            headers: { host: 'localhost' },
            connections: CONNECTIONS,
            amount: REQUESTS,
          } as autocannon.Options);
          add(`node-server-alone ${scenario}`, sample(pid, before, result.requests.total, rssMb(pid)));
        }
        if (nginx !== undefined) {
          const pid = nginx.child.pid as number;
          const worker = childPids(pid)[0] ?? pid;
          const before = cpuSplit(pid);
          const port = scenario === 'HTTPS' ? nginx.httpsPort : nginx.httpPort;
          const requests = await drive(scenario, port, 0, REQUESTS);
          add(`nginx ${scenario}`, sample(pid, before, requests, rssMb(worker)));
        }
      }
    }
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `\nProxy CPU per exchange (${REQUESTS} keep-alive requests, ${CONNECTIONS} connections, ${ROUNDS} interleaved ` +
      'rounds, fresh proxy process each; median [min-max])',
  );
  console.log('| proxy | scenario | CPU µs/exchange | of which system | RSS MB after load |');
  console.log('| --- | --- | ---: | ---: | ---: |');
  for (const [key, list] of samples) {
    const micros = list.map((s) => s.micros);
    const [name, scenario] = key.split(' ');
    console.log(
      `| ${name} | ${scenario} | ${median(micros).toFixed(1)} [${Math.min(...micros).toFixed(1)}-${Math.max(...micros).toFixed(1)}] | ${(median(list.map((s) => s.systemShare)) * 100).toFixed(0)} % | ${median(list.map((s) => s.rss)).toFixed(1)} |`,
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  if (spawnSync('nginx', ['-v']).status !== 0) console.log('nginx not installed: engine only');
  await benchProxyCpu();
}
