import { BodyMode, Phase } from './gen/plugin.js';

/** Protocol version spoken by this package; a plugin must declare the same major version. */
export const PROTOCOL_VERSION = 1;

export type PhaseName =
  | 'requestHeaders'
  | 'requestBody'
  | 'requestTrailers'
  | 'responseHeaders'
  | 'responseBody'
  | 'responseTrailers'
  | 'complete';

export const PHASE_NAMES: readonly PhaseName[] = [
  'requestHeaders',
  'requestBody',
  'requestTrailers',
  'responseHeaders',
  'responseBody',
  'responseTrailers',
  'complete',
];

export type BodyModeName = 'none' | 'streamed' | 'buffered';

/** Header list in wire order: lower-case names, repeated names allowed. */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

export const PHASE_TO_WIRE: Readonly<Record<PhaseName, Phase>> = {
  requestHeaders: Phase.PHASE_REQUEST_HEADERS,
  requestBody: Phase.PHASE_REQUEST_BODY,
  requestTrailers: Phase.PHASE_REQUEST_TRAILERS,
  responseHeaders: Phase.PHASE_RESPONSE_HEADERS,
  responseBody: Phase.PHASE_RESPONSE_BODY,
  responseTrailers: Phase.PHASE_RESPONSE_TRAILERS,
  complete: Phase.PHASE_COMPLETE,
};

export function phaseFromWire(phase: Phase): PhaseName | undefined {
  switch (phase) {
    case Phase.PHASE_REQUEST_HEADERS:
      return 'requestHeaders';
    case Phase.PHASE_REQUEST_BODY:
      return 'requestBody';
    case Phase.PHASE_REQUEST_TRAILERS:
      return 'requestTrailers';
    case Phase.PHASE_RESPONSE_HEADERS:
      return 'responseHeaders';
    case Phase.PHASE_RESPONSE_BODY:
      return 'responseBody';
    case Phase.PHASE_RESPONSE_TRAILERS:
      return 'responseTrailers';
    case Phase.PHASE_COMPLETE:
      return 'complete';
    default:
      return undefined;
  }
}

export const BODY_MODE_TO_WIRE: Readonly<Record<BodyModeName, BodyMode>> = {
  none: BodyMode.BODY_MODE_NONE,
  streamed: BodyMode.BODY_MODE_STREAMED,
  buffered: BodyMode.BODY_MODE_BUFFERED,
};

export function bodyModeFromWire(mode: BodyMode): BodyModeName | undefined {
  switch (mode) {
    case BodyMode.BODY_MODE_NONE:
      return 'none';
    case BodyMode.BODY_MODE_STREAMED:
      return 'streamed';
    case BodyMode.BODY_MODE_BUFFERED:
      return 'buffered';
    default:
      return undefined;
  }
}

export function isBodyPhase(phase: PhaseName): boolean {
  return phase === 'requestBody' || phase === 'responseBody';
}

export function isHeaderPhase(phase: PhaseName): boolean {
  return (
    phase === 'requestHeaders' ||
    phase === 'responseHeaders' ||
    phase === 'requestTrailers' ||
    phase === 'responseTrailers'
  );
}

// RFC 9110 tchar, as a lookup table so validating a name is one array read per character.
const TOKEN_CHAR = new Uint8Array(128);
for (const c of "!#$%&'*+-.^_`|~") TOKEN_CHAR[c.charCodeAt(0)] = 1;
for (let c = 0x30; c <= 0x39; c++) TOKEN_CHAR[c] = 1;
for (let c = 0x41; c <= 0x5a; c++) TOKEN_CHAR[c] = 1;
for (let c = 0x61; c <= 0x7a; c++) TOKEN_CHAR[c] = 1;

/** True if `name` is a non-empty RFC 9110 token (so no CR, LF, NUL, space or colon). */
export function isValidHeaderName(name: string): boolean {
  const n = name.length;
  if (n === 0) return false;
  for (let i = 0; i < n; i++) {
    const c = name.charCodeAt(i);
    if (c >= 128 || TOKEN_CHAR[c] === 0) return false;
  }
  return true;
}

/** True if `value` has no CR, LF or NUL and only Latin-1 characters (what HTTP/1.1 can carry). */
export function isValidHeaderValue(value: string): boolean {
  const n = value.length;
  for (let i = 0; i < n; i++) {
    const c = value.charCodeAt(i);
    if (c === 0x0d || c === 0x0a || c === 0 || c > 0xff) return false;
  }
  return true;
}

// Connection-level and framing headers belong to the proxy, never to a plugin.
const FORBIDDEN_HEADERS: ReadonlySet<string> = new Set([
  'connection',
  'content-length',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
]);

export function isForbiddenHeader(lowerName: string): boolean {
  return FORBIDDEN_HEADERS.has(lowerName);
}

/** Node-style header record (`IncomingHttpHeaders`): repeated fields as arrays. */
export type HeaderRecord = Readonly<Record<string, string | readonly string[] | number | undefined>>;

/** Converts a Node-style header record to a header list (names lower-cased, arrays expanded). */
export function headerListFromRecord(record: HeaderRecord): HeaderList {
  const out: Array<readonly [string, string]> = [];
  for (const name in record) {
    const value = record[name];
    if (value === undefined) continue;
    const lower = name.toLowerCase();
    if (typeof value === 'string') out.push([lower, value]);
    else if (typeof value === 'number') out.push([lower, String(value)]);
    else for (const v of value) out.push([lower, v]);
  }
  return out;
}

/** Converts a header list back to a Node-style record; repeated names become arrays. */
export function headerListToRecord(list: HeaderList): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of list) {
    const prev = out[name];
    if (prev === undefined) out[name] = value;
    else if (Array.isArray(prev)) prev.push(value);
    else out[name] = [prev, value];
  }
  return out;
}
