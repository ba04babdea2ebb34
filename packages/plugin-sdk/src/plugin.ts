import { chmod, rm } from 'node:fs/promises';
import { Server, ServerCredentials, type ServerDuplexStream } from '@grpc/grpc-js';
import { PluginConfigError } from './errors.js';
import {
  type Header,
  type HeaderMutation as WireHeaderMutation,
  PluginService,
  type PhaseSubscription,
  type ProcessingRequest,
  type ProcessingResponse,
} from './gen/plugin.js';
import {
  BODY_MODE_TO_WIRE,
  type BodyModeName,
  type HeaderList,
  isBodyPhase,
  PHASE_NAMES,
  PHASE_TO_WIRE,
  type PhaseName,
  PROTOCOL_VERSION,
} from './protocol.js';

/** Headers as a plain record (single value per name) or a list of pairs (repeats allowed). */
export type HeaderInit = Readonly<Record<string, string>> | HeaderList;

/** What a handler returns. Nothing (or `{}`) means continue unchanged. */
export interface PluginReply {
  /** Replace every value of each header. */
  readonly set?: HeaderInit;
  /** Add values, keeping existing ones. */
  readonly append?: HeaderInit;
  /** Remove every value of these headers. */
  readonly remove?: readonly string[];
  /** Body phases only: replacement body (whole body when BUFFERED, this chunk when STREAMED). */
  readonly body?: string | Uint8Array;
  /** Short-circuit the exchange with this response. */
  readonly respond?: {
    readonly status: number;
    readonly headers?: HeaderInit;
    readonly body?: string | Uint8Array;
  };
}

type MaybePromise<T> = T | Promise<T>;
// `void` lets handlers that change nothing simply not return.
// biome-ignore lint/suspicious/noConfusingVoidType: handler return type, see above
type HandlerReturn = PluginReply | undefined | void;
type HandlerResult = MaybePromise<HandlerReturn>;

interface BaseContext {
  readonly exchangeId: number;
  /** First value of a header (name lower-case), if present. */
  header(name: string): string | undefined;
}

export interface RequestHeadersContext extends BaseContext {
  readonly method: string;
  readonly scheme: string;
  readonly authority: string;
  readonly path: string;
  readonly headers: HeaderList;
  readonly endOfStream: boolean;
}

export interface ResponseHeadersContext extends BaseContext {
  readonly status: number;
  readonly headers: HeaderList;
  readonly endOfStream: boolean;
}

export interface BodyContext {
  readonly exchangeId: number;
  readonly body: Buffer;
  readonly endOfStream: boolean;
}

export interface TrailersContext extends BaseContext {
  readonly headers: HeaderList;
}

export interface CompleteContext {
  readonly exchangeId: number;
  readonly status: number;
  readonly totalMs: number;
  readonly upstreamMs: number;
  readonly requestBodyBytes: number;
  readonly responseBodyBytes: number;
  readonly error: string;
}

export interface BodyModeSpec {
  readonly mode: BodyModeName;
  /** BUFFERED: largest body to receive; the host default applies when omitted. */
  readonly maxBytes?: number;
}

export interface PluginDefinition {
  readonly name: string;
  readonly version?: string;
  /** Phases to receive; defaults to the phases that have a handler. */
  readonly phases?: readonly PhaseName[];
  /** Body delivery per direction; defaults to BUFFERED with the host's limit. */
  readonly requestBody?: BodyModeSpec;
  readonly responseBody?: BodyModeSpec;
  /** Watch only: replies are never sent and the host never waits. */
  readonly observeOnly?: boolean;
  onRequestHeaders?(ctx: RequestHeadersContext): HandlerResult;
  onRequestBody?(ctx: BodyContext): HandlerResult;
  onRequestTrailers?(ctx: TrailersContext): HandlerResult;
  onResponseHeaders?(ctx: ResponseHeadersContext): HandlerResult;
  onResponseBody?(ctx: BodyContext): HandlerResult;
  onResponseTrailers?(ctx: TrailersContext): HandlerResult;
  onComplete?(ctx: CompleteContext): MaybePromise<void>;
}

