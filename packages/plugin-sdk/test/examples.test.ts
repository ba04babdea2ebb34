import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { RequestHead } from '../src/index.js';
import {
  type Command,
  pyPlugin,
  pythonMissing,
  REPO_DIR,
  type RunningPlugin,
  startPlugin,
  tempDir,
  tsPlugin,
} from './helpers.js';

const EXAMPLES = join(REPO_DIR, 'examples', 'plugins');
const missing = pythonMissing();
if (missing && process.env['CI']) throw new Error(`CI must run the Python examples: ${missing}`);

function head(headers: ReadonlyArray<readonly [string, string]>, path = '/orders'): RequestHead {
  return { method: 'POST', scheme: 'https', authority: 'shop.example.test', path, headers };
}

describe('example: header injection (TypeScript)', () => {
  let plugin: RunningPlugin;
  beforeAll(async () => {
    plugin = await startPlugin(tsPlugin(join(EXAMPLES, 'header-injection.ts')), {
      env: { HTTPMESH_INJECT_HEADERS: '{"x-mesh":"on","x-team":"payments"}' },
    });
  }, 30_000);
  afterAll(() => plugin?.stop());

  test('injects the configured headers and a request id when missing', async () => {
    const ex = plugin.client.startExchange();
    const d = await ex.onRequestHeaders(head([]));
    ex.close();
    if (d.kind !== 'mutate' || !d.headers) throw new Error(`unexpected ${d.kind}`);
    const set = Object.fromEntries(d.headers.set);
    expect(set['x-mesh']).toBe('on');
    expect(set['x-team']).toBe('payments');
    expect(set['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
  });

  test('keeps an existing request id', async () => {
    const ex = plugin.client.startExchange();
    const d = await ex.onRequestHeaders(head([['x-request-id', 'abc']]));
    ex.close();
    expect(d.kind === 'mutate' && d.headers?.set.map(([n]) => n)).toEqual(['x-mesh', 'x-team']);
  });
});

const apiKeyCheckers: ReadonlyArray<{ lang: string; cmd: Command; skip: string | undefined }> = [
  { lang: 'typescript', cmd: tsPlugin(join(EXAMPLES, 'api-key-check.ts')), skip: undefined },
  { lang: 'python', cmd: pyPlugin(join(EXAMPLES, 'api_key_check.py')), skip: missing },
];

for (const { lang, cmd, skip } of apiKeyCheckers) {
  describe.skipIf(skip !== undefined)(
    `example: API-key check (${lang})${skip ? ` (skipped: ${skip})` : ''}`,
    () => {
      let plugin: RunningPlugin;
      beforeAll(async () => {
        plugin = await startPlugin(cmd, {
          env: { HTTPMESH_API_KEYS: 'k-123, k-456' },
          failureMode: 'closed',
        });
      }, 30_000);
      afterAll(() => plugin?.stop());

      async function check(headers: ReadonlyArray<readonly [string, string]>) {
        const ex = plugin.client.startExchange();
        const d = await ex.onRequestHeaders(head(headers));
        ex.close();
        return d;
      }

      test('a known key passes and is stripped before going upstream', async () => {
        expect(await check([['x-api-key', 'k-456']])).toEqual({
          kind: 'mutate',
          headers: { set: [], append: [], remove: ['x-api-key'] },
        });
      });

      test('a missing key is answered 401 immediately', async () => {
        const d = await check([]);
        expect(d).toMatchObject({ kind: 'respond', status: 401 });
        if (d.kind !== 'respond') return;
        expect(d.headers).toContainEqual(['www-authenticate', 'ApiKey header="x-api-key"']);
        expect(JSON.parse(d.body.toString())).toEqual({ error: 'missing API key' });
      });

      test('a wrong key (including a prefix of a real one) is answered 401', async () => {
        for (const key of ['k-12', 'k-1234', 'nope', '']) {
          const d = await check([['x-api-key', key]]);
          expect(d).toMatchObject({ kind: 'respond', status: 401 });
          expect(d.kind === 'respond' && JSON.parse(d.body.toString())).toEqual({ error: 'invalid API key' });
        }
      });
    },
  );
}

describe('example: body-redacting audit logger (TypeScript, observe-only)', () => {
  const tmp = tempDir('httpmesh-audit-');
  const log = join(tmp.dir, 'audit.jsonl');
  let plugin: RunningPlugin;
  beforeAll(async () => {
    plugin = await startPlugin(tsPlugin(join(EXAMPLES, 'audit-logger.ts')), { env: { AUDIT_LOG: log } });
  }, 30_000);
  afterAll(async () => {
    await plugin?.stop();
    tmp.remove();
  });

  function lines(): Array<Record<string, unknown>> {
    try {
      return readFileSync(log, 'utf8')
        .split('\n')
        .filter((l) => l !== '')
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    } catch {
      return [];
    }
  }

  test('logs one line per exchange with secrets redacted, without holding the exchange', async () => {
    expect(plugin.client.info.observeOnly).toBe(true);
    const ex = plugin.client.startExchange();
    expect(
      await ex.onRequestHeaders(
        head([
          ['authorization', 'Bearer very-secret'],
          ['content-type', 'application/json'],
        ]),
      ),
    ).toEqual({ kind: 'continue' });
    const body = JSON.stringify({
      user: 'ada',
      password: 'hunter2',
      payment: { card_number: '4111111111111111', note: 'card 4111 1111 1111 1111 please' },
      items: [{ sku: 'A1', token: 't0k' }],
    });
    expect(await ex.onRequestBody(Buffer.from(body.slice(0, 20)), false)).toEqual({ kind: 'continue' });
    expect(await ex.onRequestBody(Buffer.from(body.slice(20)), true)).toEqual({ kind: 'continue' });
    ex.complete({ status: 201, totalMs: 12.5 });
    await expect.poll(() => lines().length, { timeout: 10_000 }).toBe(1);
    const entry = lines()[0];
    expect(entry).toMatchObject({
      method: 'POST',
      path: '/orders',
      status: 201,
      totalMs: 12.5,
      headers: { authorization: '[REDACTED]', 'content-type': 'application/json' },
      body: {
        user: 'ada',
        password: '[REDACTED]',
        payment: { card_number: '[REDACTED]', note: 'card [REDACTED] please' },
        items: [{ sku: 'A1', token: '[REDACTED]' }],
      },
    });
    expect(JSON.stringify(entry)).not.toMatch(/hunter2|very-secret|4111|t0k/);
  });
});
