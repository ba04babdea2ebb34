import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { dashboardAssetsDir } from '@httpmesh/dashboard';

/** Content types of the files a Vite build emits (anything else is served as octet-stream). */
const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json; charset=utf-8',
  '.map': 'application/json; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
};

export type DashboardHandler = (
  req: IncomingMessage,
  res: ServerResponse,
  pathname: string,
) => Promise<boolean>;

/**
 * Static file handler for the built dashboard (`@httpmesh/dashboard`). Answers GET/HEAD for `/` (index.html)
 * and files below the assets folder; resolves `false` (not handled) for anything else so the caller's
 * routing continues. Paths are decoded once and must stay inside `root`: `..`, backslashes, NUL bytes and
 * malformed escapes are refused (404), never resolved.
 */
export function createDashboardHandler(root: string = dashboardAssetsDir()): DashboardHandler {
  const base = resolve(root);
  return async (req, res, pathname) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') return false;
    let relative: string;
    try {
      relative = decodeURIComponent(pathname);
    } catch {
      return notFound(res);
    }
    if (relative === '/' || relative === '/index.html') relative = '/index.html';
    const segments = relative.split('/').slice(1);
    if (segments.some((s) => s === '..' || s === '.' || s.includes('\\') || s.includes('\0')))
      return notFound(res);
    const file = join(base, ...segments);
    if (!file.startsWith(base + sep)) return notFound(res);
    let size: number;
    try {
      const info = await stat(file);
      if (!info.isFile()) return false;
      size = info.size;
    } catch {
      if (relative === '/index.html') {
        const text = 'dashboard not built: run `npm run build -w @httpmesh/dashboard`\n';
        res.writeHead(503, {
          'content-type': 'text/plain; charset=utf-8',
          'content-length': Buffer.byteLength(text),
        });
        res.end(req.method === 'HEAD' ? undefined : text);
        return true;
      }
      return false;
    }
    res.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file).toLowerCase()] ?? 'application/octet-stream',
      'content-length': size,
      'x-content-type-options': 'nosniff',
      // Vite puts a content hash in asset names; index.html must be re-read to pick up new ones.
      'cache-control': segments[0] === 'assets' ? 'public, max-age=31536000, immutable' : 'no-cache',
    });
    if (req.method === 'HEAD') {
      res.end();
      return true;
    }
    await new Promise<void>((done) => {
      const stream = createReadStream(file);
      stream.once('error', () => {
        res.destroy();
        done();
      });
      stream.once('end', done);
      stream.pipe(res);
    });
    return true;
  };
}

function notFound(res: ServerResponse): true {
  const text = JSON.stringify({
    error: { code: 'HTTPMESH_CP_NOT_FOUND', message: 'no such dashboard file' },
  });
  res.writeHead(404, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
  return true;
}
