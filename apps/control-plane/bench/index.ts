/**
 * Control-plane scale bench: N simulated sidecars (real rule-sync clients, in this process) connected to a
 * control plane running as its own process (the built CLI, so its CPU and memory are measured alone).
 * Each sidecar reports a metric snapshot every REPORT_MS (10 s in production; shortened here). Rule
 * changes go through the HTTP API; propagation = API call start -> the sidecar applied the new version.
 *
 *   npm run bench -w @httpmesh/control-plane           (SIDECARS=1000 REPORT_MS=1000 CHANGES=10)
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MeshMetrics } from '@httpmesh/metrics';
import { createRuleSyncClient, ResourceType } from '@httpmesh/rule-sync';
import type { AppliedUpdate, RuleSyncClient } from '@httpmesh/rule-sync';

const SIDECARS = Number(process.env['SIDECARS'] ?? 1000);
const REPORT_MS = Number(process.env['REPORT_MS'] ?? 1000);
const CHANGES = Number(process.env['CHANGES'] ?? 10);
const STEADY_MS = Number(process.env['STEADY_MS'] ?? 10_000);
const SERVICES = 20;
const TOKEN = 'bench-admin-token';
const silent = { info: () => undefined, warn: () => undefined, error: () => undefined };

function procStats(pid: number): { cpuTicks: number; rssMiB: number } {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const cpuTicks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  return { cpuTicks, rssMiB: Number(rss) / 1024 };
}

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)] ?? Number.NaN;
}

async function waitUntil(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function main(): Promise<void> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cp-bench-'));
  const cli = new URL('../dist/cli.js', import.meta.url).pathname;
  const child = spawn(
    process.execPath,
    [
      cli,
      'serve',
      '--grpc',
      '127.0.0.1:0',
      '--http',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--admin-token',
      TOKEN,
    ],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  );
  let out = '';
  child.stdout.on('data', (c: Buffer) => {
    out += c.toString();
  });
  child.stderr.resume();
  await waitUntil(() => out.includes('\n'), 20_000, 'control plane start');
  const { http, grpc } = JSON.parse(out.split('\n')[0] ?? '') as { http: string; grpc: string };
  const pid = child.pid ?? 0;
  const idle = procStats(pid);

  const api = async (method: string, path: string, body: unknown): Promise<Record<string, unknown>> => {
    const res = await fetch(`${http}${path}`, {
      method,
      headers: { authorization: `Bearer ${TOKEN}` },
      body: JSON.stringify(body),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
    return json;
  };
  await api('POST', '/api/rules/RouteSet', { name: 'bench', spec: { routes: [{ pattern: '/r0' }] } });

  // One realistic snapshot payload per service, re-sent by every sidecar of that service.
  const payloads: Uint8Array[] = [];
  for (let s = 0; s < SERVICES; s++) {
    const metrics = new MeshMetrics({
      service: `svc-${s}`,
      producer: 'bench',
      routeSets: [
        { host: 'api.example.com', routes: [{ pattern: '/orders/:id' }, { pattern: '/users/:id' }] },
      ],
    });
    for (let i = 0; i < 200; i++) {
      metrics.record({
        direction: 'inbound',
        method: 'GET',
        host: 'api.example.com',
        path: i % 2 ? `/orders/${i}` : `/users/${i}`,
        statusCode: i % 20 === 0 ? 500 : 200,
        durationMs: 5 + (i % 50),
      });
    }
    payloads.push(new TextEncoder().encode(JSON.stringify(metrics.snapshot())));
  }

  const clients: RuleSyncClient[] = [];
  const connectStart = Date.now();
  for (let i = 0; i < SIDECARS; i++) {
    const client = createRuleSyncClient({
      addresses: [grpc],
      node: { id: `sidecar-${i}`, service: `svc-${i % SERVICES}` },
      subscriptions: [ResourceType.RESOURCE_TYPE_ROUTE_SET],
      insecure: true,
      logger: silent,
      heartbeatIntervalMs: 10_000,
    });
    await client.start();
    clients.push(client);
  }
  await waitUntil(
    () => clients.every((c) => c.resources(ResourceType.RESOURCE_TYPE_ROUTE_SET).length === 1),
    120_000,
    'all sidecars synced',
  );
  const connectMs = Date.now() - connectStart;

  // Staggered reporting, like independent sidecars.
  const timers = clients.map((client, i) =>
    setTimeout(
      () => {
        const t = setInterval(() => client.sendMetricSnapshot(payloads[i % SERVICES]!), REPORT_MS);
        timers.push(t);
      },
      Math.floor((i / SIDECARS) * REPORT_MS),
    ),
  );

  const steadyStart = procStats(pid);
  const steadyT0 = Date.now();
  await new Promise((r) => setTimeout(r, STEADY_MS));
  const steadyEnd = procStats(pid);
  const steadySeconds = (Date.now() - steadyT0) / 1000;

  const latencies: number[] = [];
  let revision = 1;
  for (let change = 1; change <= CHANGES; change++) {
    const pending = new Set(clients);
    const started = performance.now();
    const done = new Promise<void>((resolve) => {
      for (const client of clients) {
        const onApplied = (update: AppliedUpdate): void => {
          const body = update.resources[0]?.body;
          if (body?.$case !== 'routeSet' || body.value.routes[0]?.pattern !== `/r${change}`) return;
          latencies.push(performance.now() - started);
          client.off('applied', onApplied);
          pending.delete(client);
          if (pending.size === 0) resolve();
        };
        client.on('applied', onApplied);
      }
    });
    const res = await api('PUT', '/api/rules/RouteSet/bench', {
      revision,
      spec: { routes: [{ pattern: `/r${change}` }] },
    });
    revision = (res['rule'] as { revision: number }).revision;
    await Promise.race([
      done,
      new Promise((_, reject) =>
        setTimeout(
          () => reject(new Error(`change ${change}: ${pending.size} sidecars missing after 30 s`)),
          30_000,
        ),
      ),
    ]);
  }
  const peak = procStats(pid);
  const metricsRows = (
    (await (await fetch(`${http}/api/metrics/patterns?window=1m`)).json()) as { rows: unknown[] }
  ).rows.length;

  for (const t of timers) clearTimeout(t);
  for (const t of timers) clearInterval(t);
  await Promise.all(clients.map((c) => c.close()));
  child.kill('SIGTERM');
  await new Promise((r) => child.once('exit', r));
  rmSync(dataDir, { recursive: true, force: true });

  latencies.sort((a, b) => a - b);
  const ticks = 100; // USER_HZ
  console.log(
    `sidecars: ${SIDECARS} (${SERVICES} services), report every ${REPORT_MS} ms, ${CHANGES} rule changes through the API`,
  );
  console.log(`connect + initial sync of all sidecars: ${connectMs} ms`);
  console.log(
    `propagation API call -> applied at sidecar (${latencies.length} samples): p50 ${percentile(latencies, 0.5).toFixed(1)} ms, p99 ${percentile(latencies, 0.99).toFixed(1)} ms, max ${latencies[latencies.length - 1]?.toFixed(1)} ms`,
  );
  console.log(
    `control plane CPU while holding them and ingesting ${Math.round((SIDECARS * 1000) / REPORT_MS)} snapshots/s: ${(((steadyEnd.cpuTicks - steadyStart.cpuTicks) / ticks / steadySeconds) * 100).toFixed(1)} % of one core`,
  );
  console.log(
    `control plane RSS: idle ${idle.rssMiB.toFixed(0)} MiB, with sidecars ${steadyEnd.rssMiB.toFixed(0)} MiB, after changes ${peak.rssMiB.toFixed(0)} MiB`,
  );
  console.log(`pattern rows in the 1 min view: ${metricsRows}`);
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});
