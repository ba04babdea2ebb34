import { performance } from 'node:perf_hooks';
import {
  type ClientDuplexStream,
  credentials,
  Metadata,
  type ServiceError,
  status as GrpcStatus,
} from '@grpc/grpc-js';
import {
  PluginBodyTooLargeError,
  PluginError,
  PluginExchangeStateError,
  PluginHandlerError,
  PluginHandshakeError,
  PluginReplyBodyTooLargeError,
  PluginReplyInvalidHeaderError,
  PluginReplyInvalidStatusError,
  PluginReplyMalformedError,
  PluginReplyWrongPhaseError,
  PluginTimeoutError,
  PluginUnavailableError,
} from './errors.js';
import {
  type Header,
  type HandshakeResponse,
  PluginClient as GrpcPluginClient,
  type ProcessingRequest,
  type ProcessingResponse,
} from './gen/plugin.js';
import { PluginMetrics } from './metrics.js';
import {
  type BodyModeName,
  bodyModeFromWire,
  type HeaderList,
  isBodyPhase,
  isForbiddenHeader,
  isHeaderPhase,
  isValidHeaderName,
  isValidHeaderValue,
  type PhaseName,
  phaseFromWire,
  PROTOCOL_VERSION,
} from './protocol.js';

export type FailureMode = 'open' | 'closed';

/** Header changes in the order the host applies them: remove, set, append. */
export interface HeaderMutation {
  readonly set: HeaderList;
  readonly append: HeaderList;
  readonly remove: readonly string[];
}

/** Forward unchanged. `failure` is set when this is the result of a fail-open plugin failure. */
export interface ContinueDecision {
  readonly kind: 'continue';
  readonly failure?: PluginError;
}

/** Forward with changed headers (headers/trailers phases) or a replaced body (body phases). */
export interface MutateDecision {
  readonly kind: 'mutate';
  readonly headers?: HeaderMutation;
  readonly body?: Buffer;
}

/** Short-circuit: answer the client with this response. `failure` is set for fail-closed 503s. */
export interface RespondDecision {
  readonly kind: 'respond';
  readonly status: number;
  readonly headers: HeaderList;
  readonly body: Buffer;
  readonly failure?: PluginError;
}

/** What the host does with a message after the plugin (or its failure mode) decided. */
export type Decision = ContinueDecision | MutateDecision | RespondDecision;

export const CONTINUE: ContinueDecision = Object.freeze({ kind: 'continue' });
const CONTINUE_PROMISE: Promise<Decision> = Promise.resolve(CONTINUE);

/** Header carrying the failing plugin's error code on fail-closed 503 responses. */
export const ERROR_HEADER = 'x-httpmesh-error';

export interface RequestHead {
  readonly method: string;
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
  readonly headers: HeaderList;
  /** True when the request has no body. */
  readonly endOfStream?: boolean;
}

export interface ResponseHead {
  readonly status: number;
  readonly headers: HeaderList;
  readonly endOfStream?: boolean;
}

export interface ExchangeTimings {
  readonly status: number;
  readonly totalMs: number;
  readonly upstreamMs?: number;
  readonly requestBodyBytes?: number;
  readonly responseBodyBytes?: number;
  /** Host error code if the exchange failed. */
  readonly error?: string;
}

export interface BodyDelivery {
  readonly mode: BodyModeName;
  readonly maxBytes: number;
}

/** What the plugin declared at handshake. */
export interface PluginInfo {
  readonly name: string;
  readonly version: string;
  readonly protocolVersion: number;
  readonly observeOnly: boolean;
  readonly phases: ReadonlyMap<PhaseName, BodyDelivery>;
}

export interface ExchangePolicy {
  /** Per-message timeout in ms (default 200). */
  readonly timeoutMs?: number;
  readonly failureMode?: FailureMode;
}

export interface PluginClientOptions extends ExchangePolicy {
  /** Label used in errors and metrics before the handshake names the plugin. */
  readonly name?: string;
  /** Largest body a plugin may put in a reply (default 1 MiB). */
  readonly maxReplyBodyBytes?: number;
  /** BUFFERED limit when the plugin declared 0 (default 1 MiB). */
  readonly defaultMaxBodyBytes?: number;
  /** How long to wait for the plugin to come up and answer the handshake (default 2000 ms). */
  readonly handshakeTimeoutMs?: number;
  /** Shared metrics object, so counts survive restarts and upgrades. */
  readonly metrics?: PluginMetrics;
  /** Called on every plugin failure (after the failure mode was applied). */
  readonly onFailure?: (error: PluginError) => void;
}

