import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import {
  type AppliedUpdate,
  createRuleSyncClient,
  InterceptRule_Action,
  type Resource,
  ResourceType,
  type RuleSyncClient,
  type RuleSyncClientTls,
} from '@httpmesh/rule-sync';
import type { Logger } from 'pino';
import { CredentialsInvalidError, UsageError } from './errors.js';
import type { HostPort, SidecarOptions } from './options.js';
import { pluginRawFromResource } from './plugins.js';
import { type RulesDocument, type RulesValidationOptions, validateRules } from './rules.js';

/** Longest wait at shutdown for the control plane to read what the sidecar still had to send. */
const FINAL_DRAIN_MS = 2_000;
/** How often the mTLS files are stat'ed for a renewal. */
const CREDENTIALS_POLL_MS = 2_000;
/** A certificate this close to its notAfter (or past it) is warned about, once per certificate. */
const EXPIRY_WARNING_MS = 7 * 24 * 60 * 60 * 1000;

interface CredentialFiles {
  ca: string;
  cert: string;
  key: string;
}

/** The mTLS files as last read and checked; `tls` is what rule-sync gets. */
interface NodeCredentials {
  tls: RuleSyncClientTls & CredentialFiles;
  serialNumber: string;
  fingerprint256: string;
  notBefore: Date;
  notAfter: Date;
}

/** Reads the three files and checks they parse and that the key belongs to the certificate. */
async function readNodeCredentials(files: CredentialFiles): Promise<NodeCredentials> {
  const read = (path: string): Promise<string> =>
    readFile(path, 'utf8').catch((err: Error) => {
      throw new CredentialsInvalidError(`${path}: ${err.message}`);
    });
  const [ca, cert, key] = await Promise.all([read(files.ca), read(files.cert), read(files.key)]);
  const parse = <T>(path: string, what: string, fn: () => T): T => {
    try {
      return fn();
    } catch (err) {
      throw new CredentialsInvalidError(`${path}: not a PEM ${what} (${(err as Error).message})`);
    }
  };
  parse(files.ca, 'certificate', () => new X509Certificate(ca));
  // The first certificate of the file is the node's own; any after it are its chain.
  const certificate = parse(files.cert, 'certificate', () => new X509Certificate(cert));
  const privateKey = parse(files.key, 'private key', () => createPrivateKey(key));
  if (!certificate.checkPrivateKey(privateKey)) {
    throw new CredentialsInvalidError(`${files.key} does not match the certificate in ${files.cert}`);
  }
  return {
    tls: { ca, cert, key },
    serialNumber: certificate.serialNumber,
    fingerprint256: certificate.fingerprint256,
    notBefore: new Date(certificate.validFrom),
    notAfter: new Date(certificate.validTo),
  };
}

/** stat follows symlinks, so a Kubernetes `..data` swap or a rename over the path changes the inode. */
async function filesSignature(files: CredentialFiles): Promise<string> {
  const parts = await Promise.all(
    [files.ca, files.cert, files.key].map((path) =>
      stat(path).then(
        (st) => `${st.dev}:${st.ino}:${st.size}:${st.mtimeMs}:${st.ctimeMs}`,
        (err: NodeJS.ErrnoException) => err.code ?? 'error',
      ),
    ),
  );
  return parts.join('|');
}

/**
 * Keeps the sidecar's mTLS credentials current: polls the files' stat, and on a change reads and checks
 * them; good ones replace the old and the rule-sync client reconnects with them, bad ones (half written,
 * mismatched, garbage, expired) are logged and the working connection keeps the old ones.
 */
class CredentialsWatcher {
  private current: NodeCredentials;
  private signature: string;
  private timer: NodeJS.Timeout | undefined;
  private polling: Promise<void> = Promise.resolve();
  private closed = false;
  private warnedFingerprint: string | undefined;
  private client: RuleSyncClient | undefined;

