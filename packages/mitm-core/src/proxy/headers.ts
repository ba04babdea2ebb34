import type { IncomingHttpHeaders } from 'node:http';

/** RFC 9110 7.6.1 hop-by-hop fields plus the de-facto ones proxies must not forward. */
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  // undici handles Expect itself (and Node already answered 100-continue to the client).
  'expect',
  // HTTP/2 pseudo headers are rebuilt, never copied.
  'http2-settings',
]);

/**
 * Copies end-to-end headers: drops hop-by-hop fields, fields named by `Connection`, and HTTP/2
 * pseudo headers. `:authority` becomes `Host` when the client spoke h2 and sent no Host.
 */
export function endToEndRequestHeaders(source: IncomingHttpHeaders): IncomingHttpHeaders {
  const out: IncomingHttpHeaders = {};
  const connection = source.connection;
  const named = connection === undefined ? undefined : parseConnectionTokens(connection);
  for (const name in source) {
    if (name.charCodeAt(0) === 58 /* ':' */) continue;
    if (HOP_BY_HOP.has(name)) continue;
    if (named?.has(name)) continue;
    out[name] = source[name];
  }
  if (out.host === undefined) {
    const authority = source[':authority'];
    if (typeof authority === 'string') out.host = authority;
  }
  return out;
}

/**
 * Same for responses (Node/undici give lower-case names). Returns `source` itself when nothing is dropped;
 * otherwise a fresh object built without the dropped names: deleting from a copy would turn it into a
 * dictionary-mode object, which every later reader (node's `writeHead`) then walks slowly. Node upstreams
 * always send `connection` and `keep-alive`, so the copy is the common case.
 */
export function endToEndResponseHeaders(source: IncomingHttpHeaders): IncomingHttpHeaders {
  const connection = source.connection;
  const named = connection === undefined ? undefined : parseConnectionTokens(connection);
  let dropped = false;
  for (const name in source) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) {
      dropped = true;
      break;
    }
  }
  if (!dropped) return source;
  const out: IncomingHttpHeaders = {};
  for (const name in source) {
    if (HOP_BY_HOP.has(name) || named?.has(name)) continue;
    out[name] = source[name];
  }
  return out;
}

const NO_TOKENS: ReadonlySet<string> = new Set();

function parseConnectionTokens(value: string | string[]): ReadonlySet<string> {
  // The common values name nothing beyond fields that are hop-by-hop anyway: skip the split.
  if (value === 'keep-alive' || value === 'close' || value === 'Keep-Alive' || value === 'upgrade')
    return NO_TOKENS;
  const tokens = new Set<string>();
  const joined = Array.isArray(value) ? value.join(',') : value;
  for (const token of joined.split(',')) {
    const trimmed = token.trim().toLowerCase();
    if (trimmed !== '') tokens.add(trimmed);
  }
  return tokens;
}

/** Serialises a request head for raw forwarding (WebSocket upgrade), keeping Upgrade/Connection. */
export function serializeUpgradeHead(method: string, path: string, headers: IncomingHttpHeaders): string {
  let head = `${method} ${path} HTTP/1.1\r\n`;
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined) continue;
    if (Array.isArray(value)) {
      for (const item of value) head += `${name}: ${item}\r\n`;
    } else {
      head += `${name}: ${value}\r\n`;
    }
  }
  return `${head}connection: upgrade\r\n\r\n`;
}
