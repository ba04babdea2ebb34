import { EventEmitter } from 'node:events';
import { isIP } from 'node:net';
import type { PeerCertificate } from 'node:tls';
import { Server, ServerCredentials, status } from '@grpc/grpc-js';
import type { ChannelOptions, ServerDuplexStream } from '@grpc/grpc-js';
import {
  IdentityMismatchError,
  InsecureNonLoopbackError,
  InvalidHelloError,
  InvalidResourceError,
  PeerSilentError,
  ProtocolViolationError,
  SidecarEvictedError,
  SlowConsumerError,
  UnknownNonceError,
} from './errors.js';
import type { RuleSyncError } from './errors.js';
import type {
  Ack,
  ControlMessage,
  ErrorDetail,
  Heartbeat,
  Hello,
  MetricSnapshot,
  Node,
  Resource,
  SidecarMessage,
} from './gen/httpmesh/rulesync/v1/rule_sync.js';
import type { ResourceType } from './gen/httpmesh/rulesync/v1/rule_sync.js';
import { ruleSyncGrpcDefinition } from './grpc-definition.js';
import { consoleLogger } from './logger.js';
import type { RuleSyncLogger } from './logger.js';
import {
  checkResource,
  contentVersion,
  groupKey,
  isKnownResourceType,
  KNOWN_RESOURCE_TYPES,
  resourceTypeName,
  resourceTypeOf,
  systemVersionOf,
} from './resources.js';

/** Certificates for mTLS: the server's own pair plus the CA that signs sidecar certificates. */
export interface RuleSyncServerTls {
  ca: string | Buffer;
  cert: string | Buffer;
  key: string | Buffer;
}

export interface RuleSyncServerOptions {
  /** mTLS credentials. Required unless `insecure` is set. */
  tls?: RuleSyncServerTls;
  /** Plaintext for loopback development only; listen() refuses non-loopback hosts. */
  insecure?: boolean;
  /** Burst coalescing: publish after `quietMs` without edits, or `maxDelayMs` after the first edit. */
  debounce?: { quietMs?: number; maxDelayMs?: number };
  /** Outbound messages queued per stream beyond what grpc-js accepted before the stream is cut. */
  maxQueuedMessages?: number;
  /** How long a stream may stay blocked (no drain) before it is cut. */
  writeStallTimeoutMs?: number;
  /** How long a push may stay unanswered (no ACK/NACK) before the stream is cut. */
  ackTimeoutMs?: number;
  /** A sidecar that sends nothing (not even a heartbeat) this long is disconnected. Default 60 s. */
  idleTimeoutMs?: number;
  /** Maps a sidecar to its group key; defaults to `groupKey(service, labels)`. */
  groupKeyOf?: (node: NodeIdentity) => string;
  logger?: RuleSyncLogger;
  onMetricSnapshot?: (node: NodeIdentity, snapshot: MetricSnapshot) => void;
  onHeartbeat?: (node: NodeIdentity, heartbeat: Heartbeat) => void;
  grpcOptions?: ChannelOptions;
}

export interface NodeIdentity {
  id: string;
  service: string;
  labels: Readonly<Record<string, string>>;
  version: string;
}

/** A sidecar group, either as its canonical key or as service + labels. */
export type GroupSelector = string | { service: string; labels?: Readonly<Record<string, string>> };

export interface TypeStatus {
  type: string;
  /** Last system version the sidecar ACKed (or stated in its Hello). */
  ackedVersion: string;
  /** Last system version it NACKed, if any. */
  nackedVersion: string | undefined;
  lastError: ErrorDetail | undefined;
  /** Nonce of the push awaiting an answer. */
  pendingNonce: string | undefined;
}

export interface SidecarStatus {
  node: NodeIdentity;
  group: string;
  peer: string;
  connectedAt: Date;
  lastMessageAt: Date;
  lastHeartbeatAt: Date | undefined;
  types: TypeStatus[];
}

export interface ServerEvents {
  connected: [SidecarStatus];
  disconnected: [SidecarStatus, RuleSyncError | undefined];
  ack: [SidecarStatus, ResourceType, string];
  nack: [SidecarStatus, ResourceType, ErrorDetail];
  published: [string, ResourceType, string];
  rejected: [string, RuleSyncError];
  metricSnapshot: [NodeIdentity, MetricSnapshot];
  heartbeat: [NodeIdentity, Heartbeat];
}

