// Body-redacting audit logger: observe-only (adds no latency), writes one JSON line per exchange
// with method, path, status, timings and the request body with secrets redacted.
//   AUDIT_LOG=/var/log/httpmesh-audit.jsonl HTTPMESH_PLUGIN_SOCKET=/run/httpmesh/audit.sock node --import tsx audit-logger.ts
import { appendFileSync } from 'node:fs';
import { definePlugin } from '@httpmesh/plugin-sdk';

const SECRET_KEYS = new Set([
  'password',
  'passwd',
  'secret',
  'token',
  'access_token',
  'api_key',
  'card_number',
  'cvv',
]);
const SECRET_HEADERS = new Set(['authorization', 'cookie', 'x-api-key']);
// 13-19 digits, optionally grouped: payment card numbers in free text.
const CARD_RE = /\b(?:\d[ -]?){12,18}\d\b/g;
const REDACTED = '[REDACTED]';

function redactValue(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(redactValue);
  if (value !== null && typeof value === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value))
      out[k] = SECRET_KEYS.has(k.toLowerCase()) ? REDACTED : redactValue(v);
    return out;
  }
  return typeof value === 'string' ? value.replace(CARD_RE, REDACTED) : value;
}

function redactBody(body: string): unknown {
  try {
    return redactValue(JSON.parse(body));
  } catch {
    return body.replace(CARD_RE, REDACTED);
  }
}

interface Entry {
  method: string;
  path: string;
  authority: string;
  headers: Record<string, string>;
  body?: unknown;
}
const open = new Map<number, Entry>();
const logFile = process.env['AUDIT_LOG'];

await definePlugin({
  name: 'audit-logger',
  version: '1.0.0',
  observeOnly: true,
  requestBody: { mode: 'buffered', maxBytes: 64 * 1024 },
  onRequestHeaders(ctx) {
    const headers: Record<string, string> = {};
    for (const [n, v] of ctx.headers) headers[n] = SECRET_HEADERS.has(n) ? REDACTED : v;
    open.set(ctx.exchangeId, { method: ctx.method, path: ctx.path, authority: ctx.authority, headers });
  },
  onRequestBody(ctx) {
    const entry = open.get(ctx.exchangeId);
    if (entry) entry.body = redactBody(ctx.body.toString('utf8'));
  },
  onComplete(ctx) {
    const entry = open.get(ctx.exchangeId);
    open.delete(ctx.exchangeId);
    const line = `${JSON.stringify({ ...entry, status: ctx.status, totalMs: ctx.totalMs, error: ctx.error || undefined })}\n`;
    if (logFile) appendFileSync(logFile, line);
    else process.stdout.write(line);
  },
}).serve();
