import { mkdirSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { tempDir } from './helpers.js';
import { startControlPlane } from './harness.js';
import type { Running } from './harness.js';

let run: Running;
let dir: { dir: string; cleanup: () => void };
let secretDir: { dir: string; cleanup: () => void };

beforeAll(async () => {
  dir = tempDir('dash');
  secretDir = tempDir('secret');
  writeFileSync(join(secretDir.dir, 'secret.txt'), 'do not serve');
  mkdirSync(join(dir.dir, 'assets'));
  writeFileSync(join(dir.dir, 'index.html'), '<!doctype html><title>httpmesh</title>');
  writeFileSync(join(dir.dir, 'assets', 'app.js'), 'console.log(1)');
  run = await startControlPlane({ dashboardDir: dir.dir, protectReads: true });
});
afterAll(async () => {
  await run.close();
  dir.cleanup();
  secretDir.cleanup();
});

/** Raw request so the path reaches the server un-normalised (fetch would resolve `..`). */
function rawGet(path: string): Promise<{ status: number; body: string; type: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port: run.addresses.httpPort, path, method: 'GET' }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => {
        body += c.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: res.headers['content-type'] }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('--dashboard-dir: the given build is served at /, while the API keeps its auth', async () => {
  const index = await rawGet('/');
  expect(index).toMatchObject({ status: 200, type: 'text/html; charset=utf-8' });
  expect(index.body).toContain('<title>httpmesh</title>');
  expect(await rawGet('/assets/app.js')).toMatchObject({
    status: 200,
    body: 'console.log(1)',
    type: 'text/javascript; charset=utf-8',
  });
  // Not a dashboard file: it falls through to the API routes, which need the token here.
  expect((await rawGet('/assets/missing.js')).status).toBe(401);
  expect((await rawGet('/api/rules')).status).toBe(401);
  expect((await run.api('GET', '/api/rules')).status).toBe(200);
});

test('paths cannot escape the dashboard directory', async () => {
  const name = secretDir.dir.split('/').pop() ?? '';
  for (const path of [
    `/../${name}/secret.txt`,
    `/%2e%2e/${name}/secret.txt`,
    `/assets/..%2f..%2f${name}%2fsecret.txt`,
    '/%E0%A4%A.js',
  ]) {
    const res = await rawGet(path);
    expect(res.body, path).not.toContain('do not serve');
    expect([400, 401, 404]).toContain(res.status);
  }
});