interface TypeSnapshot {
  systemVersion: string;
  resources: Map<string, Resource>;
}

const EMPTY_VERSION = systemVersionOf([]);

class Group {
  readonly published = new Map<ResourceType, TypeSnapshot>();
  /** Desired state; edits land here at once and are published after the debounce. */
  readonly staged = new Map<ResourceType, Map<string, Resource>>();
  readonly dirty = new Set<ResourceType>();
  readonly sessions = new Set<Session>();
  quietTimer: NodeJS.Timeout | undefined;
  maxTimer: NodeJS.Timeout | undefined;
  constructor(readonly key: string) {}

  snapshot(type: ResourceType): TypeSnapshot {
    return this.published.get(type) ?? { systemVersion: EMPTY_VERSION, resources: new Map() };
  }

  /** True once the control plane has set this type for the group (possibly to an empty set). */
  isPublished(type: ResourceType): boolean {
    return this.published.has(type);
  }
}

interface RememberedNack {
  /** The version the sidecar kept when it NACKed. */
  heldVersion: string;
  nackedVersion: string;
  error: ErrorDetail;
}

interface InFlight {
  nonce: string;
  systemVersion: string;
  target: Map<string, string>;
  timer: NodeJS.Timeout;
}

interface TypeState {
  held: Map<string, string>;
  heldVersion: string;
  nackedVersion: string | undefined;
  lastError: ErrorDetail | undefined;
  inFlight: InFlight | undefined;
}

type SidecarCall = ServerDuplexStream<SidecarMessage, ControlMessage>;

function statusError(code: status, error: RuleSyncError): { code: status; details: string } {
  return { code, details: `${error.code}: ${error.message}` };
}

