// API-key check: answers 401 at once unless the request carries a known key in `x-api-key`;
// the key is stripped before the request goes upstream.
//   HTTPMESH_API_KEYS=key1,key2 HTTPMESH_PLUGIN_SOCKET=/run/httpmesh/apikey.sock node --import tsx api-key-check.ts
import { timingSafeEqual } from 'node:crypto';
import { definePlugin } from '@httpmesh/plugin-sdk';

const keys = (process.env['HTTPMESH_API_KEYS'] ?? '')
  .split(',')
  .map((k) => k.trim())
  .filter((k) => k !== '')
  .map((k) => Buffer.from(k));

function known(presented: string): boolean {
  const p = Buffer.from(presented);
  // Constant-time compare so response timing does not leak key prefixes.
  return keys.some((k) => k.length === p.length && timingSafeEqual(k, p));
}

await definePlugin({
  name: 'api-key-check',
  version: '1.0.0',
  onRequestHeaders(ctx) {
    const key = ctx.header('x-api-key');
    if (key !== undefined && known(key)) return { remove: ['x-api-key'] };
    return {
      respond: {
        status: 401,
        headers: { 'content-type': 'application/json', 'www-authenticate': 'ApiKey header="x-api-key"' },
        body: JSON.stringify({ error: key === undefined ? 'missing API key' : 'invalid API key' }),
      },
    };
  },
}).serve();