const MIB = 1024 * 1024;
const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

// Wait for the socket to appear instead of failing fast: the plugin may still be starting.
function waitForReadyMetadata(): Metadata {
  const md = new Metadata();
  md.setOptions({ waitForReady: true });
  return md;
}

/** Accepts `unix:/path`, `/path` (a Unix socket) or `host:port`. */
function toTarget(address: string): string {
  return address.startsWith('/') ? `unix:${address}` : address;
}

function headersToWire(headers: HeaderList): Header[] {
  const out: Header[] = new Array(headers.length);
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i] as readonly [string, string];
    out[i] = { name: h[0], value: h[1] };
  }
  return out;
}

/** Applies a mutation to a header list (remove, then set, then append) and returns the new list. */
export function applyHeaderMutation(headers: HeaderList, mutation: HeaderMutation): HeaderList {
  const drop = new Set<string>(mutation.remove);
  for (const [name] of mutation.set) drop.add(name);
  const out: Array<readonly [string, string]> = [];
  for (const h of headers) if (!drop.has(h[0].toLowerCase())) out.push(h);
  for (const h of mutation.set) out.push(h);
  for (const h of mutation.append) out.push(h);
  return out;
}

function validateHeaders(plugin: string, headers: readonly Header[]): HeaderList | PluginError {
  const out: Array<readonly [string, string]> = new Array(headers.length);
  for (let i = 0; i < headers.length; i++) {
    const h = headers[i] as Header;
    if (!isValidHeaderName(h.name))
      return new PluginReplyInvalidHeaderError(plugin, `name ${JSON.stringify(h.name)}`);
    if (!isValidHeaderValue(h.value)) {
      return new PluginReplyInvalidHeaderError(
        plugin,
        `value of ${h.name} contains CR, LF, NUL or non-Latin-1`,
      );
    }
    const name = h.name.toLowerCase();
    if (isForbiddenHeader(name))
      return new PluginReplyInvalidHeaderError(plugin, `${name} is owned by the proxy`);
    out[i] = [name, h.value];
  }
  return out;
}

/** Checks a reply against the pending phase and the host's limits; returns the decision or the failure. */
export function validateReply(
  plugin: string,
  phase: PhaseName,
  reply: ProcessingResponse,
  maxReplyBodyBytes: number,
): Decision | PluginError {
  const got = phaseFromWire(reply.phase);
  if (got !== phase) return new PluginReplyWrongPhaseError(plugin, phase, got ?? `#${reply.phase}`);
  const action = reply.action;
  if (action === undefined) return new PluginReplyMalformedError(plugin, 'reply carries no action');
  switch (action.$case) {
    case 'proceed':
      return CONTINUE;
    case 'failure':
      return new PluginHandlerError(plugin, action.value.message);
    case 'immediate': {
      const r = action.value;
      if (!Number.isInteger(r.status) || r.status < 200 || r.status > 599) {
        return new PluginReplyInvalidStatusError(plugin, r.status);
      }
      const headers = validateHeaders(plugin, r.headers);
      if (headers instanceof PluginError) return headers;
      if (r.body.length > maxReplyBodyBytes) {
        return new PluginReplyBodyTooLargeError(plugin, r.body.length, maxReplyBodyBytes);
      }
      return { kind: 'respond', status: r.status, headers, body: r.body };
    }
    case 'mutate': {
      const m = action.value;
      if (m.headers === undefined && m.body === undefined) {
        return new PluginReplyMalformedError(plugin, 'mutation changes nothing');
      }
      let headers: HeaderMutation | undefined;
      if (m.headers !== undefined) {
        if (!isHeaderPhase(phase))
          return new PluginReplyMalformedError(plugin, `header mutation in phase ${phase}`);
        const set = validateHeaders(plugin, m.headers.set);
        if (set instanceof PluginError) return set;
        const append = validateHeaders(plugin, m.headers.append);
        if (append instanceof PluginError) return append;
        const remove: string[] = [];
        for (const name of m.headers.remove) {
          if (!isValidHeaderName(name))
            return new PluginReplyInvalidHeaderError(plugin, `name ${JSON.stringify(name)}`);
          const lower = name.toLowerCase();
          if (isForbiddenHeader(lower))
            return new PluginReplyInvalidHeaderError(plugin, `${lower} is owned by the proxy`);
          remove.push(lower);
        }
        headers = { set, append, remove };
      }
      if (m.body !== undefined) {
        if (!isBodyPhase(phase))
          return new PluginReplyMalformedError(plugin, `body replacement in phase ${phase}`);
        if (m.body.length > maxReplyBodyBytes) {
          return new PluginReplyBodyTooLargeError(plugin, m.body.length, maxReplyBodyBytes);
        }
      }
      if (headers !== undefined && m.body !== undefined) return { kind: 'mutate', headers, body: m.body };
      if (headers !== undefined) return { kind: 'mutate', headers };
      return { kind: 'mutate', body: m.body as Buffer };
    }
  }
}