export interface ServeOptions {
  /** Unix socket path; defaults to $HTTPMESH_PLUGIN_SOCKET. Created with mode 0600. */
  readonly socket?: string;
  /** TCP port on 127.0.0.1 (0 = any); defaults to $HTTPMESH_PLUGIN_PORT. */
  readonly port?: number;
  /** Shut down gracefully on SIGTERM/SIGINT (default true). */
  readonly handleSignals?: boolean;
}

export interface ServingPlugin {
  /** gRPC target the host connects to (`unix:/path` or `127.0.0.1:port`). */
  readonly address: string;
  readonly port: number | undefined;
  /** Stops accepting streams, lets open ones end, then closes. */
  close(): Promise<void>;
}

export interface DefinedPlugin {
  readonly definition: PluginDefinition;
  readonly subscriptions: readonly PhaseSubscription[];
  serve(options?: ServeOptions): Promise<ServingPlugin>;
}

const HANDLER_BY_PHASE: Readonly<Record<PhaseName, keyof PluginDefinition>> = {
  requestHeaders: 'onRequestHeaders',
  requestBody: 'onRequestBody',
  requestTrailers: 'onRequestTrailers',
  responseHeaders: 'onResponseHeaders',
  responseBody: 'onResponseBody',
  responseTrailers: 'onResponseTrailers',
  complete: 'onComplete',
};

const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/;

/** Declares a plugin; call `.serve()` on the result to run it. */
export function definePlugin(definition: PluginDefinition): DefinedPlugin {
  if (typeof definition.name !== 'string' || !NAME_RE.test(definition.name)) {
    throw new PluginConfigError(
      `plugin name must match ${NAME_RE.source}, got ${JSON.stringify(definition.name)}`,
    );
  }
  const phases =
    definition.phases ?? PHASE_NAMES.filter((p) => typeof definition[HANDLER_BY_PHASE[p]] === 'function');
  const subscriptions: PhaseSubscription[] = [];
  for (const phase of phases) {
    if (!PHASE_NAMES.includes(phase))
      throw new PluginConfigError(`unknown phase ${String(phase)}`, definition.name);
    let mode: BodyModeSpec = { mode: 'none' };
    if (isBodyPhase(phase)) {
      mode = (phase === 'requestBody' ? definition.requestBody : definition.responseBody) ?? {
        mode: 'buffered',
      };
      if (mode.maxBytes !== undefined && (!Number.isInteger(mode.maxBytes) || mode.maxBytes < 0)) {
        throw new PluginConfigError(`maxBytes for ${phase} must be a non-negative integer`, definition.name);
      }
    }
    subscriptions.push({
      phase: PHASE_TO_WIRE[phase],
      bodyMode: BODY_MODE_TO_WIRE[mode.mode],
      maxBodyBytes: mode.maxBytes ?? 0,
    });
  }
  return {
    definition,
    subscriptions,
    serve: (options) => servePlugin(definition, subscriptions, options ?? {}),
  };
}

// Replies are checked here, before they reach the stream: a value the encoder rejects inside
// call.write() would break the whole multiplexed stream instead of one exchange.
function header(name: unknown, value: unknown): Header {
  if (typeof name !== 'string' || typeof value !== 'string') {
    throw new TypeError(`header names and values must be strings (got ${typeof name}: ${typeof value})`);
  }
  return { name: name.toLowerCase(), value };
}

function toHeaders(init: HeaderInit | undefined): Header[] {
  if (init === undefined) return [];
  const out: Header[] = [];
  if (Array.isArray(init)) {
    for (const [name, value] of init as HeaderList) out.push(header(name, value));
  } else {
    for (const [name, value] of Object.entries(init)) out.push(header(name, value));
  }
  return out;
}

function toBytes(body: string | Uint8Array | undefined): Buffer {
  if (body === undefined) return Buffer.alloc(0);
  if (typeof body === 'string') return Buffer.from(body);
  if (body instanceof Uint8Array) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  throw new TypeError('a body must be a string or a Uint8Array');
}

function toStatus(status: unknown): number {
  if (typeof status !== 'number' || !Number.isInteger(status) || status < 0 || status > 0xffffffff) {
    throw new TypeError(`status must be an integer, got ${String(status)}`);
  }
  return status;
}

