import dns from 'node:dns';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import http, { type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2ServerRequest, type Http2ServerResponse } from 'node:http2';
import net, { type AddressInfo, type LookupFunction, type Socket } from 'node:net';
import os from 'node:os';
import { performance } from 'node:perf_hooks';
import tls, { type SecureContext, type TLSSocket } from 'node:tls';
import { type Duplex, Readable } from 'node:stream';
import type { Agent as UndiciAgent, Dispatcher } from 'undici';
// By path, not from 'undici': the index also loads fetch, WebSocket, cache and mocks (see undici-modules.d.ts).
import Agent from 'undici/lib/dispatcher/agent.js';
import buildConnector from 'undici/lib/core/connect.js';
import { DEFAULT_MAX_CLIENT_HELLO_BYTES, type ClientHelloInfo, peekClientHello } from './clienthello.js';
import {
  BadRequestError,
  ClientAbortedError,
  ClientConnectionLimitError,
  ClientHandshakeError,
  ClientHelloInvalidError,
  classifyUpstreamError,
  FilterError,
  MitmProxyError,
  ProxyLoopError,
  ProxyOptionsError,
  RequestBodyTooLargeError,
  ResponseBodyTooLargeError,
  statusForError,
} from './errors.js';
import {
  type BodyChunkTransform,
  type Exchange,
  type ExchangeFilter,
  type ExchangeSummary,
  type ExchangeTimings,
  type ImmediateResponse,
  isPromise,
  type MaybePromise,
  runRequestHead,
  runRequestTrailers,
  runResponseHead,
  runResponseTrailers,
  type UpstreamTarget,
} from './exchange.js';
import { dispatchWithTrailers } from './trailer-upstream.js';
import { endToEndRequestHeaders, endToEndResponseHeaders, serializeUpgradeHead } from './headers.js';
import { PinnedHostMemory } from './pinning.js';
import {
  createOriginalDestinationReader,
  getOriginalDestination,
  type OriginalDestination,
  type OriginalDestinationReader,
} from '../native/index.js';
import { compileHostRule, type HostRule } from './host-rules.js';
import { upstreamLookupOption } from './lookup.js';

/** What the proxy needs from a certificate authority (satisfied by `CertificateAuthority`). */
export interface SecureContextSource {
  secureContextFor(servername: string): SecureContext | Promise<SecureContext>;
}

export interface PinningOptions {
  /** Remember hosts whose clients reject our certificate and pass them through (default true). */
  enabled?: boolean;
  /** How long a host stays in passthrough (default 1 hour). */
  ttlMs?: number;
  /** Bound on remembered hosts (default 10,000). */
  maxHosts?: number;
}

/** What `intercept` knows about a connection besides the host. */
export interface InterceptContext {
  /** The client is speaking TLS (a ClientHello was seen); false for plain HTTP. */
  readonly tls: boolean;
  /** SNI from the ClientHello; undefined for plain HTTP and for TLS clients that sent none. */
  readonly serverName: string | undefined;
  /** Transparent mode: where the connection was headed (null when unknown, and for explicit CONNECT). */
  readonly originalDestination: OriginalDestination | null;
}

export interface MitmProxyOptions {
  ca: SecureContextSource;
  /**
   * Decides per connection whether to terminate TLS / proxy plain HTTP (true) or splice bytes (false).
   * `host` is the SNI, CONNECT host, original destination IP, or Host header. Default: always.
   */
  intercept?: (host: string, context: InterceptContext) => boolean;
  /** PEM roots trusted for upstream TLS in addition to Node's bundled roots. */
  upstreamCa?: readonly string[];
  /**
   * Hosts whose upstream certificate is NOT verified (explicit opt-out; use sparingly): a list (`*.x.com`
   * matches subdomains of x.com) or a predicate evaluated for every exchange and upgrade, so rules may change
   * at run time. See also `setInsecureUpstreamHosts`. Default: always verify.
   */
  insecureUpstreamHosts?: HostRule;
  /**
   * Reads SO_ORIGINAL_DST for `handleConnection` (default: the package's addon next to its `build/`). For a
   * single executable, pass `createOriginalDestinationReader({ addonPath })` or use `originalDestinationAddonPath`.
   */
  originalDestinationReader?: OriginalDestinationReader;
  /** Path of the compiled `original_dst.node` (ignored when `originalDestinationReader` is given). */
  originalDestinationAddonPath?: string;
  filters?: readonly ExchangeFilter[];
  pinning?: PinningOptions;
  /** Offer h2 to TLS clients via ALPN (default true). */
  http2?: boolean;
  /** Negotiate h2 with upstreams that accept it (default false). */
  upstreamHttp2?: boolean;
  /** Time allowed for the first bytes / ClientHello and the TLS handshake (default 10 s). */
  handshakeTimeoutMs?: number;
  /** Time allowed for a complete request head (default 30 s); the client gets 408. */
  headersTimeoutMs?: number;
  /**
   * Idle keep-alive time for client connections (default 75 s, nginx's; announced as `Keep-Alive: timeout=75`,
   * which undici clients follow). Idle connections are still closed at `stopAccepting` and `close`.
   */
  keepAliveTimeoutMs?: number;
  /** Maximum request head size in bytes (default 16 KiB); larger gets 431. */
  maxHeaderSize?: number;
  /** Upstream: connections per origin (default 128), idle keep-alive (default 4 s), timeouts. */
  upstreamConnections?: number;
  upstreamKeepAliveTimeoutMs?: number;
  upstreamConnectTimeoutMs?: number;
  upstreamHeadersTimeoutMs?: number;
  upstreamBodyTimeoutMs?: number;
  /**
   * Client connections held at once, however they arrive (`listen`, `acceptConnection`, `handleConnection`);
   * a CONNECT tunnel and the TLS inside it are the one client connection. One over the cap is closed
   * unread and reported as `ClientConnectionLimitError` (at most once a second). A positive integer or
   * `Infinity`; default `min(8192, (open-files limit - 256) / 4)`, see README.
   */
  maxClientConnections?: number;
  /**
   * Resolves upstream host names, in node:net's `lookup` shape. Used for every upstream dial (pooled
   * exchanges, trailer requests, splices, upgrades) and by the loop guard, which resolves a name on one of
   * our own ports before dialling it. For custom DNS or service discovery; default `dns.lookup`. A single
   * address or a list may be given whatever `all` asks; a throw or an answer that is not IP addresses fails that
   * dial as ENOTFOUND (502 `HTTPMESH_UPSTREAM_UNREACHABLE`).
   */
  lookup?: LookupFunction;
  /** Called for connection-level failures that have no exchange to report them on. */
  onError?: (error: MitmProxyError) => void;
}

export interface MitmProxyStats {
  /** Client sockets currently open (explicit and transparent); an intercepted TLS connection counts twice. */
  readonly openClientSockets: number;
  /** Client connections currently held, as counted against `maxClientConnections` (each one once). */
  readonly clientConnections: number;
  /** The cap in force (`maxClientConnections` or its default). */
  readonly maxClientConnections: number;
  /** Client connections refused over the cap since the proxy was created. */
  readonly refusedClientConnections: number;
  readonly pinnedHosts: number;
  readonly exchanges: number;
  /** Client TLS handshakes completed (intercepted connections). */
  readonly tlsHandshakes: number;
  /** Exchanges started and not yet completed (for draining after `stopAccepting`). */
  readonly activeExchanges: number;
  /** True after `stopAccepting` (or `close`). */
  readonly draining: boolean;
}

export interface StopAcceptingOptions {
  /**
   * Close the explicit-proxy listener (default true). `false` keeps it open while everything else drains:
   * connections it still accepts are served with `Connection: close` (HTTP/1.1) or GOAWAY (h2), so no client
   * is refused while a successor sharing the listening socket takes over; `close()` closes it later.
   */
  closeListener?: boolean;
}

export interface MitmProxy {
  /** Starts explicit-proxy mode (absolute-URI requests and CONNECT). Host defaults to 127.0.0.1. */
  listen(port?: number, host?: string): Promise<AddressInfo>;
  /**
   * Transparent mode: handle a socket redirected to us (iptables REDIRECT/TPROXY). The original
   * destination defaults to `getOriginalDestination(socket)` (SO_ORIGINAL_DST); when that is not
   * available the target is taken from SNI (TLS) or the Host header (plain HTTP).
   */
  handleConnection(socket: Socket, originalDestination?: OriginalDestination | null): void;
  /**
   * Explicit-proxy mode on a socket accepted by the caller's own listener (absolute-URI requests and
   * CONNECT, exactly as `listen` serves them). For callers that own the listening socket, e.g. to hand it to
   * a successor process: `net.createServer((s) => proxy.acceptConnection(s))`. The socket's local port is
   * remembered for loop detection.
   */
  acceptConnection(socket: Socket): void;
  /** Replaces the filter chain; exchanges already running keep the chain they started with. */
  setFilters(filters: readonly ExchangeFilter[]): void;
  /** Replaces the upstream verification opt-out (list or predicate); applies from the next exchange. */
  setInsecureUpstreamHosts(rule: HostRule | undefined): void;
  /**
   * Graceful drain: closes the explicit-proxy listener (new connections are refused), closes idle
   * keep-alive client connections, answers the next response on busy HTTP/1.1 connections with
   * `Connection: close`, and sends HTTP/2 clients GOAWAY. In-flight exchanges and tunnels finish. Resolves
   * once the listener is closed; poll `stats.activeExchanges` / `openClientSockets`, then call `close()`.
   */
  stopAccepting(options?: StopAcceptingOptions): Promise<void>;
  readonly stats: MitmProxyStats;
  close(): Promise<void>;
}

interface TunnelTarget {
  /** Host name from CONNECT / SNI / Host, or the original destination IP. */
  host: string;
  /** 0 when unknown (transparent mode without an original destination): the scheme's default port. */
  port: number;
  /** Address to dial in transparent mode (original destination IP). */
  address: string | undefined;
  /** Transparent mode: the original destination as read (or passed); null otherwise. */
  destination: OriginalDestination | null;
}

