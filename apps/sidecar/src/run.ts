import { readFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import {
  type AddressInfo,
  createServer as createNetServer,
  type Server as NetServer,
  type Socket,
} from 'node:net';
import { hostname } from 'node:os';
import { dirname, join } from 'node:path';
import { isSea } from 'node:sea';
import {
  type CertificateAuthority,
  createMitmProxy,
  type ExchangeFilter,
  type MitmProxy,
} from '@httpmesh/mitm-core';
import { createPrometheusEndpoint, type Direction, MeshMetrics } from '@httpmesh/metrics';
import type { Logger } from 'pino';
import { loadOrCreateCa } from './ca.js';
import type { ControlPlaneSource } from './control-plane.js';
import { UsageError } from './errors.js';
import { writeInterceptFile } from './intercept-file.js';
import { InterceptPolicy } from './intercept-policy.js';
import { SidecarPlugins } from './plugins.js';
import { MetricsUploader } from './telemetry.js';
import type { HostPort, OptionKey, SidecarOptions } from './options.js';
import type { RulesFileError } from './errors.js';
import { type RulesDocument, RulesFileWatcher } from './rules.js';
import {
  addressOf,
  type HandoffListeners,
  handleOf,
  type ListenHandle,
  receiveHandoff,
  requestUpgrade,
  UpgradeControl,
} from './upgrade.js';

/** A running sidecar, as `startSidecar` returns it. */
export interface SidecarRuntime {
  /** Address of the explicit proxy (explicit mode) or the outbound listener (transparent mode). */
  readonly proxyAddress: AddressInfo;
  /** Inbound listener (transparent mode only). */
  readonly inboundAddress: AddressInfo | null;
  readonly adminAddress: AddressInfo;
  /** Requests being served right now. */
  readonly inFlight: number;
  /**
   * Stops accepting, lets in-flight requests finish up to `deadlineMs`, then closes everything. With
   * `waitForConnections` (upgrade) it also waits until clients closed their keep-alive connections (every
   * HTTP/1.1 response in the drain says `connection: close`), so none is cut under a client about to reuse it.
   */
  drain(
    deadlineMs: number,
    drainOptions?: { waitForConnections?: boolean },
  ): Promise<{ drained: boolean; abandoned: number }>;
  /** The listening sockets, for a successor process (upgrade). */
  listeners(): HandoffListeners;
  /** Closes the listening sockets in this process only (a successor keeps serving on its copies). */
  stopAccepting(): void;
}

interface RulesState {
  document: RulesDocument | null;
  source: 'file' | 'control-plane' | 'none';
  loadedAt: string | null;
}

const kCounted = Symbol('httpmesh.sidecar.inflight');

/** Starts proxy, rules, metrics and admin endpoint for the given options. */
export async function startSidecar(
  options: SidecarOptions,
  log: Logger,
  inherited?: HandoffListeners,
): Promise<SidecarRuntime> {
  if (options.controlPlane.length > 0 && options.rules !== undefined) {
    throw new UsageError('--control-plane and --rules are two rules sources: give one');
  }
  const ca: CertificateAuthority = await loadOrCreateCa(options.caDir, log);
  const upstreamCa = options.upstreamCa === undefined ? [] : [await readFile(options.upstreamCa, 'utf8')];
  const rules: RulesState = {
    document: null,
    source: options.controlPlane.length > 0 ? 'control-plane' : options.rules === undefined ? 'none' : 'file',
    loadedAt: null,
  };
  let policy = new InterceptPolicy([]);
  let insecureUpstream: ((host: string) => boolean) | undefined;
  let outboundProxy: MitmProxy | null = null;
  const metrics = new MeshMetrics({
    ...(options.service === undefined ? {} : { service: options.service }),
    producer: `${options.service ?? 'sidecar'}@${hostname()}`,
    routeSets: [],
  });
  const prometheus = createPrometheusEndpoint(metrics);
  const plugins = new SidecarPlugins(log);
  let draining = false;
  let inFlight = 0;
  let drainWaiter: (() => void) | null = null;
  const accepted = { outbound: 0, inbound: 0 };

  // Transparent mode: the proxy (uid 1337) cannot touch netfilter, so it publishes the intercept rules in
  // force to --intercept-file and `init-net --follow` (root) moves dnsmasq/ipset along.
  const publishIntercept = options.mode === 'transparent';
  let publishFailed = false;

  const applyRules = async (doc: RulesDocument): Promise<void> => {
    const routeSets = doc.routes.map((set) => ({
      host: set.host,
      routes: set.routes.map((r) =>
        r.methods.length > 0 ? { pattern: r.pattern, methods: [...r.methods] } : { pattern: r.pattern },
      ),
    }));
    metrics.setRoutes(routeSets);
    policy = new InterceptPolicy(doc.intercept);
    // The per-domain opt-out from upstream verification follows the rules; the proxy may not exist yet on
    // the first load (it is created with the same rule below).
    insecureUpstream = insecureUpstreamRule(policy);
    outboundProxy?.setInsecureUpstreamHosts(insecureUpstream);
    // A plugin set that cannot start is logged; the plugins in force keep serving.
    await plugins
      .apply(doc.plugins)
      .catch((e: Error & { code?: string }) =>
        log.error({ event: 'plugins.rejected', code: e.code, err: e.message }, 'plugins not applied'),
      );
    rules.document = doc;
    rules.loadedAt = new Date().toISOString();
    log.info(
      {
        event: 'rules.applied',
        version: doc.hash,
        intercept: doc.intercept.length,
        routes: doc.routes.length,
      },
      'rules applied',
    );
    if (publishIntercept) {
      try {
        await writeInterceptFile(options.interceptFile, { version: doc.hash, intercept: doc.intercept });
        publishFailed = false;
        log.debug({ event: 'intercept.published', file: options.interceptFile }, 'intercept rules published');
      } catch (e) {
        // Once per failure streak: the proxy itself works; only new domains miss the ipset.
        if (!publishFailed) {
          log.warn(
            { event: 'intercept.publish_failed', file: options.interceptFile, err: (e as Error).message },
            'intercept rules not published; init-net --follow will not see changes',
          );
        }
        publishFailed = true;
      }
    }
  };

  let watcher: RulesFileWatcher | null = null;
  if (options.rules !== undefined) {
    watcher = new RulesFileWatcher(options.rules, {
      // Explicit mode has no DNS-based capture: `localhost` and IP literals are valid intercept domains.
      validation: { localNames: options.mode === 'explicit' },
      onRules: (doc) => {
        applyRules(doc).catch((e: Error) =>
          log.error({ event: 'rules.apply_failed', err: e.message }, 'rules not applied'),
        );
      },
      onError: (e: RulesFileError) =>
        log.error(
          {
            event: 'rules.rejected',
            code: e.code,
            field: e.field,
            err: e.message,
            keptVersion: rules.document?.hash,
          },
          'rules file change rejected; last good rules stay in force',
        ),
    });
    await applyRules(await watcher.start());
  }
  let controlPlane: ControlPlaneSource | null = null;
  let telemetry: MetricsUploader | null = null;
  if (options.controlPlane.length > 0) {
    // Loaded only with --control-plane: rule-sync brings the gRPC stack (grpc-js, nice-grpc, protobuf),
    // ~20 MB resident that a sidecar fed by a rules file never uses.
    const { startControlPlaneSource } = await import('./control-plane.js');
    telemetry = new MetricsUploader(metrics, options.metricsInterval, log); // checks the interval first
    // The first push is not awaited: the sidecar serves (not ready, no rules) while it connects.
    controlPlane = await startControlPlaneSource(options, log, (doc) => {
      applyRules(doc).catch((e: Error) =>
        log.error({ event: 'rules.apply_failed', err: e.message }, 'rules not applied'),
      );
    });
    telemetry.start(controlPlane.client);
  }

  const filtersFor = (direction: Direction): ExchangeFilter[] => {
    const filters: ExchangeFilter[] = [
      {
        name: 'inflight',
        onRequestHead(exchange) {
          inFlight++;
          exchange.locals.set(kCounted, true);
          return undefined;
        },
        onComplete(exchange) {
          if (exchange.locals.get(kCounted) !== true) return;
          inFlight--;
          if (inFlight === 0 && drainWaiter !== null) drainWaiter();
        },
        onResponseHead(exchange) {
          // Draining: the client must not reuse this connection (HTTP/1.1; h2 would need GOAWAY).
          if (draining && exchange.clientProtocol === 'http/1.1' && exchange.responseHeaders !== undefined) {
            exchange.responseHeaders['connection'] = 'close';
          }
        },
      },
      {
        name: 'metrics',
        onComplete(exchange, summary) {
          metrics.record({
            direction,
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
    ];
    filters.push(plugins.filter());
    if (options.accessLog) {
      filters.push({
        name: 'access-log',
        onComplete(exchange, summary) {
          log.info(
            {
              event: 'access',
              direction,
              method: exchange.method,
              authority: exchange.authority,
              path: exchange.path,
              status: summary.status,
              durationMs:
                Math.round(((summary.timings.end ?? performance.now()) - summary.timings.start) * 1000) /
                1000,
              errorCode: summary.errorCode,
            },
            'exchange',
          );
        },
      });
    }
    return filters;
  };

  // A single executable has no package directory for mitm-core's default addon path: the build ships
  // original_dst.node beside the binary (absent: mitm-core logs one line and falls back to SNI/Host).
  const addonOption = isSea()
    ? { originalDestinationAddonPath: join(dirname(process.execPath), 'original_dst.node') }
    : {};
  // Unset: mitm-core's default, sized so both proxies together stay within the open-files limit.
  const connectionCap =
    options.maxClientConnections === undefined ? {} : { maxClientConnections: options.maxClientConnections };
  const onError = (error: Error & { code?: string }) =>
    log.warn({ event: 'proxy.connection_error', code: error.code, err: error.message }, 'connection failed');
  // Transparent mode: see InterceptPolicy.decideTransparent (plain HTTP measured; TLS by SNI, or by the
  // original destination when there is no SNI). Explicit mode: the CONNECT host follows the rules.
  const transparent = options.mode === 'transparent';
  const outbound: MitmProxy = createMitmProxy({
    ca,
    intercept: transparent
      ? (host, context) => policy.decideTransparent(host, context)
      : (host) => policy.intercepts(host),
    upstreamCa,
    ...(insecureUpstream === undefined ? {} : { insecureUpstreamHosts: insecureUpstream }),
    ...addonOption,
    filters: filtersFor('outbound'),
    ...connectionCap,
    onError,
  });
  outboundProxy = outbound;
  let inbound: MitmProxy | null = null;
  // Closing these stops accepting in this process only (a successor keeps its copies of the sockets).
  const closers: (() => void)[] = [];
  let proxyAddress: AddressInfo;
  let inboundAddress: AddressInfo | null = null;
  let proxyHandle: ListenHandle;
  let inboundHandle: ListenHandle | null = null;

  // A successor (upgrade) listens on the handle its predecessor sent instead of binding.
  const listenOn = (server: NetServer, at: ListenHandle | HostPort): Promise<void> =>
    new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if ('port' in at) server.listen(at.port, at.host, () => resolve());
      else server.listen(at, () => resolve());
    });
  const listenNet = async (
    at: ListenHandle | HostPort,
    proxy: MitmProxy,
    dir: 'outbound' | 'inbound',
  ): Promise<ListenHandle> => {
    const server = createNetServer((socket: Socket) => {
      accepted[dir]++;
      // mitm-core reads SO_ORIGINAL_DST itself (falling back to SNI / Host when the addon is missing).
      proxy.handleConnection(socket);
    });
    await listenOn(server, at);
    closers.push(() => server.close());
    return handleOf(server);
  };

  if (options.mode === 'explicit') {
    // The sidecar owns the listening socket (mitm-core's acceptConnection serves what it accepts), so it can
    // close it to stop accepting and send its handle to a successor; a successor listens on that handle.
    const server = createNetServer((socket: Socket) => {
      accepted.outbound++;
      outbound.acceptConnection(socket);
    });
    await listenOn(server, inherited?.proxy ?? options.listen);
    closers.push(() => server.close());
    proxyHandle = handleOf(server);
    proxyAddress = server.address() as AddressInfo;
  } else {
    // Inbound: plain HTTP (asked with the original destination IP) is parsed and measured; TLS with an
    // SNI name is the service's own and passes through untouched.
    inbound = createMitmProxy({
      ca,
      intercept: (_host, context) => !context.tls,
      ...addonOption,
      filters: filtersFor('inbound'),
      ...connectionCap,
      onError,
    });
    // Outbound connections are redirected by nat OUTPUT to 127.0.0.1: never expose the outbound port
    // beyond loopback (it would be an open proxy). Inbound ones arrive on the pod address.
    proxyHandle = await listenNet(
      inherited?.proxy ?? { host: '127.0.0.1', port: options.outboundPort },
      outbound,
      'outbound',
    );
    inboundHandle = await listenNet(
      inherited?.inbound ?? { host: '0.0.0.0', port: options.inboundPort },
      inbound,
      'inbound',
    );
    proxyAddress = addressOf(proxyHandle);
    inboundAddress = addressOf(inboundHandle);
  }

  const admin: HttpServer = createHttpServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    const json = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    switch (path) {
      case '/healthz':
        return json(200, { status: 'ok' });
      case '/readyz': {
        const ready = !draining && (rules.source === 'none' || rules.document !== null);
        return json(ready ? 200 : 503, { ready, draining, rulesSource: rules.source });
      }
      case '/metrics':
        return plugins.metricsHandler(prometheus.text)(req, res);
      case '/plugins':
        return json(200, plugins.status());
      case '/config':
        return json(200, {
          mode: options.mode,
          service: options.service ?? null,
          rules: {
            source: rules.source,
            path: options.rules ?? null,
            version: rules.document?.hash ?? null,
            loadedAt: rules.loadedAt,
            intercept: rules.document?.intercept ?? [],
            routes: rules.document?.routes ?? [],
          },
        });
      case '/connections':
        return json(200, {
          inFlight,
          accepted,
          outbound: outbound.stats,
          inbound: inbound?.stats ?? null,
          telemetry: telemetry?.stats ?? null,
        });
      default:
        return json(404, { error: 'not found' });
    }
  });
  await new Promise<void>((resolve, reject) => {
    admin.once('error', reject);
    if (inherited !== undefined) admin.listen(inherited.admin, () => resolve());
    else admin.listen(options.admin.port, options.admin.host, () => resolve());
  });
  let accepting = true;
  const stopAccepting = (): void => {
    if (!accepting) return;
    accepting = false;
    for (const close of closers) close();
    // The admin socket goes to the successor too; our open admin connections keep working.
    admin.close();
  };
  const adminAddress = admin.address() as AddressInfo;
  log.info(
    {
      event: 'sidecar.started',
      mode: options.mode,
      proxy: proxyAddress,
      inbound: inboundAddress,
      admin: adminAddress,
    },
    'sidecar started',
  );

  return {
    proxyAddress,
    inboundAddress,
    adminAddress,
    get inFlight() {
      return inFlight;
    },
    listeners() {
      return { proxy: proxyHandle, inbound: inboundHandle, admin: handleOf(admin) };
    },
    stopAccepting,
    async drain(deadlineMs, drainOptions) {
      draining = true;
      const deadline = Date.now() + deadlineMs;
      watcher?.close();
      for (const close of closers) close();
      if (drainOptions?.waitForConnections !== true) {
        // Shutdown: mitm-core closes idle keep-alive connections and sends h2 clients GOAWAY. Not for an
        // upgrade: closing an idle connection races a client about to reuse it, so there the old process
        // waits for clients to close (every response says `connection: close`).
        void outbound.stopAccepting();
        void inbound?.stopAccepting();
      }
      let drained = inFlight === 0;
      if (!drained) {
        drained = await new Promise<boolean>((resolve) => {
          const timer = setTimeout(() => resolve(false), deadlineMs);
          drainWaiter = () => {
            clearTimeout(timer);
            resolve(true);
          };
        });
      }
      if (drained && drainOptions?.waitForConnections === true) {
        // Keep-alive connections close after their next response (connection: close) or when idle.
        const open = () => outbound.stats.openClientSockets + (inbound?.stats.openClientSockets ?? 0);
        while (open() > 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 25));
      }
      const abandoned = inFlight;
      await Promise.all([outbound.close(), inbound?.close()]);
      // After the proxies: exchanges finished while draining are in the final snapshot.
      await telemetry?.close();
      await controlPlane?.close();
      await plugins.stop();
      if (accepting) await new Promise<void>((resolve) => admin.close(() => resolve()));
      admin.closeAllConnections();
      await prometheus.shutdown();
      log.info({ event: 'sidecar.stopped', drained, abandoned }, 'sidecar stopped');
      return { drained, abandoned };
    },
  };
}

