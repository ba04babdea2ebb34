// Added latency at a moderate fixed rate (issue 3/6 target: p99 added < 1 ms at 1,000 req/s): direct to the
// upstream vs through the engine vs through nginx, HTTP and HTTPS, same load generator, interleaved rounds.
// Paced open-loop client (undici Pool in this process, the same for every target); latency = send to body end.
// Run: node --import tsx bench/proxy-latency.ts   [LAT_RATE=1000] [LAT_SECONDS=5] [LAT_ROUNDS=3]
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';
import { hasNginx, median, startNginx, startServerChild, writeBenchCertificates } from './bench-fixtures.js';

const RATE = Number(process.env['LAT_RATE'] ?? 1_000);
const SECONDS = Number(process.env['LAT_SECONDS'] ?? 5);
const ROUNDS = Number(process.env['LAT_ROUNDS'] ?? 3);

type Scenario = 'HTTP' | 'HTTPS';

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

/**
 * Open-loop paced load: request i is sent at start + i / RATE (a 1 ms timer sends whatever is due), over a
 * keep-alive pool, whatever the answers do. autocannon's `overallRate` is not usable for this: each connection
 * sends back to back until its per-second quota is used, then idles until the next second, so "1,000 req/s"
 * there is a full-speed burst every second and its latencies are those of a saturated proxy.
 */
async function measure(
  target: { scenario: Scenario; port: number; path: string; ca: string | undefined },
  seconds: number,
): Promise<{ p50: number; p99: number; served: number }> {
  const https = target.scenario === 'HTTPS';
  const pool = new Pool(`${https ? 'https' : 'http'}://127.0.0.1:${target.port}`, {
    connections: 16,
    ...(https ? { connect: { ca: target.ca, servername: 'localhost' } } : {}),
  });
  const latencies: number[] = [];
  let failures = 0;
  let sent = 0;
  let done = 0;
  const total = Math.round(RATE * seconds);
  const start = performance.now();
  await new Promise<void>((resolve) => {
    const send = (): void => {
      sent++;
      const at = performance.now();
      pool
        .request({ method: 'GET', path: target.path, headers: { host: 'localhost' } })
        .then(async (response) => {
          await response.body.dump();
          if (response.statusCode === 200) latencies.push(performance.now() - at);
          else failures++;
        })
        .catch(() => {
          failures++;
        })
        .finally(() => {
          if (++done === total) resolve();
        });
    };
    const timer = setInterval(() => {
      const due = Math.min(total, Math.floor(((performance.now() - start) / 1000) * RATE) + 1);
      while (sent < due) send();
      if (sent >= total) clearInterval(timer);
    }, 1);
  });
  const elapsed = (performance.now() - start) / 1000;
  await pool.close();
  if (failures > 0) throw new Error(`${target.scenario}: ${failures} failures`);
  latencies.sort((a, b) => a - b);
  return {
    p50: percentile(latencies, 0.5),
    p99: percentile(latencies, 0.99),
    served: latencies.length / elapsed,
  };
}

export async function benchProxyLatency(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mitm-latency-bench-'));
  const children: ChildProcess[] = [];
  const samples = new Map<string, { p50: number; p99: number; served: number }[]>();
  try {
    await writeBenchCertificates(dir);
    const httpsUpstream = await startServerChild(['upstream', dir]);
    const httpUpstream = await startServerChild(['upstream-http', dir]);
    const explicit = await startServerChild(['proxy-explicit', dir, '0', 'none']);
    const transparent = await startServerChild(['proxy', dir, String(httpsUpstream.port), 'none']);
    children.push(httpsUpstream.child, httpUpstream.child, explicit.child, transparent.child);
    const absolute = `http://localhost:${httpUpstream.port}/bench`;
    const upstreamCa = readFileSync(join(dir, 'upstream-ca.pem'), 'utf8');
    // The engine's leaves and nginx's come from the proxy CA.
    const proxyCa = readFileSync(join(dir, 'proxy-ca.pem'), 'utf8');
    const targets: {
      name: string;
      scenario: Scenario;
      port: number;
      path: string;
      ca: string | undefined;
    }[] = [
      { name: 'direct', scenario: 'HTTP', port: httpUpstream.port, path: '/bench', ca: undefined },
      { name: 'engine', scenario: 'HTTP', port: explicit.port, path: absolute, ca: undefined },
      { name: 'direct', scenario: 'HTTPS', port: httpsUpstream.port, path: '/bench', ca: upstreamCa },
      { name: 'engine', scenario: 'HTTPS', port: transparent.port, path: '/bench', ca: proxyCa },
    ];
    if (hasNginx()) {
      const nginx = await startNginx(dir, { http: httpUpstream.port, https: httpsUpstream.port });
      children.push(nginx.child);
      targets.push({ name: 'nginx', scenario: 'HTTP', port: nginx.httpPort, path: absolute, ca: undefined });
      targets.push({ name: 'nginx', scenario: 'HTTPS', port: nginx.httpsPort, path: '/bench', ca: proxyCa });
    }
    for (const target of targets) await measure(target, 1); // warm-up
    for (let round = 0; round < ROUNDS; round++) {
      for (const target of targets) {
        const key = `${target.name} ${target.scenario}`;
        const list = samples.get(key) ?? [];
        list.push(await measure(target, SECONDS));
        samples.set(key, list);
      }
    }
  } finally {
    for (const child of children) if (child.exitCode === null) child.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
  console.log(
    `\nLatency at ${RATE} req/s (paced open loop, keep-alive pool of up to 16, ${ROUNDS} interleaved ${SECONDS} s rounds; medians of the rounds' percentiles, ms)`,
  );
  console.log('| proxy | scenario | served req/s | p50 | p99 | added p50 / p99 vs direct |');
  console.log('| --- | --- | ---: | ---: | ---: | ---: |');
  for (const [key, list] of samples) {
    const [name, scenario] = key.split(' ');
    const p50 = median(list.map((s) => s.p50));
    const p99 = median(list.map((s) => s.p99));
    const direct = samples.get(`direct ${scenario}`);
    const added =
      name === 'direct' || direct === undefined
        ? '-'
        : `${(p50 - median(direct.map((s) => s.p50))).toFixed(3)} / ${(p99 - median(direct.map((s) => s.p99))).toFixed(3)}`;
    console.log(
      `| ${name} | ${scenario} | ${median(list.map((s) => s.served)).toFixed(0)} | ${p50.toFixed(3)} | ${p99.toFixed(3)} | ${added} |`,
    );
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) await benchProxyLatency();
