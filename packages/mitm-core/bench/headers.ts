// Per-exchange header conversion on the response path, in isolation: `endToEndResponseHeaders` on a Node
// upstream's head (it always sends `connection` and `keep-alive`), then a walk over the result as node's
// `writeHead` does. Compares the earlier copy-then-delete version (kept here only as the baseline).
// Run: node --import tsx bench/headers.ts
import type { IncomingHttpHeaders } from 'node:http';
import { fileURLToPath } from 'node:url';
import { endToEndResponseHeaders } from '../src/proxy/headers.js';

const HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'transfer-encoding',
  'te',
  'trailer',
  'upgrade',
]);

/** The version before 2026-11-25's change: spread, then delete (leaves a dictionary-mode object). */
function copyThenDelete(source: IncomingHttpHeaders): IncomingHttpHeaders {
  let out: IncomingHttpHeaders | undefined;
  for (const name in source) {
    if (HOP.has(name)) {
      out ??= { ...source };
      delete out[name];
    }
  }
  return out ?? source;
}

function upstreamHead(i: number): IncomingHttpHeaders {
  // A fresh object per exchange, as undici's parseHeaders makes one.
  return {
    'content-type': 'application/json',
    'content-length': String(90 + (i & 7)),
    date: 'Wed, 25 Nov 2026 23:40:00 GMT',
    connection: 'keep-alive',
    'keep-alive': 'timeout=30',
  };
}

function walk(headers: IncomingHttpHeaders): number {
  let length = 0;
  for (const name in headers) {
    const value = headers[name];
    if (typeof value === 'string') length += name.length + value.length;
  }
  return length;
}

function run(convert: (h: IncomingHttpHeaders) => IncomingHttpHeaders, n: number): number {
  let sink = 0;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) sink += walk(convert(upstreamHead(i)));
  const ns = Number(process.hrtime.bigint() - start) / n;
  if (sink === 0) console.log('unreachable');
  return ns;
}

export function benchHeaders(): void {
  const n = 500_000;
  const results: Record<string, number[]> = { 'copy + delete (before)': [], 'fresh object (now)': [] };
  for (let round = 0; round < 5; round++) {
    results['copy + delete (before)']?.push(run(copyThenDelete, n));
    results['fresh object (now)']?.push(run(endToEndResponseHeaders, n));
  }
  console.log(
    '\nResponse head conversion + walk, ns per exchange (5 alternating rounds of 500,000; best / median)',
  );
  for (const [name, list] of Object.entries(results)) {
    const sorted = [...list].sort((a, b) => a - b);
    console.log(`| ${name} | ${(sorted[0] as number).toFixed(0)} | ${(sorted[2] as number).toFixed(0)} |`);
  }
}

if (process.argv[1] === fileURLToPath(import.meta.url)) benchHeaders();