/**
 * Hosts whose upstream certificate is not verified: those an intercept rule marks `upstreamTlsVerify: false`
 * (same exact / one-label wildcard matching as the intercept decision). Undefined when no rule opts out, so
 * mitm-core skips the check entirely.
 */
function insecureUpstreamRule(policy: InterceptPolicy): ((host: string) => boolean) | undefined {
  if (!policy.hasInsecureUpstream) return undefined;
  return (host) => {
    const rule = policy.ruleFor(host.toLowerCase());
    return rule !== undefined && rule.action === 'intercept' && !rule.upstreamTlsVerify;
  };
}

/** `run`: starts the sidecar and serves until SIGTERM/SIGINT, then drains and resolves with exit code 0. */
export async function runSidecar(
  options: SidecarOptions,
  sources: Readonly<Record<OptionKey, string>>,
  log: Logger,
): Promise<number> {
  log.debug({ event: 'options', options, sources }, 'resolved options');
  if (options.upgradeFrom !== undefined) return requestUpgrade(options.upgradeFrom, log);
  // Listen for the stop signal before anything starts: `sidecar.started` is logged before the control socket
  // is up, and a SIGTERM in between must drain like any other, not kill the process with the default action.
  const stopSignal = new Promise<string>((resolve) => {
    process.once('SIGTERM', () => resolve('SIGTERM'));
    process.once('SIGINT', () => resolve('SIGINT'));
  });
  // Started by an upgrade: serve on the predecessor's sockets (see upgrade.ts).
  const handoff = await receiveHandoff();
  let runtime: SidecarRuntime;
  try {
    runtime = await startSidecar(options, log, handoff?.listeners);
  } catch (error) {
    handoff?.failed(error as Error);
    throw error;
  }
  if (handoff !== null) {
    await handoff.serving();
    log.info(
      { event: 'upgrade.serving', pid: process.pid },
      'serving on the sockets of the previous process',
    );
  }
  const control = await UpgradeControl.listen(options.controlSocket, log, runtime).catch(
    (e: Error & { code?: string }) => {
      log.warn(
        { event: 'upgrade.control_unavailable', path: options.controlSocket, err: e.message },
        'no control socket: upgrades are not possible for this process',
      );
      return null;
    },
  );
  handoff?.controlReady();
  const reason = await Promise.race([
    stopSignal,
    ...(control === null ? [] : [control.upgraded.then(() => 'upgrade')]),
  ]);
  log.info(
    {
      event: 'sidecar.draining',
      signal: reason,
      inFlight: runtime.inFlight,
      deadlineMs: options.drainTimeout,
    },
    'draining',
  );
  if (reason !== 'upgrade') control?.close();
  const result = await runtime.drain(options.drainTimeout, { waitForConnections: reason === 'upgrade' });
  await control?.finish(result);
  return 0;
}