/** Attached to client sockets so request handlers know where the connection was going. */
const kTarget = Symbol('httpmesh.target');
/** Refused connections are reported at most this often (a flood must not flood the log). */
const CONNECTION_LIMIT_REPORT_MS = 1_000;
/** Default `keepAliveTimeoutMs`: nginx's `keepalive_timeout`. */
const DEFAULT_CLIENT_KEEP_ALIVE_MS = 75_000;
interface CarriedTarget extends TunnelTarget {
  tls: boolean;
}
interface TargetCarrier {
  [kTarget]?: CarriedTarget;
}

type ClientRequest = IncomingMessage | Http2ServerRequest;
type ClientResponse = ServerResponse | Http2ServerResponse;

const CONNECT_ESTABLISHED = 'HTTP/1.1 200 Connection Established\r\n\r\n';
const CONNECT_PREFIX = Buffer.from('CONNECT ');
const ERROR_HEADER = 'x-httpmesh-error';

let nextExchangeId = 1;

class ExchangeState implements Exchange {
  readonly id = nextExchangeId++;
  readonly clientProtocol: 'http/1.1' | 'h2';
  readonly clientTls: boolean;
  readonly clientAddress: string | undefined;
  method: string;
  path: string;
  readonly authority: string;
  upstream: UpstreamTarget;
  requestHeaders: IncomingHttpHeaders;
  status = 0;
  responseHeaders: IncomingHttpHeaders | undefined = undefined;
  responseTrailers: IncomingHttpHeaders | undefined = undefined;
  requestTrailers: IncomingHttpHeaders | undefined = undefined;
  readonly timings: ExchangeTimings;
  #locals: Map<string | symbol, unknown> | undefined;
  requestBodyBytes = 0;
  responseBodyBytes = 0;
  /** Set when a filter buffered the body; forwarded instead of the client stream. */
  bufferedBody: Buffer | undefined = undefined;
  upstreamHeadersTimeoutMs: number | undefined = undefined;
  upstreamBodyTimeoutMs: number | undefined = undefined;
  #bodyReader: ((maxBytes: number) => Promise<Buffer>) | undefined;
  #responseBodyReader: ((maxBytes: number) => Promise<Buffer>) | undefined;

  constructor(
    clientProtocol: 'http/1.1' | 'h2',
    clientTls: boolean,
    clientAddress: string | undefined,
    method: string,
    path: string,
    authority: string,
    upstream: UpstreamTarget,
    requestHeaders: IncomingHttpHeaders,
    start: number,
  ) {
    this.clientProtocol = clientProtocol;
    this.clientTls = clientTls;
    this.clientAddress = clientAddress;
    this.method = method;
    this.path = path;
    this.authority = authority;
    this.upstream = upstream;
    this.requestHeaders = requestHeaders;
    this.timings = { start, upstreamConnect: undefined, firstByte: undefined, end: undefined };
  }

  get locals(): Map<string | symbol, unknown> {
    this.#locals ??= new Map();
    return this.#locals;
  }

  setBodyReader(reader: (maxBytes: number) => Promise<Buffer>): void {
    this.#bodyReader = reader;
  }

  setResponseBodyReader(reader: ((maxBytes: number) => Promise<Buffer>) | undefined): void {
    this.#responseBodyReader = reader;
  }

  readResponseBody(maxBytes: number): Promise<Buffer> {
    if (!isByteCap(maxBytes)) return Promise.reject(badCap('readResponseBody', maxBytes));
    if (this.#responseBodyReader === undefined) {
      return Promise.reject(
        new FilterError('readResponseBody', { cause: new Error('only from onResponseHead') }),
      );
    }
    return this.#responseBodyReader(maxBytes);
  }

  /** Set once the request went upstream: a body replaced later would silently not be sent. */
  requestForwarded = false;
  /** Per-chunk request body transform (`transformRequestBody`). */
  requestBodyTransform: BodyChunkTransform | undefined = undefined;
  /** Per-chunk response body transform (`transformResponseBody`); only settable from `onResponseHead`. */
  responseBodyTransform: BodyChunkTransform | undefined = undefined;
  /** True while `onResponseHead` hooks run. */
  inResponseHead = false;

  transformRequestBody(transform: BodyChunkTransform): void {
    if (this.requestForwarded || this.bufferedBody !== undefined) {
      throw new FilterError('transformRequestBody', {
        cause: new Error('only from onRequestHead, before the body is buffered or forwarded'),
      });
    }
    this.requestBodyTransform = transform;
    // Chunks may change size: the body goes chunked.
    delete this.requestHeaders['content-length'];
  }

  transformResponseBody(transform: BodyChunkTransform): void {
    if (!this.inResponseHead) {
      throw new FilterError('transformResponseBody', { cause: new Error('only from onResponseHead') });
    }
    this.responseBodyTransform = transform;
  }

  setRequestBody(body: Uint8Array | string): void {
    if (this.requestForwarded) {
      throw new FilterError('setRequestBody', { cause: new Error('the request was already forwarded') });
    }
    if (this.bufferedBody === undefined && this.#bodyReader !== undefined) {
      // The client's body must be consumed first (it may still be arriving); replacing it unread would
      // leave its bytes on the connection.
      throw new FilterError('setRequestBody', { cause: new Error('call readRequestBody first') });
    }
    const bytes =
      typeof body === 'string'
        ? Buffer.from(body)
        : Buffer.isBuffer(body)
          ? body
          : Buffer.from(body.buffer, body.byteOffset, body.byteLength);
    this.bufferedBody = bytes;
    // The framing follows the new bytes: a stale length would make undici refuse (or the upstream misread)
    // the request, and the body is no longer chunked.
    this.requestHeaders['content-length'] = String(bytes.length);
    delete this.requestHeaders['transfer-encoding'];
  }

  readRequestBody(maxBytes: number): Promise<Buffer> {
    if (!isByteCap(maxBytes)) return Promise.reject(badCap('readRequestBody', maxBytes));
    if (this.bufferedBody !== undefined) {
      return this.bufferedBody.length > maxBytes
        ? Promise.reject(new RequestBodyTooLargeError(maxBytes))
        : Promise.resolve(this.bufferedBody);
    }
    if (this.#bodyReader === undefined) return Promise.resolve(Buffer.alloc(0));
    return this.#bodyReader(maxBytes).then((body) => {
      this.bufferedBody = body;
      this.requestBodyBytes = body.length;
      return body;
    });
  }
}

const EMPTY = Buffer.alloc(0);

/** Resolves once the response can take more data (or is gone). */
function drained(res: ClientResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done);
      res.off('close', done);
      resolve();
    };
    res.on('drain', done);
    res.on('close', done);
  });
}

/** The request body through a per-chunk transform, then one final empty chunk with `end`. */
async function* transformedChunks(
  source: AsyncIterable<Buffer>,
  transform: BodyChunkTransform,
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    const out = await transform(chunk as Buffer, false);
    const data = out === undefined ? (chunk as Buffer) : toBuffer(out);
    if (data.length > 0) yield data;
  }
  const last = await transform(EMPTY, true);
  if (last !== undefined && last.length > 0) yield toBuffer(last);
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** True when the object has an own key (no array allocation, unlike `Object.keys`). */
function hasKeys(value: object | null | undefined): boolean {
  if (value === null || value === undefined) return false;
  for (const _ in value) return true;
  return false;
}

/**
 * undici 7 hands h2 trailers to the new handler API through `parseHeaders`, which expects the raw
 * HTTP/1.1 array and so yields `{}` for h2's object; the original object stays on `controller.rawTrailers`.
 */
function h2Trailers(controller: Dispatcher.DispatchController): IncomingHttpHeaders | undefined {
  const raw = (controller as { rawTrailers?: unknown }).rawTrailers;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || !hasKeys(raw)) return undefined;
  const out: IncomingHttpHeaders = {};
  for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
    if (typeof value === 'string' || Array.isArray(value)) out[name] = value as string & string[];
  }
  return out;
}

/**
 * A request whose client announced trailers (`trailer`, or `te: trailers` as gRPC sends it): it goes
 * upstream over node:http, which can send them. Everything else keeps the undici pools.
 */
function announcesTrailers(req: { headers: IncomingHttpHeaders }): boolean {
  if (req.headers.trailer !== undefined) return true;
  const te = req.headers.te;
  return typeof te === 'string' && te.toLowerCase().includes('trailers');
}

function hasRequestTrailerHook(chain: readonly ExchangeFilter[]): boolean {
  for (const filter of chain) if (filter.onRequestTrailers !== undefined) return true;
  return false;
}

function hasTrailerHook(chain: readonly ExchangeFilter[]): boolean {
  for (const filter of chain) if (filter.onResponseTrailers !== undefined) return true;
  return false;
}

/** A cap must be a real, non-negative integer: NaN would silently disable it. */
function isByteCap(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

function badCap(method: string, value: unknown): FilterError {
  return new FilterError(method, {
    cause: new RangeError(`maxBytes must be a non-negative integer, got ${String(value)}`),
  });
}

/**
 * Reads a client request body into memory, refusing to hold more than `maxBytes`. Event based rather than
 * `for await`: leaving an async iterator early destroys the request (and an HTTP/1.1 socket), and the
 * client must still get its 413.
 */
function bufferBody(req: ClientRequest, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const cleanup = (): void => {
      req.removeListener('data', onData);
      req.removeListener('end', onEnd);
      req.removeListener('error', onAbort);
      req.removeListener('close', onAbort);
    };
    const onData = (chunk: Buffer): void => {
      length += chunk.length;
      if (length > maxBytes) {
        cleanup();
        req.pause();
        reject(new RequestBodyTooLargeError(maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, length));
    };
    const onAbort = (): void => {
      cleanup();
      reject(new ClientAbortedError());
    };
    req.on('data', onData);
    req.once('end', onEnd);
    req.once('error', onAbort);
    req.once('close', onAbort);
  });
}

