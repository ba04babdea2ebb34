/**
 * Stand-in for `httpmesh-sidecar run --mode explicit --control-plane …`, used by the demo only while the
 * sidecar binary cannot connect to a control plane yet. It composes the same packages the sidecar does:
 * mitm-core's proxy (explicit mode, interception by InterceptRules), @httpmesh/metrics per pattern from
 * the RouteSets, and a rule-sync client that receives the rules and uploads metric snapshots.
 *
 * Run as a child process: `node fallback-sidecar.js` with its configuration as JSON in
 * HTTPMESH_DEMO_SIDECAR. Prints one JSON line `{"event":"ready",…}` on stdout when listening; exits 0 on
 * SIGTERM/SIGINT after closing.
 */
import { readFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { CertificateAuthority, createMitmProxy } from '@httpmesh/mitm-core';
import { MeshMetrics, type RouteSetSpec } from '@httpmesh/metrics';
import { createRuleSyncClient, InterceptRule_Action, ResourceType } from '@httpmesh/rule-sync';

export interface FallbackSidecarConfig {
  listen: { host: string; port: number };
  admin: { host: string; port: number };
  controlPlane: string;
  service: string;
  nodeId: string;
  caDir: string;
  upstreamCaFile?: string;
  snapshotIntervalMs: number;
}

function log(event: string, fields: Record<string, unknown> = {}): void {
  process.stderr.write(`${JSON.stringify({ time: new Date().toISOString(), event, ...fields })}\n`);
}

function domainMatches(domain: string, host: string): boolean {
  if (domain.startsWith('*.')) return host.endsWith(domain.slice(1)) && host.length > domain.length - 1;
  return host === domain;
}

async function main(): Promise<void> {
  const config = JSON.parse(process.env['HTTPMESH_DEMO_SIDECAR'] ?? '') as FallbackSidecarConfig;
  const ca = await CertificateAuthority.loadFromDir(config.caDir);
  const upstreamCa =
    config.upstreamCaFile === undefined ? [] : [await readFile(config.upstreamCaFile, 'utf8')];
  const metrics = new MeshMetrics({ service: config.service, producer: config.nodeId, routeSets: [] });
  let intercepted: { domain: string; intercept: boolean }[] = [];

  const client = createRuleSyncClient({
    addresses: [config.controlPlane],
    node: { id: config.nodeId, service: config.service, labels: { demo: 'true' }, version: 'demo-fallback' },
    subscriptions: [ResourceType.RESOURCE_TYPE_INTERCEPT_RULE, ResourceType.RESOURCE_TYPE_ROUTE_SET],
    insecure: true,
    backoff: { initialMs: 100, maxMs: 2_000 },
    logger: {
      info: () => undefined,
      warn: (m: string) => log('rule-sync.warn', { msg: m }),
      error: (m: string) => log('rule-sync.error', { msg: m }),
    },
    validate: (update) => {
      if (update.type !== ResourceType.RESOURCE_TYPE_ROUTE_SET) return;
      // Throws (-> NACK, last good kept) when a pattern does not compile.
      new MeshMetrics({ routeSets: routeSetsOf(update.resources) });
    },
  });
  client.on('applied', (update) => {
    if (update.type === ResourceType.RESOURCE_TYPE_ROUTE_SET)
      metrics.setRoutes(routeSetsOf(update.resources));
    if (update.type === ResourceType.RESOURCE_TYPE_INTERCEPT_RULE) {
      intercepted = update.resources.flatMap((r) =>
        r.body?.$case === 'interceptRule'
          ? [
              {
                domain: r.body.value.domain,
                intercept: r.body.value.action !== InterceptRule_Action.ACTION_PASSTHROUGH,
              },
            ]
          : [],
      );
    }
    log('rules.applied', {
      type: update.type,
      version: update.systemVersion,
      resources: update.resources.length,
    });
  });

  const proxy = createMitmProxy({
    ca,
    upstreamCa,
    // Passthrough rules are listed before wildcard intercepts win: the first exact match decides.
    intercept: (host) => {
      const exact = intercepted.find((r) => r.domain === host);
      if (exact !== undefined) return exact.intercept;
      return intercepted.some((r) => r.intercept && domainMatches(r.domain, host));
    },
    filters: [
      {
        name: 'metrics',
        onComplete(exchange, summary) {
          metrics.record({
            direction: 'outbound',
            method: exchange.method,
            host: exchange.authority || exchange.upstream.host,
            path: exchange.path,
            statusCode: summary.status === 0 ? undefined : summary.status,
            errorType: summary.errorCode,
            durationMs: (summary.timings.end ?? performance.now()) - summary.timings.start,
            requestBytes: summary.requestBodyBytes,
            responseBytes: summary.responseBodyBytes,
          });
        },
      },
    ],
    onError: (e: Error & { code?: string }) =>
      log('proxy.connection_error', { code: e.code, err: e.message }),
  });
  const proxyAddress = await proxy.listen(config.listen.port, config.listen.host);
  await client.start();
  const timer = setInterval(() => {
    if (client.connected) client.sendMetricSnapshot(metrics.snapshot());
  }, config.snapshotIntervalMs);

  const admin = createServer((req, res) => {
    // Ready once both rule types arrived, so the first HTTPS request is already intercepted.
    const ready =
      (client.version(ResourceType.RESOURCE_TYPE_ROUTE_SET) ?? '') !== '' &&
      (client.version(ResourceType.RESOURCE_TYPE_INTERCEPT_RULE) ?? '') !== '';
    const body = req.url === '/readyz' ? { ready } : { status: 'ok' };
    res.writeHead(req.url === '/readyz' && !ready ? 503 : 200, { 'content-type': 'application/json' });
    res.end(JSON.stringify(body));
  });
  await new Promise<void>((resolve) => admin.listen(config.admin.port, config.admin.host, resolve));
  const adminAddress = admin.address() as AddressInfo;
  process.stdout.write(
    `${JSON.stringify({ event: 'ready', proxy: proxyAddress, admin: { host: adminAddress.address, port: adminAddress.port } })}\n`,
  );

  const stop = async () => {
    clearInterval(timer);
    if (client.connected) client.sendMetricSnapshot(metrics.snapshot());
    await proxy.close();
    await client.close();
    await new Promise<void>((resolve) => {
      admin.close(() => resolve());
      admin.closeAllConnections();
    });
    log('sidecar.stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop());
  process.once('SIGINT', () => void stop());
}

function routeSetsOf(
  resources: readonly { body?: { $case: string; value: unknown } | undefined }[],
): RouteSetSpec[] {
  const out: RouteSetSpec[] = [];
  for (const r of resources) {
    if (r.body?.$case !== 'routeSet') continue;
    const value = r.body.value as { host: string; routes: { pattern: string; methods: string[] }[] };
    out.push({
      host: value.host,
      routes: value.routes.map((route) =>
        route.methods.length > 0
          ? { pattern: route.pattern, methods: route.methods }
          : { pattern: route.pattern },
      ),
    });
  }
  return out;
}

main().catch((err: unknown) => {
  log('sidecar.failed', { err: (err as Error).message, code: (err as { code?: string }).code });
  process.exit(1);
});
