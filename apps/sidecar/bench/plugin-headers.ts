// Headers-only plugin for bench/plugins.ts: sets one request header; with BENCH_PHASES=both it also
// sets one response header.
import { definePlugin } from '@httpmesh/plugin-sdk';

const both = process.env['BENCH_PHASES'] === 'both';

await definePlugin({
  name: 'bench-headers',
  version: '1.0.0',
  onRequestHeaders() {
    return { set: { 'x-bench': '1' } };
  },
  ...(both
    ? {
        onResponseHeaders() {
          return { set: { 'x-bench-resp': '1' } };
        },
      }
    : {}),
}).serve();
