// Header injection: adds fixed headers to every request (from HTTPMESH_INJECT_HEADERS, a JSON
// object) and a request id when the client sent none.
//   HTTPMESH_PLUGIN_SOCKET=/run/httpmesh/inject.sock node --import tsx header-injection.ts
import { randomUUID } from 'node:crypto';
import { definePlugin } from '@httpmesh/plugin-sdk';

const inject: Record<string, string> = JSON.parse(
  process.env['HTTPMESH_INJECT_HEADERS'] ?? '{"x-mesh":"httpmesh"}',
);

await definePlugin({
  name: 'header-injection',
  version: '1.0.0',
  onRequestHeaders(ctx) {
    const set: Record<string, string> = { ...inject };
    if (ctx.header('x-request-id') === undefined) set['x-request-id'] = randomUUID();
    return { set };
  },
}).serve();