  constructor(
    private readonly files: CredentialFiles,
    initial: NodeCredentials,
    signature: string,
    private readonly log: Logger,
  ) {
    this.current = initial;
    this.signature = signature;
    this.warnIfExpiring();
  }

  /** What rule-sync calls for every new session: the last credentials that passed the checks. */
  readonly tls = (): RuleSyncClientTls => this.current.tls;

  start(client: RuleSyncClient): void {
    this.client = client;
    this.schedule();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.polling;
  }

  private schedule(): void {
    if (this.closed) return;
    // A chain of timeouts, not an interval: a slow read never overlaps the next poll.
    this.timer = setTimeout(() => {
      this.polling = this.poll().finally(() => this.schedule());
    }, CREDENTIALS_POLL_MS);
    this.timer.unref();
  }

  private async poll(): Promise<void> {
    const signature = await filesSignature(this.files);
    if (signature !== this.signature && !this.closed) {
      this.signature = signature;
      await this.reload();
    }
    this.warnIfExpiring();
  }

  private async reload(): Promise<void> {
    let next: NodeCredentials;
    try {
      next = await readNodeCredentials(this.files);
      const now = Date.now();
      if (now < next.notBefore.getTime() || now > next.notAfter.getTime()) {
        throw new CredentialsInvalidError(
          `${this.files.cert} is not valid now (valid ${next.notBefore.toISOString()} to ${next.notAfter.toISOString()})`,
        );
      }
    } catch (err) {
      const error =
        err instanceof CredentialsInvalidError ? err : new CredentialsInvalidError((err as Error).message);
      this.log.error(
        { event: 'control_plane.credentials.invalid', code: error.code, err: error.message },
        'renewed control-plane credentials rejected; keeping the current ones',
      );
      return;
    }
    const { ca, cert, key } = next.tls;
    const old = this.current;
    if (ca === old.tls.ca && cert === old.tls.cert && key === old.tls.key) return; // touched, not changed
    if (this.closed || this.client === undefined) return;
    this.current = next;
    try {
      await this.client.reconnect();
    } catch (err) {
      // rule-sync refused them (e.g. a CA file grpc-js cannot use): stay on the old ones.
      this.current = old;
      const e = err as Error & { code?: string };
      this.log.error(
        { event: 'control_plane.credentials.invalid', code: e.code, err: e.message },
        'renewed control-plane credentials rejected; keeping the current ones',
      );
      return;
    }
    this.log.info(
      {
        event: 'control_plane.credentials.rotated',
        serialNumber: next.serialNumber,
        notAfter: next.notAfter.toISOString(),
      },
      'control-plane credentials rotated; reconnecting',
    );
  }

  private warnIfExpiring(): void {
    const { fingerprint256, notAfter, serialNumber } = this.current;
    if (this.warnedFingerprint === fingerprint256) return;
    if (notAfter.getTime() - Date.now() > EXPIRY_WARNING_MS) return;
    this.warnedFingerprint = fingerprint256;
    this.log.warn(
      {
        event: 'control_plane.credentials.expiring',
        serialNumber,
        notAfter: notAfter.toISOString(),
        expired: notAfter.getTime() <= Date.now(),
      },
      'control-plane client certificate expires within 7 days; renew the files (they are reloaded when they change)',
    );
  }
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
  let watcher: CredentialsWatcher | undefined;
  if (
    options.controlPlaneCa !== undefined &&
    options.nodeCert !== undefined &&
    options.nodeKey !== undefined
  ) {
    const files = { ca: options.controlPlaneCa, cert: options.nodeCert, key: options.nodeKey };
    // Signature first: a change racing the first read shows up as a change at the first poll.
    const signature = await filesSignature(files);
    // Unusable files at start are a configuration error; an expired certificate is only warned about, so
    // the persisted rules still serve and a renewal is picked up without a restart.
    watcher = new CredentialsWatcher(files, await readNodeCredentials(files), signature, log);
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
