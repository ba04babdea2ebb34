import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';

/** Where an exchange is forwarded. Filters may replace it in `onRequestHead` (routing, traffic split). */
export interface UpstreamTarget {
  protocol: 'http:' | 'https:';
  /** Host name used for TLS verification (SNI) and the pool key. */
  host: string;
  port: number;
  /** Connect to this address instead of resolving `host` (transparent mode: the original destination IP). */
  address?: string | undefined;
}

/** A response produced by a filter instead of forwarding (access control, rate limit, fault injection). */
export interface ImmediateResponse {
  status: number;
  headers?: OutgoingHttpHeaders;
  body?: string | Uint8Array;
}

/** Timings in milliseconds from `performance.now()`; undefined when the phase never happened. */
export interface ExchangeTimings {
  start: number;
  /** Upstream connection acquired (fresh or from the pool) and the request is being written. */
  upstreamConnect: number | undefined;
  /** Upstream response head received. */
  firstByte: number | undefined;
  end: number | undefined;
}

export interface ExchangeSummary {
  readonly timings: Readonly<ExchangeTimings>;
  /** Request body bytes received from the client (counted only when filters are installed). */
  readonly requestBodyBytes: number;
  /** Response body bytes sent to the client. */
  readonly responseBodyBytes: number;
  /** Status the client received (0 when none was sent). */
  readonly status: number;
  /** Stable error code (see README) when the exchange failed, e.g. `HTTPMESH_UPSTREAM_UNREACHABLE`. */
  readonly errorCode: string | undefined;
  readonly error: Error | undefined;
}

export type MaybePromise<T> = T | Promise<T>;

/**
 * A per-chunk body transform: called for every chunk as it passes (one at a time, in order; the stream
 * waits for it), then once with an empty chunk and `end = true`. Return replacement bytes (may be empty)
 * or undefined to pass the chunk unchanged. A throw or rejection aborts the exchange.
 */
export type BodyChunkTransform = (chunk: Buffer, end: boolean) => MaybePromise<Uint8Array | undefined>;

/**
 * One hook object per concern (metrics, timeouts, access control, plugins...). Every hook is optional;
 * a hook that returns a non-promise keeps the exchange on the synchronous fast path.
 */
export interface ExchangeFilter {
  readonly name?: string;
  /** Before forwarding. Mutate `exchange.requestHeaders`/`exchange.upstream`, or return a response. */
  onRequestHead?(exchange: Exchange): MaybePromise<ImmediateResponse | undefined>;
  /**
   * Upstream head received, before anything is sent to the client. Mutate status/headers here, call
   * `exchange.readResponseBody(maxBytes)` to see the body first, or return a response that replaces the
   * upstream one (the upstream response is then aborted; later filters are skipped).
   */
  // biome-ignore lint/suspicious/noConfusingVoidType: hooks written before this could return a response return void
  onResponseHead?(exchange: Exchange): MaybePromise<ImmediateResponse | undefined | void>;
  /**
   * The upstream response ended with trailers (HTTP/1.1 chunked trailers or h2 trailing HEADERS), after the
   * last body byte went to the client and before the response ends. Mutate `exchange.responseTrailers`
   * (set to undefined or `{}` to drop them); a rejection or throw breaks the response (the client sees a
   * reset, not a clean end). Not called for responses without trailers.
   */
  onResponseTrailers?(exchange: Exchange): MaybePromise<void>;
  /**
   * The client's request ended with trailers (HTTP/1.1 chunked trailers or h2 trailing HEADERS), after the
   * last body byte went upstream and before the upstream request ends. Only for requests that announced
   * trailers (`trailer` or `te: trailers` request header); those go upstream over node:http instead of
   * undici, since undici cannot send request trailers. Mutate `exchange.requestTrailers` (undefined or `{}`
   * drops them); a throw or rejection breaks the exchange (`HTTPMESH_FILTER_FAILED`), and a name or value
   * that is not a valid field is refused with `HTTPMESH_REQUEST_TRAILER_INVALID`.
   */
  onRequestTrailers?(exchange: Exchange): MaybePromise<void>;
  /** Exactly once per exchange, success or failure. Must not throw (errors are reported, not raised). */
  onComplete?(exchange: Exchange, summary: ExchangeSummary): void;
}