/** Parses `subjectaltname` (`URI:spiffe://..., DNS:x`) into URI entries. */
function uriSans(cert: PeerCertificate): string[] {
  const san = cert.subjectaltname;
  if (san === undefined || san === '') return [];
  return san
    .split(/,\s*/)
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

export const SPIFFE_NODE_PREFIX = 'spiffe://httpmesh/node/';

/**
 * Node identity carried by a client certificate: the id in a `spiffe://httpmesh/node/<id>` URI SAN
 * when present (preferred), otherwise the subject CN.
 */
export function certificateNodeIds(cert: PeerCertificate): string[] {
  const spiffe = uriSans(cert)
    .filter((uri) => uri.startsWith(SPIFFE_NODE_PREFIX))
    .map((uri) => decodeURIComponent(uri.slice(SPIFFE_NODE_PREFIX.length)));
  if (spiffe.length > 0) return spiffe;
  const cn = cert.subject?.CN;
  return typeof cn === 'string' && cn !== '' ? [cn] : [];
}

function isLoopbackHost(host: string): boolean {
  if (host === 'localhost') return true;
  const bare = host.startsWith('[') && host.endsWith(']') ? host.slice(1, -1) : host;
  if (isIP(bare) === 4) return bare.startsWith('127.');
  if (isIP(bare) === 6) return bare === '::1';
  return false;
}

function splitHostPort(address: string): string {
  const idx = address.lastIndexOf(':');
  return idx === -1 ? address : address.slice(0, idx);
}

class Session {
  readonly types = new Map<ResourceType, TypeState>();
  readonly queue: ControlMessage[] = [];
  readonly connectedAt = new Date();
  lastMessageAt = new Date();
  lastHeartbeatAt: Date | undefined;
  private blocked = false;
  private stallTimer: NodeJS.Timeout | undefined;
  private nonceCounter = 0;
  closed = false;

  constructor(
    readonly server: RuleSyncServer,
    readonly call: SidecarCall,
    readonly node: NodeIdentity,
    readonly group: Group,
    hello: Hello,
  ) {
    for (const type of new Set(hello.subscriptions)) {
      this.types.set(type, {
        held: new Map(),
        heldVersion: '',
        nackedVersion: undefined,
        lastError: undefined,
        inFlight: undefined,
      });
    }
    // A reconnecting sidecar states what it holds so unchanged resources are not resent.
    for (const held of hello.held) {
      const state = this.types.get(held.type);
      if (state === undefined) continue;
      state.heldVersion = held.systemVersion;
      for (const entry of held.resources) state.held.set(entry.name, entry.version);
    }
    // A NACK outlives the stream: a reconnecting sidecar still holding the same last good version is
    // not sent the version it already rejected.
    for (const [type, nack] of server.rememberedNacks(node.id)) {
      const state = this.types.get(type);
      if (state === undefined || state.heldVersion !== nack.heldVersion) continue;
      state.nackedVersion = nack.nackedVersion;
      state.lastError = nack.error;
    }
  }

  status(): SidecarStatus {
    const types: TypeStatus[] = [];
    for (const [type, state] of this.types) {
      types.push({
        type: resourceTypeName(type),
        ackedVersion: state.heldVersion,
        nackedVersion: state.nackedVersion,
        lastError: state.lastError,
        pendingNonce: state.inFlight?.nonce,
      });
    }
    return {
      node: this.node,
      group: this.group.key,
      peer: this.call.getPeer(),
      connectedAt: this.connectedAt,
      lastMessageAt: this.lastMessageAt,
      lastHeartbeatAt: this.lastHeartbeatAt,
      types,
    };
  }

  /** Sends the delta for `type` unless a push is in flight, the sidecar is current, or it NACKed this version. */
  maybePush(type: ResourceType): void {
    const state = this.types.get(type);
    if (this.closed || state === undefined || state.inFlight !== undefined) return;
    // Never set means "not known yet" (e.g. a control plane still loading): the sidecar keeps what it has.
    if (!this.group.isPublished(type)) return;
    const snapshot = this.group.snapshot(type);
    if (snapshot.systemVersion === state.heldVersion || snapshot.systemVersion === state.nackedVersion)
      return;
    const changed: Resource[] = [];
    const target = new Map<string, string>();
    for (const [name, resource] of snapshot.resources) {
      target.set(name, resource.version);
      if (state.held.get(name) !== resource.version) changed.push(resource);
    }
    const removed: string[] = [];
    for (const name of state.held.keys()) if (!target.has(name)) removed.push(name);
    const nonce = (++this.nonceCounter).toString(36);
    const timer = setTimeout(() => {
      this.fail(
        status.RESOURCE_EXHAUSTED,
        new SlowConsumerError(`no ACK/NACK for push ${nonce} within ${this.server.ackTimeoutMs} ms`),
      );
    }, this.server.ackTimeoutMs);
    timer.unref();
    state.inFlight = { nonce, systemVersion: snapshot.systemVersion, target, timer };
    this.send({
      kind: {
        $case: 'response',
        value: { type, systemVersion: snapshot.systemVersion, nonce, resources: changed, removed },
      },
    });
  }

  pushAll(): void {
    for (const type of this.types.keys()) this.maybePush(type);
  }

  onAck(ack: Ack): void {
    const state = this.types.get(ack.type);
    const inFlight = state?.inFlight;
    if (state === undefined || inFlight === undefined || inFlight.nonce !== ack.responseNonce) {
      const issued = Number.parseInt(ack.responseNonce, 36);
      // An answer to an older push of this stream is stale (superseded), not an error.
      if (state !== undefined && /^[0-9a-z]+$/.test(ack.responseNonce) && issued <= this.nonceCounter) return;
      const error = new UnknownNonceError(
        `ack for ${resourceTypeName(ack.type)} echoes nonce "${ack.responseNonce}" which this stream never issued`,
      );
      this.send({
        kind: {
          $case: 'error',
          value: { detail: { code: error.code, message: error.message, resourceNames: [] } },
        },
      });
      return;
    }
    clearTimeout(inFlight.timer);
    state.inFlight = undefined;
    if (ack.errorDetail === undefined) {
      state.held = inFlight.target;
      state.heldVersion = inFlight.systemVersion;
      state.lastError = undefined;
      this.server.forgetNack(this.node.id, ack.type);
      this.server.emit('ack', this.status(), ack.type, inFlight.systemVersion);
    } else {
      // The sidecar keeps its last good version; this one is not resent until the snapshot changes.
      state.nackedVersion = inFlight.systemVersion;
      state.lastError = ack.errorDetail;
      this.server.rememberNack(this.node.id, ack.type, {
        heldVersion: state.heldVersion,
        nackedVersion: inFlight.systemVersion,
        error: ack.errorDetail,
      });
      this.server.logger.warn(
        `node ${this.node.id} NACKed ${resourceTypeName(ack.type)} ${inFlight.systemVersion}: ${ack.errorDetail.code} ${ack.errorDetail.message}`,
      );
      this.server.emit('nack', this.status(), ack.type, ack.errorDetail);
    }
    this.maybePush(ack.type);
  }

  send(message: ControlMessage): void {
    if (this.closed) return;
    if (this.queue.length >= this.server.maxQueuedMessages) {
      this.fail(
        status.RESOURCE_EXHAUSTED,
        new SlowConsumerError(`outbound queue reached ${this.server.maxQueuedMessages} messages`),
      );
      return;
    }
    this.queue.push(message);
    this.flush();
  }

  private flush(): void {
    while (!this.blocked && !this.closed) {
      const message = this.queue.shift();
      if (message === undefined) return;
      if (!this.call.write(message)) {
        this.blocked = true;
        this.stallTimer = setTimeout(() => {
          this.fail(
            status.RESOURCE_EXHAUSTED,
            new SlowConsumerError(`stream did not drain within ${this.server.writeStallTimeoutMs} ms`),
          );
        }, this.server.writeStallTimeoutMs);
        this.stallTimer.unref();
        this.call.once('drain', () => {
          clearTimeout(this.stallTimer);
          this.blocked = false;
          this.flush();
        });
      }
    }
  }

  fail(code: status, error: RuleSyncError): void {
    if (this.closed) return;
    this.server.logger.warn(`disconnecting node ${this.node.id}: ${error.code} ${error.message}`);
    this.dispose(error);
    this.call.emit('error', statusError(code, error));
  }

  /** Releases timers and registry entries; idempotent. */
  dispose(error: RuleSyncError | undefined): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.stallTimer);
    for (const state of this.types.values()) if (state.inFlight) clearTimeout(state.inFlight.timer);
    this.queue.length = 0;
    this.server.unregister(this, error);
  }
}

