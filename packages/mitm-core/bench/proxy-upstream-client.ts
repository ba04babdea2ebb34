// Upstream client choice for the proxy: undici Agent.dispatch vs node:https with a keep-alive Agent,
// same local HTTPS upstream, same concurrency, request count bounded.
// Run: node --import tsx bench/proxy-upstream-client.ts   (also called from bench/index.ts)
import { once } from 'node:events';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Agent, type Dispatcher } from 'undici';
import { CertificateAuthority } from '../src/ca/index.js';

const REQUESTS = Number(process.env['UPSTREAM_BENCH_REQUESTS'] ?? 20_000);
const CONCURRENCY = 50;

function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

async function drive(name: string, one: () => Promise<void>): Promise<void> {
  const latencies: number[] = [];
  let left = REQUESTS;
  const cpuBefore = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (left-- > 0) {
        const t = performance.now();
        await one();
        latencies.push(performance.now() - t);
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  const cpu = process.cpuUsage(cpuBefore);
  latencies.sort((a, b) => a - b);
  // CPU of the whole process (client and the same server for both clients) per request: steadier than req/s.
  console.log(
    `| ${name} | ${Math.round(REQUESTS / seconds)} | ${percentile(latencies, 0.5).toFixed(2)} | ${percentile(latencies, 0.99).toFixed(2)} | ${((cpu.user + cpu.system) / REQUESTS).toFixed(1)} |`,
  );
}

export async function benchUpstreamClient(): Promise<void> {
  const ca = await CertificateAuthority.create({ commonName: 'upstream client bench CA' });
  const leaf = await ca.issueLeaf(['localhost']);
  const body = Buffer.alloc(100, 0x61);
  const server = https
    .createServer({ key: leaf.keyPem, cert: leaf.chainPem, keepAliveTimeout: 30_000 }, (_req, res) => {
      res.writeHead(200, { 'content-length': body.length });
      res.end(body);
    })
    .listen(0, '127.0.0.1');
  await once(server, 'listening');
  const port = (server.address() as AddressInfo).port;

  const undiciAgent = new Agent({ connect: { ca: ca.certPem, servername: 'localhost' }, connections: 128 });
  const undiciOne = (): Promise<void> =>
    new Promise((resolve, reject) => {
      const handler: Dispatcher.DispatchHandler = {
        onRequestStart() {},
        onResponseData() {},
        onResponseEnd: () => resolve(),
        onResponseError: (_c, error) => reject(error),
      };
      undiciAgent.dispatch(
        { origin: `https://127.0.0.1:${port}`, path: '/', method: 'GET', headers: { host: 'localhost' } },
        handler,
      );
    });
  const nodeAgent = new https.Agent({
    keepAlive: true,
    maxSockets: 128,
    ca: ca.certPem,
    servername: 'localhost',
  });
  const nodeOne = (): Promise<void> =>
    new Promise((resolve, reject) => {
      https
        .get(
          { host: '127.0.0.1', port, path: '/', agent: nodeAgent, headers: { host: 'localhost' } },
          (res) => {
            res.on('data', () => {});
            res.on('end', resolve);
          },
        )
        .on('error', reject);
    });

  console.log(`\nUpstream client, ${REQUESTS} requests, ${CONCURRENCY} concurrent, HTTPS keep-alive`);
  console.log('| client | req/s | p50 ms | p99 ms | process CPU µs/req (client + server) |');
  console.log('|---|---:|---:|---:|---:|');
  for (let round = 0; round < 2; round++) {
    await drive('undici Agent.dispatch', undiciOne);
    await drive('node:https + keep-alive Agent', nodeOne);
  }
  await undiciAgent.close();
  nodeAgent.destroy();
  server.close();
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchUpstreamClient();
}
