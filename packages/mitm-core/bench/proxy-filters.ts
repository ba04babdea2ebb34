// Filter-chain overhead per exchange, isolated from network noise: the request/response hook runners
// for 0 filters, 3 synchronous filters and 1 async filter, in a tight loop.
// Run: node --import tsx bench/proxy-filters.ts   (also called from bench/index.ts)
import { fileURLToPath } from 'node:url';
import {
  type Exchange,
  type ExchangeFilter,
  isPromise,
  runRequestHead,
  runResponseHead,
} from '../src/proxy/exchange.js';

const ITERATIONS = 1_000_000;

function exchange(): Exchange {
  return {
    id: 1,
    clientProtocol: 'http/1.1',
    clientTls: true,
    clientAddress: '127.0.0.1',
    method: 'GET',
    path: '/',
    authority: 'localhost',
    upstream: { protocol: 'https:', host: 'localhost', port: 443 },
    requestHeaders: { host: 'localhost' },
    status: 200,
    responseHeaders: {},
    responseTrailers: undefined,
    requestTrailers: undefined,
    timings: { start: 0, upstreamConnect: undefined, firstByte: undefined, end: undefined },
    locals: new Map(),
    readRequestBody: () => Promise.resolve(Buffer.alloc(0)),
    setRequestBody: () => {},
    readResponseBody: () => Promise.resolve(Buffer.alloc(0)),
    transformRequestBody: () => {},
    transformResponseBody: () => {},
    upstreamHeadersTimeoutMs: undefined,
    upstreamBodyTimeoutMs: undefined,
  };
}

async function measure(name: string, filters: readonly ExchangeFilter[]): Promise<void> {
  const target = exchange();
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round < 3; round++) {
    const started = performance.now();
    for (let i = 0; i < ITERATIONS; i++) {
      const outcome = runRequestHead(filters, target);
      if (isPromise(outcome)) await outcome;
      const head = runResponseHead(filters, target);
      if (isPromise(head)) await head;
    }
    best = Math.min(best, ((performance.now() - started) * 1e6) / ITERATIONS);
  }
  console.log(`| ${name} | ${best.toFixed(0)} |`);
}

export async function benchFilters(): Promise<void> {
  const noop: ExchangeFilter = { onRequestHead: () => undefined, onResponseHead: () => undefined };
  const headerFilter: ExchangeFilter = {
    onRequestHead(e) {
      e.requestHeaders['x-trace'] = 'abc';
      return undefined;
    },
  };
  console.log('\nFilter chain runners (request + response head), ns per exchange, best of 3');
  console.log('| chain | ns/exchange |');
  console.log('|---|---:|');
  await measure('no filters', []);
  await measure('3 sync filters', [noop, headerFilter, noop]);
  await measure('1 async filter', [{ onRequestHead: async () => undefined }]);
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  await benchFilters();
}