/** Control-plane end of rule-sync: snapshot cache per sidecar group, debounced delta fan-out, registry. */
export class RuleSyncServer extends EventEmitter<ServerEvents> {
  readonly logger: RuleSyncLogger;
  readonly maxQueuedMessages: number;
  readonly writeStallTimeoutMs: number;
  readonly ackTimeoutMs: number;
  readonly idleTimeoutMs: number;
  private readonly idleSweep: NodeJS.Timeout;
  private readonly quietMs: number;
  private readonly maxDelayMs: number;
  private readonly groups = new Map<string, Group>();
  private readonly sessionsByNode = new Map<string, Session>();
  /** Last NACK per node and type, kept across reconnects until that node ACKs the type. */
  private readonly nacksByNode = new Map<string, Map<ResourceType, RememberedNack>>();
  private readonly grpcServer: Server;
  private readonly options: RuleSyncServerOptions;
  private readonly groupKeyOf: (node: NodeIdentity) => string;

  constructor(options: RuleSyncServerOptions) {
    super();
    if (options.tls === undefined && options.insecure !== true) {
      throw new TypeError('RuleSyncServer needs `tls` (mTLS) or `insecure: true` for loopback development');
    }
    this.options = options;
    this.logger = options.logger ?? consoleLogger;
    this.maxQueuedMessages = options.maxQueuedMessages ?? 64;
    this.writeStallTimeoutMs = options.writeStallTimeoutMs ?? 15_000;
    this.ackTimeoutMs = options.ackTimeoutMs ?? 30_000;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 60_000;
    this.idleSweep = setInterval(() => this.sweepIdle(), Math.max(10, this.idleTimeoutMs / 4));
    this.idleSweep.unref();
    this.quietMs = options.debounce?.quietMs ?? 100;
    this.maxDelayMs = options.debounce?.maxDelayMs ?? 1_000;
    this.groupKeyOf = options.groupKeyOf ?? ((node) => groupKey(node.service, node.labels));
    this.grpcServer = new Server(options.grpcOptions);
    this.grpcServer.addService(ruleSyncGrpcDefinition, {
      stream: (call: SidecarCall) => this.handleStream(call),
    });
  }

