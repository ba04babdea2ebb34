import { EventEmitter } from 'node:events';
import { ChannelCredentials, createChannel, createClient } from 'nice-grpc';
import type { ChannelOptions } from 'nice-grpc';
import {
  CredentialsUnavailableError,
  PeerSilentError,
  PersistedStateCorruptError,
  ProtocolViolationError,
  RuleSyncClosedError,
  ValidationRejectedError,
} from './errors.js';
import { RuleSyncDefinition } from './gen/httpmesh/rulesync/v1/rule_sync.js';
import type {
  ControlMessage,
  DiscoveryResponse,
  ErrorDetail,
  HeldVersions,
  PersistedState,
  Resource,
  ResourceType,
  SidecarMessage,
} from './gen/httpmesh/rulesync/v1/rule_sync.js';
import { consoleLogger } from './logger.js';
import type { RuleSyncLogger } from './logger.js';
import { readStateFile, writeStateFile } from './persistence.js';
import { checkResource, resourceTypeName } from './resources.js';

const DEFAULT_MAX_RECEIVE_BYTES = 64 * 1024 * 1024;

export const METRICS_SNAPSHOT_CONTENT_TYPE = 'application/vnd.httpmesh.metrics-snapshot+json';

export interface RuleSyncClientTls {
  /** CA that signed the control plane's certificate. */
  ca: string | Buffer;
  /** This sidecar's certificate; must carry its node id (URI SAN `spiffe://httpmesh/node/<id>` or CN). */
  cert: string | Buffer;
  key: string | Buffer;
}

/**
 * The credentials, or a function returning them (sync or async) that is called for every new session, so a
 * reconnect picks up renewed files. A function that throws fails that attempt like a refused connection.
 */
export type RuleSyncClientTlsSource =
  | RuleSyncClientTls
  | (() => RuleSyncClientTls | Promise<RuleSyncClientTls>);

/** What the validate callback sees: the complete candidate set for one type after applying the delta. */
export interface CandidateUpdate {
  type: ResourceType;
  systemVersion: string;
  resources: readonly Resource[];
  changed: readonly Resource[];
  removed: readonly string[];
}

export interface AppliedUpdate {
  type: ResourceType;
  systemVersion: string;
  resources: readonly Resource[];
  source: 'push' | 'persisted';
}

export interface RuleSyncClientOptions {
  /** Control-plane addresses (`host:port`), cycled on every reconnect. */
  addresses: readonly string[];
  node: { id: string; service: string; labels?: Readonly<Record<string, string>>; version?: string };
  subscriptions: readonly ResourceType[];
  tls?: RuleSyncClientTlsSource;
  /** Plaintext, for loopback development only. */
  insecure?: boolean;
  /** Throw to reject a push; the push is NACKed with the error message and nothing of it is applied. */
  validate?: (update: CandidateUpdate) => void | Promise<void>;
  /** A validate hook that has not settled after this long rejects the push. Default 10 s. */
  validateTimeoutMs?: number;
  /** File holding the last good configuration (written atomically with a checksum). */
  persistPath?: string;
  backoff?: BackoffOptions;
  heartbeatIntervalMs?: number;
  /** The stream is dropped when the server is silent (no echo) this long. Default 3 heartbeats. */
  heartbeatTimeoutMs?: number;
  logger?: RuleSyncLogger;
  channelOptions?: ChannelOptions;
}

export interface ClientEvents {
  applied: [AppliedUpdate];
  nacked: [ResourceType, string, ErrorDetail];
  connected: [string];
  disconnected: [string, Error | undefined];
  protocolError: [ErrorDetail];
}

interface TypeState {
  systemVersion: string;
  resources: Map<string, Resource>;
}

/** Push-based async iterable feeding the outbound half of the stream. */
class Outbox implements AsyncIterable<SidecarMessage> {
  private readonly buffered: SidecarMessage[] = [];
  private wake: (() => void) | undefined;
  private ended = false;

  /** False once the outbound half is closed: the message would never be sent. */
  push(message: SidecarMessage): boolean {
    if (this.ended) return false;
    this.buffered.push(message);
    this.wake?.();
    return true;
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  get open(): boolean {
    return !this.ended;
  }

  async *[Symbol.asyncIterator](): AsyncIterator<SidecarMessage> {
    while (true) {
      const next = this.buffered.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
      });
      this.wake = undefined;
    }
  }
}

