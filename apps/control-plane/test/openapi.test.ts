import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startControlPlane } from './harness.js';
import type { Running } from './harness.js';

const doc = parse(readFileSync(new URL('../../../docs/control-plane-api.yaml', import.meta.url), 'utf8')) as {
  openapi: string;
  paths: Record<string, Record<string, unknown>>;
};

let run: Running;
beforeAll(async () => {
  run = await startControlPlane();
});
afterAll(() => run.close());

test('docs/control-plane-api.yaml is OpenAPI 3 and every documented GET path is served', async () => {
  expect(doc.openapi).toMatch(/^3\./);
  const samples: Record<string, string> = {
    '{kind}': 'RouteSet',
    '{name}': 'x',
    '{id}': 'x',
    '{view}': 'patterns',
  };
  for (const [path, operations] of Object.entries(doc.paths)) {
    if (!('get' in operations)) continue;
    const concrete = path.replace(/\{[a-z]+\}/g, (p) => samples[p] ?? 'x');
    const { status, json } = await run.api('GET', concrete);
    // 404 is fine for a missing rule or sidecar, never "no route".
    expect((json['error'] as { code?: string } | undefined)?.code, `${path} -> ${status}`).not.toBe(
      'HTTPMESH_CP_NOT_FOUND',
    );
  }
});