  /** Binds `host:port` (port 0 picks one) and resolves with the bound port. */
  async listen(address: string): Promise<number> {
    let credentials: ServerCredentials;
    if (this.options.tls !== undefined) {
      const tls = this.options.tls;
      credentials = ServerCredentials.createSsl(
        Buffer.from(tls.ca),
        [{ private_key: Buffer.from(tls.key), cert_chain: Buffer.from(tls.cert) }],
        true,
      );
    } else {
      const host = splitHostPort(address);
      if (!isLoopbackHost(host)) {
        throw new InsecureNonLoopbackError(`plaintext refused on non-loopback address ${address}`);
      }
      credentials = ServerCredentials.createInsecure();
    }
    const port = await new Promise<number>((resolve, reject) => {
      this.grpcServer.bindAsync(address, credentials, (err, bound) => (err ? reject(err) : resolve(bound)));
    });
    if (this.options.tls === undefined) {
      this.logger.warn(
        `PLAINTEXT mode on ${splitHostPort(address)}:${port}: no TLS, no client authentication - loopback development only`,
      );
    }
    return port;
  }

  /** Replaces the group's whole resource set (all types). */
  setResources(group: GroupSelector, resources: readonly Resource[]): void {
    const g = this.group(group);
    const next = this.prepare(resources);
    for (const type of KNOWN_RESOURCE_TYPES) {
      g.staged.set(type, next.get(type) ?? new Map());
      g.dirty.add(type);
    }
    this.schedule(g);
  }

  /** Adds or replaces resources by name. */
  upsertResources(group: GroupSelector, resources: readonly Resource[]): void {
    const g = this.group(group);
    for (const [type, byName] of this.prepare(resources)) {
      const staged = g.staged.get(type) ?? new Map<string, Resource>();
      for (const [name, resource] of byName) staged.set(name, resource);
      g.staged.set(type, staged);
      g.dirty.add(type);
    }
    this.schedule(g);
  }

  /** Removes resources of one type by name. */
  removeResources(group: GroupSelector, type: ResourceType, names: readonly string[]): void {
    const g = this.group(group);
    const staged = g.staged.get(type);
    if (staged === undefined) return;
    for (const name of names) staged.delete(name);
    g.dirty.add(type);
    this.schedule(g);
  }

  /** Publishes pending edits of every group now, skipping the debounce. */
  flush(): void {
    for (const g of this.groups.values()) this.publish(g);
  }

  /** The published (pushed) resources of a group and type. */
  resources(group: GroupSelector, type: ResourceType): { systemVersion: string; resources: Resource[] } {
    const snapshot = this.group(group).snapshot(type);
    return { systemVersion: snapshot.systemVersion, resources: [...snapshot.resources.values()] };
  }

  /** Registry of connected sidecars with the versions each ACKed/NACKed. */
  sidecars(): SidecarStatus[] {
    return [...this.sessionsByNode.values()].map((session) => session.status());
  }

  sidecar(nodeId: string): SidecarStatus | undefined {
    return this.sessionsByNode.get(nodeId)?.status();
  }

  /** Ends a sidecar's stream (it reconnects and resyncs); false when it is not connected. */
  disconnect(nodeId: string, reason = 'disconnected by the control plane'): boolean {
    const session = this.sessionsByNode.get(nodeId);
    if (session === undefined) return false;
    session.fail(status.UNAVAILABLE, new SidecarEvictedError(reason));
    return true;
  }