/** The request/response pair as filters see it. Header names are lower-case. */
export interface Exchange {
  readonly id: number;
  /** Protocol spoken with the client. */
  readonly clientProtocol: 'http/1.1' | 'h2';
  /** True when the client connection was TLS terminated by the proxy. */
  readonly clientTls: boolean;
  readonly clientAddress: string | undefined;
  method: string;
  /** Origin-form request target (path and query). */
  path: string;
  /** Value of Host / :authority as the client sent it. */
  readonly authority: string;
  upstream: UpstreamTarget;
  /** End-to-end request headers (hop-by-hop already removed). */
  requestHeaders: IncomingHttpHeaders;
  /** Set when the upstream head arrived. */
  status: number;
  responseHeaders: IncomingHttpHeaders | undefined;
  /**
   * Trailers the upstream sent after the response body (lower-case names), set just before the
   * `onResponseTrailers` hooks run; forwarded to the client as they are when the response ends (on HTTP/1.1
   * only when the response to the client is chunked: a length-framed one cannot carry trailers).
   */
  responseTrailers: IncomingHttpHeaders | undefined;
  /**
   * Trailers the client sent after the request body (lower-case names), set just before the
   * `onRequestTrailers` hooks run; forwarded upstream as they are when the request ends.
   */
  requestTrailers: IncomingHttpHeaders | undefined;
  readonly timings: ExchangeTimings;
  /** Per-exchange scratch space for filters (keyed by symbol or filter name). */
  readonly locals: Map<string | symbol, unknown>;
  /**
   * Per-exchange upstream timeouts (timeout policies set these in `onRequestHead`); undefined keeps the
   * proxy defaults. Expiry gives the client 504 `HTTPMESH_UPSTREAM_TIMEOUT`.
   */
  upstreamHeadersTimeoutMs: number | undefined;
  upstreamBodyTimeoutMs: number | undefined;
  /**
   * Buffers the whole request body, at most `maxBytes` (a hard cap: beyond it the promise rejects with
   * `RequestBodyTooLargeError` and, if that propagates, the client gets 413). The buffered bytes are then
   * forwarded instead of the stream. Only from `onRequestHead`; bodies stream untouched unless asked.
   */
  readRequestBody(maxBytes: number): Promise<Buffer>;
  /**
   * Replaces the request body sent upstream (a string is UTF-8): `content-length` is set to the new length and
   * `transfer-encoding` removed. Call it after `readRequestBody` resolved when the request has a body (the
   * client's bytes must be consumed first), from `onRequestHead`; it may also add a body to a request that had
   * none. Throws `FilterError` (HTTPMESH_FILTER_FAILED) when called too early or after the request went upstream.
   * `ExchangeSummary.requestBodyBytes` keeps counting what the client sent.
   */
  setRequestBody(body: Uint8Array | string): void;
  /**
   * Buffers the whole upstream response body, at most `maxBytes`, and forwards the buffered bytes (with a
   * `content-length`) once the response hooks finish; return an `ImmediateResponse` from `onResponseHead` to
   * send something else instead. Over the cap the upstream response is aborted and the client gets 502
   * `HTTPMESH_RESPONSE_BODY_TOO_LARGE`. Only from `onResponseHead`; bodies stream untouched unless asked.
   */
  readResponseBody(maxBytes: number): Promise<Buffer>;
  /**
   * Streams the request body through `transform` chunk by chunk instead of forwarding it untouched
   * (no buffering; `content-length` is dropped, the body goes chunked). From `onRequestHead`; a throw
   * there, or a transform failure, fails the exchange (`HTTPMESH_FILTER_FAILED` or the upstream error).
   */
  transformRequestBody(transform: BodyChunkTransform): void;
  /**
   * Streams the response body through `transform` chunk by chunk (the upstream is held while a chunk is
   * transformed, so memory stays one chunk deep; `content-length` is dropped). Only from `onResponseHead`.
   * A transform failure breaks the response off (the head is already sent).
   */
  transformResponseBody(transform: BodyChunkTransform): void;
}

type RequestHeadOutcome = ImmediateResponse | undefined;

function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | undefined)?.then === 'function';
}

/**
 * Runs `onRequestHead` hooks in order. Returns synchronously unless some hook returned a promise,
 * so a chain of synchronous filters costs no microtask hops.
 */
export function runRequestHead(
  filters: readonly ExchangeFilter[],
  exchange: Exchange,
  from = 0,
): MaybePromise<RequestHeadOutcome> {
  for (let i = from; i < filters.length; i++) {
    const hook = (filters[i] as ExchangeFilter).onRequestHead;
    if (hook === undefined) continue;
    const outcome = hook.call(filters[i], exchange);
    if (isPromise(outcome)) {
      return outcome.then((resolved) =>
        resolved !== undefined ? resolved : runRequestHead(filters, exchange, i + 1),
      );
    }
    if (outcome !== undefined) return outcome;
  }
  return undefined;
}

/** Runs `onResponseHead` hooks in order; the first one returning a response ends the chain. */
export function runResponseHead(
  filters: readonly ExchangeFilter[],
  exchange: Exchange,
  from = 0,
): MaybePromise<ImmediateResponse | undefined> {
  for (let i = from; i < filters.length; i++) {
    const hook = (filters[i] as ExchangeFilter).onResponseHead;
    if (hook === undefined) continue;
    const outcome = hook.call(filters[i], exchange);
    if (isPromise(outcome)) {
      return outcome.then((resolved) =>
        resolved !== undefined && resolved !== null ? resolved : runResponseHead(filters, exchange, i + 1),
      );
    }
    if (outcome !== undefined && outcome !== null) return outcome;
  }
  return undefined;
}

/** Runs `onResponseTrailers` hooks in order; synchronous unless a hook returned a promise. */
export function runResponseTrailers(
  filters: readonly ExchangeFilter[],
  exchange: Exchange,
  from = 0,
): MaybePromise<void> {
  for (let i = from; i < filters.length; i++) {
    const hook = (filters[i] as ExchangeFilter).onResponseTrailers;
    if (hook === undefined) continue;
    const outcome = hook.call(filters[i], exchange);
    if (isPromise(outcome)) return outcome.then(() => runResponseTrailers(filters, exchange, i + 1));
  }
  return undefined;
}

/** Runs `onRequestTrailers` hooks in order; synchronous unless a hook returned a promise. */
export function runRequestTrailers(
  filters: readonly ExchangeFilter[],
  exchange: Exchange,
  from = 0,
): MaybePromise<void> {
  for (let i = from; i < filters.length; i++) {
    const hook = (filters[i] as ExchangeFilter).onRequestTrailers;
    if (hook === undefined) continue;
    const outcome = hook.call(filters[i], exchange);
    if (isPromise(outcome)) return outcome.then(() => runRequestTrailers(filters, exchange, i + 1));
  }
  return undefined;
}

export { isPromise };
