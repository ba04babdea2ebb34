// Plugin process used by bench/index.ts: headers-only by default, plus body and response phases.
import { definePlugin } from '../src/index.js';

await definePlugin({
  name: 'bench',
  requestBody: { mode: 'buffered', maxBytes: 1024 * 1024 },
  onRequestHeaders: () => ({ set: { 'x-bench': '1' } }),
  onRequestBody: () => undefined,
  onResponseHeaders: () => undefined,
}).serve();