function validateHandshake(label: string, res: HandshakeResponse, defaultMaxBody: number): PluginInfo {
  if (res.protocolVersion !== PROTOCOL_VERSION) {
    throw new PluginHandshakeError(
      label,
      `protocol version ${res.protocolVersion}, host speaks ${PROTOCOL_VERSION}`,
    );
  }
  if (!NAME_RE.test(res.name))
    throw new PluginHandshakeError(label, `invalid plugin name ${JSON.stringify(res.name)}`);
  const phases = new Map<PhaseName, BodyDelivery>();
  for (const sub of res.phases) {
    const phase = phaseFromWire(sub.phase);
    const mode = bodyModeFromWire(sub.bodyMode);
    if (phase === undefined) throw new PluginHandshakeError(res.name, `unknown phase #${sub.phase}`);
    if (mode === undefined) throw new PluginHandshakeError(res.name, `unknown body mode #${sub.bodyMode}`);
    if (phases.has(phase)) throw new PluginHandshakeError(res.name, `phase ${phase} declared twice`);
    // A body phase with mode NONE means "send nothing", so it is not a subscription at all.
    if (isBodyPhase(phase) && mode === 'none') continue;
    phases.set(phase, { mode, maxBytes: sub.maxBodyBytes || defaultMaxBody });
  }
  return {
    name: res.name,
    version: res.version,
    protocolVersion: res.protocolVersion,
    observeOnly: res.observeOnly,
    phases,
  };
}

/** Fail-open: continue (carrying the error); fail-closed: 503 with `x-httpmesh-error: <code>`. */
export function failureDecision(
  error: PluginError,
  failureMode: FailureMode,
): ContinueDecision | RespondDecision {
  if (failureMode === 'open') return { kind: 'continue', failure: error };
  return {
    kind: 'respond',
    status: 503,
    headers: [
      [ERROR_HEADER, error.code],
      ['content-type', 'text/plain; charset=utf-8'],
    ],
    body: Buffer.from(`${error.message}\n`),
    failure: error,
  };
}

interface Pending {
  readonly exchange: PluginExchange;
  readonly phase: PhaseName;
  readonly started: number;
  readonly stream: ClientDuplexStream<ProcessingRequest, ProcessingResponse>;
  readonly failureMode: FailureMode;
  readonly timer: NodeJS.Timeout;
  readonly resolve: (d: Decision) => void;
}

/**
 * Host-side connection to one plugin: handshake, one multiplexed Process stream, per-message
 * timeouts, reply validation and the failure mode. Never rejects a phase call: every failure
 * becomes a decision (continue for fail-open, 503 for fail-closed).
 */
export class PluginClient {
  readonly info: PluginInfo;
  readonly metrics: PluginMetrics;
  readonly address: string;
  private readonly grpc: InstanceType<typeof GrpcPluginClient>;
  private readonly timeoutMs: number;
  private readonly failureMode: FailureMode;
  private readonly maxReplyBodyBytes: number;
  private readonly onFailure: ((error: PluginError) => void) | undefined;
  private stream: ClientDuplexStream<ProcessingRequest, ProcessingResponse> | undefined;
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private open = 0;
  private closed = false;
  private drainWaiters: Array<() => void> = [];
  /** Replies that arrived after their message timed out. */
  lateReplies = 0;

  private constructor(
    address: string,
    grpc: InstanceType<typeof GrpcPluginClient>,
    info: PluginInfo,
    options: PluginClientOptions,
  ) {
    this.address = address;
    this.grpc = grpc;
    this.info = info;
    this.metrics = options.metrics ?? new PluginMetrics(info.name);
    this.timeoutMs = options.timeoutMs ?? 200;
    this.failureMode = options.failureMode ?? 'open';
    this.maxReplyBodyBytes = options.maxReplyBodyBytes ?? MIB;
    this.onFailure = options.onFailure;
  }

