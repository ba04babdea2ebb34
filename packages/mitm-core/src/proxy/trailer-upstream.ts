import http, { type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import https from 'node:https';
import { isIP, type LookupFunction } from 'node:net';
import type { SecureContext } from 'node:tls';
import type { Dispatcher } from 'undici';
import { RequestTrailerInvalidError } from './errors.js';

/**
 * Sends one request upstream over node:http(s) instead of undici, because undici cannot send request
 * trailers: the body goes chunked and `getTrailers` (the client's trailers, after the request hooks) is
 * added with `addTrailers` when the body ends. It drives the same `Dispatcher.DispatchHandler` the undici
 * path uses, and raises errors with undici's timeout codes, so classification (502/504) stays identical.
 * One fresh connection per request: requests with trailers are rare, and a pooled one would need its
 * own keep-alive and verification bookkeeping.
 */
export interface TrailerUpstreamRequest {
  protocol: 'http:' | 'https:';
  /** Name for SNI, certificate checks and `Host`. */
  host: string;
  /** Address to dial when it differs from `host` (transparent interception, address overrides). */
  address: string | undefined;
  port: number;
  /** The proxy's `lookup` option (undefined: node's default, dns.lookup). */
  lookup: LookupFunction | undefined;
  path: string;
  method: string;
  headers: IncomingHttpHeaders;
  body: AsyncIterable<Buffer> | Buffer | null;
  secureContext: SecureContext;
  rejectUnauthorized: boolean;
  connectTimeoutMs: number;
  headersTimeoutMs: number;
  bodyTimeoutMs: number;
  /** Called once the body is sent; its result is validated and sent as the request trailers. */
  getTrailers(): IncomingHttpHeaders | undefined | Promise<IncomingHttpHeaders | undefined>;
}

function timeoutError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

/** Validates every trailer like node would, but names the offending field in our own error. */
function checkedTrailers(trailers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in trailers) {
    const value = trailers[name];
    if (value === undefined) continue;
    try {
      http.validateHeaderName(name);
      if (Array.isArray(value)) for (const item of value) http.validateHeaderValue(name, item);
      else http.validateHeaderValue(name, value);
    } catch (error) {
      throw new RequestTrailerInvalidError(name, { cause: error });
    }
    out[name] = value;
  }
  return out;
}

export function dispatchWithTrailers(
  request: TrailerUpstreamRequest,
  handler: Dispatcher.DispatchHandler,
): void {
  let settled = false;
  let response: IncomingMessage | undefined;
  let headersTimer: NodeJS.Timeout | undefined;
  const headers: Record<string, string | string[]> = {};
  for (const name in request.headers) {
    const value = request.headers[name];
    // The body goes chunked: only chunked framing can carry trailers (also for a GET with a body).
    if (value === undefined || name === 'content-length') continue;
    headers[name] = value;
  }
  headers['transfer-encoding'] = 'chunked';
  const secure = request.protocol === 'https:';
  const options: https.RequestOptions = {
    host: request.address ?? request.host,
    port: request.port,
    lookup: request.lookup,
    path: request.path,
    method: request.method,
    headers,
    agent: false,
    timeout: request.connectTimeoutMs,
    ...(secure
      ? {
          servername: isIP(request.host) === 0 ? request.host : '',
          secureContext: request.secureContext,
          rejectUnauthorized: request.rejectUnauthorized,
          ALPNProtocols: ['http/1.1'],
        }
      : {}),
  };
  const upstream = secure ? https.request(options) : http.request(options);

  const finish = (): void => {
    settled = true;
    if (headersTimer !== undefined) clearTimeout(headersTimer);
  };
  const abort = (reason?: Error): void => {
    if (settled) return;
    finish();
    const error = reason ?? new Error('aborted');
    upstream.destroy(error);
    response?.destroy();
    handler.onResponseError?.(controller, error);
  };
  const controller = {
    abort,
    pause: () => response?.pause(),
    resume: () => response?.resume(),
    get paused() {
      return response?.isPaused() ?? false;
    },
    get aborted() {
      return settled && upstream.destroyed;
    },
    get reason() {
      return null;
    },
  } as unknown as Dispatcher.DispatchController;

  upstream.once('socket', (socket) => {
    // node's `timeout` is an idle timeout; while connecting it acts as the connect timeout.
    upstream.once('timeout', () =>
      abort(
        response === undefined && socket.connecting
          ? timeoutError('UND_ERR_CONNECT_TIMEOUT', 'upstream connect timed out')
          : timeoutError('UND_ERR_BODY_TIMEOUT', 'upstream body timed out'),
      ),
    );
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      upstream.setTimeout(0);
      headersTimer = setTimeout(
        () => abort(timeoutError('UND_ERR_HEADERS_TIMEOUT', 'upstream headers timed out')),
        request.headersTimeoutMs,
      );
    });
  });
  upstream.on('error', (error) => abort(error));
  upstream.once('response', (res) => {
    if (settled) {
      res.destroy();
      return;
    }
    response = res;
    if (headersTimer !== undefined) clearTimeout(headersTimer);
    headersTimer = undefined;
    upstream.setTimeout(request.bodyTimeoutMs);
    res.on('error', (error) => abort(error));
    res.on('aborted', () => abort(Object.assign(new Error('upstream reset'), { code: 'ECONNRESET' })));
    handler.onResponseStart?.(controller, res.statusCode ?? 502, res.headers, res.statusMessage ?? '');
    res.on('data', (chunk: Buffer) => {
      if (!settled) handler.onResponseData?.(controller, chunk);
    });
    res.once('end', () => {
      if (settled) return;
      finish();
      upstream.setTimeout(0);
      handler.onResponseEnd?.(controller, res.trailers);
    });
  });
  handler.onRequestStart?.(controller, {});
  if (settled) return;
  void sendBody(request, upstream).catch((error: unknown) => {
    abort(error instanceof Error ? error : new Error(String(error)));
  });
}

async function sendBody(request: TrailerUpstreamRequest, upstream: http.ClientRequest): Promise<void> {
  const body = request.body;
  if (Buffer.isBuffer(body)) {
    if (body.length > 0) upstream.write(body);
  } else if (body !== null) {
    for await (const chunk of body) {
      if (upstream.destroyed) return;
      if (!upstream.write(chunk)) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            upstream.off('drain', done);
            upstream.off('close', done);
            resolve();
          };
          upstream.on('drain', done);
          upstream.on('close', done);
        });
      }
    }
  }
  const trailers = await request.getTrailers();
  if (upstream.destroyed) return;
  if (trailers !== undefined) {
    const checked = checkedTrailers(trailers);
    upstream.addTrailers(checked);
  }
  upstream.end();
}
