// CPU profile of the proxy under a fixed keep-alive load: top self-time functions (idle excluded).
// Run: node --import tsx bench/proxy-profile.ts [HTTP|HTTPS] [proxy|floor]   PROFILE_REQUESTS=30000 TOP=40
// Figures are sampled time per exchange (samples x 100 µs interval / requests), start-up included. Under gVisor
// the profiler's signal is delivered at system-call boundaries, so samples pile up on `writev` / `write*String`:
// the user/system split of bench/proxy-cpu.ts is the better guide to where CPU goes.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import autocannon from 'autocannon';
import { startServerChild, writeBenchCertificates } from './bench-fixtures.js';

const scenario = process.argv[2] === 'HTTP' ? 'HTTP' : 'HTTPS';
const REQUESTS = Number(process.env['PROFILE_REQUESTS'] ?? 30_000);
const kind = process.argv[3] === 'floor' ? 'floor' : 'proxy';
const INTERVAL_US = 100;

interface CpuProfile {
  nodes: {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
    hitCount?: number;
  }[];
}

const dir = mkdtempSync(join(tmpdir(), 'mitm-profile-'));
try {
  await writeBenchCertificates(dir);
  const upstream = await startServerChild([scenario === 'HTTPS' ? 'upstream' : 'upstream-http', dir]);
  const role = scenario === 'HTTPS' ? kind : `${kind}-explicit`;
  const proxy = await startServerChild([role, dir, String(upstream.port), 'none'], undefined, [
    '--cpu-prof',
    `--cpu-prof-interval=${INTERVAL_US}`,
    '--cpu-prof-dir',
    join(dir, 'prof'),
  ]);
  const https = scenario === 'HTTPS';
  await autocannon({
    url: `${https ? 'https' : 'http'}://127.0.0.1:${proxy.port}`,
    ...(https ? { servername: 'localhost' } : {}),
    connections: 20,
    amount: REQUESTS,
    requests: [
      {
        method: 'GET',
        path: https ? '/bench' : `http://localhost:${upstream.port}/bench`,
        headers: { host: 'localhost' },
      },
    ],
  } as autocannon.Options);
  const exited = new Promise((resolve) => proxy.child.once('exit', resolve));
  proxy.child.kill('SIGTERM');
  await exited;
  upstream.child.kill('SIGTERM');
  const file = readdirSync(join(dir, 'prof')).find((name) => name.endsWith('.cpuprofile')) as string;
  const profile = JSON.parse(readFileSync(join(dir, 'prof', file), 'utf8')) as CpuProfile;
  const byName = new Map<string, number>();
  let total = 0;
  for (const node of profile.nodes) {
    const hits = node.hitCount ?? 0;
    if (node.callFrame.functionName === '(idle)') continue;
    total += hits;
    const url = node.callFrame.url.split('/').slice(-2).join('/');
    const key = `${node.callFrame.functionName || '(anonymous)'} ${url}:${node.callFrame.lineNumber}`;
    byName.set(key, (byName.get(key) ?? 0) + hits);
  }
  // Self time grouped by where the code lives: the engine, undici, node internals (by module), native.
  const byArea = new Map<string, number>();
  for (const node of profile.nodes) {
    if (node.callFrame.functionName === '(idle)') continue;
    const url = node.callFrame.url;
    const area = url.includes('/undici/')
      ? 'undici'
      : url.includes('mitm-core/src') || url.includes('mitm-core/dist')
        ? 'engine'
        : url.startsWith('node:')
          ? url
          : url === ''
            ? node.callFrame.functionName
            : url.includes('tsx') || url.includes('esbuild')
              ? 'tsx (start-up)'
              : 'other JS';
    byArea.set(area, (byArea.get(area) ?? 0) + (node.hitCount ?? 0));
  }
  console.log(
    `${scenario} ${kind}: ${((total * INTERVAL_US) / REQUESTS).toFixed(1)} µs sampled per exchange; self time by area`,
  );
  for (const [name, hits] of [...byArea.entries()].sort((a, b) => b[1] - a[1]).slice(0, 25))
    console.log(
      `${((hits / total) * 100).toFixed(1).padStart(5)} %  ${((hits * INTERVAL_US) / REQUESTS).toFixed(2).padStart(6)} µs  ${name}`,
    );
  console.log(`${scenario}: top self time, ${REQUESTS} requests (idle excluded)`);
  for (const [name, hits] of [...byName.entries()]
    .sort((a, b) => b[1] - a[1])
    .slice(0, Number(process.env['TOP'] ?? 40)))
    console.log(
      `${((hits / total) * 100).toFixed(1).padStart(5)} %  ${((hits * INTERVAL_US) / REQUESTS).toFixed(2).padStart(6)} µs  ${name}`,
    );
} finally {
  rmSync(dir, { recursive: true, force: true });
}