  /** Connects, performs the handshake and validates what the plugin declared. */
  static async connect(address: string, options: PluginClientOptions = {}): Promise<PluginClient> {
    const label = options.name ?? address;
    const grpc = new GrpcPluginClient(toTarget(address), credentials.createInsecure(), {
      // Body limits are enforced per reply by validateReply; a transport-level rejection would
      // kill the shared stream for every exchange, so the transport limit is generous.
      'grpc.max_receive_message_length': 64 * MIB,
      'grpc.max_send_message_length': 64 * MIB,
      'grpc.initial_reconnect_backoff_ms': 50,
      'grpc.max_reconnect_backoff_ms': 1000,
    });
    const deadline = Date.now() + (options.handshakeTimeoutMs ?? 2000);
    let res: HandshakeResponse;
    try {
      res = await new Promise<HandshakeResponse>((resolve, reject) => {
        grpc.handshake(
          { protocolVersion: PROTOCOL_VERSION, hostName: 'httpmesh-sidecar', hostVersion: '0.1.0' },
          waitForReadyMetadata(),
          { deadline },
          (err: ServiceError | null, r?: HandshakeResponse) => (err || !r ? reject(err) : resolve(r)),
        );
      });
    } catch (err) {
      grpc.close();
      throw new PluginHandshakeError(label, (err as Error).message, { cause: err });
    }
    let info: PluginInfo;
    try {
      info = validateHandshake(label, res, options.defaultMaxBodyBytes ?? MIB);
    } catch (err) {
      grpc.close();
      throw err;
    }
    return new PluginClient(address, grpc, info, options);
  }

  get name(): string {
    return this.info.name;
  }

  /** Exchanges started and not yet completed or closed. */
  get inFlight(): number {
    return this.open;
  }

  wants(phase: PhaseName): boolean {
    return this.info.phases.has(phase);
  }

  bodyDelivery(phase: 'requestBody' | 'responseBody'): BodyDelivery | undefined {
    return this.info.phases.get(phase);
  }

  startExchange(policy?: ExchangePolicy): PluginExchange {
    this.open++;
    const id = this.nextId;
    this.nextId = id === 0xffffffff ? 1 : id + 1;
    return new PluginExchange(
      this,
      id,
      policy?.timeoutMs ?? this.timeoutMs,
      policy?.failureMode ?? this.failureMode,
    );
  }

