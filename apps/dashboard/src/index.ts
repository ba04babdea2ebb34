import { fileURLToPath } from 'node:url';

/**
 * Absolute path of the built dashboard (index.html and assets/), for a static file handler.
 * The folder exists once `npm run build -w @httpmesh/dashboard` has run.
 */
export function dashboardAssetsDir(): string {
  // build/index.js -> ../dist/
  return fileURLToPath(new URL('../dist/', import.meta.url));
}
