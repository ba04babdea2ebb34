import { isIP } from 'node:net';
import {
  type AppliedUpdate,
  createRuleSyncClient,
  InterceptRule_Action,
  type Resource,
  ResourceType,
  CredentialsUnavailableError,
  type RuleSyncClient,
  TlsFileWatcher,
  type TlsFileWatcherOptions,
} from '@httpmesh/rule-sync';
import type { Logger } from 'pino';
import { CredentialsInvalidError, UsageError } from './errors.js';
import type { HostPort, SidecarOptions } from './options.js';
import { pluginRawFromResource } from './plugins.js';
import { type RulesDocument, type RulesValidationOptions, validateRules } from './rules.js';

/** Longest wait at shutdown for the control plane to read what the sidecar still had to send. */
const FINAL_DRAIN_MS = 2_000;

/** The sidecar's log lines for rule-sync's credential watcher (the key never appears in them). */
function credentialEvents(log: Logger): TlsFileWatcherOptions {
  return {
    onRotated: (credentials) =>
      log.info(
        {
          event: 'control_plane.credentials.rotated',
          serialNumber: credentials.serialNumber,
          notAfter: credentials.notAfter.toISOString(),
        },
        'control-plane credentials rotated; reconnecting',
      ),
    onRejected: (error) => {
      const invalid = new CredentialsInvalidError(error.message);
      log.error(
        { event: 'control_plane.credentials.invalid', code: invalid.code, err: invalid.message },
        'renewed control-plane credentials rejected; keeping the current ones',
      );
    },
    onExpiring: (credentials, expired) =>
      log.warn(
        {
          event: 'control_plane.credentials.expiring',
          serialNumber: credentials.serialNumber,
          notAfter: credentials.notAfter.toISOString(),
          expired,
        },
        'control-plane client certificate expires within 7 days; renew the files (they are reloaded when they change)',
      ),
  };
}

export interface ControlPlaneSource {
  readonly client: RuleSyncClient;
  close(): Promise<void>;
}

function isLoopback(host: string): boolean {
  return host === 'localhost' || host === '::1' || (isIP(host) === 4 && host.startsWith('127.'));
}

/**
 * rule-sync resources → the same document shape a rules file has, validated by the same code, so the
 * proxy cannot tell the two sources apart. Throws RulesFileError (field-precise) on a bad resource.
 */
export function resourcesToRules(
  intercept: readonly Resource[],
  routes: readonly Resource[],
  version: string,
  plugins: readonly Resource[] = [],
  validation: RulesValidationOptions = {},
): RulesDocument {
  const doc = {
    intercept: intercept.flatMap((r) =>
      r.body?.$case === 'interceptRule'
        ? [
            {
              name: r.body.value.name || r.name,
              domain: r.body.value.domain,
              action:
                r.body.value.action === InterceptRule_Action.ACTION_PASSTHROUGH ? 'passthrough' : 'intercept',
              upstreamTlsVerify: r.body.value.upstreamTlsVerify ?? true,
            },
          ]
        : [],
    ),
    routes: routes.flatMap((r) =>
      r.body?.$case === 'routeSet'
        ? [
            {
              name: r.body.value.name || r.name,
              host: r.body.value.host,
              patterns: r.body.value.routes.map((route) => ({
                pattern: route.pattern,
                methods: route.methods,
              })),
            },
          ]
        : [],
    ),
    plugins: plugins.flatMap((r) =>
      r.body?.$case === 'pluginConfig' ? [pluginRawFromResource(r.body.value)] : [],
    ),
  };
  return validateRules(doc, 'control-plane', version, validation);
}

/**
 * Subscribes to intercept rules and route sets. A push that fails validation is NACKed (rule-sync keeps the
 * last good version); accepted versions are persisted by rule-sync and reloaded at start, so a restart
 * without the control plane still serves the last good rules.
 */
