/**
 * Header lists and their validation, with no protocol or gRPC code behind them: the
 * `@httpmesh/plugin-sdk/headers` entry point, which a host can load before (or without) any plugin.
 */

/** Header list in wire order: lower-case names, repeated names allowed. */
export type HeaderList = ReadonlyArray<readonly [name: string, value: string]>;

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
