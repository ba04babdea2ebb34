#!/usr/bin/env node
import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import type { RuleSyncLogger } from '@httpmesh/rule-sync';
import { loadOrCreateAdminToken } from './admin-token.js';
import { resolveServeConfig, USAGE } from './config.js';
import { ControlPlane } from './control-plane.js';
import { ConfigError, ControlPlaneError } from './errors.js';
import { ControlPlanePki } from './pki.js';
import { EtcdStore } from './store/etcd-store.js';
import { SqliteStore } from './store/sqlite-store.js';
import type { Store } from './store/types.js';

const logger: RuleSyncLogger = {
  info: (m) => process.stderr.write(`info ${m}\n`),
  warn: (m) => process.stderr.write(`warn ${m}\n`),
  error: (m) => process.stderr.write(`error ${m}\n`),
};

async function serve(argv: string[]): Promise<void> {
  const config = resolveServeConfig(argv, process.env);
  // Stop signals are handled before anything starts: a SIGTERM while the store opens or the listeners bind
  // must stop the process cleanly (exit 0), not kill it with the signal's default action. It takes effect
  // once start-up settles, so what start-up opened is closed, not cut off half-way.
  let stopSignal: NodeJS.Signals | undefined;
  let shutdown: (() => void) | undefined;
  const requestStop = (signal: NodeJS.Signals): void => {
    if (stopSignal !== undefined) return;
    stopSignal = signal;
    process.stderr.write(
      `info ${signal}: shutting down${shutdown === undefined ? ' once start-up settles' : ''}\n`,
    );
    shutdown?.();
  };
  process.on('SIGTERM', requestStop);
  process.on('SIGINT', requestStop);
  process.stderr.write(
    `info starting: ${config.store} store, grpc ${config.grpc}, http ${config.http} (pid ${process.pid})\n`,
  );
  const store: Store =
    config.store === 'etcd'
      ? await EtcdStore.open({ endpoints: config.etcdEndpoints, prefix: config.etcdPrefix })
      : SqliteStore.open(join(resolve(config.dataDir), 'rules.db'));
  const pki = config.caDir === undefined ? undefined : await ControlPlanePki.open(resolve(config.caDir));
  // Without --admin-token the token lives in the data directory (0600), so it survives restarts.
  const stored =
    config.adminToken === undefined ? loadOrCreateAdminToken(resolve(config.dataDir)) : undefined;
  const adminToken = config.adminToken ?? stored?.token;
  const cp = await ControlPlane.create({
    store,
    grpc: config.grpc,
    http: config.http,
    protectReads: config.protectReads,
    logger,
    ...(adminToken === undefined ? {} : { adminToken }),
    ...(pki === undefined ? {} : { pki }),
    ...(config.alertWebhook === undefined ? {} : { alertWebhook: { url: config.alertWebhook } }),
    ...(config.dashboardDir === undefined ? {} : { dashboardDir: resolve(config.dashboardDir) }),
  });
  let addresses: Awaited<ReturnType<ControlPlane['start']>>;
  try {
    addresses = await cp.start();
  } catch (err) {
    await cp.close().catch(() => undefined);
    throw err;
  }
  if (stored?.created === true) {
    // Shown once, when generated; later starts only say where it is kept.
    process.stderr.write(`admin token (generated, kept in ${stored.path}): ${stored.token}\n`);
  } else if (stored !== undefined) {
    process.stderr.write(`info admin token: read from ${stored.path}\n`);
  }
  const close = (): void => {
    cp.close().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  if (stopSignal !== undefined) {
    // Asked to stop while starting: never announce a service that is about to go away.
    process.stderr.write(`info start-up done; stopping as ${stopSignal} asked\n`);
    close();
    return;
  }
  process.stdout.write(
    `${JSON.stringify({ msg: 'control plane listening', http: addresses.httpUrl, grpc: addresses.grpcAddress, mtls: pki !== undefined, store: store.backend })}\n`,
  );
  shutdown = close;
}

async function issueCert(argv: string[]): Promise<void> {
  let values: Record<string, string | undefined>;
  try {
    values = parseArgs({
      args: argv,
      strict: true,
      options: {
        'ca-dir': { type: 'string' },
        'node-id': { type: 'string' },
        out: { type: 'string' },
        'intercept-domains': { type: 'string' },
      },
    }).values as Record<string, string | undefined>;
  } catch (err) {
    throw new ConfigError((err as Error).message);
  }
  const caDir = values['ca-dir'] ?? process.env['HTTPMESH_CA_DIR'];
  const nodeId = values['node-id'];
  const out = values['out'];
  if (caDir === undefined || nodeId === undefined || out === undefined)
    throw new ConfigError('issue-cert needs --ca-dir, --node-id and --out');
  const pki = await ControlPlanePki.open(resolve(caDir));
  const bundle = await pki.issueSidecarBundle(nodeId);
  mkdirSync(out, { recursive: true, mode: 0o700 });
  writeFileSync(join(out, 'sidecar.crt'), bundle.certPem, { mode: 0o644 });
  writeFileSync(join(out, 'sidecar.key'), bundle.keyPem, { mode: 0o600 });
  writeFileSync(join(out, 'ca.crt'), bundle.caPem, { mode: 0o644 });
  const domains = values['intercept-domains'];
  if (domains !== undefined) {
    const intermediate = await pki.issueInterceptionIntermediate(
      nodeId,
      domains
        .split(',')
        .map((d) => d.trim())
        .filter((d) => d !== ''),
    );
    writeFileSync(join(out, 'intercept-ca.crt'), intermediate.chainPem, { mode: 0o644 });
    writeFileSync(join(out, 'intercept-ca.key'), intermediate.keyPem, { mode: 0o600 });
  }
  process.stdout.write(
    `${JSON.stringify({ msg: 'sidecar certificate issued', nodeId, out: resolve(out), notAfter: bundle.notAfter })}\n`,
  );
}

async function main(): Promise<void> {
  const [command, ...rest] = process.argv.slice(2);
  if (
    command === undefined ||
    command === '-h' ||
    command === '--help' ||
    rest.includes('--help') ||
    rest.includes('-h')
  ) {
    process.stdout.write(USAGE);
    process.exitCode = command === undefined ? 2 : 0;
    return;
  }
  if (command === 'serve') return serve(rest);
  if (command === 'issue-cert') return issueCert(rest);
  throw new ConfigError(`unknown command "${command}"`);
}

main().catch((err: unknown) => {
  if (err instanceof ControlPlaneError) {
    process.stderr.write(`httpmesh-control-plane: ${err.code}: ${err.message}\n`);
    if (err instanceof ConfigError) process.stderr.write(USAGE);
  } else {
    process.stderr.write(`httpmesh-control-plane: ${(err as Error).stack ?? String(err)}\n`);
  }
  process.exit(1);
});