function hostOnly(authority: string): { host: string; port: number | undefined } | undefined {
  if (authority === '') return undefined;
  if (authority.charCodeAt(0) === 91 /* '[' */) {
    const close = authority.indexOf(']');
    if (close < 0) return undefined;
    const host = authority.slice(1, close);
    const rest = authority.slice(close + 1);
    if (rest === '') return { host, port: undefined };
    if (rest.charCodeAt(0) !== 58) return undefined;
    const port = Number(rest.slice(1));
    return Number.isInteger(port) && port > 0 && port < 65536 ? { host, port } : undefined;
  }
  const colon = authority.lastIndexOf(':');
  if (colon < 0) return { host: authority.toLowerCase(), port: undefined };
  const port = Number(authority.slice(colon + 1));
  if (!Number.isInteger(port) || port <= 0 || port >= 65536) return undefined;
  return { host: authority.slice(0, colon).toLowerCase(), port };
}

function plainResponse(status: number, code: string, message: string): string {
  const body = `${message}\n`;
  return (
    `HTTP/1.1 ${status} ${http.STATUS_CODES[status] ?? 'Error'}\r\n` +
    `content-type: text/plain; charset=utf-8\r\n${ERROR_HEADER}: ${code}\r\n` +
    `content-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`
  );
}

/** Upper bound of the default `maxClientConnections` (where the open-files limit is large). */
const MAX_DEFAULT_CLIENT_CONNECTIONS = 8192;
/** Descriptors left to everything that is not a client connection: listeners, CA files, logs, control plane. */
const RESERVED_FDS = 256;
/** Assumed open-files limit where it cannot be read (not Linux). */
const FALLBACK_FD_LIMIT = 10_240;
let defaultClientConnectionCap: number | undefined;

/**
 * The default `maxClientConnections`: a quarter of what the open-files limit leaves after RESERVED_FDS. Each
 * client connection may hold a second descriptor (the upstream it is spliced or upgraded to), and a process
 * may run two proxies (the sidecar's outbound and inbound in transparent mode), so the defaults together
 * cannot exhaust descriptors. Node raises the soft limit to the hard one at start, so the soft value read
 * here is the one in force. Read once per process.
 */
function defaultMaxClientConnections(): number {
  if (defaultClientConnectionCap !== undefined) return defaultClientConnectionCap;
  let limit = FALLBACK_FD_LIMIT;
  try {
    const limits = readFileSync('/proc/self/limits', 'latin1');
    const line = limits.split('\n').find((l) => l.startsWith('Max open files'));
    const soft = line?.slice('Max open files'.length).trim().split(/\s+/)[0];
    // 'unlimited' or unreadable: keep the fallback (the 8192 ceiling applies either way).
    if (soft !== undefined && /^\d+$/.test(soft)) limit = Number(soft);
  } catch {
    // No procfs (not Linux): the fallback.
  }
  defaultClientConnectionCap = Math.max(
    1,
    Math.min(MAX_DEFAULT_CLIENT_CONNECTIONS, Math.floor((limit - RESERVED_FDS) / 4)),
  );
  return defaultClientConnectionCap;
}

function connectionCap(value: unknown): number {
  if (value === undefined) return defaultMaxClientConnections();
  if (value === Number.POSITIVE_INFINITY) return value;
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 1) {
    throw new ProxyOptionsError(
      `maxClientConnections must be a positive integer or Infinity, got ${typeof value === 'number' ? String(value) : typeof value}`,
    );
  }
  return value;
}

