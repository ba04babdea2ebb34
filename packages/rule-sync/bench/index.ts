// rule-sync benchmark: N concurrent sidecar clients on loopback; one rule change must reach (ACKed) all.
// Run: npm run bench -w @httpmesh/rule-sync   (env: BENCH_CLIENTS=1000 BENCH_WORKERS=2 BENCH_ROUNDS=5 BENCH_TLS=1)
import { type ChildProcess, fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { createBenchPki } from './pki.js';
import {
  createRuleSyncServer,
  InterceptRule_Action,
  type Resource,
  ResourceType,
  type RuleSyncLogger,
} from '../src/index.js';

const CLIENTS = Number(process.env.BENCH_CLIENTS ?? 1_000);
const WORKERS = Number(process.env.BENCH_WORKERS ?? 2);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const TLS = process.env.BENCH_TLS === '1';
const DEADLINE_MS = 120_000;
const GROUP = { service: 'bench', labels: { env: 'bench' } };
const INTERCEPT = ResourceType.RESOURCE_TYPE_INTERCEPT_RULE;

const now = (): number => performance.timeOrigin + performance.now();
const started = Date.now();
const gc = (globalThis as { gc?: () => void }).gc;

function rule(name: string, domain: string): Resource {
  return {
    name,
    version: '',
    body: {
      $case: 'interceptRule',
      value: { name, domain, action: InterceptRule_Action.ACTION_INTERCEPT, upstreamTlsVerify: undefined },
    },
  };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? Number.NaN;
}

function memory(): { heap: number; rss: number } {
  gc?.();
  gc?.();
  const m = process.memoryUsage();
  return { heap: m.heapUsed, rss: m.rss };
}

async function until(condition: () => boolean, what: string): Promise<void> {
  while (!condition()) {
    if (Date.now() - started > DEADLINE_MS) throw new Error(`bench deadline exceeded waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

const quiet: RuleSyncLogger = {
  info: () => undefined,
  warn: (m) => console.warn(m),
  error: (m) => console.error(m),
};

async function main(): Promise<void> {
  const pki = TLS ? await createBenchPki() : undefined;
  const server = createRuleSyncServer({
    ...(pki ? { tls: { ca: pki.ca, cert: pki.server.cert, key: pki.server.key } } : { insecure: true }),
    logger: quiet,
    debounce: { quietMs: 0, maxDelayMs: 0 },
  });
  const port = await server.listen('127.0.0.1:0');
  const address = `127.0.0.1:${port}`;
  // A realistic group: 50 intercept rules and 20 route sets.
  server.setResources(GROUP, [
    ...Array.from({ length: 50 }, (_, i) => rule(`rule-${i}`, `svc-${i}.partner.com`)),
    ...Array.from(
      { length: 20 },
      (_, i): Resource => ({
        name: `routes-${i}`,
        version: '',
        body: {
          $case: 'routeSet',
          value: {
            name: `routes-${i}`,
            host: `svc-${i}.partner.com`,
            routes: [
              { pattern: '/orders/:id', methods: ['GET'] },
              { pattern: '/orders', methods: ['POST'] },
            ],
          },
        },
      }),
    ),
  ]);
  server.flush();
  const before = memory();

  const acked = new Map<string, number>(); // `${node}@${version}` -> ack time at the server
  server.on('ack', (status, type, version) => {
    if (type === INTERCEPT) acked.set(`${status.node.id}@${version}`, now());
  });
  const applied = new Map<string, number>();
  const workers: ChildProcess[] = [];
  const per = Math.ceil(CLIENTS / WORKERS);
  let startedWorkers = 0;
  for (let w = 0; w < WORKERS; w++) {
    const child = fork(fileURLToPath(new URL('./clients.ts', import.meta.url)), [], {
      execArgv: ['--import', 'tsx'],
    });
    child.on('message', (raw: unknown) => {
      const m = raw as { kind: string; id?: string; version?: string; at?: number };
      if (m.kind === 'started') startedWorkers++;
      if (m.kind === 'applied') applied.set(`${m.id}@${m.version}`, m.at ?? 0);
    });
    const count = Math.min(per, CLIENTS - w * per);
    const offset = w * per;
    const tls = pki
      ? {
          ca: pki.ca,
          key: pki.clientKey,
          certs: await Promise.all(
            Array.from({ length: count }, (_, i) => pki.clientCert(`bench-${offset + i}`)),
          ),
        }
      : undefined;
    child.send({ kind: 'start', address, count, offset, ...(tls ? { tls } : {}) });
    workers.push(child);
  }
  const connectStart = now();
  const initial = server.resources(GROUP, INTERCEPT).systemVersion;
  const ackedCount = (version: string): number =>
    server
      .sidecars()
      .filter((s) => s.types.some((t) => t.type === 'InterceptRule' && t.ackedVersion === version)).length;
  await until(() => startedWorkers === WORKERS && ackedCount(initial) === CLIENTS, 'initial sync');
  const connectMs = now() - connectStart;
  const after = memory();

  const sidecarMs: number[] = [];
  const ackMs: number[] = [];
  const fanOutMs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    const t0 = now();
    server.upsertResources(GROUP, [rule('rule-0', `changed-${round}.partner.com`)]);
    server.flush();
    fanOutMs.push(now() - t0);
    const version = server.resources(GROUP, INTERCEPT).systemVersion;
    await until(
      () => [...Array(CLIENTS).keys()].every((i) => acked.has(`bench-${i}@${version}`)),
      `round ${round}`,
    );
    for (let i = 0; i < CLIENTS; i++) {
      ackMs.push((acked.get(`bench-${i}@${version}`) ?? Number.NaN) - t0);
      sidecarMs.push((applied.get(`bench-${i}@${version}`) ?? Number.NaN) - t0);
    }
  }
  sidecarMs.sort((a, b) => a - b);
  ackMs.sort((a, b) => a - b);
  const fmt = (n: number): string => n.toFixed(1);
  console.log(
    `rule-sync bench: ${CLIENTS} clients in ${WORKERS} worker processes, ${ROUNDS} rounds, loopback, ${TLS ? 'mTLS' : 'plaintext'}`,
  );
  console.log(`  initial connect + full sync of all clients: ${fmt(connectMs)} ms`);
  console.log(
    `  change applied at sidecar: p50 ${fmt(percentile(sidecarMs, 50))} ms  p99 ${fmt(percentile(sidecarMs, 99))} ms  max ${fmt(sidecarMs.at(-1) ?? Number.NaN)} ms`,
  );
  console.log(
    `  change ACKed at server:    p50 ${fmt(percentile(ackMs, 50))} ms  p99 ${fmt(percentile(ackMs, 99))} ms  max ${fmt(ackMs.at(-1) ?? Number.NaN)} ms`,
  );
  console.log(
    `  server fan-out (flush() writing all pushes, synchronous): ${fanOutMs.map(fmt).join(' / ')} ms`,
  );
  console.log(
    `  server memory per connected sidecar: heap ${fmt((after.heap - before.heap) / CLIENTS / 1024)} KiB, RSS ${fmt((after.rss - before.rss) / CLIENTS / 1024)} KiB${gc ? '' : ' (no --expose-gc: noisy)'}`,
  );
  const p99 = percentile(ackMs, 99);
  console.log(`  target p99 < 1000 ms: ${p99 < 1000 ? 'met' : 'NOT met'}`);
  for (const child of workers) child.send({ kind: 'stop' });
  await Promise.all(workers.map((child) => new Promise((resolve) => child.once('exit', resolve))));
  await server.close(1_000);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