export interface BackoffOptions {
  initialMs?: number;
  maxMs?: number;
  multiplier?: number;
  /** Fraction of the delay removed at random (0 = none, 1 = "full jitter"). */
  jitter?: number;
}

/**
 * Delay before reconnect attempt `attempt` (0-based): exponential, capped, minus a random share so that
 * many sidecars cut at the same moment do not reconnect in lockstep.
 */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions = {},
  random: () => number = Math.random,
): number {
  const initialMs = options.initialMs ?? 250;
  const maxMs = options.maxMs ?? 15_000;
  const multiplier = options.multiplier ?? 2;
  const jitter = options.jitter ?? 0.5;
  const base = Math.min(maxMs, initialMs * multiplier ** attempt);
  return base * (1 - jitter * random());
}

/** Resolves after `ms`, or as soon as either signal aborts. */
function abortableDelay(ms: number, signal: AbortSignal, wake: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || wake.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      wake.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
    wake.addEventListener('abort', done, { once: true });
  });
}

/** `promise`, or a RuleSyncClosedError as soon as `signal` aborts (a `tls` function that never settles). */
function unlessAborted<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new RuleSyncClosedError('client closed'));
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_resolve, reject) => {
    onAbort = () => reject(new RuleSyncClosedError('client closed'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([promise, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}

/** The session in progress, as far as reconnect() needs to reach it. */
interface LiveSession {
  readonly outbox: Outbox;
  readonly abort: AbortController;
  readonly ended: Promise<void>;
  /** Set when reconnect() ends this session: its end is not a failure. */
  deliberate: boolean;
}

/** Sidecar end of rule-sync: keeps the last good configuration per type, in memory and on disk. */
export class RuleSyncClient extends EventEmitter<ClientEvents> {
  private readonly options: RuleSyncClientOptions;
  private readonly logger: RuleSyncLogger;
  private readonly state = new Map<ResourceType, TypeState>();
  private readonly lifetime = new AbortController();
  private outbox: Outbox | undefined;
  private connectedAddress: string | undefined;
  private heartbeatSequence = 0;
  private loop: Promise<void> | undefined;
  private persistChain: Promise<void> = Promise.resolve();
  /** Set by close(): the loop ends instead of reconnecting. */
  private closing = false;
  /** Resolves when the current session's stream has ended (either side). */
  private sessionEnded: Promise<void> = Promise.resolve();
  private live: LiveSession | undefined;
  /** Credentials reconnect() already loaded and checked; the next session uses them instead of loading. */
  private pendingCredentials: ChannelCredentials | undefined;
  /** reconnect() was called since the current session started: the next one starts without backoff. */
  private reconnectRequested = false;
  /** Aborted by reconnect() to cut a backoff delay short. */
  private backoffWake: AbortController | undefined;

  constructor(options: RuleSyncClientOptions) {
    super();
    if (options.addresses.length === 0) throw new TypeError('RuleSyncClient needs at least one address');
    if (options.tls === undefined && options.insecure !== true) {
      throw new TypeError('RuleSyncClient needs `tls` or `insecure: true`');
    }
    this.options = options;
    this.logger = options.logger ?? consoleLogger;
  }

  /**
   * Starts a new session with freshly loaded credentials, e.g. after the certificate files were renewed.
   * The credentials are loaded (the `tls` function called) and checked first; if that fails this rejects with
   * CredentialsUnavailableError and the current stream is left alone. Otherwise the current stream is ended
   * the way `close({ drainMs })` ends it: queued messages are written, the client half-closes and waits at
   * most `drainMs` (default 2 s) for the control plane to end the stream, then cancels it. A connection
   * attempt still in progress is abandoned, a backoff wait is cut short: the new session starts at once,
   * announcing the versions the client holds, so nothing already applied is pushed or applied again.
   * Resolves when the old stream has ended (not when the new one is up: watch `connected`).
   */
  async reconnect(options: { drainMs?: number } = {}): Promise<void> {
    if (this.closing || this.lifetime.signal.aborted) throw new RuleSyncClosedError('client closed');
    const credentials = await this.loadCredentials();
    if (this.closing || this.lifetime.signal.aborted) throw new RuleSyncClosedError('client closed');
    this.pendingCredentials = credentials;
    this.reconnectRequested = true;
    this.backoffWake?.abort();
    const live = this.live;
    if (live === undefined) return;
    live.deliberate = true;
    if (this.connectedAddress === undefined) {
      // Not connected yet (maybe failing with the old certificate): nothing to drain.
      live.abort.abort();
      await live.ended;
      return;
    }
    live.outbox.end();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      live.ended,
      new Promise<void>((resolve) => {
        timer = setTimeout(resolve, options.drainMs ?? 2_000);
      }),
    ]);
    clearTimeout(timer);
    live.abort.abort();
    await live.ended;
  }

  /** Loads the persisted configuration (if any) and starts connecting. Resolves once the file was read. */
  async start(): Promise<void> {
    if (this.loop) return;
    await this.loadPersisted();
    this.loop = this.run();
  }

  /**
   * Stops reconnecting and ends the stream. With `drainMs` > 0, messages already handed to the stream (a
   * final metric snapshot) are written first: the client half-closes its side after them and waits, at most
   * `drainMs`, for the control plane to end the stream (it does once it has read everything); then, or at
   * once without `drainMs`, the stream is cancelled.
   */
  async close(options: { drainMs?: number } = {}): Promise<void> {
    this.closing = true;
    const drainMs = options.drainMs ?? 0;
    if (drainMs > 0 && this.outbox !== undefined && this.connectedAddress !== undefined) {
      this.outbox.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.sessionEnded,
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, drainMs);
        }),
      ]);
      clearTimeout(timer);
    }
    this.lifetime.abort(new RuleSyncClosedError('client closed'));
    this.outbox?.end();
    await this.loop;
    await this.persistChain;
  }

  /** True while a stream is up and still takes messages (false once close() or reconnect() drains it). */
  get connected(): boolean {
    return this.connectedAddress !== undefined && this.outbox?.open === true;
  }

  /** Current (last good) resources of a type. */
  resources(type: ResourceType): Resource[] {
    return [...(this.state.get(type)?.resources.values() ?? [])];
  }

  /** Current (last good) system version of a type, or undefined if none was ever applied. */
  version(type: ResourceType): string | undefined {
    return this.state.get(type)?.systemVersion;
  }

  /**
   * Uploads a metric snapshot on the stream. `payload` is the @httpmesh/metrics snapshot object
   * (serialised as JSON) or raw bytes with their content type. Returns false when not connected.
   */
  sendMetricSnapshot(payload: Uint8Array | object, contentType = METRICS_SNAPSHOT_CONTENT_TYPE): boolean {
    if (!this.connected || this.outbox === undefined) return false;
    const bytes = payload instanceof Uint8Array ? payload : new TextEncoder().encode(JSON.stringify(payload));
    return this.outbox.push({
      kind: { $case: 'metricSnapshot', value: { contentType, payload: bytes, takenAtUnixMs: Date.now() } },
    });
  }

  private async loadPersisted(): Promise<void> {
    const path = this.options.persistPath;
    if (path === undefined) return;
    let persisted: PersistedState | undefined;
    try {
      persisted = await readStateFile(path);
    } catch (err) {
      const reason = err instanceof PersistedStateCorruptError ? `${err.code}: ${err.message}` : String(err);
      this.logger.error(
        `ignoring persisted configuration ${path} (${reason}); waiting for the control plane`,
      );
      return;
    }
    if (persisted === undefined) return;
    const loaded = new Map<ResourceType, TypeState>();
    for (const entry of persisted.types) {
      if (!this.options.subscriptions.includes(entry.type)) continue;
      const resources = new Map<string, Resource>();
      for (const resource of entry.resources) {
        const problem = checkResource(entry.type, resource);
        if (problem !== undefined) {
          this.logger.error(
            `ignoring persisted configuration ${path} (HTTPMESH_RULESYNC_STATE_CORRUPT: ${problem}); waiting for the control plane`,
          );
          return;
        }
        resources.set(resource.name, resource);
      }
      if (this.options.validate) {
        // The file may predate this sidecar's rules of validity (e.g. after an upgrade).
        try {
          const all = [...resources.values()];
          await this.runValidate({
            type: entry.type,
            systemVersion: entry.systemVersion,
            resources: all,
            changed: all,
            removed: [],
          });
        } catch (err) {
          this.logger.error(
            `ignoring persisted configuration ${path} (${resourceTypeName(entry.type)} rejected by validate: ${err instanceof Error ? err.message : String(err)}); waiting for the control plane`,
          );
          return;
        }
      }
      loaded.set(entry.type, { systemVersion: entry.systemVersion, resources });
    }
    for (const [type, typeState] of loaded) {
      this.state.set(type, typeState);
      this.notifyApplied({
        type,
        systemVersion: typeState.systemVersion,
        resources: [...typeState.resources.values()],
        source: 'persisted',
      });
    }
    this.logger.info(`loaded persisted configuration from ${path} (${loaded.size} resource types)`);
  }

  private async run(): Promise<void> {
    let attempt = 0;
    let index = 0;
    const signal = this.lifetime.signal;
    while (!signal.aborted) {
      const address = this.options.addresses[index % this.options.addresses.length] ?? '';
      index++;
      // A reconnect() asked for before this session starts is served by it.
      this.reconnectRequested = false;
      const progressed = await this.session(address);
      if (signal.aborted || this.closing) break;
      if (progressed) attempt = 0;
      // A deliberate reconnect (new credentials) starts over at once.
      if (this.reconnectRequested) continue;
      // Jitter spreads reconnects of many sidecars after a control-plane restart.
      const wake = new AbortController();
      this.backoffWake = wake;
      await abortableDelay(backoffDelay(attempt, this.options.backoff, Math.random), signal, wake.signal);
      this.backoffWake = undefined;
      attempt++;
    }
  }

  /** One stream to one address. Returns true when the server answered at least once. */
  private async session(address: string): Promise<boolean> {
    let credentials = this.pendingCredentials;
    this.pendingCredentials = undefined;
    if (credentials === undefined) {
      try {
        credentials = await unlessAborted(this.loadCredentials(), this.lifetime.signal);
      } catch (err) {
        const error = err as CredentialsUnavailableError | RuleSyncClosedError;
        if (!this.lifetime.signal.aborted && !this.closing) {
          this.logger.error(`cannot connect to ${address}: ${error.code} ${error.message}; retrying`);
        }
        this.emit('disconnected', address, error);
        return false;
      }
      // reconnect() ran while the credentials loaded: its (newer) ones win.
      if (this.pendingCredentials !== undefined) {
        credentials = this.pendingCredentials;
        this.pendingCredentials = undefined;
        this.reconnectRequested = false;
      }
    }
    if (this.lifetime.signal.aborted) return false;
    // Pushes of large sets may exceed grpc-js' 4 MiB receive default; a refused push would loop forever.
    const channel = createChannel(address, credentials, {
      'grpc.max_receive_message_length': DEFAULT_MAX_RECEIVE_BYTES,
      ...this.options.channelOptions,
    });
    const client = createClient(RuleSyncDefinition, channel);
    const outbox = new Outbox();
    let endSession = (): void => undefined;
    this.sessionEnded = new Promise<void>((resolve) => {
      endSession = resolve;
    });
    const sessionAbort = new AbortController();
    const live: LiveSession = { outbox, abort: sessionAbort, ended: this.sessionEnded, deliberate: false };
    this.live = live;
    const onLifetimeAbort = (): void => sessionAbort.abort();
    this.lifetime.signal.addEventListener('abort', onLifetimeAbort, { once: true });
    const heartbeatMs = this.options.heartbeatIntervalMs ?? 10_000;
    const heartbeatTimeoutMs = this.options.heartbeatTimeoutMs ?? heartbeatMs * 3;
    let lastServerMessage = Date.now();
    let progressed = false;
    let failure: Error | undefined;
    const heartbeat = setInterval(() => {
      if (Date.now() - lastServerMessage > heartbeatTimeoutMs) {
        failure = new PeerSilentError(`control plane silent for ${heartbeatTimeoutMs} ms`);
        sessionAbort.abort();
        return;
      }
      outbox.push({
        kind: { $case: 'heartbeat', value: { sequence: ++this.heartbeatSequence, sentAtUnixMs: Date.now() } },
      });
    }, heartbeatMs);
    heartbeat.unref();
    outbox.push({
      kind: {
        $case: 'hello',
        value: {
          node: {
            id: this.options.node.id,
            service: this.options.node.service,
            labels: { ...(this.options.node.labels ?? {}) },
            version: this.options.node.version ?? '',
          },
          subscriptions: [...this.options.subscriptions],
          held: this.heldVersions(),
        },
      },
    });
    // An immediate heartbeat: its echo confirms the hello was accepted even when nothing is to be pushed.
    outbox.push({
      kind: { $case: 'heartbeat', value: { sequence: ++this.heartbeatSequence, sentAtUnixMs: Date.now() } },
    });
    this.outbox = outbox;
    try {
      for await (const message of client.stream(outbox, { signal: sessionAbort.signal })) {
        lastServerMessage = Date.now();
        if (!progressed) {
          progressed = true;
          this.connectedAddress = address;
          this.emit('connected', address);
        }
        await this.onMessage(message, outbox);
      }
    } catch (err) {
      // A stream reconnect() cancelled after its drain ended on purpose, not by failure.
      if (!this.lifetime.signal.aborted && !live.deliberate && failure === undefined) failure = err as Error;
    } finally {
      clearInterval(heartbeat);
      this.lifetime.signal.removeEventListener('abort', onLifetimeAbort);
      outbox.end();
      if (this.outbox === outbox) this.outbox = undefined;
      if (this.live === live) this.live = undefined;
      this.connectedAddress = undefined;
      channel.close();
      endSession();
    }
    if (live.deliberate && !this.lifetime.signal.aborted && !this.closing) {
      this.logger.info(`stream to ${address} ended to reconnect with reloaded credentials`);
    } else if (!this.lifetime.signal.aborted && !this.closing) {
      this.logger.warn(`stream to ${address} ended${failure ? `: ${failure.message}` : ''}; reconnecting`);
    }
    this.emit('disconnected', address, failure);
    return progressed;
  }

  /** Calls the `tls` function (if any) and builds the channel credentials, which parses and pairs them. */
  private async loadCredentials(): Promise<ChannelCredentials> {
    const source = this.options.tls;
    if (source === undefined) return ChannelCredentials.createInsecure();
    try {
      const tls = typeof source === 'function' ? await source() : source;
      return ChannelCredentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert));
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      const code = (err as { code?: unknown } | null)?.code;
      throw new CredentialsUnavailableError(
        `TLS credentials unusable (${typeof code === 'string' ? `${code}: ` : ''}${reason})`,
        { cause: err },
      );
    }
  }

  private heldVersions(): HeldVersions[] {
    const held: HeldVersions[] = [];
    for (const [type, typeState] of this.state) {
      held.push({
        type,
        systemVersion: typeState.systemVersion,
        resources: [...typeState.resources.values()].map((r) => ({ name: r.name, version: r.version })),
      });
    }
    return held;
  }

  private async onMessage(message: ControlMessage, outbox: Outbox): Promise<void> {
    const kind = message.kind;
    switch (kind?.$case) {
      case 'response':
        await this.onPush(kind.value, outbox);
        return;
      case 'heartbeat':
        return;
      case 'error': {
        const detail = kind.value.detail ?? {
          code: 'HTTPMESH_RULESYNC_PROTOCOL_VIOLATION',
          message: '',
          resourceNames: [],
        };
        this.logger.warn(`control plane reported ${detail.code}: ${detail.message}`);
        this.emit('protocolError', detail);
        return;
      }
      default: {
        const error = new ProtocolViolationError('empty or unknown control message');
        this.emit('protocolError', { code: error.code, message: error.message, resourceNames: [] });
      }
    }
  }

  /** Applies one push atomically: every resource of it, or (on any problem) none, then ACK or NACK. */
  private async onPush(push: DiscoveryResponse, outbox: Outbox): Promise<void> {
    const current = this.state.get(push.type);
    const lastGood = current?.systemVersion ?? '';
    const nack = (detail: ErrorDetail): void => {
      this.logger.warn(
        `NACK ${resourceTypeName(push.type)} ${push.systemVersion}: ${detail.code} ${detail.message}; keeping ${lastGood || 'nothing'}`,
      );
      outbox.push({
        kind: {
          $case: 'ack',
          value: { type: push.type, version: lastGood, responseNonce: push.nonce, errorDetail: detail },
        },
      });
      this.emit('nacked', push.type, push.systemVersion, detail);
    };
    if (!this.options.subscriptions.includes(push.type)) {
      const error = new ProtocolViolationError(`push of unsubscribed type ${resourceTypeName(push.type)}`);
      nack({ code: error.code, message: error.message, resourceNames: [] });
      return;
    }
    const candidate = new Map(current?.resources ?? []);
    for (const name of push.removed) candidate.delete(name);
    for (const resource of push.resources) {
      const problem = checkResource(push.type, resource);
      if (problem !== undefined) {
        nack({
          code: 'HTTPMESH_RULESYNC_RESOURCE_INVALID',
          message: problem,
          resourceNames: [resource.name],
        });
        return;
      }
      candidate.set(resource.name, resource);
    }
    const resources = [...candidate.values()];
    if (this.options.validate) {
      try {
        await this.runValidate({
          type: push.type,
          systemVersion: push.systemVersion,
          resources,
          changed: push.resources,
          removed: push.removed,
        });
      } catch (err) {
        const error = new ValidationRejectedError(err instanceof Error ? err.message : String(err));
        nack({ code: error.code, message: error.message, resourceNames: push.resources.map((r) => r.name) });
        return;
      }
    }
    // Swap in the whole candidate at once; readers never see a partly applied push.
    this.state.set(push.type, { systemVersion: push.systemVersion, resources: candidate });
    await this.persist();
    this.notifyApplied({ type: push.type, systemVersion: push.systemVersion, resources, source: 'push' });
    outbox.push({
      kind: {
        $case: 'ack',
        value: {
          type: push.type,
          version: push.systemVersion,
          responseNonce: push.nonce,
          errorDetail: undefined,
        },
      },
    });
  }

  /** Runs the validate hook; a hook that does not settle in time (or the client closing) counts as a rejection. */
  private async runValidate(update: CandidateUpdate): Promise<void> {
    const validate = this.options.validate;
    if (validate === undefined) return;
    const timeoutMs = this.options.validateTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    let onAbort: (() => void) | undefined;
    const signal = this.lifetime.signal;
    try {
      await Promise.race([
        Promise.resolve().then(() => validate(update)),
        new Promise<never>((_resolve, reject) => {
          timer = setTimeout(
            () => reject(new Error(`validate did not settle within ${timeoutMs} ms`)),
            timeoutMs,
          );
          onAbort = () => reject(new Error('client closed during validate'));
          if (signal.aborted) onAbort();
          else signal.addEventListener('abort', onAbort, { once: true });
        }),
      ]);
    } finally {
      clearTimeout(timer);
      if (onAbort) signal.removeEventListener('abort', onAbort);
    }
  }

  /** A throwing listener must not cost the ACK of a push that is already applied. */
  private notifyApplied(update: AppliedUpdate): void {
    try {
      this.emit('applied', update);
    } catch (err) {
      this.logger.error(`an 'applied' listener threw: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private persist(): Promise<void> {
    const path = this.options.persistPath;
    if (path === undefined) return Promise.resolve();
    const snapshot: PersistedState = {
      types: [...this.state].map(([type, typeState]) => ({
        type,
        systemVersion: typeState.systemVersion,
        nonce: '',
        resources: [...typeState.resources.values()],
        removed: [],
      })),
      savedAtUnixMs: Date.now(),
    };
    // Writes are chained so an older state never lands after a newer one.
    this.persistChain = this.persistChain.then(() =>
      writeStateFile(path, snapshot).catch((err: unknown) => {
        this.logger.error(`could not persist configuration to ${path}: ${(err as Error).message}`);
      }),
    );
    return this.persistChain;
  }
}

/** Creates a rule-sync client; call `start()` to load persisted state and connect. */
export function createRuleSyncClient(options: RuleSyncClientOptions): RuleSyncClient {
  return new RuleSyncClient(options);
}