/** Creates the TLS-intercepting proxy engine. See README for the filter-chain design. */
export function createMitmProxy(options: MitmProxyOptions): MitmProxy {
  // Checked first: a malformed option must fail before anything is created.
  const maxClientConnections = connectionCap(options.maxClientConnections);
  /** Undefined keeps node:net's default (dns.lookup) in every dial: nothing is added to those options. */
  const lookup = upstreamLookupOption(options.lookup);
  const upstreamConnectTimeoutMs = options.upstreamConnectTimeoutMs ?? 10_000;
  const ca = options.ca;
  const intercept: (host: string, context: InterceptContext) => boolean = options.intercept ?? (() => true);
  const handshakeTimeoutMs = options.handshakeTimeoutMs ?? 10_000;
  const headersTimeoutMs = options.headersTimeoutMs ?? 30_000;
  const maxHeaderSize = options.maxHeaderSize ?? 16 * 1024;
  const pinningEnabled = options.pinning?.enabled ?? true;
  const pinned = new PinnedHostMemory(
    options.pinning?.maxHosts ?? 10_000,
    options.pinning?.ttlMs ?? 3_600_000,
  );
  let insecureUpstream = compileHostRule(options.insecureUpstreamHosts, 'insecureUpstreamHosts');
  /** Fails closed: a throwing predicate means "verify". */
  const isInsecureUpstream = (host: string): boolean => {
    if (insecureUpstream === undefined) return false;
    try {
      return insecureUpstream(host) === true;
    } catch (error) {
      reportError(new FilterError('insecureUpstreamHosts', { cause: error }));
      return false;
    }
  };
  const originalDestinationReader =
    options.originalDestinationReader ??
    (options.originalDestinationAddonPath === undefined
      ? undefined
      : createOriginalDestinationReader({ addonPath: options.originalDestinationAddonPath }));
  const readOriginalDestination = (socket: Socket): OriginalDestination | null =>
    originalDestinationReader === undefined
      ? getOriginalDestination(socket)
      : originalDestinationReader.read(socket);
  const reportError = options.onError ?? (() => {});
  /** Client connections admitted and not yet closed (one per accepted socket, whatever is layered on it). */
  let clientConnections = 0;
  let refusedClientConnections = 0;
  /** Refusals not reported yet; a report goes out at most every CONNECTION_LIMIT_REPORT_MS. */
  let refusedUnreported = 0;
  let limitReportTimer: NodeJS.Timeout | undefined;
  const http2Enabled = options.http2 ?? true;
  let filters: readonly ExchangeFilter[] = options.filters ?? [];
  let exchanges = 0;
  let tlsHandshakes = 0;
  let activeExchanges = 0;
  let closing = false;
  let draining = false;
  const clientSockets = new Set<Duplex>();
  const h2Sessions = new Set<http2.ServerHttp2Session>();
  /** Ports this proxy listens on (explicit acceptor, transparent sockets' local ports): loop detection. */
  const ownPorts = new Set<number>();

  // Upstream pools. Transparent mode dials the original destination IP while verifying the name.
  // One context for every upstream connection: passing `ca` per connection re-parses ~140 roots each time
  // (that was a quarter of the proxy's CPU under load).
  const upstreamContext = tls.createSecureContext({
    ca: [...tls.rootCertificates, ...(options.upstreamCa ?? [])],
  });
  const addressOverrides = new Map<string, string>();
  const rememberAddress = (key: string, address: string): void => {
    if (addressOverrides.get(key) === address) return;
    addressOverrides.delete(key);
    addressOverrides.set(key, address);
    // Bounded like every other per-host table; the oldest mapping goes first.
    if (addressOverrides.size > 10_000) {
      const oldest = addressOverrides.keys().next();
      if (!oldest.done) addressOverrides.delete(oldest.value);
    }
  };
  const makeAgent = (rejectUnauthorized: boolean): UndiciAgent => {
    const connector = buildConnector({
      secureContext: upstreamContext,
      rejectUnauthorized,
      timeout: upstreamConnectTimeoutMs,
      // undici hands the rest of these options to net.connect / tls.connect.
      ...(lookup === undefined ? {} : { lookup }),
      // ALPN offers h2 only when asked: HTTP/1.1 upstream pools are the measured default.
      ...(options.upstreamHttp2 === true ? { allowH2: true } : {}),
    });
    return new Agent({
      connect: (connectOptions, callback) => {
        const override = addressOverrides.get(`${connectOptions.hostname}:${connectOptions.port}`);
        if (override === undefined) return connector(connectOptions, callback);
        return connector(
          { ...connectOptions, hostname: override, servername: connectOptions.hostname },
          callback,
        );
      },
      connections: options.upstreamConnections ?? 128,
      keepAliveTimeout: options.upstreamKeepAliveTimeoutMs ?? 4_000,
      // Our idle limit also caps what an upstream's Keep-Alive hint may ask for (bounded fds).
      keepAliveMaxTimeout: options.upstreamKeepAliveTimeoutMs ?? 4_000,
      headersTimeout: options.upstreamHeadersTimeoutMs ?? 60_000,
      bodyTimeout: options.upstreamBodyTimeoutMs ?? 120_000,
      allowH2: options.upstreamHttp2 === true,
    });
  };
  const verifiedAgent = makeAgent(true);
  let insecureAgent: UndiciAgent | undefined;
  // Chosen per exchange, so a rule change applies to the next request, and connections opened without
  // verification live in their own pool: they are never reused for a host that must be verified.
  const agentFor = (host: string): Dispatcher => {
    if (isInsecureUpstream(host)) {
      insecureAgent ??= makeAgent(false);
      return insecureAgent;
    }
    return verifiedAgent;
  };

  /**
   * The one 'close' listener of an admitted socket, shared by all of them (`this` is the socket): no closure
   * or `once` wrapper per connection, and it also untracks the socket, so `trackSocket` adds nothing more.
   */
  function releaseClientConnection(this: Duplex): void {
    clientConnections--;
    clientSockets.delete(this);
  }

  const reportRefusals = (): void => {
    if (refusedUnreported === 0) {
      // A quiet window: the next refusal is reported at once.
      limitReportTimer = undefined;
      return;
    }
    reportError(new ClientConnectionLimitError(maxClientConnections, refusedUnreported));
    refusedUnreported = 0;
    limitReportTimer = setTimeout(reportRefusals, CONNECTION_LIMIT_REPORT_MS);
    limitReportTimer.unref();
  };

  /**
   * Counts a client connection against `maxClientConnections`, or closes it unread (no TLS handshake, no
   * upstream dial) when the cap is reached. Called once per accepted socket at the three entry points; what
   * is layered on it later (CONNECT tunnel, TLS, h2) is the same connection.
   */
  const admitClientConnection = (socket: Socket): boolean => {
    if (socket.destroyed) return false;
    if (clientConnections >= maxClientConnections) {
      socket.destroy();
      refusedClientConnections++;
      refusedUnreported++;
      if (limitReportTimer === undefined) reportRefusals();
      return false;
    }
    clientConnections++;
    clientSockets.add(socket);
    socket.on('close', releaseClientConnection);
    return true;
  };

  const trackSocket = (socket: Duplex): void => {
    if (clientSockets.has(socket)) return;
    clientSockets.add(socket);
    socket.once('close', () => clientSockets.delete(socket));
  };

  // ---- client-facing servers -------------------------------------------------------------

  const onClientError = (error: Error & { code?: string }, socket: Duplex): void => {
    if (error.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    let status = 400;
    let code = 'HTTPMESH_BAD_REQUEST';
    let message = `malformed request: ${error.code ?? error.message}`;
    if (error.code === 'HPE_HEADER_OVERFLOW') {
      status = 431;
      code = 'HTTPMESH_HEADERS_TOO_LARGE';
      message = `request head exceeds ${maxHeaderSize} bytes`;
    } else if (error.code === 'ERR_HTTP_REQUEST_TIMEOUT') {
      status = 408;
      code = 'HTTPMESH_HEADERS_TIMEOUT';
      message = `request head not received within ${headersTimeoutMs} ms`;
    }
    socket.end(plainResponse(status, code, message));
  };

  const serverTimeouts = {
    maxHeaderSize,
    headersTimeout: headersTimeoutMs,
    requestTimeout: 0,
    // Long like nginx's and Envoy's downstream idle timeouts: a client that keeps its spare connections
    // does not come back with a burst of TLS handshakes (the p99 at moderate load). Draining closes idle
    // sockets without waiting for this.
    keepAliveTimeout: options.keepAliveTimeoutMs ?? DEFAULT_CLIENT_KEEP_ALIVE_MS,
    connectionsCheckingInterval: Math.max(50, Math.min(1_000, Math.floor(headersTimeoutMs / 4))),
  };
  const plainServer = http.createServer({ ...serverTimeouts, requireHostHeader: false });
  plainServer.on('request', (req, res) => handleRequest(req, res));
  plainServer.on('connect', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    handleConnect(req, socket as Socket, head),
  );
  plainServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    handleUpgrade(req, socket, head),
  );
  plainServer.on('clientError', onClientError);
  plainServer.on('connection', trackSocket);
  // Never listens itself (the acceptor or handleConnection feed it); 'listening' starts node:http's
  // header-timeout sweeper, which transparent-mode connections need too.
  plainServer.emit('listening');

  const tlsServer = http2.createSecureServer({
    allowHTTP1: true,
    ...serverTimeouts,
    handshakeTimeout: handshakeTimeoutMs,
    ALPNProtocols: http2Enabled ? ['h2', 'http/1.1'] : ['http/1.1'],
    SNICallback: (servername, callback) => {
      try {
        const context = ca.secureContextFor(servername);
        if (isPromise(context)) context.then((resolved) => callback(null, resolved), callback);
        else callback(null, context);
      } catch (error) {
        callback(error as Error, undefined);
      }
    },
    // Bounded streams per h2 client connection. This server never listens: sockets are emitted into it.
    settings: { maxConcurrentStreams: 256 },
  });
  // The HTTP/1.1 fallback of node:http2 reads node:http's limits from the server object and its
  // constructor hard-codes them, so set them after construction.
  Object.assign(tlsServer, {
    headersTimeout: serverTimeouts.headersTimeout,
    keepAliveTimeout: serverTimeouts.keepAliveTimeout,
    requestTimeout: 0,
    connectionsCheckingInterval: serverTimeouts.connectionsCheckingInterval,
    maxHeaderSize,
  });
  tlsServer.on(
    'request',
    (req: Http2ServerRequest | IncomingMessage, res: Http2ServerResponse | ServerResponse) =>
      handleRequest(req, res),
  );
  tlsServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) =>
    handleUpgrade(req, socket, head),
  );
  tlsServer.on('clientError', onClientError);
  tlsServer.on('tlsClientError', onHandshakeError);
  tlsServer.on('secureConnection', (tlsSocket: TLSSocket) => {
    tlsHandshakes++;
    trackSocket(tlsSocket);
    // The raw socket under a TLS layer does not always see its own close: end it with the TLS one.
    const parent = (tlsSocket as TLSSocket & { _parent?: Duplex })._parent;
    if (parent !== undefined) tlsSocket.once('close', () => parent.destroy());
  });
  tlsServer.on('session', (session: http2.ServerHttp2Session) => {
    if (draining) session.close();
    h2Sessions.add(session);
    session.once('close', () => h2Sessions.delete(session));
  });
  tlsServer.on('sessionError', () => {});
  tlsServer.on('error', () => {});
  // Internal servers never listen, but the header-timeout sweeper of node:http starts on 'listening'.
  tlsServer.emit('listening');

  // ---- connection dispatch -----------------------------------------------------------------

  function handleConnect(req: IncomingMessage, socket: Socket, head: Buffer): void {
    openTunnel(socket, hostOnly(req.url ?? ''), head);
  }

  /** Answers a CONNECT to `parsed` (undefined when its target was not host:port) and starts the tunnel. */
  function openTunnel(socket: Socket, parsed: ReturnType<typeof hostOnly>, head: Buffer): void {
    if (parsed === undefined || parsed.port === undefined) {
      socket.end(plainResponse(400, 'HTTPMESH_BAD_REQUEST', 'CONNECT target must be host:port'));
      return;
    }
    if (closing) {
      socket.end(plainResponse(503, 'HTTPMESH_PROXY_CLOSED', 'proxy is closing'));
      return;
    }
    socket.write(CONNECT_ESTABLISHED);
    if (head.length > 0) socket.unshift(head);
    void handleTunnel(socket, {
      host: parsed.host,
      port: parsed.port,
      address: undefined,
      destination: null,
    });
  }

  async function handleTunnel(socket: Socket, target: TunnelTarget): Promise<void> {
    trackSocket(socket);
    socket.on('error', () => socket.destroy());
    const { parse, ended } = await peekClientHello(
      socket,
      handshakeTimeoutMs,
      DEFAULT_MAX_CLIENT_HELLO_BYTES,
    );
    if (socket.destroyed) return;
    switch (parse.kind) {
      case 'client-hello': {
        const host = parse.info.serverName ?? target.host;
        if (host === '') {
          reportError(new ClientHelloInvalidError('no SNI and no original destination: cannot route'));
          socket.destroy();
          return;
        }
        const tlsTarget = target.port === 0 ? { ...target, port: 443 } : target;
        if (
          (pinningEnabled && pinned.has(host)) ||
          !decideIntercept(host, true, parse.info.serverName, target.destination)
        ) {
          splice(socket, target.host === '' ? { ...tlsTarget, host } : tlsTarget);
          return;
        }
        terminateTls(socket, tlsTarget, host, parse.info);
        return;
      }
      case 'not-tls': {
        if (target.host !== '' && !decideIntercept(target.host, false, undefined, target.destination)) {
          splice(socket, target);
          return;
        }
        (socket as Socket & TargetCarrier)[kTarget] = { ...target, tls: false };
        plainServer.emit('connection', socket);
        socket.resume();
        return;
      }
      case 'invalid':
        reportError(new ClientHelloInvalidError(parse.reason));
        socket.destroy();
        return;
      default:
        if (!ended) reportError(new ClientHelloInvalidError('no decision'));
        socket.destroy();
    }
  }

  /** A throwing `intercept` is reported and treated as "do not intercept" (splice, as if not configured). */
  function decideIntercept(
    host: string,
    isTls: boolean,
    serverName: string | undefined,
    originalDestination: OriginalDestination | null,
  ): boolean {
    try {
      return intercept(host, { tls: isTls, serverName, originalDestination }) === true;
    } catch (error) {
      reportError(new FilterError('intercept', { cause: error }));
      return false;
    }
  }

  function splice(client: Socket, target: TunnelTarget): void {
    const dial = target.address ?? target.host;
    if (ownPorts.has(target.port)) {
      if (isLocalAddress(dial)) {
        refuseSpliceLoop(client, dial, target.port);
        return;
      }
      if (net.isIP(dial) === 0) {
        // A name on our own port: resolved first (the client stays paused meanwhile, nothing is lost).
        void resolvesToLocal(dial).then((local) => {
          if (local) refuseSpliceLoop(client, dial, target.port);
          else if (closing) client.destroy();
          else if (!client.destroyed) connectSplice(client, dial, target.port);
        });
        return;
      }
    }
    connectSplice(client, dial, target.port);
  }

  function refuseSpliceLoop(client: Socket, dial: string, port: number): void {
    reportError(new ProxyLoopError(`${dial}:${port}`));
    client.destroy();
  }

  function connectSplice(client: Socket, dial: string, port: number): void {
    const upstream = net.connect({ host: dial, port, lookup });
    upstream.setNoDelay(true);
    const teardown = (): void => {
      client.destroy();
      upstream.destroy();
    };
    upstream.on('error', teardown);
    client.on('error', teardown);
    client.on('close', () => upstream.destroy());
    upstream.on('close', () => client.destroy());
    client.pipe(upstream);
    upstream.pipe(client);
  }

  function terminateTls(socket: Socket, target: TunnelTarget, host: string, hello: ClientHelloInfo): void {
    (socket as Socket & TargetCarrier)[kTarget] = { ...target, host, tls: true };
    if (hello.serverName !== undefined) {
      // Canonical path: node's own TLS server wraps the socket and asks SNICallback for the context.
      tlsServer.emit('connection', socket);
      return;
    }
    // No SNI: SNICallback is never consulted, so wrap by hand with a context for the target address.
    // (HTTP/1.1 only on this path: node's h2 session does not attach to hand-made server TLSSockets.)
    const start = (context: SecureContext): void => {
      if (socket.destroyed) return;
      const tlsSocket = new tls.TLSSocket(socket, {
        isServer: true,
        secureContext: context,
        server: tlsServer,
        ALPNProtocols: ['http/1.1'],
      }) as TLSSocket & { _releaseControl(): boolean };
      const timer = setTimeout(() => tlsSocket.destroy(), handshakeTimeoutMs);
      tlsSocket.once('secure', () => {
        clearTimeout(timer);
        tlsSocket._releaseControl();
        tlsServer.emit('secureConnection', tlsSocket);
      });
      // Before control is released, node reports handshake failures as '_tlsError' only.
      tlsSocket.on('_tlsError', (error: Error) => onHandshakeError(error, tlsSocket));
      tlsSocket.once('close', () => clearTimeout(timer));
    };
    const fail = (error: Error): void => {
      reportError(new ClientHandshakeError(host, error.message, { cause: error }));
      socket.destroy();
    };
    try {
      const context = ca.secureContextFor(host);
      if (isPromise(context)) context.then(start, fail);
      else start(context);
    } catch (error) {
      fail(error as Error);
    }
  }

  function onHandshakeError(error: Error & { code?: string }, tlsSocket: TLSSocket): void {
    const carrier = targetOf(tlsSocket);
    const host = carrier?.host ?? (tlsSocket.servername || 'unknown');
    // Only a client that refused our certificate with an alert saying so (OpenSSL, curl, Python, Java, Go,
    // browsers) pins its host. A reset, a timeout or a close right after a good handshake also happen to
    // healthy clients (a connection-pool probe, a crash, a cancelled request): counting them would take a
    // host out of interception for the pinning TTL on a guess. Clients that verify only after the handshake
    // (Node) close without an alert: they are indistinguishable from those, so they are not pinned.
    if (pinningEnabled && carrier !== undefined && isCertificateRejection(error.code)) {
      pinned.remember(host);
    }
    reportError(new ClientHandshakeError(host, error.code ?? error.message, { cause: error }));
    tlsSocket.destroy();
    (tlsSocket as TLSSocket & { _parent?: Duplex })._parent?.destroy();
  }

  // ---- HTTP exchange -----------------------------------------------------------------------

  function resolveTarget(
    req: ClientRequest,
    carrier: CarriedTarget | undefined,
  ): { upstream: UpstreamTarget; path: string; authority: string } | BadRequestError {
    const url = req.url ?? '';
    const h2 = req.httpVersionMajor === 2;
    const authorityHeader = h2
      ? ((req.headers[':authority'] as string | undefined) ?? req.headers.host)
      : req.headers.host;
    if (carrier !== undefined && carrier.host === '') {
      // Transparent connection with unknown destination: route by Host.
      const parsed = authorityHeader === undefined ? undefined : hostOnly(authorityHeader);
      if (parsed === undefined)
        return new BadRequestError('cannot route: no original destination and no Host');
      return {
        upstream: {
          protocol: 'http:',
          host: parsed.host,
          port: parsed.port ?? 80,
          address: undefined,
        },
        path: url,
        authority: authorityHeader as string,
      };
    }
    if (carrier !== undefined) {
      const protocol = carrier.tls ? 'https:' : 'http:';
      // Inside a CONNECT tunnel / transparent connection: origin-form target.
      const authority = authorityHeader ?? `${carrier.host}:${carrier.port}`;
      return {
        upstream: { protocol, host: carrier.host, port: carrier.port, address: carrier.address },
        path: url,
        authority,
      };
    }
    // Explicit proxy: absolute-form request target.
    if (url.startsWith('http://') || url.startsWith('https://')) {
      const https = url.charCodeAt(4) === 115; /* 's' */
      const rest = url.slice(https ? 8 : 7);
      const slash = rest.indexOf('/');
      const authority = slash < 0 ? rest : rest.slice(0, slash);
      const parsed = hostOnly(authority);
      if (parsed === undefined || authority.includes('@')) {
        return new BadRequestError('invalid authority in absolute request target');
      }
      return {
        upstream: {
          protocol: https ? 'https:' : 'http:',
          host: parsed.host,
          port: parsed.port ?? (https ? 443 : 80),
          address: undefined,
        },
        path: slash < 0 ? '/' : rest.slice(slash),
        authority: authorityHeader ?? authority,
      };
    }
    return new BadRequestError('a proxy request needs an absolute URI (http://host/path) or CONNECT');
  }

  function sendImmediate(
    res: ClientResponse,
    response: ImmediateResponse,
    state: ExchangeState | undefined,
  ): void {
    if (state !== undefined) state.status = response.status;
    if (res.headersSent) {
      res.destroy();
      return;
    }
    const body = response.body;
    const length =
      body === undefined ? 0 : typeof body === 'string' ? Buffer.byteLength(body) : body.byteLength;
    const headers = { ...response.headers, 'content-length': length };
    (res as ServerResponse).writeHead(response.status, headers);
    if (state !== undefined) state.responseBodyBytes = length;
    if (body === undefined) res.end();
    else (res as ServerResponse).end(body);
  }

  function errorResponse(error: MitmProxyError): ImmediateResponse {
    return {
      status: statusForError(error),
      headers: { 'content-type': 'text/plain; charset=utf-8', [ERROR_HEADER]: error.code },
      body: `${error.message}\n`,
    };
  }

  function handleRequest(req: ClientRequest, res: ClientResponse): void {
    const start = performance.now();
    exchanges++;
    const socket = (req.socket ?? undefined) as Socket | undefined;
    const carrier = socket === undefined ? undefined : targetOf(socket);
    const resolved = resolveTarget(req, carrier);
    if (resolved instanceof BadRequestError) {
      sendImmediate(res, errorResponse(resolved), undefined);
      return;
    }
    const h2 = req.httpVersionMajor === 2;
    const state = new ExchangeState(
      h2 ? 'h2' : 'http/1.1',
      carrier?.tls === true,
      socket?.remoteAddress,
      req.method ?? 'GET',
      resolved.path,
      resolved.authority,
      resolved.upstream,
      endToEndRequestHeaders(req.headers),
      start,
    );
    activeExchanges++;
    // Draining: this response tells an HTTP/1.1 client to go elsewhere next (node adds Connection: close
    // and closes the socket once it is sent). HTTP/2 sessions got GOAWAY instead.
    if (draining && !h2) (res as ServerResponse).shouldKeepAlive = false;
    const chain = filters;
    if (chain.length === 0) {
      forward(req, res, state, chain);
      return;
    }
    if (hasRequestBody(req)) {
      state.setBodyReader((maxBytes) => bufferBody(req, maxBytes));
    }
    let outcome: ReturnType<typeof runRequestHead>;
    try {
      outcome = runRequestHead(chain, state);
    } catch (error) {
      finishWithError(req, res, state, chain, filterFailure(error));
      return;
    }
    if (isPromise(outcome)) {
      outcome.then(
        (immediate) => afterRequestHead(req, res, state, chain, immediate),
        (error: unknown) => finishWithError(req, res, state, chain, filterFailure(error)),
      );
    } else {
      afterRequestHead(req, res, state, chain, outcome);
    }
  }

  function afterRequestHead(
    req: ClientRequest,
    res: ClientResponse,
    state: ExchangeState,
    chain: readonly ExchangeFilter[],
    immediate: ImmediateResponse | undefined,
  ): void {
    if (immediate === undefined) {
      forward(req, res, state, chain);
      return;
    }
    req.resume(); // drain any body we are not forwarding
    sendImmediate(res, immediate, state);
    complete(state, chain, undefined);
  }

  function finishWithError(
    req: ClientRequest,
    res: ClientResponse,
    state: ExchangeState,
    chain: readonly ExchangeFilter[],
    error: MitmProxyError,
  ): void {
    req.resume();
    if (res.headersSent) res.destroy();
    else if (!res.destroyed) sendImmediate(res, errorResponse(error), state);
    complete(state, chain, error);
  }

  function complete(
    state: ExchangeState,
    chain: readonly ExchangeFilter[],
    error: MitmProxyError | undefined,
  ): void {
    if (state.timings.end !== undefined) return;
    state.timings.end = performance.now();
    activeExchanges--;
    if (chain.length === 0) return;
    const summary: ExchangeSummary = {
      timings: state.timings,
      requestBodyBytes: state.requestBodyBytes,
      responseBodyBytes: state.responseBodyBytes,
      status: state.status,
      errorCode: error?.code,
      error,
    };
    for (const filter of chain) {
      if (filter.onComplete === undefined) continue;
      try {
        filter.onComplete(state, summary);
      } catch (hookError) {
        reportError(new FilterError('onComplete', { cause: hookError }));
      }
    }
  }

  function hasRequestBody(req: ClientRequest): boolean {
    if (req.httpVersionMajor === 2) return !(req as Http2ServerRequest).stream.endAfterHeaders;
    const length = req.headers['content-length'];
    if (length !== undefined) return length !== '0';
    return req.headers['transfer-encoding'] !== undefined;
  }

  async function* countingBody(req: ClientRequest, state: ExchangeState): AsyncGenerator<Buffer> {
    for await (const chunk of req as AsyncIterable<Buffer>) {
      state.requestBodyBytes += chunk.length;
      yield chunk;
    }
  }

  /**
   * Refuses an exchange that would come back to this proxy, else sends it upstream. Only a target on one of
   * our own ports is examined (one Set lookup per exchange otherwise); a host name there is resolved first,
   * asynchronously, with the dial's own `lookup`.
   */
  function forward(
    req: ClientRequest,
    res: ClientResponse,
    state: ExchangeState,
    chain: readonly ExchangeFilter[],
  ): void {
    const upstream = state.upstream;
    if (ownPorts.has(upstream.port)) {
      const dial = upstream.address ?? upstream.host;
      if (isLocalAddress(dial)) {
        finishWithError(req, res, state, chain, new ProxyLoopError(`${upstream.host}:${upstream.port}`));
        return;
      }
      if (net.isIP(dial) === 0) {
        void resolvesToLocal(dial).then((local) => {
          if (local)
            finishWithError(req, res, state, chain, new ProxyLoopError(`${upstream.host}:${upstream.port}`));
          else if (clientGone(res)) complete(state, chain, new ClientAbortedError());
          else sendUpstream(req, res, state, chain);
        });
        return;
      }
    }
    sendUpstream(req, res, state, chain);
  }

  function sendUpstream(
    req: ClientRequest,
    res: ClientResponse,
    state: ExchangeState,
    chain: readonly ExchangeFilter[],
  ): void {
    const upstream = state.upstream;
    if (upstream.address !== undefined)
      rememberAddress(`${upstream.host}:${upstream.port}`, upstream.address);
    state.requestForwarded = true;
    const withBody = hasRequestBody(req);
    const body =
      state.bufferedBody !== undefined
        ? state.bufferedBody
        : withBody
          ? chain.length === 0
            ? req
            : state.requestBodyTransform !== undefined
              ? Readable.from(transformedChunks(countingBody(req, state), state.requestBodyTransform), {
                  objectMode: false,
                })
              : countingBody(req, state)
          : null;
    const defaultPort = upstream.protocol === 'https:' ? 443 : 80;
    const origin =
      upstream.port === defaultPort
        ? `${upstream.protocol}//${formatHost(upstream.host)}`
        : `${upstream.protocol}//${formatHost(upstream.host)}:${upstream.port}`;
    let controllerRef: Dispatcher.DispatchController | undefined;
    let headWritten = false;
    let finished = false;
    let pending: Buffer[] | undefined;
    let ended = false;
    let paused = false;
    /** Set while a filter buffers the response body (`readResponseBody`). */
    let bodyWaiter:
      | { maxBytes: number; resolve: (body: Buffer) => void; reject: (error: Error) => void }
      | undefined;
    let bodyPromise: Promise<Buffer> | undefined;
    /** The response body a filter buffered: sent with a content-length instead of the streamed chunks. */
    let bufferedResponse: Buffer | undefined;
    /** Upstream trailers not yet through the trailer hooks (undefined: none, or already run). */
    let trailersToFilter: IncomingHttpHeaders | undefined;

    const onClientGone = (): void => {
      if (finished) return;
      finished = true;
      const error = new ClientAbortedError();
      controllerRef?.abort(error);
      complete(state, chain, error);
    };
    // `on`, not `once`: a response closes once, and `once` allocates a wrapper per exchange.
    res.on('close', () => {
      if (!res.writableFinished) onClientGone();
    });

    const writeHead = (): void => {
      headWritten = true;
      let headers = state.responseHeaders ?? {};
      if (bufferedResponse !== undefined) {
        // A length-framed HTTP/1.1 response cannot carry trailers: keep it chunked when some came.
        if (trailersToFilter === undefined && !hasKeys(state.responseTrailers))
          headers = { ...headers, 'content-length': String(bufferedResponse.length) };
        pending = [bufferedResponse];
      }
      if (state.responseBodyTransform !== undefined && headers['content-length'] !== undefined) {
        // Chunks may change size: the body goes chunked (h2: unframed DATA).
        headers = { ...headers };
        delete headers['content-length'];
      }
      try {
        (res as ServerResponse).writeHead(state.status, headers as http.OutgoingHttpHeaders);
      } catch (error) {
        fail(new FilterError('writeHead', { cause: error }));
        return;
      }
      if (pending !== undefined) {
        if (state.responseBodyTransform !== undefined)
          for (const chunk of pending) transformChunk(chunk, false);
        else for (const chunk of pending) (res as ServerResponse).write(chunk);
        pending = undefined;
      }
      if (ended) {
        if (state.responseBodyTransform !== undefined) transformChunk(EMPTY, true);
        else endResponse();
      }
    };

    /** Tail of the per-chunk response transforms: one chunk at a time, in order. */
    let transformTail: Promise<void> | undefined;
    const transformChunk = (chunk: Buffer, end: boolean): Promise<void> => {
      const transform = state.responseBodyTransform as BodyChunkTransform;
      const run = async (): Promise<void> => {
        if (finished) return;
        const out = await transform(chunk, end);
        if (finished) return;
        const data = out === undefined ? chunk : out;
        if (data.length > 0 && !(res as ServerResponse).write(data)) await drained(res);
        if (end) endResponse();
      };
      transformTail = (transformTail ?? Promise.resolve()).then(run).catch((error: unknown) => {
        const failure = responseFilterFailure(error);
        fail(failure);
        // The upstream is paused mid-body: release it now rather than at its body timeout.
        if (!ended) controllerRef?.abort(failure);
      });
      return transformTail;
    };

    const endResponse = (): void => {
      if (finished) return;
      if (trailersToFilter !== undefined) {
        state.responseTrailers = trailersToFilter;
        trailersToFilter = undefined;
        let outcome: MaybePromise<void>;
        try {
          outcome = runResponseTrailers(chain, state);
        } catch (error) {
          fail(responseFilterFailure(error));
          return;
        }
        if (isPromise(outcome)) {
          outcome.then(endResponse, (error: unknown) => fail(responseFilterFailure(error)));
          return;
        }
      }
      finished = true;
      const trailers = state.responseTrailers;
      if (trailers !== undefined && hasKeys(trailers)) {
        try {
          (res as ServerResponse).addTrailers(trailers as http.OutgoingHttpHeaders);
        } catch (error) {
          finished = false;
          fail(new FilterError('addTrailers', { cause: error }));
          return;
        }
      }
      res.end();
      complete(state, chain, undefined);
    };

    const fail = (cause: unknown): void => {
      if (finished) return;
      finished = true;
      const error = classifyUpstreamError(cause, upstream.host, res.headersSent);
      if (res.headersSent || headWritten) {
        // Mid-response failure: the client must see a broken message, not a truncated "success".
        res.destroy(error);
      } else if (!res.destroyed) {
        sendImmediate(res, errorResponse(error), state);
      }
      if (withBody && !(req as { complete?: boolean }).complete) req.resume();
      complete(state, chain, error);
    };

    /** Resolves a buffering filter with what arrived, once the upstream body is complete. */
    const settleBody = (): void => {
      if (bodyWaiter === undefined) return;
      const chunks = pending ?? [];
      pending = [];
      bufferedResponse = chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks);
      const waiter = bodyWaiter;
      bodyWaiter = undefined;
      waiter.resolve(bufferedResponse);
    };

    const readResponseBody = (maxBytes: number): Promise<Buffer> => {
      if (bodyPromise !== undefined) return bodyPromise;
      bodyPromise = new Promise<Buffer>((resolve, reject) => {
        if (headWritten || finished) {
          reject(new FilterError('readResponseBody', { cause: new Error('response already sent') }));
          return;
        }
        let held = 0;
        for (const chunk of pending ?? []) held += chunk.length;
        if (held > maxBytes) {
          const error = new ResponseBodyTooLargeError(maxBytes);
          reject(error);
          controllerRef?.abort(error);
          return;
        }
        bodyWaiter = { maxBytes, resolve, reject };
        pending ??= [];
        if (ended) settleBody();
        else if (paused) {
          paused = false;
          controllerRef?.resume();
        }
      });
      return bodyPromise;
    };

    /** A response filter answered instead of the upstream: drop the upstream response and send that. */
    const replaceResponse = (immediate: ImmediateResponse): void => {
      if (finished) return;
      finished = true;
      if (!ended) controllerRef?.abort(new ClientAbortedError());
      if (withBody && !(req as { complete?: boolean }).complete) req.resume();
      sendImmediate(res, immediate, state);
      complete(state, chain, undefined);
    };

    const afterResponseHead = (immediate: ImmediateResponse | undefined): void => {
      state.setResponseBodyReader(undefined);
      state.inResponseHead = false;
      if (bodyWaiter !== undefined) {
        // The hook returned without awaiting the body it asked for: stream instead.
        bodyWaiter.reject(
          new FilterError('readResponseBody', { cause: new Error('not awaited by the hook') }),
        );
        bodyWaiter = undefined;
      }
      if (immediate !== undefined) {
        replaceResponse(immediate);
        return;
      }
      if (finished) return;
      writeHead();
      if (paused) {
        paused = false;
        controllerRef?.resume();
      }
    };

    const handler: Dispatcher.DispatchHandler = {
      onRequestStart(controller) {
        controllerRef = controller;
        // Timings are read only by filters (the chain is fixed per exchange): no clock reads without one.
        if (chain.length !== 0) state.timings.upstreamConnect = performance.now();
        if (finished) controller.abort(new ClientAbortedError());
      },
      onResponseStart(controller, statusCode, headers) {
        if (chain.length !== 0) state.timings.firstByte = performance.now();
        state.status = statusCode;
        state.responseHeaders = endToEndResponseHeaders(headers);
        if (chain.length === 0) {
          writeHead();
          return;
        }
        state.setResponseBodyReader(readResponseBody);
        let outcome: ReturnType<typeof runResponseHead>;
        state.inResponseHead = true;
        try {
          outcome = runResponseHead(chain, state);
        } catch (error) {
          state.inResponseHead = false;
          state.setResponseBodyReader(undefined);
          controller.abort(responseFilterFailure(error));
          return;
        }
        if (isPromise(outcome)) {
          pending ??= [];
          // Hold the upstream while the hook thinks, unless it is reading the body (it needs the data).
          if (bodyWaiter === undefined && bodyPromise === undefined) {
            paused = true;
            controller.pause();
          }
          outcome.then(afterResponseHead, (error: unknown) => {
            state.setResponseBodyReader(undefined);
            controller.abort(responseFilterFailure(error));
          });
        } else {
          afterResponseHead(outcome);
        }
      },
      onResponseData(controller, chunk) {
        state.responseBodyBytes += chunk.length;
        if (!headWritten) {
          if (bodyWaiter !== undefined) {
            let held = chunk.length;
            for (const part of pending ?? []) held += part.length;
            if (held > bodyWaiter.maxBytes) {
              const error = new ResponseBodyTooLargeError(bodyWaiter.maxBytes);
              bodyWaiter.reject(error);
              bodyWaiter = undefined;
              controller.abort(error);
              return;
            }
          }
          pending?.push(chunk);
          return;
        }
        if (state.responseBodyTransform !== undefined) {
          // Hold the upstream until this chunk went through the transform: memory stays one chunk deep.
          controller.pause();
          transformChunk(chunk, false).then(() => {
            if (!finished) controller.resume();
          });
          return;
        }
        if (!(res as ServerResponse).write(chunk)) {
          controller.pause();
          res.once('drain', () => controller.resume());
        }
      },
      onResponseEnd(controller, parsedTrailers) {
        ended = true;
        const trailers = hasKeys(parsedTrailers) ? parsedTrailers : h2Trailers(controller);
        if (trailers !== undefined) {
          // Trailer hooks run only when a filter has one; otherwise the trailers are forwarded as they came.
          if (chain.length !== 0 && hasTrailerHook(chain)) trailersToFilter = trailers as IncomingHttpHeaders;
          else state.responseTrailers = trailers as IncomingHttpHeaders;
        }
        if (!headWritten) settleBody();
        else if (state.responseBodyTransform !== undefined) transformChunk(EMPTY, true);
        else endResponse();
      },
      onResponseError(_controller, error) {
        if (bodyWaiter !== undefined) {
          bodyWaiter.reject(classifyUpstreamError(error, upstream.host, false));
          bodyWaiter = undefined;
        }
        fail(error);
      },
    };

    if (withBody && announcesTrailers(req)) {
      const clientTrailers = (req as { trailers?: IncomingHttpHeaders }).trailers;
      const getTrailers = (): MaybePromise<IncomingHttpHeaders | undefined> => {
        // By now the client's body was read to its end, so its trailers (if any) have arrived.
        const received = (req as { trailers?: IncomingHttpHeaders }).trailers ?? clientTrailers;
        if (!hasKeys(received)) return undefined;
        state.requestTrailers = { ...received };
        if (chain.length === 0 || !hasRequestTrailerHook(chain)) return state.requestTrailers;
        let outcome: MaybePromise<void>;
        try {
          outcome = runRequestTrailers(chain, state);
        } catch (error) {
          throw requestTrailerFailure(error);
        }
        if (isPromise(outcome))
          return outcome.then(
            () => state.requestTrailers,
            (error: unknown) => {
              throw requestTrailerFailure(error);
            },
          );
        return state.requestTrailers;
      };
      dispatchWithTrailers(
        {
          protocol: upstream.protocol === 'https:' ? 'https:' : 'http:',
          host: upstream.host,
          address: upstream.address ?? addressOverrides.get(`${upstream.host}:${upstream.port}`),
          port: upstream.port,
          path: state.path,
          method: state.method,
          headers: state.requestHeaders,
          body: (body ?? null) as AsyncIterable<Buffer> | Buffer | null,
          secureContext: upstreamContext,
          rejectUnauthorized: !isInsecureUpstream(upstream.host),
          connectTimeoutMs: upstreamConnectTimeoutMs,
          lookup,
          headersTimeoutMs: state.upstreamHeadersTimeoutMs ?? options.upstreamHeadersTimeoutMs ?? 60_000,
          bodyTimeoutMs: state.upstreamBodyTimeoutMs ?? options.upstreamBodyTimeoutMs ?? 120_000,
          getTrailers: getTrailers as () =>
            | IncomingHttpHeaders
            | undefined
            | Promise<IncomingHttpHeaders | undefined>,
        },
        handler,
      );
      return;
    }
    try {
      const dispatchOptions: Dispatcher.DispatchOptions = {
        origin,
        path: state.path,
        method: state.method as Dispatcher.HttpMethod,
        headers: state.requestHeaders,
        body: body as unknown as Readable | null,
      };
      // Assigned only when set (no object spreads per exchange): absent keeps the pool's defaults.
      if (state.upstreamHeadersTimeoutMs !== undefined)
        dispatchOptions.headersTimeout = state.upstreamHeadersTimeoutMs;
      if (state.upstreamBodyTimeoutMs !== undefined)
        dispatchOptions.bodyTimeout = state.upstreamBodyTimeoutMs;
      agentFor(upstream.host).dispatch(dispatchOptions, handler);
    } catch (error) {
      fail(error);
    }
  }

  // ---- WebSocket and other upgrades: forwarded head, then a raw byte splice ---------------

  function handleUpgrade(req: IncomingMessage, clientSocket: Duplex, head: Buffer): void {
    const carrier = targetOf(req.socket);
    const resolved = resolveTarget(req, carrier);
    if (resolved instanceof BadRequestError) {
      clientSocket.end(plainResponse(400, resolved.code, resolved.message));
      return;
    }
    const upstream = resolved.upstream;
    const headers = endToEndRequestHeaders(req.headers);
    const upgradeHeader = req.headers.upgrade;
    if (upgradeHeader !== undefined) headers.upgrade = upgradeHeader;
    const dial = upstream.address ?? upstream.host;
    if (ownPorts.has(upstream.port)) {
      if (isLocalAddress(dial)) {
        refuseUpgradeLoop(clientSocket, upstream);
        return;
      }
      if (net.isIP(dial) === 0) {
        // Nothing else listens for errors on the client until the dial: a reset while resolving must not throw.
        clientSocket.on('error', () => clientSocket.destroy());
        void resolvesToLocal(dial).then((local) => {
          if (local) refuseUpgradeLoop(clientSocket, upstream);
          else if (closing) clientSocket.destroy();
          else if (!clientSocket.destroyed)
            dialUpgrade(req, clientSocket, head, upstream, dial, resolved.path, headers);
        });
        return;
      }
    }
    dialUpgrade(req, clientSocket, head, upstream, dial, resolved.path, headers);
  }

  function refuseUpgradeLoop(clientSocket: Duplex, upstream: UpstreamTarget): void {
    const loop = new ProxyLoopError(`${upstream.host}:${upstream.port}`);
    clientSocket.end(plainResponse(statusForError(loop), loop.code, loop.message));
  }

  function dialUpgrade(
    req: IncomingMessage,
    clientSocket: Duplex,
    head: Buffer,
    upstream: UpstreamTarget,
    dial: string,
    path: string,
    headers: IncomingHttpHeaders,
  ): void {
    const upstreamSocket: Socket =
      upstream.protocol === 'https:'
        ? tls.connect({
            host: dial,
            port: upstream.port,
            servername: net.isIP(upstream.host) === 0 ? upstream.host : '',
            secureContext: upstreamContext,
            rejectUnauthorized: !isInsecureUpstream(upstream.host),
            ALPNProtocols: ['http/1.1'],
            lookup,
          })
        : net.connect({ host: dial, port: upstream.port, lookup });
    let connected = false;
    upstreamSocket.once(upstream.protocol === 'https:' ? 'secureConnect' : 'connect', () => {
      connected = true;
      upstreamSocket.write(serializeUpgradeHead(req.method ?? 'GET', path, headers));
      if (head.length > 0) upstreamSocket.write(head);
      upstreamSocket.pipe(clientSocket);
      clientSocket.pipe(upstreamSocket);
    });
    upstreamSocket.on('error', (cause) => {
      if (!connected && clientSocket.writable) {
        const error = classifyUpstreamError(cause, upstream.host, false);
        clientSocket.end(plainResponse(statusForError(error), error.code, error.message));
      } else {
        clientSocket.destroy();
      }
    });
    clientSocket.on('error', () => upstreamSocket.destroy());
    clientSocket.on('close', () => upstreamSocket.destroy());
    upstreamSocket.on('close', () => clientSocket.destroy());
  }

  // ---- explicit-proxy acceptor ------------------------------------------------------------

  /**
   * CONNECT is parsed here rather than by node:http: a socket handed out by node:http's 'connect'
   * event keeps parser state on its handle, and a TLS server layered on it never sees the client's
   * EOF (fd stuck in CLOSE_WAIT). Everything else goes to the HTTP server untouched.
   */
  function acceptExplicit(socket: Socket): void {
    trackSocket(socket);
    socket.setNoDelay(true);
    let buffered: Buffer | undefined;
    const timer = setTimeout(() => socket.destroy(), headersTimeoutMs);
    const onError = (): void => {
      clearTimeout(timer);
      socket.destroy();
    };
    const handOver = (): void => {
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.pause();
      if (buffered !== undefined) socket.unshift(buffered);
      plainServer.emit('connection', socket);
      socket.resume();
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered === undefined ? chunk : Buffer.concat([buffered, chunk]);
      const prefix = Math.min(buffered.length, CONNECT_PREFIX.length);
      if (buffered.compare(CONNECT_PREFIX, 0, prefix, 0, prefix) !== 0) {
        handOver();
        return;
      }
      const end = buffered.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buffered.length > maxHeaderSize) {
          clearTimeout(timer);
          socket.removeListener('data', onData);
          socket.end(
            plainResponse(431, 'HTTPMESH_HEADERS_TOO_LARGE', `request head exceeds ${maxHeaderSize} bytes`),
          );
        }
        return;
      }
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('error', onError);
      socket.pause();
      const requestLine = buffered.toString('latin1', 0, buffered.indexOf('\r\n'));
      const rest = buffered.subarray(end + 4);
      buffered = undefined;
      handleConnectLine(socket, requestLine, rest);
    };
    socket.on('data', onData);
    socket.on('error', onError);
  }

  function handleConnectLine(socket: Socket, requestLine: string, head: Buffer): void {
    const parts = requestLine.split(' ');
    const parsed =
      parts.length === 3 && parts[2]?.startsWith('HTTP/1.') ? hostOnly(parts[1] ?? '') : undefined;
    openTunnel(socket, parsed, head);
  }

  const acceptor = net.createServer({ noDelay: true }, (socket: Socket) => {
    if (admitClientConnection(socket)) acceptExplicit(socket);
  });

  // ---- lifecycle ----------------------------------------------------------------------------

  /**
   * True when dialling `address:port` would reach this proxy's own listener: the port is one we listen on
   * and the address is loopback, unspecified, or one of this host's interface addresses. Only consulted when
   * the port matches, so the interface lookup stays off the hot path.
   */
  function isOwnListener(address: string, port: number): boolean {
    if (!ownPorts.has(port)) return false;
    return isLocalAddress(address);
  }

  /**
   * The loop guard for a host NAME on one of our ports: resolves it as the dial would (the same `lookup`)
   * and says whether any address is this host's. An error, a malformed answer or none within the connect
   * timeout is not a loop: the dial that follows reports its own failure, as for any other name.
   */
  function resolvesToLocal(host: string): Promise<boolean> {
    return new Promise((resolve) => {
      let settled = false;
      const settle = (local: boolean): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        resolve(local);
      };
      const timer = setTimeout(settle, upstreamConnectTimeoutMs, false);
      try {
        // A caller's lookup is wrapped (upstreamLookupOption): it answers well-formed or with an error.
        (lookup ?? defaultLookup)(host, { all: true }, (error, addresses) => {
          if (error !== null && error !== undefined) settle(false);
          else if (typeof addresses === 'string') settle(isLocalAddress(withoutZone(addresses)));
          else settle(addresses.some(isLocalEntry));
        });
      } catch {
        // dns.lookup refusing its arguments: a lookup error like any other, for the dial to report.
        settle(false);
      }
    });
  }

  function drainConnections(): void {
    for (const session of h2Sessions) if (!session.closed) session.close();
    for (const socket of clientSockets) {
      const current = (socket as Duplex & { _httpMessage?: ServerResponse | null })._httpMessage;
      if (current === undefined) continue; // not an HTTP/1.1 connection (raw tunnel layer, splice, h2)
      if (current === null) continue; // idle: closed below by node's own idle tracking
      if (!current.headersSent) current.shouldKeepAlive = false;
      else if (!current.writableFinished) current.once('finish', () => socket.end());
    }
    // node:http knows which connections sit between requests (not mid-head); it closes exactly those.
    plainServer.closeIdleConnections();
    http.Server.prototype.closeIdleConnections.call(tlsServer as unknown as http.Server);
  }

  return {
    async listen(port = 0, host = '127.0.0.1') {
      acceptor.listen(port, host);
      await once(acceptor, 'listening');
      const address = acceptor.address() as AddressInfo;
      ownPorts.add(address.port);
      return address;
    },
    handleConnection(socket, originalDestination) {
      if (closing) {
        socket.destroy();
        return;
      }
      if (!admitClientConnection(socket)) return;
      // The port this socket was accepted on is one of ours (REDIRECT). With TPROXY the local address is the
      // foreign original destination instead, and its port says nothing about our listeners.
      const localPort = socket.localPort;
      if (localPort !== undefined && !ownPorts.has(localPort) && isLocalAddress(socket.localAddress ?? '')) {
        ownPorts.add(localPort);
      }
      let destination =
        originalDestination === undefined ? readOriginalDestination(socket) : originalDestination;
      // A connection that was not redirected (conntrack reports the local address) or one aimed at our
      // own listener: dialling it would connect the proxy to itself. Route by SNI/Host instead.
      if (destination !== null && isOwnListener(destination.address, destination.port)) destination = null;
      if (destination === null) {
        // Unknown destination: '' makes the tunnel resolve the host from SNI or the Host header.
        void handleTunnel(socket, { host: '', port: 0, address: undefined, destination: null });
        return;
      }
      void handleTunnel(socket, {
        host: destination.address,
        port: destination.port,
        address: destination.address,
        destination,
      });
    },
    acceptConnection(socket) {
      if (closing) {
        socket.destroy();
        return;
      }
      if (!admitClientConnection(socket)) return;
      const localPort = socket.localPort;
      if (localPort !== undefined) ownPorts.add(localPort);
      acceptExplicit(socket);
    },
    setFilters(next) {
      filters = [...next];
    },
    setInsecureUpstreamHosts(rule) {
      insecureUpstream = compileHostRule(rule, 'insecureUpstreamHosts');
    },
    get stats() {
      return {
        openClientSockets: clientSockets.size,
        clientConnections,
        maxClientConnections,
        refusedClientConnections,
        pinnedHosts: pinned.size,
        exchanges,
        tlsHandshakes,
        activeExchanges,
        draining,
      };
    },
    async stopAccepting(stopOptions) {
      draining = true;
      if (acceptor.listening && stopOptions?.closeListener !== false) {
        // Not close(callback): that waits for every accepted connection, which is what draining is for.
        acceptor.close();
      }
      drainConnections();
    },
    async close() {
      draining = true;
      closing = true;
      clearTimeout(limitReportTimer);
      // Refusals still waiting for their window are reported now rather than lost.
      if (refusedUnreported > 0) {
        reportError(new ClientConnectionLimitError(maxClientConnections, refusedUnreported));
        refusedUnreported = 0;
      }
      const closed = acceptor.listening ? new Promise((resolve) => acceptor.close(resolve)) : undefined;
      for (const socket of clientSockets) socket.destroy();
      clientSockets.clear();
      plainServer.closeAllConnections();
      plainServer.close();
      tlsServer.close();
      await Promise.all([closed, verifiedAgent.close(), insecureAgent?.close()]);
    },
  };
}

