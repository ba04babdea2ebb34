import { randomBytes } from 'node:crypto';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { WindowedAggregator } from '@httpmesh/metrics';
import { createRuleSyncServer, METRICS_SNAPSHOT_CONTENT_TYPE } from '@httpmesh/rule-sync';
import type { RuleSyncLogger, RuleSyncServer, RuleSyncServerTls } from '@httpmesh/rule-sync';
import { AlertEngine } from './alerts.js';
import type { WebhookOptions } from './alerts.js';
import { createApiServer } from './api.js';
import { RuleDistributor } from './distributor.js';
import type { ControlPlanePki } from './pki.js';
import type { Store } from './store/types.js';

export interface ControlPlaneOptions {
  store: Store;
  /** Rule-sync listen address `host:port` (port 0 picks one). Default `127.0.0.1:15010`. */
  grpc?: string;
  /** API listen address `host:port`. Default `127.0.0.1:8080`. */
  http?: string;
  /** Generated (and reported through `generatedAdminToken`) when absent. */
  adminToken?: string;
  protectReads?: boolean;
  /** With a PKI, sidecars must present a client certificate signed by its CA (mTLS); without, plaintext on loopback only. */
  pki?: ControlPlanePki;
  /** Names the rule-sync server certificate is issued for. Default the grpc host plus localhost/127.0.0.1. */
  serverNames?: readonly string[];
  alertWebhook?: WebhookOptions;
  /** Built dashboard served at `/` (see ApiOptions.dashboardDir). */
  dashboardDir?: string;
  alertIntervalMs?: number;
  metricsSlotMs?: number;
  /** Full store resync period (closes gaps of a lost etcd watch). Default 30 000 ms; 0 disables. */
  resyncIntervalMs?: number;
  /** Rule-sync burst coalescing. Default quiet 25 ms, at most 250 ms after the first edit. */
  ruleSyncDebounce?: { quietMs?: number; maxDelayMs?: number };
  logger?: RuleSyncLogger;
}

export interface ControlPlaneAddresses {
  grpcPort: number;
  httpPort: number;
  httpUrl: string;
  grpcAddress: string;
}

function splitAddress(address: string, fallbackPort: number): { host: string; port: number } {
  const idx = address.lastIndexOf(':');
  if (idx === -1) return { host: address, port: fallbackPort };
  const host = address.slice(0, idx).replace(/^\[|\]$/g, '');
  return { host, port: Number(address.slice(idx + 1)) };
}

const quietLogger: RuleSyncLogger = { info: () => undefined, warn: () => undefined, error: () => undefined };

/** The control plane: store -> rule-sync -> sidecars, sidecar metrics -> windows/alerts, and the HTTP API. */
export class ControlPlane {
  readonly store: Store;
  readonly ruleSync: RuleSyncServer;
  readonly metrics: WindowedAggregator;
  readonly alerts: AlertEngine;
  readonly distributor: RuleDistributor;
  readonly adminToken: string;
  /** True when the admin token was generated here (the CLI prints it once). */
  readonly generatedAdminToken: boolean;
  snapshotErrors = 0;
  readonly pki: ControlPlanePki | undefined;
  private readonly options: ControlPlaneOptions;
  private readonly logger: RuleSyncLogger;
  private http: Server | undefined;
  private addresses: ControlPlaneAddresses | undefined;

  /** Builds a control plane; with a PKI it first issues the rule-sync server certificate. Call `start()` next. */
  static async create(options: ControlPlaneOptions): Promise<ControlPlane> {
    if (options.pki === undefined) return new ControlPlane(options, undefined);
    const grpc = splitAddress(options.grpc ?? '127.0.0.1:15010', 15010);
    const wildcard = grpc.host === '0.0.0.0' || grpc.host === '::';
    const names = options.serverNames ?? [
      ...new Set([...(wildcard ? [] : [grpc.host]), '127.0.0.1', 'localhost']),
    ];
    return new ControlPlane(options, await options.pki.serverCertificate(names));
  }

