import type { Socket } from 'node:net';

/** What the first flight of a TLS client tells us before we decide to intercept. */
export interface ClientHelloInfo {
  /** SNI host name, lower-cased; undefined when the client sent none. */
  readonly serverName: string | undefined;
  /** ALPN protocols in client preference order (empty when not offered). */
  readonly alpnProtocols: readonly string[];
}

export type ClientHelloParseResult =
  | { readonly kind: 'client-hello'; readonly info: ClientHelloInfo }
  /** More bytes are needed to decide. */
  | { readonly kind: 'incomplete' }
  /** The bytes do not start a TLS handshake record at all (e.g. plain HTTP). */
  | { readonly kind: 'not-tls' }
  /** Starts like TLS but is malformed, truncated beyond repair, or oversized. */
  | { readonly kind: 'invalid'; readonly reason: string };

const RECORD_HANDSHAKE = 0x16;
const HANDSHAKE_CLIENT_HELLO = 0x01;
const EXT_SERVER_NAME = 0x0000;
const EXT_ALPN = 0x0010;
/** RFC 8446 5.1: a record fragment is at most 2^14 bytes (+256 slack allowed for older stacks). */
const MAX_RECORD_LENGTH = 16_384 + 256;
/** A ClientHello larger than this is refused instead of being buffered further. */
export const DEFAULT_MAX_CLIENT_HELLO_BYTES = 64 * 1024;

const INCOMPLETE: ClientHelloParseResult = { kind: 'incomplete' };
const NOT_TLS: ClientHelloParseResult = { kind: 'not-tls' };

function invalid(reason: string): ClientHelloParseResult {
  return { kind: 'invalid', reason };
}

/**
 * Parses a TLS ClientHello from the first bytes a client sent. Pure and total: never throws,
 * never reads out of bounds. Handshake messages split across several records are reassembled.
 */
export function parseClientHello(
  bytes: Uint8Array,
  maxBytes: number = DEFAULT_MAX_CLIENT_HELLO_BYTES,
): ClientHelloParseResult {
  if (bytes.length === 0) return INCOMPLETE;
  if (bytes[0] !== RECORD_HANDSHAKE) return NOT_TLS;
  if (bytes.length >= 2 && bytes[1] !== 0x03) return NOT_TLS;
  // Reassemble the handshake layer from consecutive handshake records.
  const fragments: Uint8Array[] = [];
  let handshakeBytes = 0;
  let needed = -1;
  let offset = 0;
  while (true) {
    if (offset + 5 > bytes.length) break;
    if (bytes[offset] !== RECORD_HANDSHAKE)
      return invalid('non-handshake record before ClientHello completed');
    if (bytes[offset + 1] !== 0x03) return invalid('unsupported record version');
    const recordLength = ((bytes[offset + 3] as number) << 8) | (bytes[offset + 4] as number);
    if (recordLength === 0 || recordLength > MAX_RECORD_LENGTH) return invalid('bad record length');
    const end = Math.min(offset + 5 + recordLength, bytes.length);
    fragments.push(bytes.subarray(offset + 5, end));
    handshakeBytes += end - offset - 5;
    if (needed < 0 && handshakeBytes >= 4) {
      const head = concatFirst(fragments, 4);
      if (head[0] !== HANDSHAKE_CLIENT_HELLO) return invalid('first handshake message is not ClientHello');
      needed = 4 + (((head[1] as number) << 16) | ((head[2] as number) << 8) | (head[3] as number));
      if (needed > maxBytes) return invalid('ClientHello exceeds size limit');
    }
    if (needed >= 0 && handshakeBytes >= needed) break;
    if (end < offset + 5 + recordLength) break; // partial record: wait for more
    offset = end;
    if (offset > maxBytes + 5 * 64) return invalid('ClientHello exceeds size limit');
  }
  if (bytes.length > maxBytes + 1024 && (needed < 0 || handshakeBytes < needed)) {
    return invalid('ClientHello exceeds size limit');
  }
  if (needed < 0 || handshakeBytes < needed) return INCOMPLETE;
  const message = fragments.length === 1 ? (fragments[0] as Uint8Array) : concatFirst(fragments, needed);
  return parseHandshakeBody(message.subarray(4, needed));
}

function concatFirst(fragments: readonly Uint8Array[], length: number): Uint8Array {
  const out = new Uint8Array(length);
  let written = 0;
  for (const fragment of fragments) {
    if (written >= length) break;
    const take = Math.min(fragment.length, length - written);
    out.set(fragment.subarray(0, take), written);
    written += take;
  }
  return out.subarray(0, written);
}