/**
 * TLS alerts a client sends when it does not accept the server's certificate (OpenSSL names them
 * `..._ALERT_<NAME>` in the server-side error code). Other alerts (protocol_version, handshake_failure, ...)
 * are not about the certificate and must not pin.
 */
const CERTIFICATE_REJECTION_ALERTS = [
  'ALERT_UNKNOWN_CA',
  'ALERT_BAD_CERTIFICATE',
  'ALERT_CERTIFICATE_UNKNOWN',
  'ALERT_UNSUPPORTED_CERTIFICATE',
  'ALERT_CERTIFICATE_EXPIRED',
  'ALERT_CERTIFICATE_REVOKED',
  'ALERT_ACCESS_DENIED',
];

function isCertificateRejection(code: string | undefined): boolean {
  if (code === undefined) return false;
  for (const alert of CERTIFICATE_REJECTION_ALERTS) if (code.endsWith(alert)) return true;
  return false;
}

/** Same for response hooks: our own errors (body over the cap) keep their code. */
function responseFilterFailure(error: unknown): MitmProxyError {
  return error instanceof MitmProxyError ? error : new FilterError('onResponseHead', { cause: error });
}

/** node:net's default resolver, typed as the `lookup` option it stands in for. */
const defaultLookup = dns.lookup as LookupFunction;