  /** Resolves true once no exchange is in flight, or false after `timeoutMs`. */
  drained(timeoutMs = 30_000): Promise<boolean> {
    if (this.open === 0) return Promise.resolve(true);
    return new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), timeoutMs);
      this.drainWaiters.push(() => {
        clearTimeout(timer);
        resolve(true);
      });
    });
  }

  /** One Health RPC; false on error, timeout or `serving: false`. */
  health(timeoutMs = 500): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      this.grpc.health({}, new Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) =>
        resolve(!err && res?.serving === true),
      );
    });
  }

  /** Ends the stream and the channel; pending messages resolve through the failure mode. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      this.failPending(s, new PluginUnavailableError(this.info.name, 'client closed'));
      s.end();
    }
    this.grpc.close();
  }

  /** @internal */
  exchangeFinished(): void {
    this.open--;
    if (this.open === 0 && this.drainWaiters.length > 0) {
      const waiters = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of waiters) w();
    }
  }

  /** @internal A plugin failure turned into a decision by the failure mode. */
  fail(error: PluginError, failureMode: FailureMode): Decision {
    this.metrics.recordError(error.code);
    this.onFailure?.(error);
    return failureDecision(error, failureMode);
  }

  /** @internal Sends one message; resolves with the validated decision or the failure-mode decision. */
  send(exchange: PluginExchange, phase: PhaseName, request: ProcessingRequest): Promise<Decision> {
    if (this.closed) {
      return Promise.resolve(
        this.fail(new PluginUnavailableError(this.info.name, 'client closed'), exchange.failureMode),
      );
    }
    const stream = this.ensureStream();
    if (this.info.observeOnly || phase === 'complete') {
      this.metrics.observed++;
      stream.write(request);
      return CONTINUE_PROMISE;
    }
    this.metrics.requests++;
    return new Promise<Decision>((resolve) => {
      const timer = setTimeout(this.onTimeout, exchange.timeoutMs, this, exchange.id);
      this.pending.set(exchange.id, {
        exchange,
        phase,
        started: performance.now(),
        stream,
        failureMode: exchange.failureMode,
        timer,
        resolve,
      });
      stream.write(request);
    });
  }

  private readonly onTimeout = (self: PluginClient, id: number): void => {
    const p = self.pending.get(id);
    if (!p) return;
    self.pending.delete(id);
    p.exchange.busy = false;
    p.resolve(self.fail(new PluginTimeoutError(self.info.name, p.exchange.timeoutMs), p.failureMode));
  };

  private ensureStream(): ClientDuplexStream<ProcessingRequest, ProcessingResponse> {
    if (this.stream) return this.stream;
    const s = this.grpc.process();
    s.on('data', (reply: ProcessingResponse) => this.onReply(reply));
    s.on('error', (err: ServiceError) => this.onStreamDown(s, err));
    s.on('end', () => this.onStreamDown(s, undefined));
    this.stream = s;
    return s;
  }

  private onReply(reply: ProcessingResponse): void {
    const p = this.pending.get(reply.exchangeId);
    if (!p) {
      this.lateReplies++;
      return;
    }
    this.pending.delete(reply.exchangeId);
    clearTimeout(p.timer);
    this.metrics.recordLatency(performance.now() - p.started);
    p.exchange.busy = false;
    const result = validateReply(this.info.name, p.phase, reply, this.maxReplyBodyBytes);
    p.resolve(result instanceof PluginError ? this.fail(result, p.failureMode) : result);
  }

  private onStreamDown(
    s: ClientDuplexStream<ProcessingRequest, ProcessingResponse>,
    err: ServiceError | undefined,
  ): void {
    if (this.stream === s) this.stream = undefined;
    let error: PluginError;
    if (err && err.code === GrpcStatus.INTERNAL && /pars/i.test(err.details)) {
      // grpc-js reports an undecodable reply as INTERNAL "Response message parsing error".
      error = new PluginReplyMalformedError(this.info.name, `undecodable message (${err.details})`);
    } else {
      error = new PluginUnavailableError(this.info.name, err ? err.details || err.message : 'stream ended', {
        cause: err,
      });
    }
    this.failPending(s, error);
  }

  private failPending(
    s: ClientDuplexStream<ProcessingRequest, ProcessingResponse>,
    error: PluginError,
  ): void {
    for (const [id, p] of this.pending) {
      if (p.stream !== s) continue;
      this.pending.delete(id);
      clearTimeout(p.timer);
      p.exchange.busy = false;
      p.resolve(this.fail(error, p.failureMode));
    }
  }
}

/**
 * One HTTP exchange as seen by one plugin. Call the phase methods in order, at most one pending
 * at a time, then `complete()` (or `close()` if the exchange is abandoned).
 */
export class PluginExchange {
  readonly id: number;
  readonly timeoutMs: number;
  readonly failureMode: FailureMode;
  /** @internal */
  busy = false;
  private done = false;
  private readonly client: PluginClient;
  private requestBody: Buffer[] | undefined;
  private responseBody: Buffer[] | undefined;
  private requestBodySize = 0;
  private responseBodySize = 0;
  private requestOverflow: Decision | undefined;
  private responseOverflow: Decision | undefined;

  /** @internal */
  constructor(client: PluginClient, id: number, timeoutMs: number, failureMode: FailureMode) {
    this.client = client;
    this.id = id;
    this.timeoutMs = timeoutMs;
    this.failureMode = failureMode;
  }

  onRequestHeaders(head: RequestHead): Promise<Decision> {
    if (!this.client.wants('requestHeaders')) return this.check() ?? CONTINUE_PROMISE;
    return this.dispatch('requestHeaders', {
      exchangeId: this.id,
      message: {
        $case: 'requestHeaders',
        value: {
          method: head.method,
          scheme: head.scheme,
          authority: head.authority,
          path: head.path,
          headers: headersToWire(head.headers),
          endOfStream: head.endOfStream === true,
        },
      },
    });
  }

  onResponseHeaders(head: ResponseHead): Promise<Decision> {
    if (!this.client.wants('responseHeaders')) return this.check() ?? CONTINUE_PROMISE;
    return this.dispatch('responseHeaders', {
      exchangeId: this.id,
      message: {
        $case: 'responseHeaders',
        value: {
          status: head.status,
          headers: headersToWire(head.headers),
          endOfStream: head.endOfStream === true,
        },
      },
    });
  }

  /**
   * A request body chunk. In BUFFERED mode chunks are collected and sent once `endOfStream` is
   * true; earlier calls resolve `continue` and the host must hold those chunks until the final
   * decision (which may replace the whole body).
   */
  onRequestBody(chunk: Uint8Array, endOfStream: boolean): Promise<Decision> {
    return this.body('requestBody', chunk, endOfStream);
  }