export async function startControlPlaneSource(
  options: SidecarOptions,
  log: Logger,
  onRules: (doc: RulesDocument) => void,
): Promise<ControlPlaneSource> {
  const tlsFiles = [options.controlPlaneCa, options.nodeCert, options.nodeKey];
  const addresses = options.controlPlane.map((h: HostPort) =>
    isIP(h.host) === 6 ? `[${h.host}]:${h.port}` : `${h.host}:${h.port}`,
  );
  let watcher: TlsFileWatcher | undefined;
  if (
    options.controlPlaneCa !== undefined &&
    options.nodeCert !== undefined &&
    options.nodeKey !== undefined
  ) {
    const files = { ca: options.controlPlaneCa, cert: options.nodeCert, key: options.nodeKey };
    // Unusable files at start are a configuration error; an expired certificate is only warned about, so
    // the persisted rules still serve and a renewal is picked up without a restart.
    watcher = await TlsFileWatcher.open(files, credentialEvents(log)).catch((err: unknown) => {
      throw err instanceof CredentialsUnavailableError ? new CredentialsInvalidError(err.message) : err;
    });
  } else if (tlsFiles.some((f) => f !== undefined)) {
    throw new UsageError('--control-plane-ca, --node-cert and --node-key go together');
  } else if (!options.controlPlane.every((h) => isLoopback(h.host))) {
    throw new UsageError(
      'a control plane off loopback needs mTLS: give --control-plane-ca, --node-cert and --node-key',
    );
  }
  const service = options.service ?? 'unknown_service';
  // Same domain checks as a rules file: explicit mode also accepts local names and IP literals.
  const validation: RulesValidationOptions = { localNames: options.mode === 'explicit' };
  const current = {
    [ResourceType.RESOURCE_TYPE_INTERCEPT_RULE]: [] as readonly Resource[],
    [ResourceType.RESOURCE_TYPE_ROUTE_SET]: [] as readonly Resource[],
    [ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG]: [] as readonly Resource[],
  };
  const client = createRuleSyncClient({
    addresses,
    node: { id: options.nodeId ?? `${service}-${process.pid}`, service, version: '0.1.0' },
    subscriptions: [
      ResourceType.RESOURCE_TYPE_INTERCEPT_RULE,
      ResourceType.RESOURCE_TYPE_ROUTE_SET,
      ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG,
    ],
    ...(watcher === undefined ? { insecure: true } : { tls: watcher.tls }),
    persistPath: options.rulesCache,
    validate: (update) => {
      const intercept =
        update.type === ResourceType.RESOURCE_TYPE_INTERCEPT_RULE
          ? update.resources
          : current[ResourceType.RESOURCE_TYPE_INTERCEPT_RULE];
      const routes =
        update.type === ResourceType.RESOURCE_TYPE_ROUTE_SET
          ? update.resources
          : current[ResourceType.RESOURCE_TYPE_ROUTE_SET];
      const plugins =
        update.type === ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG
          ? update.resources
          : current[ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG];
      resourcesToRules(intercept, routes, update.systemVersion, plugins, validation); // throws -> NACK with the field in the message
    },
    logger: {
      info: (message) => log.info({ event: 'rule-sync' }, message),
      warn: (message) => log.warn({ event: 'rule-sync' }, message),
      error: (message) => log.error({ event: 'rule-sync' }, message),
    },
  });
  client.on('applied', (update: AppliedUpdate) => {
    if (
      update.type !== ResourceType.RESOURCE_TYPE_INTERCEPT_RULE &&
      update.type !== ResourceType.RESOURCE_TYPE_ROUTE_SET &&
      update.type !== ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG
    ) {
      return;
    }
    current[update.type] = update.resources;
    const version =
      `intercept=${client.version(ResourceType.RESOURCE_TYPE_INTERCEPT_RULE) ?? '-'};routes=${client.version(ResourceType.RESOURCE_TYPE_ROUTE_SET) ?? '-'}` +
      // Plugins only once the control plane sent any (keeps the version of plugin-less meshes unchanged).
      (client.version(ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG) === undefined
        ? ''
        : `;plugins=${client.version(ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG)}`);
    log.info(
      { event: 'rules.received', source: update.source, type: update.type, version },
      'rules from control plane',
    );
    onRules(
      resourcesToRules(
        current[ResourceType.RESOURCE_TYPE_INTERCEPT_RULE],
        current[ResourceType.RESOURCE_TYPE_ROUTE_SET],
        version,
        current[ResourceType.RESOURCE_TYPE_PLUGIN_CONFIG],
        validation,
      ),
    );
  });
  client.on('nacked', (type, version, detail) =>
    log.error(
      { event: 'rules.nacked', type, version, detail: detail.message },
      'control-plane rules rejected',
    ),
  );
  await client.start();
  watcher?.start(client);
  // The drain lets the final metrics snapshot (telemetry's last flush) reach the control plane before the
  // stream ends; a control plane that does not end the stream costs at most FINAL_DRAIN_MS of shutdown.
  return {
    client,
    close: async () => {
      await watcher?.close();
      await client.close({ drainMs: FINAL_DRAIN_MS });
    },
  };
}