function isLocalEntry(entry: { address: string }): boolean {
  return isLocalAddress(withoutZone(entry.address));
}

/** `fe80::1%eth0` as getaddrinfo may write it; interface addresses carry no zone. */
function withoutZone(address: string): string {
  const percent = address.indexOf('%');
  return percent < 0 ? address : address.slice(0, percent);
}

/** A response whose client is gone (HTTP/1.1: the response is destroyed; h2: its stream is). */
function clientGone(res: ClientResponse): boolean {
  if ((res as { destroyed?: boolean }).destroyed === true) return true;
  return (res as Partial<Http2ServerResponse>).stream?.destroyed === true;
}

let interfaceAddresses: { at: number; addresses: ReadonlySet<string> } | undefined;

/** Loopback, unspecified, or an address of one of this host's interfaces (cached for a second). */
function isLocalAddress(raw: string): boolean {
  const address = raw.startsWith('::ffff:') && net.isIPv4(raw.slice(7)) ? raw.slice(7) : raw.toLowerCase();
  if (address === 'localhost' || address.endsWith('.localhost')) return true;
  const family = net.isIP(address);
  if (family === 0) return false;
  if (family === 4 && (address.startsWith('127.') || address === '0.0.0.0')) return true;
  if (address === '::1' || address === '::') return true;
  const now = Date.now();
  if (interfaceAddresses === undefined || now - interfaceAddresses.at > 1_000) {
    const addresses = new Set<string>();
    for (const list of Object.values(os.networkInterfaces())) {
      for (const entry of list ?? []) addresses.add(entry.address.toLowerCase());
    }
    interfaceAddresses = { at: now, addresses };
  }
  return interfaceAddresses.addresses.has(address);
}

/** A filter that fails with one of our errors (e.g. body over the cap) keeps its code and status. */
function requestTrailerFailure(error: unknown): MitmProxyError {
  return error instanceof MitmProxyError ? error : new FilterError('onRequestTrailers', { cause: error });
}
function filterFailure(error: unknown): MitmProxyError {
  return error instanceof MitmProxyError ? error : new FilterError('onRequestHead', { cause: error });
}

/** Target attached to a raw socket, reached through a TLSSocket's `_parent` when terminated. */
function targetOf(socket: Duplex): CarriedTarget | undefined {
  const direct = (socket as Duplex & TargetCarrier)[kTarget];
  if (direct !== undefined) return direct;
  const parent = (socket as Duplex & { _parent?: Duplex & TargetCarrier })._parent;
  return parent?.[kTarget];
}

/** Brackets an IPv6 literal (the only host form with a colon; the port is kept apart) without a regex. */
function formatHost(host: string): string {
  return host.includes(':') ? `[${host}]` : host;
}
