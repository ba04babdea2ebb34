/**
 * Stand-in for `httpmesh-control-plane serve`, used by the demo only while that command is not built:
 * the same ControlPlane class on the embedded SQLite store, plaintext rule-sync on loopback.
 * Configuration as JSON in HTTPMESH_DEMO_CONTROL_PLANE; prints `{"event":"ready",…}` on stdout.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { ControlPlane, SqliteStore } from '@httpmesh/control-plane';

interface FallbackControlPlaneConfig {
  http: string;
  grpc: string;
  dataDir: string;
  adminToken: string;
  metricsSlotMs: number;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env['HTTPMESH_DEMO_CONTROL_PLANE'] ?? '') as FallbackControlPlaneConfig;
  mkdirSync(config.dataDir, { recursive: true });
  const cp = await ControlPlane.create({
    store: SqliteStore.open(join(config.dataDir, 'rules.db')),
    http: config.http,
    grpc: config.grpc,
    adminToken: config.adminToken,
    metricsSlotMs: config.metricsSlotMs,
    ruleSyncDebounce: { quietMs: 20, maxDelayMs: 200 },
  });
  const addresses = await cp.start();
  process.stdout.write(`${JSON.stringify({ event: 'ready', ...addresses })}\n`);
  const stop = async () => {
    await cp.close();
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

main().catch((err: unknown) => {
  process.stderr.write(`control plane failed: ${(err as Error).message}\n`);
  process.exit(1);
});