function parseHandshakeBody(body: Uint8Array): ClientHelloParseResult {
  let p = 0;
  const n = body.length;
  // legacy_version(2) + random(32)
  p += 34;
  if (p + 1 > n) return invalid('truncated ClientHello (session id)');
  p += 1 + (body[p] as number);
  if (p + 2 > n) return invalid('truncated ClientHello (cipher suites)');
  const cipherLength = ((body[p] as number) << 8) | (body[p + 1] as number);
  if (cipherLength === 0 || cipherLength % 2 !== 0) return invalid('bad cipher suite list');
  p += 2 + cipherLength;
  if (p + 1 > n) return invalid('truncated ClientHello (compression)');
  p += 1 + (body[p] as number);
  if (p > n) return invalid('truncated ClientHello (compression)');
  let serverName: string | undefined;
  let alpnProtocols: string[] = [];
  if (p === n) return { kind: 'client-hello', info: { serverName, alpnProtocols } };
  if (p + 2 > n) return invalid('truncated extensions');
  const extensionsEnd = p + 2 + (((body[p] as number) << 8) | (body[p + 1] as number));
  if (extensionsEnd > n) return invalid('extensions overrun ClientHello');
  p += 2;
  while (p < extensionsEnd) {
    if (p + 4 > extensionsEnd) return invalid('truncated extension header');
    const type = ((body[p] as number) << 8) | (body[p + 1] as number);
    const length = ((body[p + 2] as number) << 8) | (body[p + 3] as number);
    p += 4;
    if (p + length > extensionsEnd) return invalid('extension overruns extension block');
    if (type === EXT_SERVER_NAME) {
      const name = parseServerName(body, p, p + length);
      if (name === null) return invalid('malformed server_name extension');
      serverName = name;
    } else if (type === EXT_ALPN) {
      const protocols = parseAlpn(body, p, p + length);
      if (protocols === null) return invalid('malformed ALPN extension');
      alpnProtocols = protocols;
    }
    p += length;
  }
  return { kind: 'client-hello', info: { serverName, alpnProtocols } };
}

/** Returns the host name, undefined for an empty list, or null when malformed. */
function parseServerName(body: Uint8Array, start: number, end: number): string | undefined | null {
  if (start === end) return undefined; // servers echo an empty extension; tolerate it from clients too
  if (start + 2 > end) return null;
  const listEnd = start + 2 + (((body[start] as number) << 8) | (body[start + 1] as number));
  if (listEnd !== end) return null;
  let p = start + 2;
  while (p < listEnd) {
    if (p + 3 > listEnd) return null;
    const nameType = body[p] as number;
    const length = ((body[p + 1] as number) << 8) | (body[p + 2] as number);
    p += 3;
    if (p + length > listEnd) return null;
    if (nameType === 0) {
      return decodeHostName(body, p, p + length);
    }
    p += length;
  }
  return undefined;
}

/** RFC 6066: host_name is ASCII, no trailing dot, at most 255 bytes. Only LDH, dots and underscores pass. */
function decodeHostName(body: Uint8Array, start: number, end: number): string | null {
  const length = end - start;
  if (length === 0 || length > 253) return null;
  let out = '';
  for (let i = start; i < end; i++) {
    let c = body[i] as number;
    if (c >= 0x41 && c <= 0x5a) c += 0x20; // lower-case
    const ok = (c >= 0x61 && c <= 0x7a) || (c >= 0x30 && c <= 0x39) || c === 0x2d || c === 0x2e || c === 0x5f;
    if (!ok) return null;
    out += String.fromCharCode(c);
  }
  if (out.startsWith('.') || out.endsWith('.') || out.includes('..')) return null;
  return out;
}

function parseAlpn(body: Uint8Array, start: number, end: number): string[] | null {
  if (start + 2 > end) return null;
  const listEnd = start + 2 + (((body[start] as number) << 8) | (body[start + 1] as number));
  if (listEnd !== end || listEnd === start + 2) return null;
  const protocols: string[] = [];
  let p = start + 2;
  while (p < listEnd) {
    const length = body[p] as number;
    p += 1;
    if (length === 0 || p + length > listEnd) return null;
    let protocol = '';
    for (let i = p; i < p + length; i++) protocol += String.fromCharCode(body[i] as number);
    protocols.push(protocol);
    p += length;
  }
  return protocols;
}

export interface PeekResult {
  readonly parse: ClientHelloParseResult;
  /** True when the client closed or the timeout fired before anything decisive arrived. */
  readonly ended: boolean;
}

/**
 * Reads from `socket` until the first bytes classify the stream, then puts every byte back
 * (`unshift`) so the next consumer (TLS server, HTTP parser or a raw splice) sees the stream intact.
 */
export function peekClientHello(
  socket: Socket,
  timeoutMs: number,
  maxBytes: number = DEFAULT_MAX_CLIENT_HELLO_BYTES,
): Promise<PeekResult> {
  return new Promise((resolve) => {
    let buffered: Buffer | undefined;
    let settled = false;
    const finish = (parse: ClientHelloParseResult, ended: boolean): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeListener('data', onData);
      socket.removeListener('end', onEnd);
      socket.removeListener('close', onEnd);
      socket.removeListener('error', onEnd);
      socket.pause();
      if (buffered !== undefined && !socket.destroyed) socket.unshift(buffered);
      resolve({ parse, ended });
    };
    const onData = (chunk: Buffer): void => {
      buffered = buffered === undefined ? chunk : Buffer.concat([buffered, chunk]);
      const parse = parseClientHello(buffered, maxBytes);
      if (parse.kind !== 'incomplete') finish(parse, false);
    };
    const onEnd = (): void => {
      finish(buffered === undefined ? INCOMPLETE : parseClientHello(buffered, maxBytes), true);
    };
    const timer = setTimeout(onEnd, timeoutMs);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', onEnd);
    socket.once('error', onEnd);
    socket.resume();
  });
}
