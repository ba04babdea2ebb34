/**
 * Latency a plugin adds per phase through a REAL sidecar process (explicit proxy on loopback), with a
 * headers-only TypeScript plugin on a Unix socket, and the throughput cost.
 *
 *   npm run bench:plugins -w @httpmesh/sidecar      (after npm run build)
 *
 * Variants: no plugin; plugin on request headers; plugin on request + response headers. Latency:
 * sequential keep-alive requests (p50/p99 of the client-side round trip; "added" = the p50 difference
 * to no plugin). Throughput: 20 concurrent keep-alive clients for a fixed time.
 */
import { Agent } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  type SidecarProcess,
  startSidecarProcess,
  startUpstream,
  tempDir,
  viaProxy,
} from '../test/plugins-harness.js';

const PLUGIN = fileURLToPath(new URL('./plugin-headers.ts', import.meta.url));
const SEQUENTIAL = Number(process.env['BENCH_REQUESTS'] ?? 3000);
const THROUGHPUT_MS = Number(process.env['BENCH_THROUGHPUT_MS'] ?? 3000);

function rules(phases: 'none' | 'request' | 'both'): string {
  if (phases === 'none') return 'routes: []\n';
  return [
    'plugins:',
    '  - name: bench-headers',
    `    command: ${JSON.stringify(process.execPath)}`,
    `    args: ${JSON.stringify(['--import', 'tsx', PLUGIN])}`,
    `    env: { BENCH_PHASES: ${phases} }`,
    '    order: 1',
    '    failureMode: closed',
    '',
  ].join('\n');
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] as number;
}

const upstream = await startUpstream();
const results: { variant: string; p50: number; p99: number; rps: number }[] = [];
for (const variant of ['none', 'request', 'both'] as const) {
  const tmp = tempDir('httpmesh-bench-plugins-');
  const sidecar: SidecarProcess = await startSidecarProcess({
    dir: tmp.dir,
    rules: rules(variant),
    args: ['--control-socket', join(tmp.dir, 'control.sock')],
  });
  const agent = new Agent({ keepAlive: true, maxSockets: 20 });
  const send = () => viaProxy(sidecar.proxyPort, upstream.port, '/bench', {}, agent);
  for (let i = 0; i < 300; i++) await send(); // warm-up (JIT, pools, plugin stream)
  const times: number[] = [];
  for (let i = 0; i < SEQUENTIAL; i++) {
    const t = performance.now();
    const reply = await send();
    times.push(performance.now() - t);
    if (reply.status !== 200) throw new Error(`status ${reply.status}`);
  }
  times.sort((a, b) => a - b);
  let done = 0;
  const until = performance.now() + THROUGHPUT_MS;
  await Promise.all(
    Array.from({ length: 20 }, async () => {
      while (performance.now() < until) {
        await send();
        done++;
      }
    }),
  );
  agent.destroy();
  results.push({
    variant,
    p50: percentile(times, 50),
    p99: percentile(times, 99),
    rps: done / (THROUGHPUT_MS / 1000),
  });
  await sidecar.stop();
  tmp.remove();
}
await upstream.close();

const base = results[0] as (typeof results)[number];
console.log(`sequential requests: ${SEQUENTIAL}, throughput window: ${THROUGHPUT_MS} ms, concurrency 20`);
console.log('variant                      p50 ms   p99 ms   added p50 ms   req/s    req/s vs none');
for (const r of results) {
  const name = { none: 'no plugin', request: 'request headers', both: 'request + response headers' }[
    r.variant as 'none'
  ];
  console.log(
    `${name.padEnd(28)} ${r.p50.toFixed(3).padStart(6)}   ${r.p99.toFixed(3).padStart(6)}   ${(r.p50 - base.p50).toFixed(3).padStart(12)}   ${r.rps.toFixed(0).padStart(6)}   ${(((r.rps - base.rps) / base.rps) * 100).toFixed(1).padStart(6)}%`,
  );
}