function fromHeaders(headers: readonly Header[]): HeaderList {
  return headers.map((h) => [h.name, h.value] as const);
}

function headerLookup(headers: readonly Header[]): (name: string) => string | undefined {
  return (name) => {
    const lower = name.toLowerCase();
    for (const h of headers) if (h.name === lower) return h.value;
    return undefined;
  };
}

function toWireReply(exchangeId: number, phase: PhaseName, reply: HandlerReturn): ProcessingResponse {
  const wirePhase = PHASE_TO_WIRE[phase];
  if (!reply) return { exchangeId, phase: wirePhase, action: { $case: 'proceed', value: {} } };
  if (reply.respond) {
    return {
      exchangeId,
      phase: wirePhase,
      action: {
        $case: 'immediate',
        value: {
          status: toStatus(reply.respond.status),
          headers: toHeaders(reply.respond.headers),
          body: toBytes(reply.respond.body),
        },
      },
    };
  }
  const hasHeaders = reply.set !== undefined || reply.append !== undefined || reply.remove !== undefined;
  if (!hasHeaders && reply.body === undefined) {
    return { exchangeId, phase: wirePhase, action: { $case: 'proceed', value: {} } };
  }
  const headers: WireHeaderMutation | undefined = hasHeaders
    ? {
        set: toHeaders(reply.set),
        append: toHeaders(reply.append),
        remove: (reply.remove ?? []).map((n) => header(n, '').name),
      }
    : undefined;
  return {
    exchangeId,
    phase: wirePhase,
    action: {
      $case: 'mutate',
      value: { headers, body: reply.body === undefined ? undefined : toBytes(reply.body) },
    },
  };
}

/** Runs the handler for one message; resolves to the phase and the reply (or undefined for none). */
function dispatch(def: PluginDefinition, req: ProcessingRequest): [PhaseName, HandlerResult] | undefined {
  const id = req.exchangeId;
  const m = req.message;
  if (m === undefined) return undefined;
  switch (m.$case) {
    case 'requestHeaders': {
      const v = m.value;
      const ctx: RequestHeadersContext = {
        exchangeId: id,
        method: v.method,
        scheme: v.scheme,
        authority: v.authority,
        path: v.path,
        headers: fromHeaders(v.headers),
        endOfStream: v.endOfStream,
        header: headerLookup(v.headers),
      };
      return ['requestHeaders', def.onRequestHeaders?.(ctx)];
    }
    case 'responseHeaders': {
      const v = m.value;
      const ctx: ResponseHeadersContext = {
        exchangeId: id,
        status: v.status,
        headers: fromHeaders(v.headers),
        endOfStream: v.endOfStream,
        header: headerLookup(v.headers),
      };
      return ['responseHeaders', def.onResponseHeaders?.(ctx)];
    }
    case 'requestBody':
      return [
        'requestBody',
        def.onRequestBody?.({ exchangeId: id, body: m.value.chunk, endOfStream: m.value.endOfStream }),
      ];
    case 'responseBody':
      return [
        'responseBody',
        def.onResponseBody?.({ exchangeId: id, body: m.value.chunk, endOfStream: m.value.endOfStream }),
      ];
    case 'requestTrailers': {
      const t = m.value.trailers;
      return [
        'requestTrailers',
        def.onRequestTrailers?.({ exchangeId: id, headers: fromHeaders(t), header: headerLookup(t) }),
      ];
    }
    case 'responseTrailers': {
      const t = m.value.trailers;
      return [
        'responseTrailers',
        def.onResponseTrailers?.({ exchangeId: id, headers: fromHeaders(t), header: headerLookup(t) }),
      ];
    }
    case 'complete': {
      const c = m.value;
      return [
        'complete',
        def.onComplete?.({
          exchangeId: id,
          status: c.status,
          totalMs: c.totalMs,
          upstreamMs: c.upstreamMs,
          requestBodyBytes: c.requestBodyBytes,
          responseBodyBytes: c.responseBodyBytes,
          error: c.error,
        }),
      ];
    }
  }
}