  /** Graceful stop: refuses new streams, ends open ones, and waits up to `graceMs` before forcing. */
  async close(graceMs = 2_000): Promise<void> {
    this.clearTimers();
    for (const session of [...this.sessionsByNode.values()]) {
      session.dispose(undefined);
      session.call.end();
    }
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.grpcServer.forceShutdown();
        resolve();
      }, graceMs);
      this.grpcServer.tryShutdown(() => {
        clearTimeout(timer);
        resolve();
      });
    });
  }

  /** Immediate stop, cutting every stream (what a crash looks like to sidecars). */
  forceClose(): void {
    this.clearTimers();
    for (const session of [...this.sessionsByNode.values()]) session.dispose(undefined);
    this.grpcServer.forceShutdown();
  }

  /** @internal */
  rememberedNacks(nodeId: string): ReadonlyMap<ResourceType, RememberedNack> {
    return this.nacksByNode.get(nodeId) ?? new Map();
  }

  /** @internal */
  rememberNack(nodeId: string, type: ResourceType, nack: RememberedNack): void {
    let byType = this.nacksByNode.get(nodeId);
    if (byType === undefined) {
      byType = new Map();
      this.nacksByNode.set(nodeId, byType);
    }
    byType.set(type, nack);
  }

  /** @internal */
  forgetNack(nodeId: string, type: ResourceType): void {
    const byType = this.nacksByNode.get(nodeId);
    if (byType?.delete(type) && byType.size === 0) this.nacksByNode.delete(nodeId);
  }

  /** @internal */
  unregister(session: Session, error: RuleSyncError | undefined): void {
    session.group.sessions.delete(session);
    if (this.sessionsByNode.get(session.node.id) === session) this.sessionsByNode.delete(session.node.id);
    this.emit('disconnected', session.status(), error);
  }

  /** User callbacks must not take the stream (or the process) down with them. */
  private callback(name: string, fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.logger.error(`${name} callback threw: ${(err as Error).message}`);
    }
  }

  private sweepIdle(): void {
    const cutoff = Date.now() - this.idleTimeoutMs;
    for (const session of [...this.sessionsByNode.values()]) {
      if (session.lastMessageAt.getTime() < cutoff) {
        session.fail(
          status.UNAVAILABLE,
          new PeerSilentError(`no message from the sidecar for ${this.idleTimeoutMs} ms`),
        );
      }
    }
  }

  private clearTimers(): void {
    clearInterval(this.idleSweep);
    for (const g of this.groups.values()) {
      clearTimeout(g.quietTimer);
      clearTimeout(g.maxTimer);
    }
  }

  private group(selector: GroupSelector): Group {
    const key = typeof selector === 'string' ? selector : groupKey(selector.service, selector.labels ?? {});
    let g = this.groups.get(key);
    if (g === undefined) {
      g = new Group(key);
      this.groups.set(key, g);
    }
    return g;
  }

  private prepare(resources: readonly Resource[]): Map<ResourceType, Map<string, Resource>> {
    const byType = new Map<ResourceType, Map<string, Resource>>();
    for (const resource of resources) {
      const type = resourceTypeOf(resource);
      const problem =
        type === undefined ? `resource "${resource.name}" has no body` : checkResource(type, resource);
      if (type === undefined || problem !== undefined) throw new InvalidResourceError(problem ?? 'invalid');
      const byName = byType.get(type) ?? new Map<string, Resource>();
      if (byName.has(resource.name)) {
        throw new InvalidResourceError(`duplicate ${resourceTypeName(type)} name "${resource.name}"`);
      }
      byName.set(resource.name, {
        ...resource,
        version: resource.version === '' ? contentVersion(resource) : resource.version,
      });
      byType.set(type, byName);
    }
    return byType;
  }

  private schedule(g: Group): void {
    clearTimeout(g.quietTimer);
    g.quietTimer = setTimeout(() => this.publish(g), this.quietMs);
    if (g.maxTimer === undefined) g.maxTimer = setTimeout(() => this.publish(g), this.maxDelayMs);
  }

  private publish(g: Group): void {
    clearTimeout(g.quietTimer);
    clearTimeout(g.maxTimer);
    g.quietTimer = undefined;
    g.maxTimer = undefined;
    for (const type of g.dirty) {
      const staged = g.staged.get(type) ?? new Map<string, Resource>();
      const systemVersion = systemVersionOf([...staged].map(([name, r]) => [name, r.version] as const));
      if (g.isPublished(type) && g.snapshot(type).systemVersion === systemVersion) continue;
      g.published.set(type, { systemVersion, resources: new Map(staged) });
      this.emit('published', g.key, type, systemVersion);
      for (const session of g.sessions) session.maybePush(type);
    }
    g.dirty.clear();
  }

  private handleStream(call: SidecarCall): void {
    let session: Session | undefined;
    const reject = (code: status, error: RuleSyncError): void => {
      this.logger.warn(`rejected stream from ${call.getPeer()}: ${error.code} ${error.message}`);
      this.emit('rejected', call.getPeer(), error);
      if (session) session.fail(code, error);
      else call.emit('error', statusError(code, error));
    };
    call.on('data', (message: SidecarMessage) => {
      if (session?.closed) return;
      const kind = message.kind;
      if (session === undefined) {
        if (kind?.$case !== 'hello') {
          reject(
            status.INVALID_ARGUMENT,
            new InvalidHelloError(`first message must be a hello, got ${kind?.$case ?? 'an empty message'}`),
          );
          return;
        }
        session = this.accept(call, kind.value, reject);
        return;
      }
      const current = session;
      current.lastMessageAt = new Date();
      switch (kind?.$case) {
        case 'ack':
          session.onAck(kind.value);
          return;
        case 'heartbeat':
          session.lastHeartbeatAt = session.lastMessageAt;
          session.send({ kind: { $case: 'heartbeat', value: kind.value } });
          this.callback('onHeartbeat', () => {
            this.options.onHeartbeat?.(current.node, kind.value);
            this.emit('heartbeat', current.node, kind.value);
          });
          return;
        case 'metricSnapshot':
          this.callback('onMetricSnapshot', () => {
            this.options.onMetricSnapshot?.(current.node, kind.value);
            this.emit('metricSnapshot', current.node, kind.value);
          });
          return;
        case 'hello':
          reject(status.INVALID_ARGUMENT, new ProtocolViolationError('hello sent twice on one stream'));
          return;
        default:
          reject(status.INVALID_ARGUMENT, new ProtocolViolationError('empty or unknown sidecar message'));
      }
    });
    call.on('end', () => {
      session?.dispose(undefined);
      call.end();
    });
    call.on('error', () => session?.dispose(undefined));
    call.on('cancelled', () => session?.dispose(undefined));
  }

  private accept(
    call: SidecarCall,
    hello: Hello,
    reject: (code: status, error: RuleSyncError) => void,
  ): Session | undefined {
    const node: Node | undefined = hello.node;
    if (node === undefined || node.id === '') {
      reject(status.INVALID_ARGUMENT, new InvalidHelloError('hello has no node id'));
      return undefined;
    }
    if (node.service === '') {
      reject(
        status.INVALID_ARGUMENT,
        new InvalidHelloError(`hello from node ${node.id} has no service name`),
      );
      return undefined;
    }
    if (hello.subscriptions.length === 0) {
      reject(
        status.INVALID_ARGUMENT,
        new InvalidHelloError(`hello from node ${node.id} subscribes to nothing`),
      );
      return undefined;
    }
    const unknown = hello.subscriptions.filter((type) => !isKnownResourceType(type));
    if (unknown.length > 0) {
      reject(
        status.INVALID_ARGUMENT,
        new InvalidHelloError(`hello from node ${node.id} subscribes to unknown types ${unknown.join(',')}`),
      );
      return undefined;
    }
    if (this.options.tls !== undefined) {
      const cert = call.getAuthContext().sslPeerCertificate;
      const ids = cert === undefined ? [] : certificateNodeIds(cert);
      if (!ids.includes(node.id)) {
        reject(
          status.PERMISSION_DENIED,
          new IdentityMismatchError(
            `hello claims node "${node.id}" but the client certificate identifies ${ids.length ? ids.map((id) => `"${id}"`).join(', ') : 'no node'}`,
          ),
        );
        return undefined;
      }
    }
    const identity: NodeIdentity = {
      id: node.id,
      service: node.service,
      labels: { ...node.labels },
      version: node.version,
    };
    const g = this.group(this.groupKeyOf(identity));
    const previous = this.sessionsByNode.get(node.id);
    if (previous) {
      // A reconnect can arrive before the old stream is noticed dead; the newest stream wins.
      previous.fail(
        status.ABORTED,
        new SidecarEvictedError(`superseded by a newer stream from node ${node.id}`),
      );
    }
    const session = new Session(this, call, identity, g, hello);
    g.sessions.add(session);
    this.sessionsByNode.set(node.id, session);
    this.emit('connected', session.status());
    session.pushAll();
    return session;
  }
}

/** Creates a rule-sync server; call `listen()` to bind it. */
export function createRuleSyncServer(options: RuleSyncServerOptions): RuleSyncServer {
  return new RuleSyncServer(options);
}