  onResponseBody(chunk: Uint8Array, endOfStream: boolean): Promise<Decision> {
    return this.body('responseBody', chunk, endOfStream);
  }

  onRequestTrailers(trailers: HeaderList): Promise<Decision> {
    if (!this.client.wants('requestTrailers')) return this.check() ?? CONTINUE_PROMISE;
    return this.dispatch('requestTrailers', {
      exchangeId: this.id,
      message: { $case: 'requestTrailers', value: { trailers: headersToWire(trailers) } },
    });
  }

  onResponseTrailers(trailers: HeaderList): Promise<Decision> {
    if (!this.client.wants('responseTrailers')) return this.check() ?? CONTINUE_PROMISE;
    return this.dispatch('responseTrailers', {
      exchangeId: this.id,
      message: { $case: 'responseTrailers', value: { trailers: headersToWire(trailers) } },
    });
  }

  /** Sends the completion event (fire-and-forget) and ends the exchange. */
  complete(timings: ExchangeTimings): void {
    if (this.done) return;
    if (this.client.wants('complete') && !this.busy) {
      void this.client.send(this, 'complete', {
        exchangeId: this.id,
        message: {
          $case: 'complete',
          value: {
            status: timings.status,
            totalMs: timings.totalMs,
            upstreamMs: timings.upstreamMs ?? 0,
            requestBodyBytes: timings.requestBodyBytes ?? 0,
            responseBodyBytes: timings.responseBodyBytes ?? 0,
            error: timings.error ?? '',
          },
        },
      });
    }
    this.close();
  }

  /** Ends the exchange without a completion event. */
  close(): void {
    if (this.done) return;
    this.done = true;
    this.requestBody = undefined;
    this.responseBody = undefined;
    this.client.exchangeFinished();
  }

  private check(): Promise<Decision> | undefined {
    if (this.done)
      return Promise.reject(new PluginExchangeStateError(this.client.name, 'exchange already ended'));
    if (this.busy) {
      return Promise.reject(new PluginExchangeStateError(this.client.name, 'a message is already pending'));
    }
    return undefined;
  }

  private dispatch(phase: PhaseName, request: ProcessingRequest): Promise<Decision> {
    const bad = this.check();
    if (bad) return bad;
    if (!this.client.info.observeOnly) this.busy = true;
    return this.client.send(this, phase, request);
  }

  private body(
    phase: 'requestBody' | 'responseBody',
    chunk: Uint8Array,
    endOfStream: boolean,
  ): Promise<Decision> {
    const delivery = this.client.bodyDelivery(phase);
    if (delivery === undefined) return this.check() ?? CONTINUE_PROMISE;
    const buf = Buffer.isBuffer(chunk)
      ? chunk
      : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (delivery.mode === 'buffered') {
      const bad = this.check();
      if (bad) return bad;
      const isRequest = phase === 'requestBody';
      // Once over the limit, every later chunk of that body gets the same decision: the plugin
      // must never see (or approve) a truncated body.
      const overflow = isRequest ? this.requestOverflow : this.responseOverflow;
      if (overflow) return Promise.resolve(overflow);
      const size = (isRequest ? this.requestBodySize : this.responseBodySize) + buf.length;
      if (size > delivery.maxBytes) {
        const d = this.client.fail(
          new PluginBodyTooLargeError(this.client.name, size, delivery.maxBytes),
          this.failureMode,
        );
        if (isRequest) {
          this.requestOverflow = d;
          this.requestBody = undefined;
        } else {
          this.responseOverflow = d;
          this.responseBody = undefined;
        }
        return Promise.resolve(d);
      }
      let parts = isRequest ? this.requestBody : this.responseBody;
      if (parts === undefined) {
        parts = [];
        if (isRequest) this.requestBody = parts;
        else this.responseBody = parts;
      }
      parts.push(buf);
      if (isRequest) this.requestBodySize = size;
      else this.responseBodySize = size;
      if (!endOfStream) return CONTINUE_PROMISE;
      const whole = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts, size);
      parts.length = 0;
      return this.dispatch(phase, {
        exchangeId: this.id,
        message: { $case: phase, value: { chunk: whole, endOfStream: true } },
      });
    }
    return this.dispatch(phase, {
      exchangeId: this.id,
      message: { $case: phase, value: { chunk: buf, endOfStream } },
    });
  }
}