function isPromise<T>(v: MaybePromise<T>): v is Promise<T> {
  return typeof (v as Promise<T> | undefined)?.then === 'function';
}

async function servePlugin(
  def: PluginDefinition,
  subscriptions: readonly PhaseSubscription[],
  options: ServeOptions,
): Promise<ServingPlugin> {
  const server = new Server({ 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  const observeOnly = def.observeOnly === true;

  const handleStream = (call: ServerDuplexStream<ProcessingRequest, ProcessingResponse>): void => {
    const send = (id: number, phase: PhaseName, reply: HandlerReturn): void => {
      if (observeOnly || phase === 'complete' || call.destroyed) return;
      let wire: ProcessingResponse;
      try {
        wire = toWireReply(id, phase, reply);
      } catch (err) {
        // A reply the SDK cannot encode is the handler's fault: report it, never crash.
        fail(id, phase, err);
        return;
      }
      call.write(wire);
    };
    const fail = (id: number, phase: PhaseName, err: unknown): void => {
      if (observeOnly || phase === 'complete' || call.destroyed) return;
      const message = err instanceof Error ? err.message : String(err);
      call.write({
        exchangeId: id,
        phase: PHASE_TO_WIRE[phase],
        action: { $case: 'failure', value: { message } },
      });
    };
    call.on('data', (req: ProcessingRequest) => {
      let result: [PhaseName, HandlerResult] | undefined;
      try {
        result = dispatch(def, req);
      } catch (err) {
        const phase = req.message ? (req.message.$case as PhaseName) : undefined;
        if (phase) fail(req.exchangeId, phase, err);
        return;
      }
      if (!result) return;
      const [phase, out] = result;
      // Synchronous handlers answer without a microtask hop: this is the latency hot path.
      if (isPromise(out)) {
        out.then(
          (reply) => send(req.exchangeId, phase, reply),
          (err: unknown) => fail(req.exchangeId, phase, err),
        );
      } else {
        send(req.exchangeId, phase, out);
      }
    });
    call.on('end', () => call.end());
    call.on('error', () => {});
  };

  server.addService(PluginService, {
    handshake: (_call: unknown, callback: (err: null, res: unknown) => void) => {
      callback(null, {
        name: def.name,
        version: def.version ?? '0.0.0',
        protocolVersion: PROTOCOL_VERSION,
        phases: subscriptions,
        observeOnly,
      });
    },
    health: (_call: unknown, callback: (err: null, res: unknown) => void) => {
      callback(null, { serving: true });
    },
    process: handleStream,
  });

  const socket =
    options.socket ?? (options.port === undefined ? process.env['HTTPMESH_PLUGIN_SOCKET'] : undefined);
  const envPort = process.env['HTTPMESH_PLUGIN_PORT'];
  const port = options.port ?? (socket === undefined && envPort !== undefined ? Number(envPort) : undefined);
  let target: string;
  if (socket !== undefined && socket !== '') {
    // A stale socket from a crashed predecessor would make bind fail.
    await rm(socket, { force: true });
    target = `unix:${socket}`;
  } else if (port !== undefined && Number.isInteger(port) && port >= 0 && port < 65536) {
    target = `127.0.0.1:${port}`;
  } else {
    throw new PluginConfigError(
      'serve() needs a socket path or a TCP port (or HTTPMESH_PLUGIN_SOCKET)',
      def.name,
    );
  }
  const boundPort = await new Promise<number>((resolve, reject) => {
    server.bindAsync(target, ServerCredentials.createInsecure(), (err, p) =>
      err ? reject(err) : resolve(p),
    );
  });
  if (socket) await chmod(socket, 0o600);
  const address = socket ? `unix:${socket}` : `127.0.0.1:${boundPort}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve) => {
      const force = setTimeout(() => server.forceShutdown(), 5000);
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    return closing;
  };
  if (options.handleSignals !== false) {
    const onSignal = (): void => {
      void close().then(() => process.exit(0));
    };
    process.once('SIGTERM', onSignal);
    process.once('SIGINT', onSignal);
  }
  return { address, port: socket ? undefined : boundPort, close };
}