  private constructor(options: ControlPlaneOptions, tls: RuleSyncServerTls | undefined) {
    this.options = options;
    this.pki = options.pki;
    this.store = options.store;
    this.logger = options.logger ?? quietLogger;
    this.generatedAdminToken = options.adminToken === undefined;
    this.adminToken = options.adminToken ?? randomBytes(24).toString('base64url');
    this.metrics = new WindowedAggregator(
      options.metricsSlotMs === undefined ? {} : { slotMs: options.metricsSlotMs },
    );
    this.alerts = new AlertEngine({
      metrics: this.metrics,
      ...(options.alertWebhook === undefined ? {} : { webhook: options.alertWebhook }),
      ...(options.alertIntervalMs === undefined ? {} : { intervalMs: options.alertIntervalMs }),
      onWebhookFailure: (n, err) =>
        this.logger.warn(`alert webhook for ${n.alert} (${n.status}) failed: ${err.message}`),
    });
    this.ruleSync = createRuleSyncServer({
      ...(tls === undefined ? { insecure: true } : { tls }),
      logger: this.logger,
      // One sidecar group per service: rules target services (spec.services).
      groupKeyOf: (node) => node.service,
      // API edits are rare and deliberate: a short quiet period still coalesces bursts (rollbacks, scripts)
      // without adding noticeable propagation delay.
      debounce: options.ruleSyncDebounce ?? { quietMs: 25, maxDelayMs: 250 },
      onMetricSnapshot: (node, snapshot) => {
        if (snapshot.contentType !== METRICS_SNAPSHOT_CONTENT_TYPE) {
          this.snapshotErrors++;
          return;
        }
        try {
          this.metrics.ingest(JSON.parse(Buffer.from(snapshot.payload).toString('utf8')));
        } catch (err) {
          // A bad snapshot from one sidecar is dropped whole; it must not disturb the stream or the views.
          this.snapshotErrors++;
          if (this.snapshotErrors <= 10 || this.snapshotErrors % 1000 === 0) {
            this.logger.warn(`dropped metric snapshot from ${node.id}: ${(err as Error).message}`);
          }
        }
      },
    });
    this.distributor = new RuleDistributor(this.store, this.ruleSync, this.alerts, this.logger);
  }

  async start(): Promise<ControlPlaneAddresses> {
    const grpc = splitAddress(this.options.grpc ?? '127.0.0.1:15010', 15010);
    const http = splitAddress(this.options.http ?? '127.0.0.1:8080', 8080);
    await this.distributor.start(this.options.resyncIntervalMs ?? 30_000);
    const grpcHost = grpc.host.includes(':') ? `[${grpc.host}]` : grpc.host;
    const grpcPort = await this.ruleSync.listen(`${grpcHost}:${grpc.port}`);
    this.alerts.start();
    const server = createApiServer({
      store: this.store,
      ruleSync: this.ruleSync,
      metrics: this.metrics,
      alerts: this.alerts,
      pki: this.options.pki,
      adminToken: this.adminToken,
      protectReads: this.options.protectReads ?? false,
      ...(this.options.dashboardDir === undefined ? {} : { dashboardDir: this.options.dashboardDir }),
    });
    this.http = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(http.port, http.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    const httpPort = (server.address() as AddressInfo).port;
    const urlHost = http.host.includes(':') ? `[${http.host}]` : http.host;
    this.addresses = {
      grpcPort,
      httpPort,
      httpUrl: `http://${urlHost}:${httpPort}`,
      grpcAddress: `${grpcHost}:${grpcPort}`,
    };
    return this.addresses;
  }

  /** Stops accepting, ends sidecar streams (they keep their last-good rules and reconnect), closes the store. */
  async close(): Promise<void> {
    this.distributor.stop();
    const http = this.http;
    if (http !== undefined) {
      await new Promise<void>((resolve) => {
        http.close(() => resolve());
        http.closeIdleConnections();
      });
    }
    await this.alerts.close();
    await this.ruleSync.close(1_000);
    await this.store.close();
  }
}
